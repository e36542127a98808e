"""Turning a list of input dicts into a normalised, padded image batch (and ground truth), and
detections back into each input's size; :class:`DetectorBase` holds what every
meta-architecture needs for that."""

import torch
from torch import nn
from torch.fx.experimental.symbolic_shapes import statically_known_true

from rotated_det.structures import ImageList, Instances, RotatedBoxes

from ..backbone.backbone import Backbone

__all__ = [
    "DetectorBase",
    "preprocess_image",
    "gt_instances",
    "detector_postprocess",
    "postprocess_batch",
]


class DetectorBase(nn.Module):
    """The input side shared by the meta-architectures (GeneralizedRCNN, RotatedRetinaNet): the
    backbone, the per-channel normalisation, the channel order and the device.

    Args:
        backbone: a Backbone (its ``size_divisibility`` pads the image batch).
        pixel_mean, pixel_std: per-channel normalisation of the input (0-255 scale), in the
            channel order of the input images; equal lengths (the number of channels C). Kept as
            ``[C, 1, 1]`` buffers ``pixel_mean`` / ``pixel_std``, not saved in checkpoints.
        input_format: channel order of the images ("BGR" or "RGB"); informative, for callers.
    """

    # Buffers (registered in __init__), declared for the type checker.
    pixel_mean: torch.Tensor
    pixel_std: torch.Tensor

    def __init__(
        self,
        *,
        backbone: Backbone,
        pixel_mean: tuple[float, ...],
        pixel_std: tuple[float, ...],
        input_format: str,
    ) -> None:
        super().__init__()
        if len(pixel_mean) != len(pixel_std):
            raise ValueError(
                f"{type(self).__name__}: pixel_mean {tuple(pixel_mean)} and pixel_std "
                f"{tuple(pixel_std)} differ in length (one value per image channel)"
            )
        self.backbone = backbone
        self.input_format = input_format
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def preprocess_image(self, batched_inputs: list[dict]) -> ImageList:
        """The normalised, padded batch of the inputs' images (:func:`preprocess_image`)."""
        return preprocess_image(
            batched_inputs, self.pixel_mean, self.pixel_std, self.backbone.size_divisibility
        )


def preprocess_image(
    batched_inputs: list[dict],
    pixel_mean: torch.Tensor,
    pixel_std: torch.Tensor,
    size_divisibility: int,
) -> ImageList:
    """Normalise ``(image - pixel_mean) / pixel_std`` and pad into one batch.

    Args:
        batched_inputs: dicts with "image": ``[C, H, W]`` tensor (uint8 or float, 0-255 scale).
        pixel_mean, pixel_std: ``[C, 1, 1]`` on the model's device.
        size_divisibility: padded sizes are multiples of this (the backbone's).
    """
    if not isinstance(batched_inputs, (list, tuple)) or len(batched_inputs) == 0:
        raise ValueError("a model takes a non-empty list of dicts with an 'image' key")
    images = []
    for i, x in enumerate(batched_inputs):
        if "image" not in x:
            raise KeyError(f"input {i} has no 'image' key (keys: {sorted(x)})")
        img = x["image"]
        if img.dim() != 3 or img.shape[0] != pixel_mean.shape[0]:
            raise ValueError(
                f"input {i}: 'image' must be [C, H, W] with C={pixel_mean.shape[0]}, got "
                f"{tuple(img.shape)}"
            )
        img = img.to(device=pixel_mean.device, non_blocking=True)
        images.append((img.to(pixel_mean.dtype) - pixel_mean) / pixel_std)
    return ImageList.from_tensors(images, size_divisibility)


def gt_instances(batched_inputs: list[dict], device: torch.device) -> list[Instances]:
    """The ground truth (``"instances"``) of each training input, on ``device``.

    Raises:
        KeyError: naming the input without an ``"instances"`` key.
    """
    out = []
    for i, x in enumerate(batched_inputs):
        if "instances" not in x:
            raise KeyError(f"training input {i} has no 'instances' (ground truth) key")
        out.append(x["instances"].to(device))
    return out


def _output_size(value):
    """A requested output size as an int, except where it must stay symbolic: a traced tensor
    (``int()`` would freeze the trace-time value into the graph) or a torch.export ``SymInt``
    (``int()`` would specialise the dynamic dimension)."""
    if isinstance(value, torch.SymInt) or (
        isinstance(value, torch.Tensor) and torch.jit.is_tracing()
    ):
        return value
    return int(value)


def _same_size(a, b) -> bool:
    """True when ``a == b`` is known without looking at traced values: the same object, equal
    ints, or SymInts equal by construction."""
    if a is b:
        return True
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return False
    return bool(statically_known_true(a == b))


def detector_postprocess(results: Instances, output_height, output_width) -> Instances:
    """Rescale detections from the network's input size to ``(output_height, output_width)``.

    The input image may have been resized (test-time resize); boxes are scaled by
    ``output / input`` along x and y (``RotatedBoxes.scale``), clipped and empty ones dropped.

    Args:
        results: detections with ``image_size`` the network's input size.
        output_height, output_width: ints; under tracing / torch.export they may be the traced
            or symbolic sizes of the input, which are kept as they are so that the exported
            graph follows the input's resolution.
    """
    in_h, in_w = results.image_size
    output_height, output_width = _output_size(output_height), _output_size(output_width)
    out = Instances((output_height, output_width), **results.get_fields())
    boxes = out.pred_boxes if out.has("pred_boxes") else out.proposal_boxes
    if not isinstance(boxes, RotatedBoxes):
        raise TypeError(f"detector_postprocess expects RotatedBoxes, got {type(boxes).__name__}")
    boxes = boxes.clone()
    if not (_same_size(output_height, in_h) and _same_size(output_width, in_w)):
        boxes.scale(output_width / in_w, output_height / in_h)
    boxes.clip(out.image_size)
    field = "pred_boxes" if out.has("pred_boxes") else "proposal_boxes"
    out.set(field, boxes)
    return out[boxes.nonempty()]


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
