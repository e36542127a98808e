"""Turning a list of input dicts into a normalised, padded image batch, and back."""

import torch
from torch.fx.experimental.symbolic_shapes import statically_known_true

from rotated_det.structures import ImageList, Instances, RotatedBoxes

__all__ = ["preprocess_image", "detector_postprocess"]


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
