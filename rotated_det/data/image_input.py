"""The checks at the door of inference: what image a predictor, sliding-window inference or the
export wrapper accepts, what is converted, and what is refused with a message saying what to do.

Numpy images (:func:`as_uint8_image`, used by ``DefaultPredictor`` and
``SlidingWindowInference``) must be ``(H, W, 3)``:

- ``uint8``: used as is (no copy, so a ``np.memmap`` stays on disk);
- ``uint16``: converted to uint8 by keeping the high byte, ``value >> 8`` (0-65535 -> 0-255,
  the full 16-bit range; an 8-bit image stored as 16 bits, ``v * 256`` or ``v * 257``, comes back
  exactly). Sensors that write fewer than 16 bits (12-bit satellite products, values up to 4095)
  come out nearly black under this rule, which a warning says: scale those to uint8 yourself
  (``(img >> 4).astype(np.uint8)`` for 12 bits, or a per-image stretch), knowing your data;
- float images are refused: whether they hold [0, 1] or [0, 255] cannot be told from the array,
  and guessing wrong gives plausible-looking wrong detections;
- any other dtype (int32, bool, ...) and any other shape (``(H, W)``, ``(H, W, 1)``,
  ``(H, W, 4)``, ``(3, H, W)``) are refused.

Tensors given to the export wrapper (:func:`check_model_image`, used by ``TracingAdapter``) follow
the exported model's contract instead: float ``[3, H, W]``, values 0-255.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

__all__ = ["ImageInputError", "as_uint8_image", "check_model_image"]

logger = logging.getLogger(__name__)

_TO_UINT8 = (
    "convert it to uint8 first: (img * 255).round().clip(0, 255).astype(np.uint8) if its values "
    "lie in [0, 1], img.round().clip(0, 255).astype(np.uint8) if they lie in [0, 255]"
)


class ImageInputError(ValueError):
    """An image of a dtype, shape or value range the model cannot take; the message names what
    was given, what is expected and how to convert."""


def as_uint8_image(image: np.ndarray, who: str = "image", channel_order: str = "BGR") -> np.ndarray:
    """Check a numpy image at the door of inference and return it as ``(H, W, 3)`` uint8.

    Args:
        image: ``(H, W, 3)`` uint8 (returned as is) or uint16 (converted by ``value >> 8``);
            see the module docstring for what is refused and why.
        who: names the caller in messages ("DefaultPredictor").
        channel_order: the channel order the caller expects, named in messages.

    Raises:
        ImageInputError: for other types, dtypes or shapes, naming the expected shape and dtype.
    """
    if not isinstance(image, np.ndarray):
        hint = " (a torch tensor: pass tensor.cpu().numpy() in (H, W, 3) layout)"
        raise ImageInputError(
            f"{who} takes an (H, W, 3) uint8 numpy image in {channel_order} order, got "
            f"{type(image).__name__}" + (hint if isinstance(image, torch.Tensor) else "")
        )
    shape = tuple(image.shape)
    if len(shape) != 3 or shape[2] != 3 or shape[0] == 0 or shape[1] == 0:
        raise ImageInputError(
            f"{who} takes an (H, W, 3) image in {channel_order} order, got shape {shape}"
            + _shape_hint(shape, channel_order)
        )
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        peak = int(image.max())
        if 0 < peak < 4096:
            logger.warning(
                "%s: uint16 image with maximum %d: the uint16 -> uint8 rule (value >> 8) maps it "
                "to at most %d, nearly black. If the sensor writes fewer than 16 bits (e.g. "
                "12-bit, up to 4095), scale the image to uint8 yourself (img >> 4 for 12 bits).",
                who, peak, peak >> 8,
            )  # fmt: skip
        return np.right_shift(image, 8).astype(np.uint8)
    if np.issubdtype(image.dtype, np.floating):
        raise ImageInputError(
            f"{who} does not take {image.dtype} images: a float image may hold values in [0, 1] "
            f"or in [0, 255] and the array cannot tell which; {_TO_UINT8}. (Expected an "
            f"(H, W, 3) uint8 or uint16 image in {channel_order} order.)"
        )
    raise ImageInputError(
        f"{who} does not take {image.dtype} images: expected an (H, W, 3) uint8 image in "
        f"{channel_order} order (uint16 is converted by value >> 8); convert it first, e.g. "
        "img.clip(0, 255).astype(np.uint8) if its values lie in 0-255."
    )


def _shape_hint(shape: tuple[int, ...], channel_order: str) -> str:
    code = f"cv2.COLOR_GRAY2{channel_order}"
    if len(shape) == 2 or (len(shape) == 3 and shape[2] == 1):
        return f" (a gray image: cv2.cvtColor(img, {code}) makes it 3-channel)"
    if len(shape) == 3 and shape[2] == 4:
        return f" (4 channels: cv2.cvtColor(img, cv2.COLOR_{channel_order}A2{channel_order}))"
    if len(shape) == 3 and shape[0] == 3:
        return " (channels first? img.transpose(1, 2, 0) gives (H, W, 3))"
    return ""


def check_model_image(image: torch.Tensor, who: str = "image") -> None:
    """Check a tensor for the exported model's input: float ``[3, H, W]`` in the model's channel
    order, values 0-255 (the model normalises itself).

    The channel count and the value range are checked only when running eagerly (not while
    tracing or exporting, where such checks would be baked into the graph as constants):
    values in (0, 1] (an image scaled to [0, 1]), above 255 (16 bits) or below 0 (already
    normalised) are refused.

    Raises:
        ImageInputError: naming the shape, dtype or range given and what is expected.
    """
    expected = "a float [3, H, W] tensor with values 0-255 in the model's channel order"
    if not isinstance(image, torch.Tensor):
        raise ImageInputError(f"{who} takes {expected}, got {type(image).__name__}")
    # While tracing, sizes are tensors: only dim() and dtype are checked then.
    tracing = torch.jit.is_tracing() or torch.compiler.is_compiling()
    if image.dim() != 3 or (not tracing and image.shape[0] != 3):
        raise ImageInputError(f"{who} takes {expected}, got shape {tuple(image.shape)}")
    if not image.is_floating_point():
        hint = ""
        if image.dtype == torch.uint8:
            hint = " (image.float() converts a uint8 tensor exactly)"
        raise ImageInputError(f"{who} takes {expected}, got dtype {image.dtype}{hint}")
    if tracing or image.numel() == 0:
        return
    lo, hi = (float(v) for v in torch.aminmax(image.detach()))
    problem = ""
    if 0.0 < hi <= 1.0:
        problem = "all values lie in [0, 1]: multiply an image scaled to [0, 1] by 255"
    elif hi > 255.5:  # half a level of slack for interpolation round-off
        problem = f"values up to {hi:g}: convert a 16-bit image to 0-255 first (value >> 8)"
    elif lo < -0.5:
        problem = (
            f"values down to {lo:g}: pass pixels, not normalised values (the model subtracts its "
            "pixel mean and divides by its std itself)"
        )
    if problem:
        raise ImageInputError(f"{who} takes {expected}; {problem}")
