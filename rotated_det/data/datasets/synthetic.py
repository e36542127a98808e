"""A synthetic rotated-object dataset, rendered on the fly and written in DOTA format.

Scenes show six classes of objects that differ in shape, colour and texture, at any angle, over a
textured background with clutter (roads, grey buildings, specks). Some images contain densely
packed rows (parking lots, harbours), objects may overlap a little, and some images are larger than
a 512 px patch so that splitting matters. The output is deterministic for a seed (each image draws
from its own ``numpy`` generator seeded by ``(seed, split, index)``).

Object sizes (long side) range from 16 to 120 px, suitable for 512 px training patches. Every label
is the object's exact rotated rectangle: the rendered shape touches all four sides of it.

Layout written by :func:`generate_synthetic_dataset`::

    root/
      train/images/syn_train_0000.png ...   train/labelTxt/syn_train_0000.txt ...
      val/images/...                          val/labelTxt/...
      meta.json                               (generator arguments, for reproducibility)
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass

import cv2
import numpy as np

from rotated_det.structures import rbox_to_poly

__all__ = [
    "SYNTHETIC_CLASSES",
    "SYNTHETIC_COLORS",
    "render_scene",
    "generate_synthetic_dataset",
    "synthetic_dataset_exists",
]

logger = logging.getLogger(__name__)

SYNTHETIC_CLASSES = ("plane", "ship", "vehicle", "storage-tank", "court", "container")
# RGB colours of the classes (also used as thing_colors for visualisation).
SYNTHETIC_COLORS = (
    (235, 235, 240),
    (170, 30, 40),
    (40, 80, 220),
    (235, 200, 30),
    (40, 160, 60),
    (240, 120, 20),
)


@dataclass(frozen=True)
class _ClassSpec:
    long_side: tuple[float, float]  # pixels
    aspect: tuple[float, float]  # long / short


_SPECS = (
    _ClassSpec((40, 110), (1.0, 1.25)),  # plane: cross, wings as wide as fuselage is long
    _ClassSpec((40, 120), (3.0, 5.0)),  # ship: pointed hull
    _ClassSpec((16, 32), (1.8, 2.5)),  # vehicle: box with windshield
    _ClassSpec((20, 70), (1.0, 1.0)),  # storage tank: disc with ring
    _ClassSpec((50, 120), (1.6, 2.2)),  # court: green with white lines
    _ClassSpec((24, 64), (2.5, 4.0)),  # container: striped
)


def _to_image(cx, cy, w, h, a_deg, uv: np.ndarray) -> np.ndarray:
    """Object-local coords ``uv`` in [-0.5, 0.5]^2 (u along w, v along h) -> image xy [K, 2]."""
    a = math.radians(a_deg)
    ux, uy = math.cos(a), -math.sin(a)
    vx, vy = math.sin(a), math.cos(a)
    x = cx + uv[:, 0] * w * ux + uv[:, 1] * h * vx
    y = cy + uv[:, 0] * w * uy + uv[:, 1] * h * vy
    return np.stack([x, y], axis=1)


_RECT = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]])
_SHIFT = 4  # cv2 fixed-point bits: sub-pixel accurate polygon edges
_SCALE = float(1 << _SHIFT)


def _fill(img, pts, color):
    cv2.fillPoly(img, [np.round(pts * _SCALE).astype(np.int32)], color, cv2.LINE_AA, _SHIFT)


def _line(img, p0, p1, color, thickness):
    cv2.line(
        img,
        tuple(int(round(v * _SCALE)) for v in p0),
        tuple(int(round(v * _SCALE)) for v in p1),
        color,
        max(1, int(round(thickness))),
        cv2.LINE_AA,
        _SHIFT,
    )


def _bgr(rgb, jitter, rng):
    c = np.asarray(rgb[::-1], dtype=np.float64) + rng.uniform(-jitter, jitter, 3)
    return tuple(float(v) for v in np.clip(c, 0, 255))


def _draw_object(img, cls: int, box, rng) -> list[np.ndarray]:
    """Draw one object; returns the polygons it covers (for the occupancy map)."""
    cx, cy, w, h, a = box
    T = lambda uv: _to_image(cx, cy, w, h, a, np.asarray(uv, dtype=np.float64))  # noqa: E731
    color = _bgr(SYNTHETIC_COLORS[cls], 12, rng)
    if cls == 0:  # plane: fuselage along w, wings along h, tail
        fus = T([[-0.5, -0.09], [0.38, -0.09], [0.5, 0.0], [0.38, 0.09], [-0.5, 0.09]])
        wing = T([[0.02, -0.5], [0.16, -0.5], [0.2, 0.5], [0.06, 0.5]])
        tail = T([[-0.5, -0.22], [-0.4, -0.22], [-0.36, 0.22], [-0.46, 0.22]])
        polys = [fus, wing, tail]
        for p in polys:
            _fill(img, p, color)
        return polys
    if cls == 1:  # ship: pointed bow, white deck line
        hull = T([[-0.5, -0.5], [0.22, -0.5], [0.5, 0.0], [0.22, 0.5], [-0.5, 0.5]])
        _fill(img, hull, color)
        p0, p1 = T([[-0.4, 0.0], [0.3, 0.0]])
        _line(img, p0, p1, (235, 235, 235), max(1.0, h * 0.15))
        return [hull]
    if cls == 2:  # vehicle: body + dark windshield near the front
        body = T(_RECT)
        _fill(img, body, color)
        _fill(img, T([[0.15, -0.4], [0.32, -0.4], [0.32, 0.4], [0.15, 0.4]]), (30, 30, 30))
        return [body]
    if cls == 3:  # storage tank: disc with dark ring and bright centre
        r = w / 2.0
        ang = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        disc = np.stack([cx + r * np.cos(ang), cy + r * np.sin(ang)], axis=1)
        _fill(img, disc, color)
        cv2.circle(
            img,
            (int(round(cx * _SCALE)), int(round(cy * _SCALE))),
            int(round(r * 0.65 * _SCALE)),
            (40, 60, 70),
            max(1, int(round(r * 0.12))),
            cv2.LINE_AA,
            _SHIFT,
        )
        return [disc]
    if cls == 4:  # court: green with white border and centre line
        body = T(_RECT)
        _fill(img, body, color)
        inner = T(_RECT * 0.84)
        t = max(1.0, min(w, h) * 0.04)
        cv2.polylines(
            img,
            [np.round(inner * _SCALE).astype(np.int32)],
            True,
            (245, 245, 245),
            max(1, int(round(t))),
            cv2.LINE_AA,
            _SHIFT,
        )
        p0, p1 = T([[0.0, -0.42], [0.0, 0.42]])
        _line(img, p0, p1, (245, 245, 245), t)
        return [body]
    # container: orange with dark stripes across the long side
    body = T(_RECT)
    _fill(img, body, color)
    n = 5
    for i in range(1, n):
        u = -0.5 + i / n
        p0, p1 = T([[u, -0.5], [u, 0.5]])
        _line(img, p0, p1, (60, 40, 20), max(1.0, w * 0.03))
    return [body]


def _background(h: int, w: int, rng) -> np.ndarray:
    base = np.array(rng.uniform(70, 130, 3))
    lh, lw = max(2, h // 48), max(2, w // 48)
    low = rng.normal(0, 16, (lh, lw, 1)) + rng.normal(0, 5, (lh, lw, 3))
    img = cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC) + base
    fine = rng.normal(0, 6, (max(2, h // 2), max(2, w // 2), 1))
    img += cv2.resize(fine, (w, h), interpolation=cv2.INTER_NEAREST)[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


def _clutter(img, rng, density: float):
    h, w = img.shape[:2]
    area = h * w
    for _ in range(int(rng.poisson(area / 250_000 * 2 * density)) + 1):  # roads
        g = float(rng.uniform(90, 150))
        p0 = rng.uniform(0, 1, 2) * (w, h)
        p1 = rng.uniform(0, 1, 2) * (w, h)
        _line(img, p0, p1, (g, g + rng.uniform(-5, 5), g), rng.uniform(4, 14))
    for _ in range(int(rng.poisson(area / 250_000 * 10 * density))):  # grey buildings
        g = float(rng.uniform(60, 170))
        cx, cy = rng.uniform(0, 1, 2) * (w, h)
        bw, bh = rng.uniform(10, 50, 2)
        angle = rng.uniform(-180, 180)
        _fill(img, _to_image(cx, cy, bw, bh, angle, _RECT), (g, g * rng.uniform(0.95, 1.05), g))
    for _ in range(int(rng.poisson(area / 250_000 * 40 * density))):  # specks
        g = float(rng.uniform(40, 200))
        c = rng.uniform(0, 1, 2) * (w, h)
        cv2.circle(img, (int(c[0]), int(c[1])), int(rng.integers(1, 4)), (g, g, g), -1)


def _sample_box(cls: int, rng, w_img: int, h_img: int, angle=None, size=None):
    spec = _SPECS[cls]
    long_side = float(size if size is not None else rng.uniform(*spec.long_side))
    aspect = float(rng.uniform(*spec.aspect))
    w, h = long_side, long_side / aspect
    if rng.random() < 0.15 and cls not in (3,):
        w, h = h, w  # sometimes the w-axis is the short one: all angle conventions occur
    a = float(angle if angle is not None else rng.uniform(-180, 180))
    if cls == 3:
        h = w
    margin = 0.3 * max(w, h)
    cx = float(rng.uniform(margin, w_img - margin))
    cy = float(rng.uniform(margin, h_img - margin))
    return [cx, cy, w, h, a]


class _Occupancy:
    """Per-pixel index of the last object drawn there; limits how much objects overlap."""

    def __init__(self, h: int, w: int) -> None:
        self.ids = np.full((h, w), -1, dtype=np.int32)
        self.areas: list[int] = []

    def try_add(self, polys, max_overlap: float) -> bool:
        pts = np.concatenate(polys)
        h, w = self.ids.shape
        x0, y0 = np.floor(pts.min(0)).astype(int)
        x1, y1 = np.ceil(pts.max(0)).astype(int) + 1
        if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
            return False
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        for p in polys:
            cv2.fillPoly(
                mask, [np.round((p - (x0, y0)) * _SCALE).astype(np.int32)], 1, cv2.LINE_8, _SHIFT
            )
        m = mask.astype(bool)
        area = int(m.sum())
        if area == 0:
            return False
        under = self.ids[y0:y1, x0:x1][m]
        under = under[under >= 0]
        if len(under):
            if len(under) > max_overlap * area:
                return False
            cnt = np.bincount(under)
            nz = np.nonzero(cnt)[0]
            if (cnt[nz] > max_overlap * np.asarray(self.areas)[nz]).any():
                return False
        self.ids[y0:y1, x0:x1][m] = len(self.areas)
        self.areas.append(area)
        return True

    def visible_fraction(self) -> np.ndarray:
        cnt = np.bincount(self.ids[self.ids >= 0].ravel(), minlength=len(self.areas))
        return cnt / np.maximum(np.asarray(self.areas, dtype=np.float64), 1)


def render_scene(
    rng: np.random.Generator,
    height: int,
    width: int,
    density: float = 1.0,
    max_overlap: float = 0.25,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Render one scene.

    Args:
        rng: random generator (the scene is a function of its state).
        height, width: image size in pixels.
        density: scales the number of objects and clutter items per area.
        max_overlap: largest fraction of an object that another may cover.
    Returns:
        ``(image, boxes, classes, difficult)``: BGR uint8 ``[H, W, 3]``; ``[N, 5]`` XYWHA_ABS
        float64 boxes; ``[N]`` int64 class indices into :data:`SYNTHETIC_CLASSES`; ``[N]`` int64
        difficult flags (1 where less than 60% of the object is visible).
    """
    img = _background(height, width, rng)
    _clutter(img, rng, density)
    occ = _Occupancy(height, width)
    boxes: list[list[float]] = []
    classes: list[int] = []

    def place(cls, box, draw_rng):
        polys = _render_polys(cls, box)
        if occ.try_add(polys, max_overlap):
            _draw_object(img, cls, box, draw_rng)
            boxes.append(box)
            classes.append(cls)
            return True
        return False

    # Dense rows: parking lots of vehicles or harbours of ships / stacks of containers.
    n_groups = int(rng.poisson(0.6 * density * height * width / 512**2))
    for _ in range(n_groups):
        cls = int(rng.choice([1, 2, 5], p=[0.3, 0.5, 0.2]))
        spec = _SPECS[cls]
        size = float(rng.uniform(*spec.long_side))
        aspect = float(rng.uniform(*spec.aspect))
        w, h = size, size / aspect
        a = float(rng.uniform(-180, 180))
        rows, cols = int(rng.integers(1, 4)), int(rng.integers(3, 9))
        gap_h, gap_w = h * float(rng.uniform(1.15, 1.5)), w * float(rng.uniform(1.1, 1.3))
        ox, oy = rng.uniform(0.1, 0.9) * width, rng.uniform(0.1, 0.9) * height
        ar = math.radians(a)
        u = np.array([math.cos(ar), -math.sin(ar)])
        v = np.array([math.sin(ar), math.cos(ar)])
        for r in range(rows):
            for c in range(cols):
                if rng.random() < 0.15:
                    continue
                p = np.array([ox, oy]) + (c - cols / 2) * gap_h * v + (r - rows / 2) * gap_w * u
                box = [float(p[0]), float(p[1]), w, h, a + float(rng.normal(0, 2))]
                place(cls, box, rng)

    n_single = int(rng.poisson(22 * density * height * width / 512**2))
    for _ in range(n_single):
        cls = int(rng.integers(0, len(SYNTHETIC_CLASSES)))
        for _attempt in range(4):
            if place(cls, _sample_box(cls, rng, width, height), rng):
                break

    vis = occ.visible_fraction()
    difficult = (vis < 0.6).astype(np.int64)
    return (
        img,
        np.asarray(boxes, dtype=np.float64).reshape(-1, 5),
        np.asarray(classes, dtype=np.int64),
        difficult,
    )


