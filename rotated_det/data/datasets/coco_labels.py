"""What the COCO-style JSON loaders share (:mod:`~rotated_det.data.datasets.coco_rotated`,
:mod:`~rotated_det.data.datasets.coco_polygons`): an annotation's numbers, its difficult flag and
the file's categories, read with errors that name the file and the annotation."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["DIFFICULT_KEYS", "parse_numbers", "read_difficult", "read_categories"]

DIFFICULT_KEYS = ("difficult", "ignore", "iscrowd")
_NUMBER_TYPES = frozenset((int, float))


def parse_numbers(values: Any, where: str, key: str) -> list[float]:
    """A JSON list of numbers (``bbox``, one polygon of ``segmentation``) as finite floats.

    Args:
        values: the JSON value.
        where: the file and annotation, for the error (e.g. ``"a.json: annotation id 7"``).
        key: the field, for the error.
    Raises:
        ValueError: ``where: malformed 'key' ...`` when ``values`` is not a list (or tuple) of
            ints and floats (a bool is not a number), or holds a NaN or an infinity.
    """
    # exact type checks (bool is an int subclass; JSON gives only int and float) in one pass
    if not isinstance(values, (list, tuple)) or not all(type(v) in _NUMBER_TYPES for v in values):
        raise ValueError(f"{where}: malformed '{key}' {values!r}: expected a list of numbers")
    out = [float(v) for v in values]
    # a NaN or infinity makes the sum non-finite; an overflowing sum of finite values is rare
    if not math.isfinite(sum(out)) and not all(math.isfinite(v) for v in out):
        raise ValueError(f"{where}: malformed '{key}' {values!r}: non-finite number")
    return out


def read_difficult(ann: dict, where: str) -> int:
    """1 when any of the annotation's optional :data:`DIFFICULT_KEYS` (``difficult``,
    ``ignore``, ``iscrowd``) is true, else 0.

    Raises:
        ValueError: naming ``where`` and the key when a value is not 0, 1, true or false.
    """
    flag = 0
    for key in DIFFICULT_KEYS:
        v = ann.get(key)
        if v is None:
            continue
        if not (isinstance(v, bool) or (isinstance(v, int) and v in (0, 1))):
            raise ValueError(f"{where}: malformed '{key}' {v!r}: expected 0, 1, true or false")
        flag |= int(v)
    return flag


def read_categories(cats: Any, json_file: str) -> tuple[list[int], list[str]]:
    """The JSON category ids, sorted, and their names in that order (the contiguous 0-based
    ``category_id`` of a category is its index in these lists).

    Args:
        cats: the file's ``categories`` value, a list of ``{"id": int, "name": str, ...}``.
        json_file: the file, for the error.
    Raises:
        ValueError: naming the file and the category's index: not a list, an entry without an
            ``id`` or ``name``, a non-integer id, an id given twice.
    """
    if not isinstance(cats, list):
        raise ValueError(f"{json_file}: 'categories' must be a list of {{'id', 'name'}} entries")
    by_id: dict[int, str] = {}
    for i, c in enumerate(cats):
        if not isinstance(c, dict) or "id" not in c or "name" not in c:
            raise ValueError(f"{json_file}: category #{i} {c!r} needs an 'id' and a 'name'")
        cid = c["id"]
        if not isinstance(cid, int) or isinstance(cid, bool):
            raise ValueError(f"{json_file}: category #{i} has id {cid!r}; expected an integer")
        if cid in by_id:
            raise ValueError(f"{json_file}: category id {cid} appears twice")
        by_id[cid] = str(c["name"])
    ids = sorted(by_id)
    return ids, [by_id[i] for i in ids]
