"""Names of the patches written by the DOTA split tool: ``NAME__RATE__X___Y``.

``NAME`` is the original image name (may itself contain underscores), ``RATE`` the resize rate
applied to the original image before cropping (``1``, ``1.0``, ``0.5``, ...), and ``X``, ``Y`` the
top-left corner of the patch in the *resized* image, in pixels. A point ``(px, py)`` of the patch
maps back to the original image as ``((px + X) / RATE, (py + Y) / RATE)``.

Example: ``P0706__1.0__0___824`` -> ``("P0706", 1.0, 0, 824)``.
"""

from __future__ import annotations

import re

__all__ = ["parse_patch_name", "format_patch_name", "is_patch_name"]

_PATCH_RE = re.compile(r"^(?P<name>.+?)__(?P<rate>\d+(?:\.\d*)?)__(?P<x>-?\d+)___(?P<y>-?\d+)$")


def is_patch_name(name: str) -> bool:
    """Whether ``name`` (without extension) follows ``NAME__RATE__X___Y``."""
    return _PATCH_RE.match(name) is not None


def parse_patch_name(name: str) -> tuple[str, float, int, int]:
    """Parse ``NAME__RATE__X___Y`` into ``(orig_name, rate, x, y)``.

    Args:
        name: patch name, with or without directory and file extension
            (``"dir/P0706__1.0__0___824.png"`` works too).

    Raises:
        ValueError: if ``name`` does not follow the convention.
    """
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    m = _PATCH_RE.match(base)
    if m is None and "." in base:
        m = _PATCH_RE.match(base.rsplit(".", 1)[0])
    if m is None:
        raise ValueError(
            f"'{name}' is not a DOTA patch name; expected NAME__RATE__X___Y, "
            "e.g. P0706__1.0__0___824"
        )
    rate = float(m.group("rate"))
    if rate <= 0:
        raise ValueError(f"Patch name '{name}' has a non-positive rate {rate}")
    return m.group("name"), rate, int(m.group("x")), int(m.group("y"))


def format_patch_name(orig_name: str, rate: float, x: int, y: int) -> str:
    """Inverse of :func:`parse_patch_name`. ``rate`` is written as Python prints a float
    (``1.0``, ``0.5``, ``1.5``), the form MMRotate's splitter writes."""
    return f"{orig_name}__{float(rate)!r}__{int(x)}___{int(y)}"