def _render_polys(cls: int, box) -> list[np.ndarray]:
    cx, cy, w, h, a = box
    if cls == 3:
        ang = np.linspace(0, 2 * np.pi, 24, endpoint=False)
        return [np.stack([cx + w / 2 * np.cos(ang), cy + w / 2 * np.sin(ang)], axis=1)]
    return [_to_image(cx, cy, w, h, a, _RECT)]


def _write_labels(path: str, polys: np.ndarray, classes, difficult) -> None:
    lines = ["imagesource:synthetic", "gsd:null"]
    for p, c, d in zip(polys, classes, difficult):
        coords = " ".join(f"{v:.2f}" for v in p)
        lines.append(f"{coords} {SYNTHETIC_CLASSES[int(c)]} {int(d)}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def _image_size_for(rng, base_size: int, large_fraction: float) -> tuple[int, int]:
    if rng.random() < large_fraction:
        return int(rng.integers(900, 1600)), int(rng.integers(900, 1600))
    return int(rng.integers(int(base_size * 0.8), base_size + 1)), int(
        rng.integers(int(base_size * 0.8), base_size + 1)
    )


_SPLIT_IDS = {"train": 1, "val": 2, "test": 3}


def generate_synthetic_dataset(
    root: str,
    num_train: int = 48,
    num_val: int = 12,
    seed: int = 0,
    image_size: int = 640,
    large_fraction: float = 0.2,
    density: float = 1.0,
    image_ext: str = ".png",
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Write a synthetic DOTA-format dataset under ``root`` (layout in the module doc).

    Args:
        root: output directory.
        num_train, num_val: number of images of each split.
        seed: random seed; the same arguments always give the same files.
        image_size: typical image side (each side drawn in ``[0.8, 1] * image_size``).
        large_fraction: fraction of images drawn 900-1600 px per side (larger than a patch).
        density: scales objects and clutter per area.
        image_ext: ".png" (lossless, default) or ".jpg".
        overwrite: regenerate even if ``root/meta.json`` says the same arguments were used.
        progress: show a tqdm progress bar.
    Returns:
        summary dict: images and objects per split, seconds.
    """
    args = dict(
        num_train=num_train,
        num_val=num_val,
        seed=seed,
        image_size=image_size,
        large_fraction=large_fraction,
        density=density,
        image_ext=image_ext,
        version=1,
    )
    meta_path = os.path.join(root, "meta.json")
    if not overwrite and synthetic_dataset_exists(root, args):
        with open(meta_path) as f:
            return json.load(f)["summary"]
    t0 = time.perf_counter()
    summary: dict = {}
    jobs = [("train", i) for i in range(num_train)] + [("val", i) for i in range(num_val)]
    try:
        from tqdm import tqdm

        it = tqdm(jobs, desc="synthetic", disable=not progress, unit="img")
    except ImportError:  # pragma: no cover
        it = jobs
    for split in ("train", "val"):
        os.makedirs(os.path.join(root, split, "images"), exist_ok=True)
        os.makedirs(os.path.join(root, split, "labelTxt"), exist_ok=True)
        summary[split] = {"images": 0, "objects": 0}
    params = [cv2.IMWRITE_PNG_COMPRESSION, 1] if image_ext == ".png" else []
    for split, i in it:
        rng = np.random.default_rng([seed, _SPLIT_IDS[split], i])
        h, w = _image_size_for(rng, image_size, large_fraction)
        img, boxes, classes, difficult = render_scene(rng, h, w, density=density)
        stem = f"syn_{split}_{i:04d}"
        ipath = os.path.join(root, split, "images", stem + image_ext)
        if not cv2.imwrite(ipath, img, params):
            raise OSError(f"Could not write {ipath}")
        _write_labels(
            os.path.join(root, split, "labelTxt", stem + ".txt"),
            rbox_to_poly(boxes),
            classes,
            difficult,
        )
        summary[split]["images"] += 1
        summary[split]["objects"] += len(boxes)
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    with open(meta_path, "w") as f:
        json.dump({"args": args, "summary": summary}, f, indent=1)
    logger.info(f"Synthetic dataset written to {root}: {summary}")
    return summary


def synthetic_dataset_exists(root: str, args: dict | None = None) -> bool:
    """Whether ``root`` holds a complete synthetic dataset (generated with ``args`` if given)."""
    meta_path = os.path.join(root, "meta.json")
    if not os.path.isfile(meta_path):
        return False
    if args is None:
        return True
    try:
        with open(meta_path) as f:
            return json.load(f).get("args") == args
    except (OSError, ValueError):
        return False
