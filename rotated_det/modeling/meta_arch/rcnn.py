"""GeneralizedRCNN: backbone + proposal generator + RoI heads."""

from torch import nn

from rotated_det.structures import Instances

from ..backbone.backbone import Backbone
from .preprocessing import DetectorBase, gt_instances, postprocess_batch

__all__ = ["GeneralizedRCNN"]


class GeneralizedRCNN(DetectorBase):
    """A two-stage detector.

    Args:
        backbone: a Backbone (e.g. FPN over ResNet).
        proposal_generator: RRPN or OrientedRPN.
        roi_heads: RROIHeads.
        pixel_mean, pixel_std, input_format: see :class:`DetectorBase` (equal lengths).

    Input: ``list[dict]``, each with "image" (``[C, H, W]`` tensor), optional "height" and
    "width" (the size to report detections in; default the image's) and, in training,
    "instances" (``gt_boxes`` RotatedBoxes, ``gt_classes`` int64).
    Output: training, a dict of scalar losses; inference, ``list[{"instances": Instances}]``
    with ``pred_boxes`` (RotatedBoxes), ``scores`` and ``pred_classes``.
    """

    def __init__(
        self,
        *,
        backbone: Backbone,
        proposal_generator: nn.Module,
        roi_heads: nn.Module,
        pixel_mean: tuple[float, ...] = (103.530, 116.280, 123.675),
        pixel_std: tuple[float, ...] = (1.0, 1.0, 1.0),
        input_format: str = "BGR",
    ):
        super().__init__(
            backbone=backbone,
            pixel_mean=pixel_mean,
            pixel_std=pixel_std,
            input_format=input_format,
        )
        self.proposal_generator = proposal_generator
        self.roi_heads = roi_heads

    def forward(self, batched_inputs: list[dict]):
        if not self.training:
            return self.inference(batched_inputs)
        images = self.preprocess_image(batched_inputs)
        gt = gt_instances(batched_inputs, self.device)
        features = self.backbone(images.tensor)
        proposals, proposal_losses = self.proposal_generator(images, features, gt)
        _, detector_losses = self.roi_heads(images, features, proposals, gt)
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
