"""Angle coders (rotated_det.modeling.angle_coders): round trips over each angle version's whole
range and across its ends, the circular CSL label, PSC's continuity and its dual-frequency code
for square boxes, the losses, and argument checks."""

import math

import pytest
import torch

from rotated_det.modeling.angle_coders import (
    AngleCoder,
    CSLCoder,
    PSCCoder,
    RegressionAngleCoder,
    angle_range,
    wrap_angles,
)
from rotated_det.structures import ANGLE_VERSIONS, normalize_rbox_angles, rbox_corner_distance

# (factory, round-trip tolerance in degrees). CSL returns bin centres: at most omega / 2 away.
CODERS = {
    "regression": (lambda v: RegressionAngleCoder(v), 1e-4),
    "csl_gaussian": (lambda v: CSLCoder(v), 0.5),
    "csl_triangle": (lambda v: CSLCoder(v, omega=2, window="triangle", radius=4), 1.0),
    "csl_rect": (lambda v: CSLCoder(v, omega=5, window="rect", radius=2), 2.5),
    "csl_pulse": (lambda v: CSLCoder(v, omega=1.5, window="pulse"), 0.75),
    # MMRotate's DOTA setting (omega 4 does not divide the 90-degree "oc" range: 3 there)
    "csl_mmrotate_dota": (lambda v: CSLCoder(v, omega=4 if v != "oc" else 3, radius=3), 2.0),
    "psc_dual": (lambda v: PSCCoder(v), 2e-3),
    "psc_single": (lambda v: PSCCoder(v, dual_freq=False), 2e-3),
    "psc_4step": (lambda v: PSCCoder(v, num_step=4), 2e-3),
}
CIRCULAR = [name for name in CODERS if name != "regression"]


def circ_diff(a: torch.Tensor, b: torch.Tensor, period: float) -> torch.Tensor:
    """|a - b| modulo ``period``, in [0, period / 2]."""
    return torch.remainder(a - b + period / 2, period).sub(period / 2).abs()


def as_prediction(coder: AngleCoder, code: torch.Tensor) -> torch.Tensor:
    """The head output a perfectly trained head gives for ``code`` (CSL predicts logits)."""
    if isinstance(coder, CSLCoder):
        return torch.logit(code.clamp(1e-4, 1 - 1e-4))
    return code


def squares(angles: torch.Tensor) -> torch.Tensor:
    """[N, 5] squares of side 10 px at the origin, turned by ``angles`` degrees."""
    z = torch.zeros_like(angles)
    return torch.stack([z, z, z + 10, z + 10, angles], dim=-1)


def whole_range(version: str) -> torch.Tensor:
    """Angles covering the version's range densely, both ends included (to within 1e-3)."""
    low, period = angle_range(version)
    grid = torch.linspace(low, low + period, 2001, dtype=torch.float64)[:-1]
    ends = torch.tensor([low, low + 1e-3, low + 0.1, low + period - 0.1, low + period - 1e-3])
    return torch.cat([grid, ends.double()]).float()


@pytest.mark.parametrize("version", ANGLE_VERSIONS)
@pytest.mark.parametrize("name", list(CODERS))
def test_round_trip_whole_range(name, version):
    make, tol = CODERS[name]
    coder = make(version)
    low, period = angle_range(version)
    angles = whole_range(version)
    code = coder.encode(angles)
    assert code.shape == (len(angles), coder.encode_size)
    out = coder.decode(as_prediction(coder, code))
    assert out.shape == angles.shape
    assert bool(((out >= low) & (out < low + period)).all()), "decoded angle out of range"
    err = circ_diff(out, angles, period)
    assert err.max().item() <= tol + 1e-4, (name, version, err.max().item())


@pytest.mark.parametrize("name", list(CODERS))
def test_round_trip_at_the_le90_boundary(name):
    make, tol = CODERS[name]
    coder = make("le90")
    angles = torch.tensor([-89.9, 89.9, -90.0, 89.99])
    out = coder.decode(as_prediction(coder, coder.encode(angles)))
    assert circ_diff(out, angles, 180.0).max().item() <= tol + 1e-4
    # -89.9 stays near -90 and 89.9 near +90 (not folded towards 0)
    assert out[0].item() < -89.0 + tol and out[1].item() > 89.0 - tol


