"""RTMDet's flat-then-cosine LR multiplier against hand-computed values."""

import math

import pytest

from rotated_det.solver import flat_cosine_with_warmup


def test_warmup_flat_then_cosine_values():
    """1000 iterations, 100 of warm-up from 1e-5, flat to the middle, cosine to 0.05: at 3/4 the
    cosine is half-way, (1 + 0.05) / 2; at 5/8 it is 0.05 + 0.95 * (1 + cos(pi / 4)) / 2."""
    s = flat_cosine_with_warmup(1000, warmup_iters=100)
    assert s(0.0) == pytest.approx(1e-5)
    assert s(0.05) == pytest.approx(1e-5 + (1 - 1e-5) * 0.5)
    for where in (0.1, 0.3, 0.499):
        assert s(where) == pytest.approx(1.0)
    assert s(0.75) == pytest.approx(0.525)
    assert s(0.625) == pytest.approx(0.05 + 0.95 * (1 + math.cos(math.pi / 4)) / 2)
    assert s(0.999) == pytest.approx(0.05, abs=1e-4)
    values = [s(i / 1000) for i in range(500, 1000)]
    assert all(a >= b for a, b in zip(values, values[1:]))  # non-increasing after the flat part


def test_bad_fraction_is_named():
    with pytest.raises(ValueError, match="flat_fraction"):
        flat_cosine_with_warmup(100, flat_fraction=1.0)
