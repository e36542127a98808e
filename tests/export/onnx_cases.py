"""Detectors for the ONNX tests.

The detectors are the small models of tests/modeling/_helpers.py (seeded random weights). Random
weights give dense scores: thousands of candidates within 1e-5 of each other, while ONNX
Runtime's and OpenVINO's convolutions differ from PyTorch's by about 1e-6 relative, so a
score threshold, a top-k cut or an NMS decision that falls among them could go either way and
the tests would depend on the CPU. :func:`onnx_test_detector` therefore conditions each case:

- the dense detectors' per-level top-k is lifted (no cut among near-equal scores);
- the final score threshold is placed where about ``target`` candidates pass (bisection), at
  the first of a few nearby values where the PyTorch candidates stay the same set (same count
  and classes, boxes and scores within 1e-2) when the image is scaled by 1 + 1e-5: a
  perturbation ten times the runtimes' differences. This also covers the cuts that stay in the
  graph (RPN top-k and proposal NMS of two-stage detectors), since a candidate that comes or
  goes would show.

Any difference the tests see then comes from the exported graph, not from where the cuts fall.
"""

import numpy as np
import torch
from modeling._helpers import DETECTORS, ONE_STAGE, TWO_STAGE, build_small_model, make_batch

from rotated_det.export.detection_matching import match_detections
from rotated_det.export.standard_ops import PreNMSDetector, find_final_nms

__all__ = [
    "DETECTORS",
    "ONE_STAGE",
    "TWO_STAGE",
    "build_small_model",
    "condition_for_onnx",
    "onnx_test_detector",
    "scene",
]

PERTURBATION = 1e-5

Detections = tuple[np.ndarray, np.ndarray, np.ndarray]


def scene(size: int = 256, index: int = 0) -> torch.Tensor:
    """A drawn test scene (three rotated rectangles on noise), float32 ``[3, size, size]`` BGR."""
    return make_batch(size, with_gt=False)[index]["image"]


def _candidates(pre: PreNMSDetector, image: torch.Tensor) -> Detections:
    with torch.no_grad():
        return tuple(x.numpy() for x in pre(image))  # type: ignore[return-value]


def _count(pre: PreNMSDetector, holder: torch.nn.Module, image: torch.Tensor, thr: float) -> int:
    holder.test_score_thresh = thr
    return len(_candidates(pre, image)[1])


def onnx_test_detector(name: str, image: torch.Tensor, target: int = 100) -> torch.nn.Module:
    """The small detector ``name`` (eval mode), conditioned on ``image`` as the module docstring
    says, leaving about ``target`` candidates.

    Raises:
        RuntimeError: when no threshold near ``target`` candidates is stable.
    """
    return condition_for_onnx(build_small_model(name), image, target, name)


def condition_for_onnx(
    model: torch.nn.Module, image: torch.Tensor, target: int = 100, name: str = ""
) -> torch.nn.Module:
    """``model`` (put in eval mode, e.g. a detector of a project) conditioned on ``image`` as
    the module docstring says, leaving about ``target`` candidates; ``name`` labels the error.

    Raises:
        RuntimeError: when no threshold near ``target`` candidates is stable.
    """
    model = model.eval()
    name = name or type(model).__name__
    holder_name = find_final_nms(model).module
    holder = model.get_submodule(holder_name)
    if hasattr(holder, "test_topk_candidates"):
        holder.test_topk_candidates = 10**6
    pre = PreNMSDetector(model, proposal_nms="horizontal")
    pre_holder = pre.adapter.model.get_submodule(holder_name)
    tried = []
    # Random weights can leave no stable threshold near `target` (e.g. Gliding Vertex: proposals
    # that come and go under the perturbation with scores above every threshold that keeps
    # `target` candidates): fewer candidates are tried then.
    for goal in (target, target // 2, target // 4):
        thr = _stable_threshold(pre, pre_holder, image, goal, tried)
        if thr is not None:
            holder.test_score_thresh = thr
            return model
    raise RuntimeError(f"{name}: no stable score threshold near {target} candidates: {tried}")


def _stable_threshold(
    pre: PreNMSDetector, holder: torch.nn.Module, image: torch.Tensor, target: int, tried: list
) -> float | None:
    """A threshold leaving about ``target`` candidates (at least one) that stay the same under
    the perturbation, or None (the attempts are appended to ``tried``)."""
    # bisection on the threshold (whatever score it applies to) for about `target` candidates
    lo, hi = 0.0, 1.0
    for _ in range(30):
        mid = (lo + hi) / 2
        n = _count(pre, holder, image, mid)
        if target <= n <= 1.5 * target:
            break
        lo, hi = (mid, hi) if n > target else (lo, mid)
    perturbed = image * (1 + PERTURBATION)
    for k in range(8):
        thr = mid * (1 + 0.01 * k)
        if thr >= 1.0:  # probabilities near 1 (saturated random weights): steps toward 1
            thr = mid + (1.0 - mid) * 0.1 * k
        holder.test_score_thresh = thr
        candidates = _candidates(pre, image)
        diff = match_detections(
            _candidates(pre, perturbed), candidates, box_rtol=1e-2, score_atol=1e-2
        )
        if diff is None and len(candidates[1]) > 0:
            return thr
        tried.append(f"{thr:.6g}: {diff or 'no candidate'}")
    return None


def random_rois(
    k: int,
    n: int,
    height: int,
    width: int,
    scale: float,
    gen: torch.Generator,
    smax: float = 40.0,
    max_angle: float = 360.0,
) -> torch.Tensor:
    """``[k, 6]`` RoIs ``(batch_idx, cx, cy, w, h, angle)`` for ``n`` feature maps of (height,
    width) at ``scale`` (feature size / image size): centres up to 20% outside the image, sides
    0.5-smax feature pixels, angles in ``[-max_angle, max_angle)`` degrees."""
    h_img, w_img = height / scale, width / scale
    return torch.cat(
        [
            torch.randint(0, n, (k, 1), generator=gen).float(),
            torch.rand(k, 1, generator=gen) * 1.4 * w_img - 0.2 * w_img,
            torch.rand(k, 1, generator=gen) * 1.4 * h_img - 0.2 * h_img,
            (torch.rand(k, 2, generator=gen) * (smax - 0.5) + 0.5) / scale,
            torch.rand(k, 1, generator=gen) * 2 * max_angle - max_angle,
        ],
        dim=1,
    )