@pytest.mark.parametrize(
    ("version", "below", "above"), [("le90", -89.0, 89.0), ("le135", -44.0, 134.0)]
)
@pytest.mark.parametrize("name", CIRCULAR)
def test_prediction_between_the_two_ends_decodes_at_the_boundary(name, version, below, above):
    """A head torn between two targets 2 degrees apart across the range ends predicts the mean of
    their codes; a circular coder decodes it at the boundary, a regressed angle lands at the
    midpoint of the range (the boundary problem, shown by the last assertion)."""
    coder = CODERS[name][0](version)
    low, period = angle_range(version)
    pair = torch.tensor([below, above])
    mean_pred = as_prediction(coder, coder.encode(pair)).mean(dim=0, keepdim=True)
    out = coder.decode(mean_pred)
    tol = getattr(coder, "omega", 0.0)  # CSL: the boundary lies between two bins
    assert circ_diff(out, torch.tensor([low]), period).item() <= 1.0 + tol
    regression = RegressionAngleCoder(version)
    mid = regression.decode(regression.encode(pair).mean(dim=0, keepdim=True))
    assert abs(mid.item() - (below + above) / 2) < 1e-4  # 0 (le90) / 45 (le135): far from the box


def test_regression_decode_wraps_out_of_range_predictions():
    coder = RegressionAngleCoder("le90")
    pred = torch.deg2rad(torch.tensor([[91.0], [-95.0], [270.0], [90.0]]))
    assert torch.allclose(coder.decode(pred), torch.tensor([-89.0, 85.0, -90.0, -90.0]), atol=1e-4)
    oc = RegressionAngleCoder("oc")
    assert torch.allclose(oc.decode(torch.deg2rad(torch.tensor([[10.0]]))), torch.tensor([-80.0]))


def test_csl_label_hand_worked():
    """Class docstring example: 6 bins of 30 degrees centred at -75 .. 75, triangle radius 2."""
    coder = CSLCoder("le90", omega=30, window="triangle", radius=2)
    assert coder.encode_size == 6
    label = coder.encode(torch.tensor([-80.0, 80.0, 14.0]))
    expected = torch.tensor(
        [
            [1.0, 0.5, 0.0, 0.0, 0.0, 0.5],  # bin 0, wraps onto bin 5
            [0.5, 0.0, 0.0, 0.0, 0.5, 1.0],  # bin 5, wraps onto bin 0
            [0.0, 0.0, 0.5, 1.0, 0.5, 0.0],  # 14 is in bin 3 = [0, 30)
        ]
    )
    assert torch.equal(label, expected)
    gauss = CSLCoder("le90", omega=1, window="gaussian", radius=6).encode(torch.tensor([0.2]))[0]
    assert gauss[90].item() == pytest.approx(1.0)  # 0.2 is in bin 90 = [0, 1)
    assert gauss[93].item() == pytest.approx(math.exp(-9 / 72), rel=1e-6)
    assert gauss[87].item() == pytest.approx(math.exp(-9 / 72), rel=1e-6)
    rect = CSLCoder("le90", omega=10, window="rect", radius=1).encode(torch.tensor([-85.0]))[0]
    assert rect.nonzero().flatten().tolist() == [0, 1, 17]
    pulse = CSLCoder("oc", omega=10, window="pulse").encode(torch.tensor([-0.5]))[0]
    assert pulse.nonzero().flatten().tolist() == [8]


@pytest.mark.parametrize("window", ["gaussian", "triangle", "rect"])
def test_csl_label_is_circular(window):
    """The label of -89 degrees has mass at the +89 bins, as much as the label of -87 has at -89:
    only the circular distance counts."""
    coder = CSLCoder("le90", omega=1, window=window, radius=4)
    labels = coder.encode(torch.tensor([-89.0, -87.0, 89.0]))

    def bin_of(a: float) -> int:  # omega 1: bin k is [k - 90, k - 89)
        return int(a + 90)

    assert labels[0, bin_of(89.0)].item() > 0.4
    assert labels[0, bin_of(89.0)].item() == pytest.approx(labels[1, bin_of(-89.0)].item())
    # the label of 89 is the label of -89 shifted by 2 bins around the circle
    assert torch.equal(labels[2], torch.roll(labels[0], -2))
    # and far bins get nothing
    assert labels[0, bin_of(0.0)].item() == 0.0


