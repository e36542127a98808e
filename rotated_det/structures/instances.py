"""``Instances``: the per-image list of detected or annotated objects."""

import itertools
import warnings
from collections.abc import Iterator
from typing import Any

import torch

__all__ = ["Instances"]


def _num_rows(value: Any) -> "int | torch.SymInt":
    """Length of a field. ``len()`` must return a Python int, so tensors (and objects holding a
    ``tensor``, like RotatedBoxes) are measured by ``shape[0]``, which stays symbolic under
    ``torch.export``. Under ``torch.jit.trace`` shapes are traced tensors: there ``len()`` gives
    the trace-time length, which is all the check needs."""
    if torch.jit.is_tracing():
        with warnings.catch_warnings(record=True):  # len() of a traced tensor warns
            return len(value)
    tensor = value if isinstance(value, torch.Tensor) else getattr(value, "tensor", None)
    if isinstance(tensor, torch.Tensor) and tensor.dim() > 0:
        return tensor.shape[0]
    return len(value)


class Instances:
    """
    The objects of one image, as named fields of equal length N ("gt_boxes", "gt_classes",
    "pred_boxes", "scores", ...). A field is anything with ``__len__`` and ``__getitem__``
    (a tensor, RotatedBoxes, a list).

    Fields are attributes: ``instances.scores = s`` sets one, ``instances.scores`` reads it.
    Indexing (int, slice, bool mask or index tensor) indexes every field and returns a new
    Instances; an int gives an Instances of length 1.

    Example::

        inst = Instances((height, width), pred_boxes=RotatedBoxes(b), scores=s)
        kept = inst[inst.scores > 0.5]
    """

    def __init__(self, image_size: tuple[int, int], **kwargs: Any):
        """
        Args:
            image_size: (height, width) of the image.
            kwargs: fields to set.
        """
        self._image_size = image_size
        self._fields: dict[str, Any] = {}
        for k, v in kwargs.items():
            self.set(k, v)

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width)"""
        return self._image_size

    def __setattr__(self, name: str, val: Any) -> None:
        if name.startswith("_"):
            super().__setattr__(name, val)
        else:
            self.set(name, val)

    def __getattr__(self, name: str) -> Any:
        # only called when normal lookup fails
        if name == "_fields" or name not in self._fields:
            raise AttributeError(f"Cannot find field '{name}' in the given Instances!")
        return self._fields[name]

    def set(self, name: str, value: Any) -> None:
        """
        Set field ``name`` to ``value``. Raises ValueError if its length differs from the length
        of the fields already present.

        Under ``torch.export`` a length may be symbolic (e.g. the data-dependent number of boxes
        NMS keeps); the check then becomes a runtime assertion of the exported program.
        """
        data_len = _num_rows(value)
        if self._fields:
            length = _num_rows(next(iter(self._fields.values())))

            def message() -> str:
                return (
                    f"Instances: adding field '{name}' of length {data_len} to Instances of "
                    f"length {length}"
                )

            if isinstance(data_len, int) and isinstance(length, int):
                if data_len != length:
                    raise ValueError(message())
            else:
                torch._check(data_len == length, message)
        self._fields[name] = value

    def has(self, name: str) -> bool:
        return name in self._fields

    def remove(self, name: str) -> None:
        """Remove field ``name`` (KeyError if absent)."""
        del self._fields[name]

    def get(self, name: str) -> Any:
        return self._fields[name]

    def get_fields(self) -> dict[str, Any]:
        """The dict of fields (modifying it modifies this Instances)."""
        return self._fields

    def to(self, *args: Any, **kwargs: Any) -> "Instances":
        """A new Instances with ``.to(*args, **kwargs)`` applied to every field that has it."""
        ret = Instances(self._image_size)
        for k, v in self._fields.items():
            if hasattr(v, "to"):
                v = v.to(*args, **kwargs)
            ret.set(k, v)
        return ret

    def __getitem__(self, item: int | slice | torch.Tensor) -> "Instances":
        """
        Args:
            item: int, slice, bool mask or index tensor.
        Returns:
            A new Instances whose fields are indexed by ``item``.
        """
        if type(item) is int:
            n = len(self)
            if item >= n or item < -n:
                raise IndexError(f"Instances index {item} out of range for length {n}")
            # a slice keeps every field a sequence of length 1
            item = slice(item, None, n)
        ret = Instances(self._image_size)
        for k, v in self._fields.items():
            ret.set(k, v[item])
        return ret

    def __len__(self) -> int:
        for v in self._fields.values():
            # __len__ rather than len(): works for traced tensors too
            n: int = v.__len__()
            return n
        raise NotImplementedError("Empty Instances does not support __len__!")

    def __iter__(self) -> Iterator[Any]:
        raise NotImplementedError("`Instances` object is not iterable!")

    @staticmethod
    def cat(instance_lists: list["Instances"]) -> "Instances":
        """
        Concatenate Instances of the same image size and fields. Tensors are concatenated along
        dim 0, lists chained, other field types joined with their class's ``cat``.
        """
        if not isinstance(instance_lists, (list, tuple)) or len(instance_lists) == 0:
            raise ValueError("Instances.cat expects a non-empty list of Instances")
        if not all(isinstance(i, Instances) for i in instance_lists):
            raise TypeError("Instances.cat: every element must be an Instances")
        if len(instance_lists) == 1:
            return instance_lists[0]

        image_size = instance_lists[0].image_size
        if not isinstance(image_size, torch.Tensor):  # traced sizes cannot be compared
            for i in instance_lists[1:]:
                if i.image_size != image_size:
                    raise ValueError(
                        f"Instances.cat: image sizes differ: {image_size} and {i.image_size}"
                    )
        keys = instance_lists[0]._fields.keys()
        for i in instance_lists[1:]:
            if i._fields.keys() != keys:
                raise ValueError(
                    f"Instances.cat: fields differ: {sorted(keys)} and {sorted(i._fields)}"
                )
        ret = Instances(image_size)
        for k in keys:
            values = [i.get(k) for i in instance_lists]
            v0 = values[0]
            joined: Any
            if isinstance(v0, torch.Tensor):
                joined = torch.cat(values, dim=0)
            elif isinstance(v0, list):
                joined = list(itertools.chain(*values))
            elif hasattr(type(v0), "cat"):
                joined = type(v0).cat(values)
            else:
                raise ValueError(f"Instances.cat: unsupported type {type(v0)} for field '{k}'")
            ret.set(k, joined)
        return ret

    def __str__(self) -> str:
        fields = ", ".join(f"{k}: {v}" for k, v in self._fields.items())
        return (
            f"{self.__class__.__name__}(num_instances={len(self)}, "
            f"image_height={self._image_size[0]}, image_width={self._image_size[1]}, "
            f"fields=[{fields}])"
        )

    __repr__ = __str__
