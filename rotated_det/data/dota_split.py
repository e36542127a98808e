"""Split large DOTA-format images into overlapping patches (MMRotate's ``img_split`` semantics).

For each rate in ``rates`` the image is resized by that rate; sliding windows of each
``(size, gap)`` pair are laid over it (stride ``size - gap``, the last window of a row/column moved
back to end at the image border); windows whose area lies less than ``img_rate_thr`` inside the
image are dropped (if none passes, the ones with the largest fraction are kept). Each window is
saved as ``save_dir/images/NAME__RATE__X___Y<ext>`` (see
:mod:`rotated_det.structures.dota_patch_name`), padded to ``size x size`` with
``padding_value`` unless ``no_padding``, and its objects as ``save_dir/labelTxt/<same stem>.txt``.

An object goes into a window when ``iof = area(object inside window) / area(object)`` is at least
``iof_thr``, the window being cut to the image first (objects in a patch's padding do not count).
Objects wholly inside keep their polygon exactly (translated); objects cut by the window border
are clipped to the window and replaced by the minimum-area rectangle of the clipped polygon (which
is the clipped polygon itself when a rectangle is cut by a straight border).
Polygons are written in the coordinates of the patch: ``(x_orig * rate - X, y_orig * rate - Y)``.

The object/window assignment is vectorised over all (object, window) pairs whose horizontal
bounding boxes meet (Sutherland-Hodgman clipping in numpy, :mod:`rotated_det.data.polygon_ops`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context

import cv2
import numpy as np

from rotated_det.data.datasets.loading import IMAGE_EXTENSIONS
from rotated_det.data.polygon_ops import clip_polygons_to_rects, order_quads, polygon_areas
from rotated_det.structures import points_to_rbox, rbox_to_poly
from rotated_det.structures.dota_format import DotaLabels, parse_dota_label_file
from rotated_det.structures.dota_patch_name import format_patch_name

__all__ = [
    "SPLIT_PRESETS",
    "window_starts",
    "get_sliding_windows",
    "assign_objects_to_windows",
    "split_image",
    "split_dota",
    "WindowObjects",
]

logger = logging.getLogger(__name__)

# MMRotate's single-scale and multi-scale settings for DOTA.
SPLIT_PRESETS = {
    "ss": dict(sizes=(1024,), gaps=(200,), rates=(1.0,)),
    "ms": dict(sizes=(1024,), gaps=(500,), rates=(0.5, 1.0, 1.5)),
}


def window_starts(length: int, size: int, stride: int) -> list[int]:
    """Start offsets (pixels) of windows of ``size`` covering ``[0, length)``: 0, stride,
    2 * stride, ... and a last window aligned to the end (``length - size``) when the grid does
    not reach it. A length not larger than ``size`` gives the single start 0. Used by the split
    tool and by sliding-window inference (``rotated_det.engine.sliding_window``)."""
    if length <= size:
        return [0]
    starts = list(range(0, length - size + 1, stride))
    if starts[-1] + size < length:
        starts.append(length - size)
    return starts


def get_sliding_windows(
    width: int,
    height: int,
    sizes: Sequence[int],
    gaps: Sequence[int],
    img_rate_thr: float = 0.6,
) -> np.ndarray:
    """Sliding windows over a ``width x height`` image.

    Returns:
        ``[K, 4]`` int64 windows ``(x0, y0, x1, y1)`` (``x1 - x0 == size``; windows may extend past
        the image, which is padded or cut when cropping).
    """
    if len(sizes) != len(gaps):
        raise ValueError(f"sizes {sizes} and gaps {gaps} must have the same length")
    wins = []
    for size, gap in zip(sizes, gaps):
        if not size > gap >= 0:
            raise ValueError(f"need size > gap >= 0, got size={size}, gap={gap}")
        xs, ys = window_starts(width, size, size - gap), window_starts(height, size, size - gap)
        gx, gy = np.meshgrid(xs, ys, indexing="ij")
        x0, y0 = gx.ravel(), gy.ravel()
        wins.append(np.stack([x0, y0, x0 + size, y0 + size], axis=1))
    windows = np.concatenate(wins).astype(np.int64)
    inside = (np.minimum(windows[:, 2], width) - np.maximum(windows[:, 0], 0)) * (
        np.minimum(windows[:, 3], height) - np.maximum(windows[:, 1], 0)
    )
    rates = inside / ((windows[:, 2] - windows[:, 0]) * (windows[:, 3] - windows[:, 1]))
    keep = rates > img_rate_thr
    if not keep.any():
        keep = np.abs(rates - rates.max()) < 0.01
    return windows[keep]


@dataclass
class WindowObjects:
    """Objects assigned to windows, as flat arrays over the kept (object, window) pairs.

    Attributes:
        obj_idx: ``[P]`` index of the object.
        win_idx: ``[P]`` index of the window.
        polys: ``[P, 8]`` polygons in the image's coordinates (original or clipped).
        iof: ``[P]`` fraction of the object's area inside the window.
        clipped: ``[P]`` bool, True where the object was cut by the window border.
    """

    obj_idx: np.ndarray
    win_idx: np.ndarray
    polys: np.ndarray
    iof: np.ndarray
    clipped: np.ndarray


def assign_objects_to_windows(
    polys: np.ndarray,
    windows: np.ndarray,
    iof_thr: float = 0.7,
    image_size: tuple[int, int] | None = None,
) -> WindowObjects:
    """Assign polygons ``[N, 8]`` to windows ``[K, 4]`` by iof (see module doc).

    Args:
        image_size: ``(height, width)``; if given, each window is first cut to the image, so that
            objects lying in a patch's padding (outside the image) are not assigned to it.
    """
    polys = np.asarray(polys, dtype=np.float64).reshape(-1, 8)
    windows = np.asarray(windows, dtype=np.float64).reshape(-1, 4)
    if image_size is not None:
        h, w = image_size
        windows = np.stack(
            [
                np.maximum(windows[:, 0], 0),
                np.maximum(windows[:, 1], 0),
                np.minimum(windows[:, 2], w),
                np.minimum(windows[:, 3], h),
            ],
            axis=1,
        )
    xs, ys = polys[:, 0::2], polys[:, 1::2]
    hb = np.stack([xs.min(1), ys.min(1), xs.max(1), ys.max(1)], axis=1)
    meet = (
        (hb[:, None, 0] < windows[None, :, 2])
        & (hb[:, None, 2] > windows[None, :, 0])
        & (hb[:, None, 1] < windows[None, :, 3])
        & (hb[:, None, 3] > windows[None, :, 1])
    )
    inside = (
        (hb[:, None, 0] >= windows[None, :, 0])
        & (hb[:, None, 2] <= windows[None, :, 2])
        & (hb[:, None, 1] >= windows[None, :, 1])
        & (hb[:, None, 3] <= windows[None, :, 3])
    )
    # Degenerate objects (zero area) belong to windows that contain them entirely.
    oi, wi = np.nonzero(inside)
    pi, pw = np.nonzero(meet & ~inside)
    quads = order_quads(polys[pi].reshape(-1, 4, 2))
    area = polygon_areas(quads)
    clipped = clip_polygons_to_rects(quads, windows[pw])
    inter = polygon_areas(clipped)
    iof_part = np.where(area > 0, inter / np.maximum(area, 1e-12), 0.0)
    ok = iof_part >= iof_thr
    pi, pw, iof_part, clipped = pi[ok], pw[ok], iof_part[ok], clipped[ok]
    part_polys = rbox_to_poly(points_to_rbox(clipped))
    obj_idx = np.concatenate([oi, pi])
    win_idx = np.concatenate([wi, pw])
    order = np.lexsort((obj_idx, win_idx))
    return WindowObjects(
        obj_idx=obj_idx[order],
        win_idx=win_idx[order],
        polys=np.concatenate([polys[oi], part_polys])[order],
        iof=np.concatenate([np.ones(len(oi)), iof_part])[order],
        clipped=np.concatenate([np.zeros(len(oi), bool), np.ones(len(pi), bool)])[order],
    )


def _fmt(v: float) -> str:
    s = f"{v:.3f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def _write_patch_labels(path: str, polys: np.ndarray, names: Sequence[str], diffs) -> None:
    lines = [
        " ".join(_fmt(v) for v in p) + f" {n} {int(d)}" for p, n, d in zip(polys, names, diffs)
    ]
    with open(path, "w") as f:
        f.write("\n".join(lines) + ("\n" if lines else ""))


def split_image(
    img_path: str,
    labels: DotaLabels | None,
    save_dir: str,
    sizes: Sequence[int] = (1024,),
    gaps: Sequence[int] = (200,),
    rates: Sequence[float] = (1.0,),
    img_rate_thr: float = 0.6,
    iof_thr: float = 0.7,
    no_padding: bool = False,
    padding_value: Sequence[int] = (0, 0, 0),
    save_ext: str = ".png",
    save_images: bool = True,
    write_threads: int = 2,
) -> dict:
    """Split one image (and its labels, if any) into patches under ``save_dir``.

    Patch images are encoded and written by ``write_threads`` threads (OpenCV releases the GIL
    while encoding, which dominates the time of a split).

    Returns:
        counts: ``patches``, ``objects`` (in the image), ``kept`` (object pieces written),
        ``clipped`` (pieces cut by a border), ``dropped`` (objects in no patch), ``megapixels``.
    """
    img = cv2.imread(img_path, cv2.IMREAD_COLOR)
    if img is None:
        raise OSError(f"Cannot read image {img_path}: missing or not a supported image file")
    name = os.path.splitext(os.path.basename(img_path))[0]
    img_dir = os.path.join(save_dir, "images")
    lbl_dir = os.path.join(save_dir, "labelTxt")
    pad = np.asarray(list(padding_value) * (3 // len(padding_value) or 1), dtype=np.uint8)[:3]
    counts = dict(
        patches=0,
        objects=0,
        kept=0,
        clipped=0,
        dropped=0,
        megapixels=img.shape[0] * img.shape[1] / 1e6,
    )
    n_obj = len(labels) if labels is not None else 0
    counts["objects"] = n_obj
    seen = np.zeros(n_obj, dtype=bool)
    pending: list = []
    pool = ThreadPoolExecutor(write_threads) if save_images and write_threads > 1 else None
    for rate in rates:
        if rate != 1.0:
            im = cv2.resize(img, None, fx=rate, fy=rate, interpolation=cv2.INTER_LINEAR)
        else:
            im = img
        h, w = im.shape[:2]
        windows = get_sliding_windows(w, h, sizes, gaps, img_rate_thr)
        if labels is not None:
            assigned = assign_objects_to_windows(
                labels.polys * rate, windows, iof_thr, image_size=(h, w)
            )
            seen[assigned.obj_idx] = True
            bounds = np.searchsorted(assigned.win_idx, np.arange(len(windows) + 1))
        for k, (x0, y0, x1, y1) in enumerate(windows.tolist()):
            stem = format_patch_name(name, rate, x0, y0)
            if len(pending) > 4 * max(write_threads, 1):
                _check_writes(pending[:-write_threads])
                del pending[:-write_threads]
            if save_images:
                crop = im[max(y0, 0) : min(y1, h), max(x0, 0) : min(x1, w)]
                if not no_padding and crop.shape[:2] != (y1 - y0, x1 - x0):
                    patch = np.empty((y1 - y0, x1 - x0, 3), dtype=np.uint8)
                    patch[:] = pad
                    patch[: crop.shape[0], : crop.shape[1]] = crop
                    crop = patch
                out = os.path.join(img_dir, stem + save_ext)
                if pool is None:
                    pending.append((out, _Done(cv2.imwrite(out, crop))))
                else:
                    pending.append((out, pool.submit(cv2.imwrite, out, crop)))
            counts["patches"] += 1
            if labels is not None:
                s, e = bounds[k], bounds[k + 1]
                idx = assigned.obj_idx[s:e]
                polys = assigned.polys[s:e] - np.array([x0, y0] * 4, dtype=np.float64)
                _write_patch_labels(
                    os.path.join(lbl_dir, stem + ".txt"),
                    polys,
                    [labels.class_names[i] for i in idx],
                    labels.difficult[idx],
                )
                counts["kept"] += len(idx)
                counts["clipped"] += int(assigned.clipped[s:e].sum())
    _check_writes(pending)
    if pool is not None:
        pool.shutdown()
    counts["dropped"] = int((~seen).sum())
    return counts


class _Done:
    """A finished result with the ``Future.result`` interface."""

    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value


def _check_writes(pending) -> None:
    for out, fut in pending:
        if not fut.result():
            raise OSError(f"Could not write patch {out}")


def _list_images(img_dirs: Sequence[str]) -> list[str]:
    paths = []
    for d in img_dirs:
        if not os.path.isdir(d):
            raise FileNotFoundError(f"Image directory {d} does not exist")
        paths += [
            os.path.join(d, f)
            for f in sorted(os.listdir(d))
            if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith(".")
        ]
    return paths


def _check_save_dir_apart(save_dir: str, input_dirs: Sequence[str]) -> None:
    """Raise when ``save_dir`` is an input folder, lies inside one or contains one (symbolic
    links resolved): patches would mix with the inputs, and a rerun would split them again."""
    out = os.path.normcase(os.path.realpath(save_dir))
    for d in input_dirs:
        inp = os.path.normcase(os.path.realpath(d))
        if os.path.commonpath([out, inp]) in (out, inp):
            how = "is" if out == inp else "contains" if len(inp) > len(out) else "lies inside"
            raise ValueError(
                f"save_dir {save_dir} {how} the input folder {d}: patches would be mixed with "
                "the inputs (and split again on a rerun). Choose a save_dir outside every image "
                "and label folder, e.g. a sibling such as <dataset>/split_ss/<split>."
            )


def _job(args):
    img_path, ann_path, kwargs = args
    labels = None
    if ann_path is not None:
        labels = parse_dota_label_file(ann_path, skip_malformed=kwargs.pop("skip_malformed"))
        kwargs = dict(kwargs, _malformed=labels.num_malformed)
    else:
        kwargs.pop("skip_malformed")
    malformed = kwargs.pop("_malformed", 0)
    counts = split_image(img_path, labels, **kwargs)
    counts["malformed"] = malformed
    return counts


def split_dota(
    img_dirs: Sequence[str],
    save_dir: str,
    ann_dirs: Sequence[str] | None = None,
    sizes: Sequence[int] = (1024,),
    gaps: Sequence[int] = (200,),
    rates: Sequence[float] = (1.0,),
    img_rate_thr: float = 0.6,
    iof_thr: float = 0.7,
    no_padding: bool = False,
    padding_value: Sequence[int] = (0, 0, 0),
    save_ext: str = ".png",
    nproc: int = 1,
    skip_malformed: bool = False,
    progress: bool = True,
    write_threads: int = 2,
) -> dict:
    """Split every image of ``img_dirs`` (labels from the matching ``ann_dirs``, if given).

    Args:
        img_dirs: image directories.
        save_dir: output root; patches go to ``save_dir/images`` and ``save_dir/labelTxt``.
        ann_dirs: label directories, one per image directory, or None for unlabelled sets.
        sizes, gaps: window sizes and overlaps (pixels, in the resized image), paired.
        rates: resize rates applied to the images before cropping (multi-scale).
        img_rate_thr: minimum fraction of a window lying inside the image.
        iof_thr: minimum fraction of an object inside a window for it to be kept there.
        no_padding: do not pad border patches to full size.
        padding_value: BGR value of the padding.
        save_ext: patch image extension (".png", ".jpg", ...).
        nproc: worker processes.
        skip_malformed: skip and count malformed label lines instead of raising.
        progress: tqdm progress bar.
        write_threads: threads encoding patch images, per process.
    Raises:
        ValueError: when ``save_dir`` is, contains or lies inside an image or label folder.
    Returns:
        summary: ``images``, ``patches``, ``objects``, ``kept``, ``clipped``, ``dropped``,
        ``malformed``, ``megapixels``, ``seconds``.
    """
    t0 = time.perf_counter()
    if ann_dirs is not None and len(ann_dirs) != len(img_dirs):
        raise ValueError(
            f"--ann-dirs must match --img-dirs one to one, got {len(ann_dirs)} and {len(img_dirs)}"
        )
    if not (len(sizes) == len(gaps)):
        raise ValueError(f"sizes {list(sizes)} and gaps {list(gaps)} must have the same length")
    _check_save_dir_apart(save_dir, [*img_dirs, *(ann_dirs or [])])
    os.makedirs(os.path.join(save_dir, "images"), exist_ok=True)
    if ann_dirs is not None:
        os.makedirs(os.path.join(save_dir, "labelTxt"), exist_ok=True)
    jobs = []
    for i, d in enumerate(img_dirs):
        for p in _list_images([d]):
            ann = None
            if ann_dirs is not None:
                stem = os.path.splitext(os.path.basename(p))[0]
                ann = os.path.join(ann_dirs[i], stem + ".txt")
                if not os.path.isfile(ann):
                    raise FileNotFoundError(f"Label file {ann} for image {p} does not exist")
            kwargs = dict(
                save_dir=save_dir,
                sizes=tuple(sizes),
                gaps=tuple(gaps),
                rates=tuple(rates),
                img_rate_thr=img_rate_thr,
                iof_thr=iof_thr,
                no_padding=no_padding,
                padding_value=tuple(padding_value),
                save_ext=save_ext,
                skip_malformed=skip_malformed,
                write_threads=write_threads,
            )
            jobs.append((p, ann, kwargs))
    if not jobs:
        raise FileNotFoundError(f"No images found in {list(img_dirs)}")
    total = dict(
        images=0, patches=0, objects=0, kept=0, clipped=0, dropped=0, malformed=0, megapixels=0.0
    )
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), desc="split", unit="img", disable=not progress)
    if nproc > 1 and len(jobs) > 1:
        with get_context("fork" if os.name == "posix" else "spawn").Pool(nproc) as pool:
            for c in pool.imap_unordered(_job, jobs):
                _accumulate(total, c)
                bar.update(1)
    else:
        for j in jobs:
            _accumulate(total, _job(j))
            bar.update(1)
    bar.close()
    total["seconds"] = round(time.perf_counter() - t0, 3)
    total["megapixels"] = round(total["megapixels"], 3)
    logger.info(
        "Split {images} images into {patches} patches: {objects} objects, {kept} object "
        "pieces kept ({clipped} clipped at a border), {dropped} objects in no patch, "
        "{malformed} malformed label lines skipped; {megapixels} MP in {seconds}s".format(**total)
    )
    return total


def _accumulate(total: dict, c: dict) -> None:
    total["images"] += 1
    for k in ("patches", "objects", "kept", "clipped", "dropped", "malformed", "megapixels"):
        total[k] += c[k]
