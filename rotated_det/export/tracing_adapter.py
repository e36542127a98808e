"""TracingAdapter: a detector seen as ``image tensor -> (boxes, scores, classes)`` tensors.

Tracing (``torch.jit.trace``) and ``torch.export`` need a module whose inputs and outputs are
tensors, while detectors take ``list[dict]`` and return ``list[{"instances": Instances}]``. The
adapter does the flattening both ways:

- input: one image, float32 ``[3, H, W]`` in the model's channel order (``model.input_format``)
  and 0-255 scale, at the resolution the model runs at (the test-time resize is done by the
  caller, as DefaultPredictor does before calling the model); other shapes and dtypes, and
  (when run eagerly) values in [0, 1], above 255 or below 0, are refused by
  :func:`rotated_det.data.image_input.check_model_image`;
- output: ``boxes`` float32 ``[N, 5]`` (cx, cy, w, h, angle in degrees, counter-clockwise, in the
  input image's pixels), ``scores`` float32 ``[N]``, ``classes`` int64 ``[N]``, in the model's
  order (decreasing score for the detectors of this repository).

:func:`outputs_to_instances` turns the three tensors back into ``Instances``.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from rotated_det.data.image_input import check_model_image
from rotated_det.structures import Instances, RotatedBoxes

__all__ = ["TracingAdapter", "outputs_to_instances"]


class TracingAdapter(nn.Module):
    """Wraps a detector for tracing / export.

    Args:
        model: a detector following the model I/O convention, in eval mode.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.input_format = getattr(model, "input_format", "BGR")

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        check_model_image(image, "TracingAdapter")
        outputs = self.model([{"image": image}])
        if not isinstance(outputs, (list, tuple)) or len(outputs) != 1:
            raise TypeError("the model must return a list with one result per input image")
        inst = outputs[0]["instances"] if isinstance(outputs[0], dict) else outputs[0]
        boxes = inst.pred_boxes.tensor if hasattr(inst.pred_boxes, "tensor") else inst.pred_boxes
        return boxes.float(), inst.scores.float(), inst.pred_classes.long()


def outputs_to_instances(
    boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor, image_size: tuple[int, int]
) -> Instances:
    """Inverse of the adapter's flattening: ``Instances(pred_boxes, scores, pred_classes)``."""
    inst = Instances((int(image_size[0]), int(image_size[1])))
    inst.pred_boxes = RotatedBoxes(boxes)
    inst.scores = scores
    inst.pred_classes = classes
    return inst


def _inference_copy(model: nn.Module) -> TracingAdapter:
    """A TracingAdapter around a copy of ``model`` in eval mode whose parameters do not require
    gradients, so that the exported graph also runs outside ``torch.no_grad()`` (detectors
    write into views of their outputs in place, which autograd forbids on tensors that require
    gradients). The caller's model is left untouched."""
    model = copy.deepcopy(model).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return TracingAdapter(model).eval()
