"""Rotation-aware test-time augmentation (TTA) for any rotated detector.

:class:`RotatedDetectorWithTTA` runs the wrapped model on several views of each image (every
combination of a horizontal flip, a vertical flip, a rotation by a multiple of 90 degrees and a
scale), maps each view's rotated boxes back to the input image and merges them: class-wise
rotated NMS (``merge="nms"``) or weighted box fusion (``merge="wbf"``,
:func:`rotated_det.layers.weighted_box_fusion.weighted_box_fusion_rotated`).

Views and their inverses are the data transforms of :mod:`rotated_det.data.transforms`
(``ResizeTransform``, ``HFlipTransform``, ``VFlipTransform``, ``Rot90Transform``): a view is
``resize -> hflip -> vflip -> rot90`` and its predictions go back through the inverse list, so
that images and boxes follow one copy of the geometry (which is why this lives in ``engine``:
``modeling`` may not import ``data``). In continuous pixel coordinates, for an ``H x W`` image
and a box ``(cx, cy, w, h, a)`` (degrees, counter-clockwise on screen, y down):

==========================  ===========================================  ===================
view                        box in the view                              inverse
==========================  ===========================================  ===================
horizontal flip             ``(W - cx, cy, w, h, -a)``                   itself
vertical flip               ``(cx, H - cy, w, h, -a)``                   itself
rot90 by 90 (CCW)           ``(cy, W - cx, w, h, a + 90)``, ``W x H``    rot90 by 270
rot90 by 180                ``(W - cx, H - cy, w, h, a + 180)``          itself
rot90 by 270                ``(H - cy, cx, w, h, a + 270)``, ``W x H``   rot90 by 90
scale s                     ``(s cx, s cy, s w, s h, a)``                scale 1/s
==========================  ===========================================  ===================

Worked example, ``W = 200``, ``H = 100``, a box near the top-left corner ``(20, 10, 16, 6, 30)``.
The model sees the view and predicts there; the inverse brings the prediction back:

- hflip: the view's box is ``(180, 10, 16, 6, -30)``; inverse: ``x -> 200 - x``, ``a -> -a``
  gives ``(20, 10, 16, 6, 30)``.
- vflip: ``(20, 90, 16, 6, -30)``; inverse: ``y -> 100 - y``, ``a -> -a``.
- rot90 by 90: the view is ``100 x 200`` (W x H) and the box ``(10, 180, 16, 6, 120)``;
  inverse (rot90 by 270 of the ``100 x 200`` view): ``(x, y) -> (200 - y, x)``, ``a -> a - 90``.
- rot90 by 180: ``(180, 90, 16, 6, -150)`` (210 wrapped into [-180, 180)); inverse: the same
  map, ``a -> a + 180``, and ``30`` and ``-150`` name the same rectangle.
- scale 0.5: ``(10, 5, 8, 3, 30)``; inverse: times 2.

Merged boxes have angles in ``[-90, 90)``. Views that are the same transform (hflip + vflip is
rot90 by 180) are run once. With the whole group of views (both flips and all four rotations)
the merged predictions are equivariant: TTA on the image turned by 90 degrees
gives the TTA predictions of the original turned by 90 degrees, whatever the model (as long as
it predicts the same for the same pixels): both runs feed the model the same eight views.

Only ``pred_boxes``, ``scores`` and ``pred_classes`` are merged; other fields of the model's
Instances are dropped.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from rotated_det.data.transforms import (
    HFlipTransform,
    ResizeTransform,
    Rot90Transform,
    Transform,
    TransformList,
    VFlipTransform,
)
from rotated_det.layers import batched_nms_rotated
from rotated_det.layers.weighted_box_fusion import weighted_box_fusion_rotated
from rotated_det.modeling.meta_arch.preprocessing import detector_postprocess
from rotated_det.structures import Instances, RotatedBoxes

__all__ = ["TTAView", "RotatedDetectorWithTTA", "build_tta_model"]

logger = logging.getLogger(__name__)

MERGE_METHODS = ("nms", "wbf")


@dataclass(frozen=True)
class TTAView:
    """One augmented view: resize by ``scale``, then the flips, then a counter-clockwise rotation
    by ``rot90`` degrees (a multiple of 90)."""

    hflip: bool = False
    vflip: bool = False
    rot90: int = 0
    scale: float = 1.0

    def __post_init__(self) -> None:
        if int(self.rot90) != self.rot90 or int(self.rot90) % 90:
            raise ValueError(f"TTAView.rot90 must be a multiple of 90 degrees, got {self.rot90}")
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"TTAView.scale must be a positive number, got {self.scale}")

    def transform(self, height: int, width: int) -> TransformList:
        """The transforms from an ``height x width`` image to this view (fvcore TransformList:
        ``apply_image`` on ``(H, W, C)`` arrays, ``apply_rotated_box`` on ``[N, 5]`` boxes,
        ``inverse()``)."""
        tfms: list[Transform] = []
        h, w = height, width
        if self.scale != 1.0:
            h, w = max(1, round(height * self.scale)), max(1, round(width * self.scale))
            if (h, w) != (height, width):
                tfms.append(ResizeTransform(height, width, h, w))
        if self.hflip:
            tfms.append(HFlipTransform(w))
        if self.vflip:
            tfms.append(VFlipTransform(h))
        if self.rot90 % 360:
            tfms.append(Rot90Transform(h, w, self.rot90 // 90))
        return TransformList(tfms)

    def apply_image(self, image: torch.Tensor) -> torch.Tensor:
        """This view of a ``[C, H, W]`` image tensor, on the image's device and contiguous: the
        pixels of ``transform(H, W).apply_image`` on the ``(H, W, C)`` array (a test checks
        it), with torch's flip and rot90 so that a GPU image stays on the GPU; a resize goes
        through :class:`ResizeTransform` (cv2, on the CPU)."""
        x = image
        height, width = int(image.shape[1]), int(image.shape[2])
        resize = [
            t for t in self.transform(height, width).transforms if isinstance(t, ResizeTransform)
        ]
        if resize:
            hwc = np.ascontiguousarray(image.permute(1, 2, 0).cpu().numpy())
            x = torch.from_numpy(resize[0].apply_image(hwc)).permute(2, 0, 1).to(image.device)
        if self.hflip:
            x = x.flip(2)
        if self.vflip:
            x = x.flip(1)
        if self.rot90 % 360:
            x = torch.rot90(x, self.rot90 // 90 % 4, dims=(1, 2))
        return x.contiguous()

    def key(self) -> tuple:
        """Equal for views that are the same transform (e.g. hflip + vflip and rot90 180): the
        scale and where the view sends the corners of a unit square."""
        corners = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
        moved = TTAView(self.hflip, self.vflip, self.rot90).transform(1, 1).apply_coords(corners)
        return (self.scale, tuple(np.round(moved, 6).ravel().tolist()))


class RotatedDetectorWithTTA(nn.Module):
    """Wrap a rotated detector (any model with the project's I/O) with test-time augmentation.

    Inference only: input and output as the wrapped model's (``list[dict]`` with "image"
    ``[C, H, W]`` and optional "height"/"width" in; ``list[{"instances": Instances}]`` out, with
    ``pred_boxes`` (RotatedBoxes), ``scores``, ``pred_classes`` in the ``height x width`` frame
    (default the image's)). See the module docstring for the views, their inverse maps and the
    merge.

    Args:
        model: the detector; it must be in eval mode when called (``.eval()`` on the wrapper
            or the model).
        hflip, vflip: also run the horizontally / vertically flipped image.
        rot90: rotations to run, degrees counter-clockwise, multiples of 90 (0 = as is).
        scales: resize factors to run (1.0 = as is); the model's own test-time resize has
            already happened in the data loader, these multiply it.
        merge: "nms" (class-wise rotated NMS) or "wbf" (weighted box fusion).
        nms_thresh: rotated IoU threshold of the NMS, or of the WBF clusters.
        max_detections: detections kept per image after merging, by score.
        batch_size: views run through the model at once (views of one shape are batched
            together, so that none is padded to another's size).

    Every combination of the options is a view (``2 * 2 * len(rot90) * len(scales)`` at most);
    views that are the same transform are run once (:attr:`views` lists those run).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        hflip: bool = True,
        vflip: bool = False,
        rot90: Sequence[int] = (0,),
        scales: Sequence[float] = (1.0,),
        merge: str = "nms",
        nms_thresh: float = 0.5,
        max_detections: int = 100,
        batch_size: int = 8,
    ) -> None:
        super().__init__()
        rot90 = tuple(rot90)
        scales = tuple(float(s) for s in scales)
        if not rot90 or any(int(r) != r or int(r) % 90 for r in rot90):
            raise ValueError(f"rot90 must be multiples of 90 degrees, got {rot90}")
        if not scales or any(not math.isfinite(s) or s <= 0 for s in scales):
            raise ValueError(f"scales must be positive numbers, got {scales}")
        if merge not in MERGE_METHODS:
            raise ValueError(f"merge must be one of {MERGE_METHODS}, got {merge!r}")
        if not 0.0 <= float(nms_thresh) <= 1.0:
            raise ValueError(f"nms_thresh must be in [0, 1], got {nms_thresh}")
        if int(max_detections) < 1 or int(batch_size) < 1:
            raise ValueError(
                f"max_detections and batch_size must be >= 1, got {max_detections}, {batch_size}"
            )
        self.model = model
        self.training = model.training  # the wrapper starts in the model's mode
        self.merge = merge
        self.nms_thresh = float(nms_thresh)
        self.max_detections = int(max_detections)
        self.batch_size = int(batch_size)
        views: dict[tuple, TTAView] = {}
        for scale, h, v, r in itertools.product(
            scales,
            (False, True) if hflip else (False,),
            (False, True) if vflip else (False,),
            rot90,
        ):
            view = TTAView(h, v, int(r) % 360, scale)
            views.setdefault(view.key(), view)
        self.views: tuple[TTAView, ...] = tuple(views.values())

    def forward(self, batched_inputs: list[dict]) -> list[dict]:
        if self.model.training:
            raise RuntimeError(
                "RotatedDetectorWithTTA is for inference: call .eval() on it or on the model "
                "(training takes the model itself)"
            )
        return [{"instances": self._inference_one(x)} for x in batched_inputs]

    def _inference_one(self, inputs: dict) -> Instances:
        image = inputs["image"]
        if not isinstance(image, torch.Tensor) or image.dim() != 3:
            raise ValueError(
                "RotatedDetectorWithTTA: 'image' must be a [C, H, W] tensor, got "
                f"{getattr(image, 'shape', type(image))}"
            )
        height, width = int(image.shape[1]), int(image.shape[2])
        tfms = [v.transform(height, width) for v in self.views]
        views = [v.apply_image(image) for v in self.views]
        # batches of views of one shape: padding to a larger view would change the predictions
        order = sorted(range(len(views)), key=lambda i: tuple(views[i].shape[1:]))
        raw: list[Instances] = [Instances((0, 0))] * len(views)
        start = 0
        while start < len(order):
            shape = views[order[start]].shape
            chunk = [i for i in order[start : start + self.batch_size] if views[i].shape == shape]
            for i, out in zip(chunk, self.model([{"image": views[i]} for i in chunk])):
                raw[i] = out["instances"]
            start += len(chunk)

        boxes, scores, classes = [], [], []
        for tfm, inst in zip(tfms, raw):
            b = inst.pred_boxes.tensor
            back = tfm.inverse().apply_rotated_box(b.detach().cpu().numpy())
            boxes.append(torch.as_tensor(back, dtype=b.dtype, device=b.device))
            scores.append(inst.scores)
            classes.append(inst.pred_classes)
        merged = self._merge(torch.cat(boxes), torch.cat(scores), torch.cat(classes))
        result = Instances((height, width), **merged)
        out_h, out_w = int(inputs.get("height", height)), int(inputs.get("width", width))
        if (out_h, out_w) != (height, width):
            result = detector_postprocess(result, out_h, out_w)
        return result

    def _merge(
        self, boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor
    ) -> dict[str, Any]:
        """Merged ``pred_boxes``, ``scores``, ``pred_classes`` (at most ``max_detections``,
        by decreasing score)."""
        if self.merge == "nms":
            keep = batched_nms_rotated(boxes, scores, classes, self.nms_thresh)
            keep = keep[: self.max_detections]
            boxes, scores, classes = boxes[keep], scores[keep], classes[keep]
        else:
            boxes, scores, classes = weighted_box_fusion_rotated(
                boxes, scores, classes, self.nms_thresh, num_views=len(self.views)
            )
            boxes, scores, classes = (
                boxes[: self.max_detections],
                scores[: self.max_detections],
                classes[: self.max_detections],
            )
        boxes = boxes.clone()
        boxes[:, 4] = torch.remainder(boxes[:, 4] + 90.0, 180.0) - 90.0
        return {"pred_boxes": RotatedBoxes(boxes), "scores": scores, "pred_classes": classes}


def build_tta_model(model: nn.Module, tta_cfg: Mapping | None, key: str = "train.tta") -> nn.Module:
    """``model`` wrapped in :class:`RotatedDetectorWithTTA` when ``tta_cfg.enabled``, else
    ``model`` itself.

    Args:
        tta_cfg: a mapping (a config's ``train.tta``) with ``enabled`` and any of the
            constructor's keyword arguments; None = disabled.
        key: where ``tta_cfg`` sits in the config, for error messages.

    Raises:
        KeyError: a key that is not an argument of :class:`RotatedDetectorWithTTA`, named.
    """
    if tta_cfg is None or not tta_cfg.get("enabled", False):
        return model
    allowed = (
        "hflip",
        "vflip",
        "rot90",
        "scales",
        "merge",
        "nms_thresh",
        "max_detections",
        "batch_size",
    )
    kwargs = {k: v for k, v in tta_cfg.items() if k != "enabled"}
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise KeyError(f"{key}: unknown keys {unknown}; expected 'enabled' and any of {allowed}")
    for k in ("rot90", "scales"):
        if k in kwargs:
            kwargs[k] = tuple(kwargs[k])
    wrapped = RotatedDetectorWithTTA(model, **kwargs)
    logger.info(
        "Test-time augmentation: %d views (%s), merged by %s",
        len(wrapped.views),
        ", ".join(_describe(v) for v in wrapped.views),
        wrapped.merge,
    )
    return wrapped


def _describe(view: TTAView) -> str:
    parts = [n for n, on in (("hflip", view.hflip), ("vflip", view.vflip)) if on]
    if view.rot90:
        parts.append(f"rot{view.rot90}")
    if view.scale != 1.0:
        parts.append(f"x{view.scale:g}")
    return "+".join(parts) or "identity"