def test_csl_decode_is_the_window_centre_for_a_flat_topped_prediction():
    """A rect label is flat over 2 * radius + 1 bins: a plain argmax would return its first bin;
    the matched filter returns its centre, also when the plateau wraps around the range ends."""
    coder = CSLCoder("le90", omega=1, window="rect", radius=5)
    angles = torch.tensor([-89.5, -87.5, 0.5, 88.5])
    pred = torch.where(coder.encode(angles) > 0, 3.0, -3.0)
    assert torch.equal(coder.decode(pred), angles)
    noisy = pred + 0.3 * torch.randn(pred.shape, generator=torch.Generator().manual_seed(0))
    assert circ_diff(coder.decode(noisy), angles, 180.0).max().item() <= 2.0


def test_psc_code_is_continuous_across_the_boundary():
    e = 0.01
    for version, (low, period) in [(v, angle_range(v)) for v in ANGLE_VERSIONS]:
        for dual in (False, True):
            coder = PSCCoder(version, dual_freq=dual)
            code = coder.encode(torch.tensor([low + e, low + period - e], dtype=torch.float64))
            # |d code / d angle| <= highest frequency (per radian); the two angles are 2e apart
            bound = max(coder.frequencies) * math.radians(2 * e)
            assert (code[0] - code[1]).abs().max().item() <= bound * 1.001
    # the whole circle: neighbouring angles on a grid that wraps have neighbouring codes
    coder = PSCCoder("le90")
    grid = torch.arange(-90.0, 90.0, 0.5, dtype=torch.float64)
    code = coder.encode(grid)
    step = (code - torch.roll(code, 1, dims=0)).abs().max().item()
    assert step <= 4 * math.radians(0.5) * 1.001
    regression = RegressionAngleCoder("le90").encode(torch.tensor([-90.0 + e, 90.0 - e]))
    assert (regression[0] - regression[1]).abs().item() > 3.0  # ~pi: the discontinuity


@pytest.mark.parametrize("version", ["le90", "le135"])
def test_psc_dual_frequency_codes_a_square_once(version):
    """A square box at angle a is the same box at a + 90. Property tested:
    (1) the high-frequency half of the dual code (cos(4a + ...)) is the same for a and a + 90,
        while the low-frequency half flips sign;
    (2) a head trained on squares labelled sometimes a, sometimes a + 90 converges (L1/L2) to the
        mean of the two codes; the dual coder decodes that mean to the same square box, whereas
        the single-frequency coder's mean code is 0 and decodes to angle 0 (thr_mod), losing
        the square's orientation."""
    low, period = angle_range(version)
    a = torch.arange(low, low + period, 7.3, dtype=torch.float64)
    turned = wrap_angles(a + 90.0, version)
    dual = PSCCoder(version, dual_freq=True)
    c1, c2 = dual.encode(a), dual.encode(turned)
    n = dual.num_step
    assert torch.allclose(c1[:, n:], c2[:, n:], atol=1e-9)
    assert torch.allclose(c1[:, :n], -c2[:, :n], atol=1e-9)

    decoded = dual.decode((c1 + c2) / 2)
    dist = rbox_corner_distance(squares(decoded), squares(a))
    assert dist.max().item() < 1e-4  # same square (pixels; side 10)

    single = PSCCoder(version, dual_freq=False)
    lost = single.decode((single.encode(a) + single.encode(turned)) / 2)
    assert torch.equal(lost, torch.zeros_like(lost))
    far = rbox_corner_distance(squares(lost), squares(a))
    assert far.max().item() > 3.0  # the 45-degree-off squares are far from angle 0


