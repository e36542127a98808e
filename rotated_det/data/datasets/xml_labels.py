"""What the XML annotation loaders share (Pascal-VOC-style rotated boxes, FAIR1M): reading a
file, the image size of its ``<size>`` element, numbers parsed in bulk, and error messages that
name the file, the line and the element.

ElementTree's C parser keeps no line numbers, so the loaders parse fast without them and look the
line up only when they report an error (:func:`element_line` parses the file again with expat).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["read_xml", "element_line", "where_element", "xml_image_size", "parse_floats"]


def read_xml(path: str, kind: str) -> ET.Element:
    """The root element of the XML file ``path``. Read as bytes, so the encoding declared in the
    file (and a UTF-8 byte-order mark) is honoured.

    Args:
        path: the file.
        kind: what the file is, for messages (e.g. ``"DIOR-R annotation"``).
    Raises:
        FileNotFoundError / OSError: naming ``path`` when it is missing or cannot be read.
        ValueError: ``path:line:column: not well-formed <kind> XML`` when it does not parse.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"{kind.capitalize()} {path} does not exist") from None
    except OSError as e:
        raise OSError(f"Cannot read {kind} {path}: {e}") from e
    try:
        return ET.fromstring(data)
    except ET.ParseError as e:
        line, col = e.position
        raise ValueError(f"{path}:{line}:{col}: not well-formed {kind} XML: {e}") from None


def element_line(path: str, element_path: Sequence[str], index: int) -> int | None:
    """1-based line of the ``index``-th (0-based, in document order) element whose tags from the
    root's children down are ``element_path`` (``("object",)`` for a VOC ``<object>``,
    ``("objects", "object")`` for FAIR1M); None when there is none or the file cannot be read."""
    import xml.parsers.expat

    target = tuple(element_path)
    parser = xml.parsers.expat.ParserCreate()
    stack: list[str] = []
    state = {"count": -1, "line": None}

    def start(name, attrs):
        stack.append(name)
        if state["line"] is None and tuple(stack[1:]) == target:
            state["count"] += 1
            if state["count"] == index:
                state["line"] = parser.CurrentLineNumber

    def end(name):
        stack.pop()

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    try:
        with open(path, "rb") as f:
            parser.ParseFile(f)
    except (OSError, xml.parsers.expat.ExpatError):
        pass
    return state["line"]


def where_element(path: str, element_path: Sequence[str], index: int) -> str:
    """``"<path>:<line>: <object> #<index>"`` for error messages (the line when it can be found;
    ``index`` 0-based as in :func:`element_line`)."""
    line = element_line(path, element_path, index)
    loc = path if line is None else f"{path}:{line}"
    return f"{loc}: <{element_path[-1]}> #{index}"


def xml_image_size(
    root: ET.Element, path: str, *, unknown_ok: bool = False
) -> tuple[int, int] | None:
    """``(height, width)`` from ``<size><width>..</width><height>..</height></size>`` (pixels), or
    None when the file has no ``<size>`` element (the loader then reads the image header).

    Args:
        root: the file's root element.
        path: the file, for the error message.
        unknown_ok: a missing, non-numeric or non-positive width or height gives None too
            (labelImg writes 0 when it did not know the size) instead of raising.
    Raises:
        ValueError: naming the file when ``<size>`` lacks a positive integer width or height
            (unless ``unknown_ok``).
    """
    size = root.find("size")
    if size is None:
        return None
    vals = []
    for tag in ("height", "width"):
        text = size.findtext(tag)
        try:
            v = int(float(text)) if text is not None else None
        except ValueError:
            v = None
        if v is None or v <= 0:
            if unknown_ok:
                return None
            raise ValueError(
                f"{path}: <size><{tag}> is {text!r}; expected a positive integer (pixels)"
            )
        vals.append(v)
    return vals[0], vals[1]


def parse_floats(
    values: list[str], width: int, describe: Callable[[int], str], columns: Sequence[str]
) -> np.ndarray:
    """Convert number strings to a ``[len(values) // width, width]`` float64 array in one call,
    requiring finite values.

    Args:
        values: the strings, ``width`` per row (e.g. 8 corner coordinates per object).
        width: values per row.
        describe: row index -> where that row came from (file, line, element), for the error.
        columns: ``width`` names of the values of a row (e.g. ``"<x_left_top>"``).
    Raises:
        ValueError: ``describe(row): <column> 'value' is not a finite number`` for the first
            value that is not a number or not finite.
    """
    try:
        out = np.array(values, dtype=np.float64).reshape(-1, width)
    except ValueError:
        out = None
    if out is not None and np.isfinite(out).all():
        return out
    i = next(i for i, v in enumerate(values) if not _is_finite_number(v))
    row, col = divmod(i, width)
    raise ValueError(f"{describe(row)}: {columns[col]} {values[i]!r} is not a finite number")


def _is_finite_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except (TypeError, ValueError):
        return False
