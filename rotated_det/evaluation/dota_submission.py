"""DOTA Task1 result files: ``Task1_<class>.txt``, one line per detection::

    <image name> <score> x1 y1 x2 y2 x3 y3 x4 y4

(image name without extension, corners in full-image pixels), one file per class, zipped for the
evaluation server. :class:`Task1Writer` writes incrementally (one image at a time, files kept
open) so that a whole test set's detections are never held in memory; :func:`read_task1_results`
parses such files back (for :mod:`tools.eval_dota` or to re-score a submission locally).
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence

import numpy as np
import torch

from rotated_det.evaluation.patch_merger import strip_image_extension
from rotated_det.structures import rbox_to_poly

__all__ = ["Task1Writer", "read_task1_results", "task1_file_name", "write_task1_results"]

_PREFIX = "Task1_"


def task1_file_name(class_name: str) -> str:
    """``Task1_<class>.txt``.

    Raises:
        ValueError: for a class name that is empty or holds whitespace or a path separator (the
            evaluation server reads the class from the file name, so it cannot be escaped).
    """
    if not class_name or any(ch.isspace() or ch in "/\\" for ch in class_name):
        raise ValueError(f"class name {class_name!r} cannot be used in a Task1 file name")
    return f"{_PREFIX}{class_name}.txt"


class Task1Writer:
    """Writes DOTA Task1 files for a list of classes, one image at a time.

    Example::

        with Task1Writer("out/task1", class_names) as w:
            for name, dets in merged.items():
                w.add(name, dets.boxes, dets.scores, dets.classes)
        w.zip_path  # out/task1.zip

    Args:
        output_dir: directory receiving ``Task1_<class>.txt`` (created; existing Task1 files of
            these classes are overwritten).
        class_names: class names, indexed by the class ids given to :meth:`add`.
        zip_path: where :meth:`close` writes the zip of all class files; default
            ``<output_dir>.zip``; ``""`` to skip zipping.
        score_digits, coord_digits: decimals written for scores and corner coordinates.
    """

    def __init__(
        self,
        output_dir: str,
        class_names: Sequence[str],
        zip_path: str | None = None,
        score_digits: int = 6,
        coord_digits: int = 2,
    ):
        file_names = [task1_file_name(c) for c in class_names]  # checks the names
        self.output_dir = output_dir
        self.class_names = list(class_names)
        self.zip_path = (output_dir.rstrip("/\\") + ".zip") if zip_path is None else zip_path
        self._score_fmt = f"{{:.{score_digits}f}}"
        self._coord_fmt = f"{{:.{coord_digits}f}}"
        os.makedirs(output_dir, exist_ok=True)
        self._files = [open(os.path.join(output_dir, n), "w", encoding="utf-8") for n in file_names]
        self.num_images = 0
        self.num_detections = 0
        self._closed = False

    def add(self, image_name: str, boxes, scores, classes) -> None:
        """Append one image's detections.

        Args:
            image_name: the full image's name (extension and directory are stripped).
            boxes: float [N, 5] rotated boxes (cx, cy, w, h, angle in degrees), full-image pixels.
            scores: float [N].
            classes: int [N] in ``[0, len(class_names))``.
        """
        if self._closed:
            raise RuntimeError("Task1Writer.add() after close()")
        image_name = strip_image_extension(image_name)
        if any(ch.isspace() for ch in image_name):
            raise ValueError(f"Task1Writer: image name {image_name!r} contains whitespace")
        boxes = _numpy(boxes, np.float64).reshape(-1, 5)
        scores = _numpy(scores, np.float64).reshape(-1)
        classes = _numpy(classes, np.int64).reshape(-1)
        if len(classes) and (classes.min() < 0 or classes.max() >= len(self.class_names)):
            raise ValueError(
                f"Task1Writer.add('{image_name}'): class ids must lie in "
                f"[0, {len(self.class_names)}), got [{classes.min()}, {classes.max()}]"
            )
        polys = rbox_to_poly(boxes) if len(boxes) else np.zeros((0, 8))
        sf, cf = self._score_fmt, self._coord_fmt
        lines: list[list[str]] = [[] for _ in self.class_names]
        for poly, score, cls in zip(polys.tolist(), scores.tolist(), classes.tolist()):
            coords = " ".join(cf.format(v) for v in poly)
            lines[cls].append(f"{image_name} {sf.format(score)} {coords}\n")
        for f, ls in zip(self._files, lines):
            if ls:
                f.writelines(ls)
        self.num_images += 1
        self.num_detections += len(scores)

    def close(self) -> str | None:
        """Close the class files and zip them. Returns the zip path (None if not zipping)."""
        if self._closed:
            return self.zip_path or None
        for f in self._files:
            f.close()
        self._closed = True
        if not self.zip_path:
            return None
        with zipfile.ZipFile(self.zip_path, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for c in self.class_names:
                z.write(os.path.join(self.output_dir, task1_file_name(c)), task1_file_name(c))
        return self.zip_path

    def __enter__(self) -> Task1Writer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_task1_results(det_dir: str) -> dict[str, dict[str, np.ndarray]]:
    """Parse every ``Task1_<class>.txt`` in ``det_dir``.

    Returns:
        ``{class_name: {"image_names": str array [N], "scores": float64 [N],
        "polys": float64 [N, 8]}}``.

    Raises:
        FileNotFoundError: when ``det_dir`` holds no Task1 file.
        ValueError: on a malformed line, naming the file and line.
    """
    names = sorted(n for n in os.listdir(det_dir) if n.startswith(_PREFIX) and n.endswith(".txt"))
    if not names:
        raise FileNotFoundError(f"No {_PREFIX}<class>.txt file in {det_dir}")
    out = {}
    for fname in names:
        cls = fname[len(_PREFIX) : -len(".txt")]
        path = os.path.join(det_dir, fname)
        images, rows = [], []
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, start=1):
                parts = line.split()
                if not parts:
                    continue
                if len(parts) != 10:
                    raise ValueError(
                        f"{path}:{lineno}: expected 'image score x1 y1 x2 y2 x3 y3 x4 y4' "
                        f"(10 fields), got {len(parts)}: {line.strip()!r}"
                    )
                try:
                    rows.append([float(v) for v in parts[1:]])
                except ValueError:
                    raise ValueError(
                        f"{path}:{lineno}: non-numeric score or coordinate in {line.strip()!r}"
                    ) from None
                images.append(parts[0])
        arr = np.asarray(rows, dtype=np.float64).reshape(-1, 9)
        if not np.isfinite(arr).all():
            bad = int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])
            raise ValueError(f"{path}: non-finite value in detection #{bad + 1}")
        out[cls] = {
            "image_names": np.asarray(images, dtype=object),
            "scores": arr[:, 0].copy(),
            "polys": arr[:, 1:].copy(),
        }
    return out


def write_task1_results(
    results: dict[str, dict[str, np.ndarray]],
    output_dir: str,
    zip_path: str | None = None,
    score_digits: int = 6,
    coord_digits: int = 2,
) -> str | None:
    """Write results in the structure :func:`read_task1_results` returns (class -> image_names,
    scores, polys) as ``Task1_<class>.txt`` files, and zip them (``<output_dir>.zip`` by default,
    ``""`` for no zip). Returns the zip path."""
    file_names = {cls: task1_file_name(cls) for cls in results}  # checks the names first
    os.makedirs(output_dir, exist_ok=True)
    sf, cf = f"{{:.{score_digits}f}}", f"{{:.{coord_digits}f}}"
    for cls, r in results.items():
        with open(os.path.join(output_dir, file_names[cls]), "w", encoding="utf-8") as f:
            for name, score, poly in zip(r["image_names"], r["scores"], r["polys"]):
                coords = " ".join(cf.format(v) for v in np.asarray(poly).tolist())
                f.write(f"{name} {sf.format(float(score))} {coords}\n")
    zip_path = (output_dir.rstrip("/\\") + ".zip") if zip_path is None else zip_path
    if not zip_path:
        return None
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for cls in results:
            z.write(os.path.join(output_dir, task1_file_name(cls)), task1_file_name(cls))
    return zip_path


def _numpy(x, dtype) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)
