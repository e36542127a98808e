"""min_size: ``min(size, limit)`` that follows the input under tracing and torch.export."""

import warnings

import torch

from rotated_det.modeling.shape_utils import min_size


def top_above_half(x: torch.Tensor) -> torch.Tensor:
    """The 3 largest values above 0.5 (fewer if fewer are above)."""
    y = x[x > 0.5]
    return y.topk(min_size(y.shape[0], 3)).values


def test_min_size_eager_traced_and_exported():
    assert min_size(5, 3) == 3 and min_size(2, 3) == 2
    few = torch.tensor([0.9, 0.1, 0.7])  # 2 above 0.5
    many = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.95, 0.99])  # 6 above 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(top_above_half, (many,))
    for x in (few, many):
        assert torch.equal(traced(x), top_above_half(x))

    class M(torch.nn.Module):
        def forward(self, x):
            return top_above_half(x)

    ep = torch.export.export(M(), (many,), dynamic_shapes=({0: torch.export.Dim("n")},))
    for x in (few, many, torch.tensor([0.1, 0.2])):
        assert torch.equal(ep.module()(x), top_above_half(x))
    assert torch.equal(top_above_half(few), torch.tensor([0.9, 0.7]))
    assert torch.equal(top_above_half(many), torch.tensor([0.99, 0.95, 0.9]))
