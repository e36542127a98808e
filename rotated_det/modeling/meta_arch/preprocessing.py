"""Turning a list of input dicts into a normalised, padded image batch, and back."""

import torch

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


def detector_postprocess(results: Instances, output_height: int, output_width: int) -> Instances:
    """Rescale detections from the network's input size to ``(output_height, output_width)``.

    The input image may have been resized (test-time resize); boxes are scaled by
    ``output / input`` along x and y (``RotatedBoxes.scale``), clipped and empty ones dropped.
    """
    in_h, in_w = results.image_size
    scale_x, scale_y = output_width / in_w, output_height / in_h
    out = Instances((int(output_height), int(output_width)), **results.get_fields())
    boxes = out.pred_boxes if out.has("pred_boxes") else out.proposal_boxes
    if not isinstance(boxes, RotatedBoxes):
        raise TypeError(f"detector_postprocess expects RotatedBoxes, got {type(boxes).__name__}")
    boxes = boxes.clone()
    if scale_x != 1.0 or scale_y != 1.0:
        boxes.scale(scale_x, scale_y)
    boxes.clip(out.image_size)
    field = "pred_boxes" if out.has("pred_boxes") else "proposal_boxes"
    out.set(field, boxes)
    return out[boxes.nonempty()]
