"""ImageList.from_tensors: padding, size divisibility, constraints, image_sizes, tracing."""

import pytest
import torch

from rotated_det.structures import ImageList


def test_padding_and_sizes():
    a = torch.arange(3 * 5 * 7, dtype=torch.float32).view(3, 5, 7)
    b = torch.full((3, 9, 4), 2.0)
    il = ImageList.from_tensors([a, b], pad_value=-1.0)
    assert il.tensor.shape == (2, 3, 9, 7)
    assert il.image_sizes == [(5, 7), (9, 4)] and len(il) == 2
    assert torch.equal(il.tensor[0, :, :5, :7], a) and (il.tensor[0, :, 5:, :] == -1).all()
    assert torch.equal(il.tensor[1, :, :9, :4], b) and (il.tensor[1, :, :, 4:] == -1).all()
    # indexing returns the image without its padding
    assert torch.equal(il[0], a) and torch.equal(il[1], b)
    assert il.device.type == "cpu" and il.to(torch.float64).tensor.dtype == torch.float64
    assert il.tensor.is_contiguous()


@pytest.mark.parametrize(
    "sizes,div,expected",
    [
        ([(5, 7), (9, 4)], 32, (32, 32)),
        ([(33, 64), (10, 10)], 32, (64, 64)),
        ([(64, 64)], 32, (64, 64)),
        ([(65, 1)], 32, (96, 32)),
        ([(5, 7), (9, 4)], 0, (9, 7)),
        ([(5, 7), (9, 4)], 1, (9, 7)),
    ],
)
def test_size_divisibility(sizes, div, expected):
    il = ImageList.from_tensors([torch.ones(1, h, w) for h, w in sizes], size_divisibility=div)
    assert tuple(il.tensor.shape[-2:]) == expected
    assert il.image_sizes == sizes
    assert il.tensor.sum().item() == sum(h * w for h, w in sizes)  # zero padding by default


def test_padding_constraints():
    ims = [torch.ones(3, 20, 30), torch.ones(3, 25, 10)]
    il = ImageList.from_tensors(ims, padding_constraints={"square_size": 64})
    assert il.tensor.shape == (2, 3, 64, 64)
    il = ImageList.from_tensors(
        ims, size_divisibility=4, padding_constraints={"size_divisibility": 16}
    )
    assert il.tensor.shape == (2, 3, 32, 32)
    il = ImageList.from_tensors(
        ims, padding_constraints={"square_size": 40, "size_divisibility": 32}
    )
    assert il.tensor.shape == (2, 3, 64, 64)


def test_leading_dims_and_errors():
    il = ImageList.from_tensors([torch.ones(7, 8), torch.ones(9, 3)])  # 2-D images
    assert il.tensor.shape == (2, 9, 8)
    with pytest.raises(ValueError, match="leading dims"):
        ImageList.from_tensors([torch.ones(3, 5, 5), torch.ones(1, 5, 5)])
    with pytest.raises(ValueError, match="non-empty"):
        ImageList.from_tensors([])
    with pytest.raises(TypeError):
        ImageList.from_tensors([torch.ones(3, 4, 4), [[1.0]]])


def test_single_image_traces_with_dynamic_size():
    def f(x):
        return ImageList.from_tensors([x], size_divisibility=32).tensor

    traced = torch.jit.trace(f, (torch.ones(3, 40, 50),))
    out = traced(torch.ones(3, 70, 20))
    assert out.shape == (1, 3, 96, 32)  # not the traced 64 x 64
    assert out.sum().item() == 3 * 70 * 20


def test_torch_export_with_dynamic_height_width():
    """Sizes stay symbolic under torch.export: one program for every resolution."""

    class M1(torch.nn.Module):
        def forward(self, a):
            return ImageList.from_tensors([a], size_divisibility=32).tensor

    class M(torch.nn.Module):
        def forward(self, a, b):
            return ImageList.from_tensors([a, b], size_divisibility=32).tensor

    def dims(i):
        return {
            1: torch.export.Dim(f"H{i}", min=8, max=2048),
            2: torch.export.Dim(f"W{i}", min=8, max=2048),
        }

    one = torch.export.export(M1(), (torch.ones(3, 40, 50),), dynamic_shapes=(dims(0),))
    assert one.module()(torch.ones(3, 70, 33)).shape == (1, 3, 96, 64)
    two = torch.export.export(
        M(), (torch.ones(3, 40, 50), torch.ones(3, 60, 20)), dynamic_shapes=(dims(0), dims(1))
    )
    a, b = torch.rand(3, 70, 33), torch.rand(3, 10, 100)
    out = two.module()(a, b)
    assert out.shape == (2, 3, 96, 128) and torch.equal(out, M()(a, b))
