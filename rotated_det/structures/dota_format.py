"""The DOTA label format: one text file per image, one object per line, parsed into polygons,
class names and difficult flags. The format is shared by the dataset loaders
(:mod:`rotated_det.data.datasets.dota`), the split tool and the evaluation, so it lives below
both ``data`` and ``evaluation``.

Label file::

    imagesource:GoogleEarth          <- optional header lines
    gsd:0.146343590398
    x1 y1 x2 y2 x3 y3 x4 y4 category difficult

Coordinates are pixels of the image; ``difficult`` is 0 or 1 (missing means 0; any other value is
an error naming the file and line). A UTF-8 byte-order mark at the start of the file (written by
some Windows editors) is ignored. The four points are usually clockwise from the object's "head",
but real labels are messy: any order is accepted (``poly_to_rbox`` takes the minimum-area
rectangle of the four points).

The category lists of the DOTA versions (``DOTA_V1_CLASSES``, ...) are part of the format.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "DOTA_V1_CLASSES",
    "DOTA_V15_CLASSES",
    "DOTA_V2_CLASSES",
    "DotaLabels",
    "parse_dota_label_file",
    "parse_dota_label_text",
]

logger = logging.getLogger(__name__)

DOTA_V1_CLASSES = (
    "plane",
    "baseball-diamond",
    "bridge",
    "ground-track-field",
    "small-vehicle",
    "large-vehicle",
    "ship",
    "tennis-court",
    "basketball-court",
    "storage-tank",
    "soccer-ball-field",
    "roundabout",
    "harbor",
    "swimming-pool",
    "helicopter",
)
DOTA_V15_CLASSES = DOTA_V1_CLASSES + ("container-crane",)
DOTA_V2_CLASSES = DOTA_V15_CLASSES + ("airport", "helipad")


@dataclass
class DotaLabels:
    """Parsed content of one DOTA label file.

    Attributes:
        polys: ``[N, 8]`` float64 polygons (pixels).
        class_names: N category names as written.
        difficult: ``[N]`` int64 (0 or 1).
        header: header fields, e.g. ``{"imagesource": "GoogleEarth", "gsd": "0.14"}``.
        num_malformed: lines skipped because malformed (only with ``skip_malformed=True``).
        line_numbers: ``[N]`` 1-based line number of each object, for error messages.
    """

    polys: np.ndarray
    class_names: list[str]
    difficult: np.ndarray
    header: dict[str, str] = field(default_factory=dict)
    num_malformed: int = 0
    line_numbers: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.class_names)


_HEADER_KEYS = ("imagesource:", "gsd:")
_BOM = "\ufeff"  # UTF-8 byte-order mark, as decoded by the "utf-8" codec


def parse_dota_label_text(
    text: str, path: str = "<string>", skip_malformed: bool = False
) -> DotaLabels:
    """Parse the content of a DOTA label file. See :func:`parse_dota_label_file`."""
    text = text.removeprefix(_BOM)
    # A flat list of coordinate strings: str objects are not tracked by the cyclic garbage
    # collector, a list per line would be (and would trigger collections on big files).
    coords: list[str] = []
    names: list[str] = []
    diffs: list[int] = []
    lines_no: list[int] = []
    header: dict[str, str] = {}
    malformed = 0
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if line[:12].lower().startswith(_HEADER_KEYS):
            key, _, val = line.partition(":")
            header[key.strip().lower()] = val.strip()
            continue
        parts = line.split()
        n = len(parts)
        if n == 10:
            d = parts[9]
        elif n == 9:
            d = "0"
        else:
            d = None
        if d not in ("0", "1"):
            why = (
                f"{n} fields, expected 9 or 10"
                if d is None
                else f"difficult flag {d!r}, expected 0 or 1"
            )
            msg = (
                f"{path}:{lineno}: malformed DOTA label line {raw!r} ({why}); expected "
                "'x1 y1 x2 y2 x3 y3 x4 y4 category difficult' (difficult 0 or 1)"
            )
            if skip_malformed:
                malformed += 1
                logger.warning(msg + " -- skipped")
                continue
            raise ValueError(msg)
        coords.extend(parts[:8])
        names.append(parts[8])
        diffs.append(1 if d == "1" else 0)
        lines_no.append(lineno)
    try:
        polys = np.array(coords, dtype=np.float64).reshape(-1, 8)
    except ValueError:
        # Find the offending line for a precise message.
        keep = []
        rows = [coords[8 * i : 8 * i + 8] for i in range(len(names))]
        for i, c in enumerate(rows):
            try:
                [float(v) for v in c]
                keep.append(i)
            except ValueError:
                msg = (
                    f"{path}:{lines_no[i]}: malformed DOTA label line: non-numeric coordinate "
                    f"in {' '.join(c)!r}"
                )
                if not skip_malformed:
                    raise ValueError(msg) from None
                malformed += 1
                logger.warning(msg + " -- skipped")
        coords = [v for i in keep for v in rows[i]]
        names = [names[i] for i in keep]
        diffs = [diffs[i] for i in keep]
        lines_no = [lines_no[i] for i in keep]
        polys = np.array(coords, dtype=np.float64).reshape(-1, 8)
    if polys.size and not np.isfinite(polys).all():
        bad = int(np.nonzero(~np.isfinite(polys).all(axis=1))[0][0])
        raise ValueError(f"{path}:{lines_no[bad]}: non-finite coordinate in DOTA label line")
    return DotaLabels(
        polys=polys,
        class_names=names,
        difficult=np.asarray(diffs, dtype=np.int64),
        header=header,
        num_malformed=malformed,
        line_numbers=np.asarray(lines_no, dtype=np.int64),
    )


def parse_dota_label_file(path: str, skip_malformed: bool = False) -> DotaLabels:
    """Read one DOTA label file.

    Args:
        path: the ``.txt`` file.
        skip_malformed: if False (default) a malformed line (wrong number of fields, a
            non-numeric coordinate, a ``difficult`` flag other than 0 or 1) raises ``ValueError``
            naming the file and line; if True it is skipped, logged and counted in
            ``num_malformed``.
    """
    try:
        with open(path, encoding="utf-8-sig", errors="strict") as f:
            text = f.read()
    except OSError as e:
        raise OSError(f"Cannot read DOTA label file {path}: {e}") from e
    return parse_dota_label_text(text, path=path, skip_malformed=skip_malformed)