def test_psc_modulation_threshold():
    coder = PSCCoder("le90", thr_mod=0.47)
    code = coder.encode(torch.tensor([30.0, 30.0, 30.0]))
    # squared amplitude at the high frequency: (1.5 * scale) ** 2 -> 2.25, 0.5625, 0.09
    out = coder.decode(code * torch.tensor([[1.0], [0.5], [0.2]]))
    assert torch.allclose(out, torch.tensor([30.0, 30.0, 0.0]), atol=1e-3)
    assert PSCCoder("le90", thr_mod=0.0).decode(code * 0.2)[0].item() == pytest.approx(
        30.0, abs=1e-3
    )
    # "oc": angle 0 is wrapped into [-90, 0)
    assert PSCCoder("oc").decode(torch.zeros(1, 6)).item() == -90.0


@pytest.mark.parametrize("name", list(CODERS))
def test_loss_minimal_at_the_code_and_growing_away_from_it(name):
    coder = CODERS[name][0]("le90")
    true = torch.full((1,), 87.0)
    offsets = torch.tensor([0.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0])
    # predictions of angles 87 + offset (wrapping past 90 into -93 + offset: circularly close)
    preds = as_prediction(coder, coder.encode(wrap_angles(true + offsets, "le90")))
    loss = coder.loss(preds, true.expand(len(offsets)))
    assert loss.shape == (len(offsets),)
    if not isinstance(coder, CSLCoder):
        assert loss[0].item() == pytest.approx(0.0, abs=1e-6)
    if isinstance(coder, RegressionAngleCoder):
        assert loss[1].item() == pytest.approx(math.radians(2.0), rel=1e-4)  # L1, radians
        # 87 + 8 = -85 after wrapping: the regression loss sees 172 degrees, not 8
        assert loss[3].item() > math.radians(170)
        return
    # CSL: bins beyond the window's reach add nothing more, so allow ties once saturated
    diffs = loss[1:] - loss[:-1]
    assert bool((diffs >= -1e-6).all()), loss
    assert loss[3].item() > loss[0].item() + 1e-3, loss


def test_csl_bce_loss_is_minimal_at_the_label():
    """With gamma 0 and no alpha the CSL loss is binary cross-entropy against the smooth label:
    the label's own logits beat any perturbation of them."""
    coder = CSLCoder("le90", omega=4, window="gaussian", radius=3, alpha=-1, gamma=0)
    angles = torch.tensor([-88.0, -10.0, 45.0, 89.0])
    best = torch.logit(coder.encode(angles).clamp(1e-6, 1 - 1e-6))
    base = coder.loss(best, angles)
    g = torch.Generator().manual_seed(1)
    for _ in range(5):
        worse = coder.loss(best + 0.3 * torch.randn(best.shape, generator=g), angles)
        assert bool((worse > base).all())


@pytest.mark.parametrize("name", ["regression", "csl_mmrotate_dota", "psc_dual", "psc_single"])
def test_minimising_the_loss_recovers_the_angle(name):
    """Gradient descent on ``loss`` alone, from zero predictions, ends where ``decode`` returns
    the target: loss and decoder agree, including at the range ends."""
    coder = CODERS[name][0]("le90")
    angles = torch.tensor([-89.5, -60.0, -1.0, 0.0, 33.0, 75.0, 89.5])
    pred = torch.zeros(len(angles), coder.encode_size, requires_grad=True)
    opt = torch.optim.Adam([pred], lr=0.05)
    steps = 300
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1 - i / steps)  # settle, no jitter
    for _ in range(steps):
        opt.zero_grad()
        coder.loss(pred, angles).sum().backward()
        opt.step()
        sched.step()
    out = coder.decode(pred.detach())
    tol = getattr(coder, "omega", 0.0) / 2 + 0.5
    assert circ_diff(out, angles, 180.0).max().item() <= tol


