"""GeneralizedRCNN: backbone + proposal generator + RoI heads."""

import torch
from torch import nn

from rotated_det.structures import Instances

from .preprocessing import detector_postprocess, preprocess_image

__all__ = ["GeneralizedRCNN"]


class GeneralizedRCNN(nn.Module):
    """A two-stage detector.

    Args:
        backbone: a Backbone (e.g. FPN over ResNet).
        proposal_generator: RRPN or OrientedRPN.
        roi_heads: RROIHeads.
        pixel_mean, pixel_std: per-channel normalisation of the input (0-255 scale), in the
            channel order of the input images.
        input_format: channel order of the images ("BGR" or "RGB"); informative, for callers.

    Input: ``list[dict]``, each with "image" (``[C, H, W]`` tensor), optional "height" and
    "width" (the size to report detections in; default the image's) and, in training,
    "instances" (``gt_boxes`` RotatedBoxes, ``gt_classes`` int64).
    Output: training, a dict of scalar losses; inference, ``list[{"instances": Instances}]``
    with ``pred_boxes`` (RotatedBoxes), ``scores`` and ``pred_classes``.
    """

    def __init__(
        self,
        *,
        backbone: nn.Module,
        proposal_generator: nn.Module,
        roi_heads: nn.Module,
        pixel_mean: tuple[float, ...] = (103.530, 116.280, 123.675),
        pixel_std: tuple[float, ...] = (1.0, 1.0, 1.0),
        input_format: str = "BGR",
    ):
        super().__init__()
        self.backbone = backbone
        self.proposal_generator = proposal_generator
        self.roi_heads = roi_heads
        self.input_format = input_format
        if len(pixel_mean) != len(pixel_std):
            raise ValueError(f"pixel_mean {pixel_mean} and pixel_std {pixel_std} differ in length")
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def preprocess_image(self, batched_inputs: list[dict]):
        return preprocess_image(
            batched_inputs, self.pixel_mean, self.pixel_std, self.backbone.size_divisibility
        )

    def forward(self, batched_inputs: list[dict]):
        if not self.training:
            return self.inference(batched_inputs)
        images = self.preprocess_image(batched_inputs)
        gt_instances = _gt_instances(batched_inputs, self.device)
        features = self.backbone(images.tensor)
        proposals, proposal_losses = self.proposal_generator(images, features, gt_instances)
        _, detector_losses = self.roi_heads(images, features, proposals, gt_instances)
        losses = dict(detector_losses)
        losses.update(proposal_losses)
        return losses

    def inference(
        self, batched_inputs: list[dict], do_postprocess: bool = True
    ) -> list[dict] | list[Instances]:
        """Detections per image; with ``do_postprocess`` in each input's height/width."""
        images = self.preprocess_image(batched_inputs)
        features = self.backbone(images.tensor)
        proposals, _ = self.proposal_generator(images, features, None)
        results, _ = self.roi_heads(images, features, proposals, None)
        if not do_postprocess:
            return results
        return postprocess_batch(results, batched_inputs)


def _gt_instances(batched_inputs: list[dict], device: torch.device) -> list[Instances]:
    out = []
    for i, x in enumerate(batched_inputs):
        if "instances" not in x:
            raise KeyError(f"training input {i} has no 'instances' (ground truth) key")
        out.append(x["instances"].to(device))
    return out


def postprocess_batch(results: list[Instances], batched_inputs: list[dict]) -> list[dict]:
    """Wrap per-image results as ``{"instances": ...}`` in each input's original size
    ("height"/"width" of the input dict; default the network's input size, kept as the traced /
    symbolic size under tracing and torch.export)."""
    processed = []
    for res, x in zip(results, batched_inputs):
        height = x.get("height", res.image_size[0])
        width = x.get("width", res.image_size[1])
        processed.append({"instances": detector_postprocess(res, height, width)})
    return processed
