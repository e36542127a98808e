"""The checks at the door of inference: numpy images (predictors) and model tensors (export)."""

import logging
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from rotated_det.data.image_input import ImageInputError, as_uint8_image, check_model_image
from rotated_det.export import TracingAdapter
from rotated_det.structures import Instances, RotatedBoxes


def test_uint8_is_returned_as_is_and_uint16_keeps_the_high_byte(caplog):
    img = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    assert as_uint8_image(img) is img  # no copy: a memmap stays on disk
    values = np.array([0, 255, 256, 257, 511, 65280, 65534, 65535], np.uint16)
    img16 = np.repeat(values[None, :, None], 3, axis=2)
    with caplog.at_level(logging.WARNING):
        out = as_uint8_image(img16, "P")
    assert out.dtype == np.uint8 and out.shape == img16.shape
    assert out[0, :, 0].tolist() == [0, 0, 1, 1, 1, 255, 255, 255]
    assert caplog.text == ""  # full-range data: no warning


class _MeanBox(nn.Module):
    """One box whose centre is the image's mean pixel value: shows what the model was given."""

    input_format = "BGR"

    def forward(self, batched):
        image = batched[0]["image"]
        inst = Instances(tuple(image.shape[1:]))
        m = image.mean()
        inst.pred_boxes = RotatedBoxes(torch.stack([m, m, m * 0 + 4, m * 0 + 2, m * 0])[None])
        inst.scores = (m * 0 + 0.5)[None]
        inst.pred_classes = torch.zeros(1, dtype=torch.int64)
        return [{"instances": inst}]


@pytest.mark.parametrize(
    "image, message",
    [
        (torch.rand(3, 16, 16), "all values lie in [0, 1]: multiply an image scaled to [0, 1] by"),
        (torch.rand(3, 16, 16) * 65535, "convert a 16-bit image to 0-255 first (value >> 8)"),
        (torch.randn(3, 16, 16) * 50, "pass pixels, not normalised values"),
        (torch.zeros(3, 16, 16, dtype=torch.uint8), "got dtype torch.uint8 (image.float()"),
        (torch.zeros(16, 16, 3), "got shape (16, 16, 3)"),
        (torch.zeros(1, 3, 16, 16), "got shape (1, 3, 16, 16)"),
    ],
    ids=["0-1", "16bit", "normalised", "uint8", "HWC", "batched"],
)
def test_export_wrapper_refuses_images_outside_its_contract(image, message):
    adapter = TracingAdapter(_MeanBox())
    with pytest.raises(ImageInputError) as e:
        adapter(image)
    assert str(e.value).startswith(
        "TracingAdapter takes a float [3, H, W] tensor with values 0-255 in the model's channel "
        "order"
    )
    assert message in str(e.value)


def test_export_wrapper_accepts_pixels_and_still_traces_and_exports():
    adapter = TracingAdapter(_MeanBox()).eval()
    image = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0)) * 255
    boxes, _, _ = adapter(image)
    assert float(boxes[0, 0]) == pytest.approx(float(image.mean()))
    check_model_image(torch.zeros(3, 8, 8))  # a black image is fine
    check_model_image(torch.full((3, 8, 8), 255.0))
    # the value check is eager only: it neither fails nor is baked into a trace or a program
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        traced = torch.jit.trace(adapter, (image,), check_trace=False)
    assert [str(w.message) for w in caught if w.filename.endswith("image_input.py")] == []
    torch.testing.assert_close(traced(image)[0], boxes)
    program = torch.export.export(adapter, (image,), strict=False)
    torch.testing.assert_close(program.module()(image)[0], boxes)