@pytest.mark.parametrize("name", list(CODERS))
def test_empty_and_float64(name):
    coder = CODERS[name][0]("le135")
    empty = coder.encode(torch.zeros(0))
    assert empty.shape == (0, coder.encode_size)
    assert coder.decode(empty).shape == (0,)
    assert coder.loss(empty, torch.zeros(0)).shape == (0,)
    angles = torch.tensor([-40.0, 100.0], dtype=torch.float64)
    code = coder.encode(angles)
    assert code.dtype == torch.float64
    assert coder.decode(as_prediction(coder, code)).dtype == torch.float64


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_wrap_angles_agrees_with_structures(dtype):
    """wrap_angles is the angle normalize_rbox_angles gives a box with w > h, in every version;
    its result lies in angle_range and differs from the input by whole periods."""
    g = torch.Generator().manual_seed(0)
    angles = torch.cat(
        [
            torch.rand(1000, generator=g, dtype=torch.float64) * 2000 - 1000,
            torch.tensor([-90.0, 90.0, -45.0, 135.0, 0.0, -180.0, 180.0, -1e-7, 1e-7, -1e-30]),
        ]
    ).to(dtype)
    for version in ANGLE_VERSIONS:
        low, period = angle_range(version)
        w = wrap_angles(angles, version)
        assert bool(((w >= low) & (w < low + period)).all()), version
        k = (angles.double() - w.double()) / period
        assert torch.allclose(k, k.round(), atol=1e-5 if dtype == torch.float32 else 1e-12)
        boxes = torch.stack([0 * angles, 0 * angles, 2 + 0 * angles, 1 + 0 * angles, angles], 1)
        ref = normalize_rbox_angles(boxes, version)[:, 4]
        tol = 1e-4 if dtype == torch.float32 else 1e-9
        assert circ_diff(w, ref, period).max().item() <= tol, version
    assert (angle_range("le90"), angle_range("le135"), angle_range("oc")) == (
        (-90.0, 180.0),
        (-45.0, 180.0),
        (-90.0, 90.0),
    )


@pytest.mark.parametrize(
    ("make", "argument"),
    [
        (lambda: RegressionAngleCoder("le45"), "angle_version"),
        (lambda: CSLCoder("LE90"), "angle_version"),
        (lambda: PSCCoder("xywh"), "angle_version"),
        (lambda: CSLCoder(window="hann"), "window"),
        (lambda: CSLCoder(omega=7), "omega"),
        (lambda: CSLCoder(omega=0), "omega"),
        (lambda: CSLCoder(omega=-1), "omega"),
        (lambda: CSLCoder("oc", omega=4), "omega"),  # 90 / 4 bins
        (lambda: CSLCoder(omega=4, radius=0), "radius"),
        (lambda: CSLCoder(omega=4, radius=23), "radius"),  # 45 bins: would wrap onto itself
        (lambda: CSLCoder(gamma=-1), "gamma"),
        (lambda: PSCCoder(num_step=2), "num_step"),
        (lambda: PSCCoder(num_step=3.0), "num_step"),
        (lambda: PSCCoder(thr_mod=-0.1), "thr_mod"),
        (lambda: RegressionAngleCoder(beta=-1.0), "beta"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(make, argument):
    with pytest.raises(ValueError, match=argument):
        make()


@pytest.mark.parametrize("name", ["regression", "csl_gaussian", "psc_dual"])
def test_bad_shapes_raise(name):
    coder = CODERS[name][0]("le90")
    with pytest.raises(ValueError, match="pred"):
        coder.decode(torch.zeros(3, coder.encode_size + 1))
    with pytest.raises(ValueError, match="pred"):
        coder.loss(torch.zeros(3), torch.zeros(3))
    with pytest.raises(ValueError, match="angles"):
        coder.encode(torch.zeros(3, 1))


def test_defaults_and_sizes():
    assert RegressionAngleCoder().encode_size == 1
    csl = CSLCoder()
    assert (csl.angle_version, csl.omega, csl.window, csl.radius, csl.encode_size) == (
        "le90",
        1.0,
        "gaussian",
        6.0,
        180,
    )
    assert CSLCoder("oc").encode_size == 90
    psc = PSCCoder()
    assert (psc.num_step, psc.dual_freq, psc.thr_mod, psc.encode_size) == (3, True, 0.47, 6)
    assert PSCCoder(dual_freq=False).encode_size == 3
    weights = [c.default_loss_weight for c in (RegressionAngleCoder(), csl, psc)]
    assert weights == [0.2, 0.8, 0.2]
    assert "omega=1.0" in repr(csl)
