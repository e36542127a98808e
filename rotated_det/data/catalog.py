"""Global registries of datasets and their metadata.

``DatasetCatalog`` maps a dataset name to a zero-argument function returning the dataset as a
``list[dict]`` in the standard format (see :mod:`rotated_det.data.datasets.dota`).
``MetadataCatalog`` maps the same name to a :class:`Metadata` object holding what is constant
over a dataset: ``thing_classes``, ``thing_colors``, ``evaluator_type``, ``image_root``, ...
"""

from __future__ import annotations

import logging
import types
from collections import UserDict
from collections.abc import Callable
from typing import Any

__all__ = ["DatasetCatalog", "MetadataCatalog", "Metadata"]


class _DatasetCatalog(UserDict):
    """Name -> function returning ``list[dict]``. Registering a name twice is an error."""

    def register(self, name: str, func: Callable[[], list[dict]]) -> None:
        if not callable(func):
            raise TypeError(
                f"DatasetCatalog.register('{name}', ...) needs a callable, got {func!r}"
            )
        if name in self:
            raise AssertionError(f"Dataset '{name}' is already registered!")
        self[name] = func

    def get(self, name: str) -> list[dict]:  # type: ignore[override]
        """Call the registered function of ``name`` and return its list of dicts."""
        try:
            func = self[name]
        except KeyError as e:
            raise KeyError(
                f"Dataset '{name}' is not registered! Available datasets are: "
                f"{', '.join(sorted(self.keys()))}"
            ) from e
        return func()

    def list(self) -> list[str]:
        return list(self.keys())

    def remove(self, name: str) -> None:
        self.pop(name)

    def __str__(self) -> str:
        return f"DatasetCatalog(registered datasets: {', '.join(self.keys())})"

    __repr__ = __str__


DatasetCatalog = _DatasetCatalog()
DatasetCatalog.__doc__ = _DatasetCatalog.__doc__


class Metadata(types.SimpleNamespace):
    """Attributes describing a dataset. Once set, an attribute cannot be changed to another value.

    Common attributes: ``name``, ``thing_classes`` (list[str]), ``thing_colors``
    (list[tuple[int, int, int]] RGB), ``evaluator_type`` (str, e.g. "dota", "hrsc"),
    ``image_root``, ``label_root``, ``angle_version``.
    """

    name: str = "N/A"

    def __getattr__(self, key: str) -> Any:
        # Only called when normal lookup fails.
        if key.startswith("__"):
            raise AttributeError(key)
        raise AttributeError(
            f"Attribute '{key}' does not exist in the metadata of dataset '{self.name}'. "
            f"Available keys are {sorted(self.__dict__.keys())}."
        )

    def __setattr__(self, key: str, val: Any) -> None:
        try:
            old = object.__getattribute__(self, key)
        except AttributeError:
            old = _MISSING
        if old is not _MISSING and key in self.__dict__ and old != val:
            raise AssertionError(
                f"Attribute '{key}' of metadata '{self.name}' cannot be set to a different "
                f"value!\n{old} != {val}"
            )
        super().__setattr__(key, val)

    def as_dict(self) -> dict:
        return dict(self.__dict__)

    def set(self, **kwargs: Any) -> Metadata:
        """Set several attributes at once; returns self."""
        for k, v in kwargs.items():
            setattr(self, k, v)
        return self

    def get(self, key: str, default: Any = None) -> Any:
        """Attribute ``key`` if it exists, else ``default``."""
        return self.__dict__.get(key, default)


_MISSING = object()


class _MetadataCatalog(UserDict):
    """Name -> :class:`Metadata`. ``get(name)`` creates an empty Metadata on first access."""

    def get(self, name: str) -> Metadata:  # type: ignore[override]
        assert len(name), "Metadata name must be non-empty"
        r = self.data.get(name)
        if r is None:
            r = self.data[name] = Metadata(name=name)
        return r

    def list(self) -> list[str]:
        return list(self.keys())

    def remove(self, name: str) -> None:
        self.pop(name)

    def __str__(self) -> str:
        return f"MetadataCatalog(registered metadata: {', '.join(self.keys())})"

    __repr__ = __str__


MetadataCatalog = _MetadataCatalog()
MetadataCatalog.__doc__ = _MetadataCatalog.__doc__

logger = logging.getLogger(__name__)
