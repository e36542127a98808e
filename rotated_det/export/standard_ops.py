"""Running a detector on standard operators only, for ONNX export: the compiled ``rotated_det``
ops are swapped at call time, without touching the model's code.

:class:`StandardOpsMode` is a ``TorchFunctionMode`` that intercepts the calls of
``torch.ops.rotated_det.*`` while it is active (eagerly, or while ``torch.export`` traces):

- ``roi_align_rotated_forward`` -> :func:`roi_align_rotated_grid` (``grid_sample``: ONNX
  ``GridSample``);
- ``ri_roi_align_rotated_forward`` (ReDet's rotation-invariant RoIAlign) ->
  :func:`ri_roi_align_rotated_grid` (the same ``grid_sample`` RoIAlign, then each field's
  orientation channels gathered and interpolated);
- NMS called inside the detector's ``proposal_generator`` (two-stage detectors) -> the
  ``proposal_nms`` choice:

  * ``"horizontal"``: NMS of the axis-aligned bounding boxes of the rotated proposals at the same
    IoU threshold and per the same groups (FPN levels), with ``torchvision.ops.nms``, which ONNX
    export writes as ``NonMaxSuppression``. This is how MMRotate's Oriented R-CNN RPN
    suppresses proposals; the RPNs of this repository suppress on rotated IoU, so proposals,
    and therefore detections, may differ slightly from the PyTorch model's;
  * ``"topk"``: no suppression: the best proposals by objectness (``post_nms_topk`` of them);
  * ``"rotated"``: the compiled op (eager measurements only; not exportable to ONNX);

- NMS called anywhere else is the detector's final, class-wise NMS. With ``defer_final_nms``
  it returns every index in input order, so that the detector outputs its pre-NMS candidates
  (after the score threshold, per-level top-k, decoding and clipping); the NMS is finished
  outside the graph by :mod:`rotated_det.export.onnx_postprocess`. Otherwise the compiled op
  runs;

- torchvision's ``deform_conv2d`` (S2A-Net's alignment convolution) -> :func:`deform_conv2d_grid`
  (``grid_sample`` and a matrix product: ONNX has ``DeformConv`` only from opset 19);

- ``min_area_rect_pair`` (the side choice of ``points_to_rbox`` / ``poly_to_rbox``, e.g. in the
  point-set detectors' and Gliding Vertex's decoding) -> its torch formulation
  :func:`~rotated_det.structures.rotated_box_conversions.min_area_rect_pair_torch`;

- ``torch.hypot(a, b)`` (``poly_to_rbox``, e.g. in Gliding Vertex's decoding) -> ``sqrt(a * a +
  b * b)``: ONNX has no ``hypot``.

Any other ``rotated_det`` op (e.g. ``box_iou_rotated`` at inference) raises, naming it.

The final NMS's settings are read from the module that holds the detection limit (by the
structure of the detectors: the dense detectors hold ``max_detections_per_image`` and
``test_nms_thresh``, the RoI box predictors ``test_topk_per_image`` and ``test_nms_thresh``);
:class:`PreNMSDetector` lifts that limit while deferring, since keeping the best
``max_detections`` candidates before NMS would drop detections that survive it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
import torchvision
from torch import nn
from torch.overrides import TorchFunctionMode

from rotated_det.layers.deform_conv_grid import deform_conv2d_grid
from rotated_det.structures import rbox_to_hbox
from rotated_det.structures.rotated_box_conversions import min_area_rect_pair_torch

from .ri_roi_align_rotated_grid import ri_roi_align_rotated_grid
from .roi_align_rotated_grid import DEFAULT_MAX_ADAPTIVE_SAMPLES, roi_align_rotated_grid
from .tracing_adapter import TracingAdapter

__all__ = [
    "PROPOSAL_NMS_CHOICES",
    "FinalNMS",
    "PreNMSDetector",
    "StandardOpsMode",
    "find_final_nms",
    "horizontal_batched_nms",
]

PROPOSAL_NMS_CHOICES = ("horizontal", "topk", "rotated")

# compiled RoIAlign ops -> their standard-operator formulations (same arguments, plus
# max_adaptive_samples)
_ROI_ALIGN_GRIDS: dict[str, Any] = {
    "roi_align_rotated_forward": roi_align_rotated_grid,
    "ri_roi_align_rotated_forward": ri_roi_align_rotated_grid,
}

# (limit attribute, its "no limit" value) of the modules that run a detector's final NMS.
_LIMIT_ATTRIBUTES = {"max_detections_per_image": 2**62, "test_topk_per_image": -1}


@dataclass
class FinalNMS:
    """Settings of a detector's final class-wise rotated NMS.

    Attributes:
        iou_threshold: rotated-IoU threshold (``test_nms_thresh``).
        max_detections: detections kept per image after NMS (< 0: no limit).
        module: dotted name of the module that holds them ("" for the detector itself).
        limit_attribute: the name of the limit attribute on that module.
    """

    iou_threshold: float
    max_detections: int
    module: str
    limit_attribute: str


def find_final_nms(model: nn.Module) -> FinalNMS:
    """The final NMS settings of ``model``: from the one submodule (or the model itself) that has
    both a detection limit (``max_detections_per_image`` or ``test_topk_per_image``) and
    ``test_nms_thresh``.

    Raises:
        ValueError: when no module or more than one module holds them.
    """
    found = []
    for name, module in model.named_modules():
        for attr in _LIMIT_ATTRIBUTES:
            if hasattr(module, attr) and hasattr(module, "test_nms_thresh"):
                found.append(
                    FinalNMS(float(module.test_nms_thresh), int(getattr(module, attr)), name, attr)
                )
    if len(found) != 1:
        where = ", ".join(f"{f.module or '<model>'}.{f.limit_attribute}" for f in found)
        raise ValueError(
            f"{type(model).__name__}: expected exactly one module with test_nms_thresh and a "
            f"detection limit ({' or '.join(_LIMIT_ATTRIBUTES)}) to defer the final NMS, found "
            f"{len(found)}" + (f" ({where})" if found else "")
        )
    return found[0]


def horizontal_batched_nms(
    boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    """NMS per group of the axis-aligned bounding boxes of rotated boxes.

    Groups are separated by shifting each group's boxes beyond the others (exact for
    axis-aligned boxes), so one ``torchvision.ops.nms`` call (ONNX ``NonMaxSuppression``) does
    them all.

    Args:
        boxes: ``[N, 5]`` rotated boxes (cx, cy, w, h, angle in degrees), pixels.
        scores: ``[N]``.
        idxs: ``[N]`` integer group of each box.
        iou_threshold: a box is suppressed by a better one whose bounding-box IoU with it is
            greater than this.

    Returns:
        int64 ``[K]`` indices of the kept boxes by decreasing score.
    """
    hboxes = rbox_to_hbox(boxes)
    # the largest coordinate magnitude (0 for no boxes), plus 1: groups cannot touch
    span = torch.cat([hboxes.reshape(-1).abs(), hboxes.new_zeros(1)]).max() + 1
    shifted = hboxes + (idxs.to(hboxes.dtype) * (2 * span))[:, None]
    keep: torch.Tensor = torchvision.ops.nms(shifted, scores, float(iou_threshold))
    return keep


def _op_name(func: Any) -> str:
    """``"rotated_det::name"`` for a ``torch.ops.rotated_det`` packet or overload, else ""."""
    name = getattr(func, "_qualified_op_name", None)
    if name is None and isinstance(func, torch._ops.OpOverload):
        name = func.name()
    return name if isinstance(name, str) else ""


class StandardOpsMode(TorchFunctionMode):
    """Swaps the compiled ``rotated_det`` ops for standard operators while active (see the
    module docstring).

    Args:
        proposal_stage: the module whose NMS calls are proposal NMS (a two-stage detector's
            ``proposal_generator``), or None.
        proposal_nms: one of :data:`PROPOSAL_NMS_CHOICES`.
        defer_final_nms: the final NMS returns every index (the caller finishes it).
        max_adaptive_samples: sample slots per bin side of adaptive RoIAlign
            (``sampling_ratio <= 0``), see :mod:`rotated_det.export.roi_align_rotated_grid`.
        standard_roi_align: swap RoIAlign for :func:`roi_align_rotated_grid` and RiRoIAlign for
            :func:`ri_roi_align_rotated_grid` (False keeps the compiled ops: to measure the other
            swaps alone).

    Attributes:
        final_nms_thresholds: the IoU thresholds of the final NMS calls seen while active.
    """

    def __init__(
        self,
        proposal_stage: nn.Module | None = None,
        proposal_nms: str = "horizontal",
        defer_final_nms: bool = True,
        max_adaptive_samples: int = DEFAULT_MAX_ADAPTIVE_SAMPLES,
        standard_roi_align: bool = True,
    ):
        super().__init__()
        if proposal_nms not in PROPOSAL_NMS_CHOICES:
            raise ValueError(
                f"proposal_nms must be one of {PROPOSAL_NMS_CHOICES}, got {proposal_nms!r}"
            )
        if int(max_adaptive_samples) < 1:
            raise ValueError(f"max_adaptive_samples must be >= 1, got {max_adaptive_samples}")
        self.proposal_stage = proposal_stage
        self.proposal_nms = proposal_nms
        self.defer_final_nms = defer_final_nms
        self.max_adaptive_samples = int(max_adaptive_samples)
        self.standard_roi_align = standard_roi_align
        self.final_nms_thresholds: list[float] = []
        self._depth = 0  # > 0 while the proposal stage runs
        self._handles: list[Any] = []

    def __enter__(self):
        if self.proposal_stage is not None:

            def enter(*_: Any) -> None:
                self._depth += 1

            def leave(*_: Any) -> None:
                self._depth -= 1

            self._handles = [
                self.proposal_stage.register_forward_pre_hook(enter),
                self.proposal_stage.register_forward_hook(leave, always_call=True),
            ]
        return super().__enter__()

    def __exit__(self, *exc: Any) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        self._depth = 0
        super().__exit__(*exc)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in (torch.hypot, torch.Tensor.hypot):
            a, b = args
            return torch.sqrt(a * a + b * b)
        name = _op_name(func)
        if name == "torchvision::deform_conv2d":
            return deform_conv2d_grid(*args, **kwargs)
        if not name.startswith("rotated_det::"):
            return func(*args, **kwargs)
        op = name.split("::", 1)[1]
        if op in _ROI_ALIGN_GRIDS:
            if not self.standard_roi_align:
                return func(*args, **kwargs)
            grid = _ROI_ALIGN_GRIDS[op]
            return grid(*args, **kwargs, max_adaptive_samples=self.max_adaptive_samples)
        if op in ("nms_rotated", "batched_nms_rotated"):
            return self._nms(func, op, args, kwargs)
        if op == "min_area_rect_pair":
            return min_area_rect_pair_torch(*args, **kwargs)
        raise NotImplementedError(
            f"{name} is called at inference and has no standard-operator formulation for "
            "export (StandardOpsMode replaces roi_align_rotated_forward, "
            "ri_roi_align_rotated_forward, nms_rotated, batched_nms_rotated and "
            "min_area_rect_pair only)"
        )

    def _nms(self, func: Any, op: str, args: tuple, kwargs: dict) -> torch.Tensor:
        if op == "nms_rotated":
            boxes, scores, thr = args
            idxs = torch.zeros_like(scores, dtype=torch.int64)
        else:
            boxes, scores, idxs, thr = args
        if self._depth > 0:  # proposal NMS
            if self.proposal_nms == "horizontal":
                return horizontal_batched_nms(boxes, scores, idxs, thr)
            if self.proposal_nms == "topk":
                return torch.argsort(scores, descending=True, stable=True)
            return func(*args, **kwargs)
        if not self.defer_final_nms:
            return func(*args, **kwargs)
        self.final_nms_thresholds.append(float(thr))
        return torch.arange(scores.shape[0], device=scores.device)


class PreNMSDetector(nn.Module):
    """A copy of a detector, seen as ``image -> (boxes, scores, classes)``, that runs on
    standard operators and returns its candidates BEFORE the final NMS: the module that
    ``export_onnx`` exports, and the PyTorch reference of the ONNX file.

    The candidates are what the detector's final NMS would receive (after its score threshold,
    per-level top-k, decoding and clipping to the image), in the detector's order (not sorted).
    :func:`rotated_det.export.onnx_postprocess.postprocess` turns them into the detections:
    the detector's own, except that boxes of zero width or height, which the detector drops
    after its NMS and detection limit, are dropped here before them (so when the limit cuts,
    the post-processor may return more boxes, never other ones).

    Args:
        model: a detector following the model I/O convention (left untouched: a copy in eval
            mode, without gradients, is wrapped).
        proposal_nms, max_adaptive_samples, standard_roi_align: see :class:`StandardOpsMode`
            (``proposal_nms="rotated"`` and ``standard_roi_align=False`` keep compiled ops: for
            comparisons in PyTorch, not for export).

    Attributes:
        final_nms: the final NMS settings (:func:`find_final_nms`).
    """

    def __init__(
        self,
        model: nn.Module,
        proposal_nms: str = "horizontal",
        max_adaptive_samples: int = DEFAULT_MAX_ADAPTIVE_SAMPLES,
        standard_roi_align: bool = True,
    ):
        super().__init__()
        model = copy.deepcopy(model).eval()
        for p in model.parameters():
            p.requires_grad_(False)
        self.final_nms = find_final_nms(model)
        holder = model.get_submodule(self.final_nms.module)
        setattr(
            holder,
            self.final_nms.limit_attribute,
            _LIMIT_ATTRIBUTES[self.final_nms.limit_attribute],
        )
        self.adapter = TracingAdapter(model)
        self.input_format = self.adapter.input_format
        self.proposal_nms = proposal_nms
        self.max_adaptive_samples = max_adaptive_samples
        self.standard_roi_align = standard_roi_align
        self.two_stage = isinstance(getattr(model, "proposal_generator", None), nn.Module)
        StandardOpsMode(proposal_nms=proposal_nms)  # checks the arguments now

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """
        Args:
            image: float32 ``[3, H, W]``, the detector's channel order, 0-255.

        Returns:
            ``boxes`` float32 ``[M, 5]`` (cx, cy, w, h, angle in degrees, input pixels),
            ``scores`` float32 ``[M]``, ``classes`` int64 ``[M]``: the final NMS's input.
        """
        mode = StandardOpsMode(
            getattr(self.adapter.model, "proposal_generator", None),
            self.proposal_nms,
            defer_final_nms=True,
            max_adaptive_samples=self.max_adaptive_samples,
            standard_roi_align=self.standard_roi_align,
        )
        with mode:
            out = self.adapter(image)
        seen = set(mode.final_nms_thresholds)
        if seen and seen != {self.final_nms.iou_threshold}:
            holder = self.final_nms.module or "the model"
            raise RuntimeError(
                f"the final NMS ran at IoU {sorted(seen)} but {holder}.test_nms_thresh is "
                f"{self.final_nms.iou_threshold}: the post-processor would not reproduce the "
                "detector"
            )
        return out
