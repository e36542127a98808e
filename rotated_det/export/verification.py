"""Comparing exported detectors with the eager model: same detections, and at which resolutions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

from .tracing_adapter import TracingAdapter

__all__ = ["compare_detections", "ResolutionCheck", "check_resolution", "other_resolution"]

Detections = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def compare_detections(
    actual: Detections, expected: Detections, rtol: float = 1e-3, score_atol: float = 1e-4
) -> str | None:
    """None if two ``(boxes [N,5], scores [N], classes [N])`` triples agree, else what differs.

    Boxes agree when ``|a - e| <= rtol * max(|e|, 1)`` element-wise (relative, with a 1-pixel /
    1-degree floor so that values near 0 are not held to an absolute 0); classes and order must be
    identical; scores within ``score_atol``.
    """
    (ab, as_, ac), (eb, es, ec) = actual, expected
    if ab.shape != eb.shape or as_.shape != es.shape or ac.shape != ec.shape:
        return (
            f"different numbers of detections: {tuple(ab.shape)}/{tuple(as_.shape)}/"
            f"{tuple(ac.shape)} vs expected {tuple(eb.shape)}/{tuple(es.shape)}/{tuple(ec.shape)}"
        )
    ab, eb = ab.detach().double().cpu(), eb.detach().double().cpu()
    if not torch.equal(ac.detach().cpu().long(), ec.detach().cpu().long()):
        bad = (ac.cpu().long() != ec.cpu().long()).nonzero()[:5, 0].tolist()
        return f"classes differ (first rows {bad})"
    err = (ab - eb).abs() / eb.abs().clamp(min=1.0)
    if len(err) and err.max() > rtol:
        i, j = divmod(int(err.argmax()), 5)
        return (
            f"boxes differ: row {i} column {j}: {ab[i, j].item():.6g} vs {eb[i, j].item():.6g} "
            f"(relative {err.max().item():.2e} > {rtol})"
        )
    sd = (as_.detach().double().cpu() - es.detach().double().cpu()).abs()
    if len(sd) and sd.max() > score_atol:
        return f"scores differ by up to {sd.max().item():.2e} (row {int(sd.argmax())})"
    return None


@dataclass
class ResolutionCheck:
    """Result of running an exported module at a resolution other than the traced one.

    Attributes:
        size: (height, width) tried.
        ok: the exported module ran and matched the eager model.
        message: why not (error text or the difference), "" when ok.
    """

    size: tuple[int, int]
    ok: bool
    message: str


def other_resolution(height: int, width: int, multiple: int = 32) -> tuple[int, int]:
    """A size clearly different from (height, width), with another aspect ratio: about 0.8 x
    height and 0.65 x width, rounded to ``multiple`` (and at least one ``multiple``)."""

    def r(v: float) -> int:
        return max(multiple, int(round(v / multiple)) * multiple)

    return r(height * 0.8), r(width * 0.65)


def check_resolution(
    exported: Callable[[torch.Tensor], Detections], model: nn.Module, image: torch.Tensor
) -> ResolutionCheck:
    """Run ``exported`` and the eager ``model`` (through :class:`TracingAdapter`) on ``image``
    and compare their detections."""
    size = (int(image.shape[1]), int(image.shape[2]))
    with torch.no_grad():
        expected = TracingAdapter(model)(image)
        try:
            actual = exported(image)
        except Exception as e:  # what the exported module says is the point of the check
            lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
            text = lines[0] if lines else ""
            if len(lines) > 1:
                text += " ... " + lines[-1]
            return ResolutionCheck(size, False, f"{type(e).__name__}: {text}")
    diff = compare_detections(cast(Detections, tuple(actual)), expected)
    return ResolutionCheck(size, diff is None, diff or "")
