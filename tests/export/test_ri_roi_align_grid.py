"""ReDet's rotation-invariant RoIAlign on standard operators
(rotated_det.export.ri_roi_align_rotated_grid): equal to the compiled op, swapped in by
StandardOpsMode, and as an ONNX file in ONNX Runtime and OpenVINO at RoI counts other than the
export's."""

import importlib.util
import warnings

import numpy as np
import onnx_cases
import pytest
import torch

from rotated_det.export import StandardOpsMode, rotated_det_ops_in_exported_program
from rotated_det.export.onnx_export import DEFAULT_OPSET
from rotated_det.export.ri_roi_align_rotated_grid import (
    align_orientations,
    ri_roi_align_rotated_grid,
)
from rotated_det.layers import RiRoIAlignRotated, ri_roi_align_rotated

SCALE = 1 / 8
HEIGHT, WIDTH = 21, 26  # feature map
FIELDS = 3


def random_rois(k, batch, gen):
    """[k, 6] RoIs over an image of (HEIGHT, WIDTH) / SCALE pixels (onnx_cases.random_rois):
    sides up to 24 feature pixels, angles in [-720, 720) degrees."""
    return onnx_cases.random_rois(k, batch, HEIGHT, WIDTH, SCALE, gen, smax=24.0, max_angle=720.0)


def special_angles(n):
    """Multiples of 360 / n (negative and beyond one turn), halfway between two, and angles whose
    reduction to [0, n) rounds at its ends."""
    step = 360.0 / n
    multiples = [0.0, step, -step, 3 * step + 360, -5 * step - 720, step / 2, -step / 2]
    return multiples + [359.99997, -1e-6, 1e-6, 360.0, -360.0, 1e6 + 0.3, -1e6 - 0.3]


@pytest.mark.parametrize("clockwise", [False, True])
@pytest.mark.parametrize("sampling_ratio", [2, 1, 3, 0])
@pytest.mark.parametrize("n", [8, 4])
@pytest.mark.parametrize("batch", [1, 2])
def test_equals_compiled_op(batch, n, sampling_ratio, clockwise):
    """Random maps and RoIs (partly outside the map, any angle, special angles, invalid rows):
    the standard-operator formulation equals the compiled op within 1e-4 (float32). Adaptive
    sampling (0) with bins of at most 8 feature pixels and 8 sample slots is exact too."""
    gen = torch.Generator().manual_seed(100 * n + 10 * sampling_ratio + batch + 7 * clockwise)
    x = torch.randn(batch, FIELDS * n, HEIGHT, WIDTH, generator=gen)
    rois = random_rois(150, batch, gen)
    angles = special_angles(n)
    rois[: len(angles), 5] = torch.tensor(angles)
    bad = len(angles)
    rois[bad, 3] = 0.0  # zero width
    rois[bad + 1, 4] = -5.0  # negative height: treated as 0
    rois[bad + 2, 1] = float("nan")  # non-finite: zeros
    rois[bad + 3, 0] = batch  # batch index outside [0, N): zeros
    rois[bad + 4, 5] = float("inf")  # non-finite angle: zeros, not NaN
    expected = ri_roi_align_rotated(x, rois, (7, 5), SCALE, sampling_ratio, n, clockwise)
    actual = ri_roi_align_rotated_grid(
        x, rois, SCALE, 7, 5, sampling_ratio, n, clockwise, max_adaptive_samples=8
    )
    assert actual.shape == expected.shape == (150, FIELDS * n, 7, 5)
    assert (actual - expected).abs().max().item() <= 1e-4
    zero_rows = slice(bad + 2, bad + 5)
    assert expected[zero_rows].abs().max() == 0 and actual[zero_rows].abs().max() == 0
    assert expected.abs().max() > 1.0  # the comparison is not between zeros


@pytest.mark.parametrize("n", [8, 4, 1])
def test_orientation_alignment_rolls_and_interpolates_fields(n):
    """At multiples m * 360 / n (any m, negative too) each field's orientations are rolled by m
    (output o reads orientation (o + m) mod n); halfway between m and m + 1 they are the mean
    of the two rolls; with n = 1 the features are unchanged at any angle."""
    gen = torch.Generator().manual_seed(n)
    fields, ph, pw = 2, 3, 4
    steps = torch.tensor([0, 1, -1, 3, n + 2, -3 * n - 1, 5 * n])
    pooled = torch.randn(len(steps), fields * n, ph, pw, generator=gen)
    v = pooled.reshape(len(steps), fields, n, ph, pw)
    rolled = torch.stack([torch.roll(v[i], -int(m), dims=1) for i, m in enumerate(steps)])
    rolled_next = torch.stack([torch.roll(v[i], -int(m) - 1, dims=1) for i, m in enumerate(steps)])
    at_steps = align_orientations(pooled, steps.float() * (360.0 / n), n)
    assert torch.allclose(at_steps, rolled.reshape(pooled.shape), atol=1e-6)
    halfway = align_orientations(pooled, (steps.float() + 0.5) * (360.0 / n), n)
    mean = ((rolled + rolled_next) / 2).reshape(pooled.shape)
    assert torch.allclose(halfway, mean, atol=1e-5)
    if n == 1:
        assert torch.equal(align_orientations(pooled, torch.rand(len(steps)) * 999, n), pooled)
    else:
        assert not torch.allclose(halfway, pooled, atol=1e-2)


def test_rejects_orientations_that_do_not_divide_the_channels():
    x = torch.randn(1, 12, 8, 8)
    rois = torch.tensor([[0.0, 20.0, 20.0, 16.0, 8.0, 30.0]])
    with pytest.raises(ValueError, match="divide the channels"):
        ri_roi_align_rotated_grid(x, rois, 0.25, 7, 7, 2, 8)


class RiPool(torch.nn.Module):
    """ReDet's rotated-stage pooling (RiRoIAlignRotated 7x7, 2 samples, C8) of the RoIs of
    positive width: as in a detector, the pooled RoI count is data-dependent."""

    def __init__(self, n=8):
        super().__init__()
        self.pool = RiRoIAlignRotated(7, SCALE, 2, n)

    def forward(self, features, rois):
        return self.pool(features, rois[rois[:, 3] > 0])


def _export_program(module, features, rois):
    """torch.export of ``module`` on standard operators, RoI count dynamic."""
    k = torch.export.Dim("num_rois", min=1, max=100_000)
    with StandardOpsMode():
        return torch.export.export(module, (features, rois), dynamic_shapes=({}, {0: k}))


def test_standard_ops_mode_swaps_the_compiled_op():
    """Under StandardOpsMode the layer runs (eagerly and in a torch.export program) on
    grid_sample, not on the compiled op, with the compiled op's values; standard_roi_align=False
    keeps the compiled op."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, FIELDS * 8, HEIGHT, WIDTH, generator=gen)
    rois = random_rois(40, 2, gen)
    module = RiPool()
    expected = module(x, rois)
    with StandardOpsMode():
        eager = module(x, rois)
    assert (eager - expected).abs().max().item() <= 1e-4
    assert not torch.equal(eager, expected)  # a different formulation ran
    with StandardOpsMode(standard_roi_align=False):
        assert torch.equal(module(x, rois), expected)
    program = _export_program(module, x, rois)
    assert rotated_det_ops_in_exported_program(program) == []
    targets = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
    assert any("grid_sampler" in t for t in targets), targets
    other = random_rois(23, 2, gen)  # another RoI count
    got = program.module()(x, other)
    assert (got - module(x, other)).abs().max().item() <= 1e-4


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory):
    """RiPool exported to ONNX (standard operators) with 37 RoIs: (path, features)."""
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(2, FIELDS * 8, HEIGHT, WIDTH, generator=gen)
    program = _export_program(RiPool(), x, random_rois(37, 2, gen))
    path = str(tmp_path_factory.mktemp("ri_onnx") / "ri_roi_align.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        onnx_program = torch.onnx.export(
            program,
            dynamo=True,
            opset_version=DEFAULT_OPSET,
            input_names=["features", "rois"],
            output_names=["pooled"],
        )
    onnx_program.save(path)
    return path, x


def _runner(path, runtime):
    """A function (features, rois) -> pooled of the ONNX file in ``runtime``."""
    if runtime == "onnxruntime":
        import onnxruntime as ort

        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        return lambda x, r: sess.run(None, {"features": x, "rois": r})[0]
    import openvino as ov

    compiled = ov.Core().compile_model(path, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return lambda x, r: np.asarray(compiled({"features": x, "rois": r})[compiled.output(0)])


@pytest.mark.slow  # torch.export + ONNX translation: about 5 s
@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_onnx_file_equals_compiled_op(onnx_file, runtime):
    """The file holds default-domain operators only; run with other RoI counts than the
    export's 37 (53, 1 and none), its output equals the compiled op within 1e-4."""
    if importlib.util.find_spec(runtime) is None:
        pytest.skip(f"{runtime} is not installed (pip install -r dev/requirements.txt)")
    onnx = pytest.importorskip("onnx")
    path, x = onnx_file
    proto = onnx.load(path)
    assert {n.domain for n in proto.graph.node} <= {"", "ai.onnx"}
    assert {"GridSample", "Gather"} <= {n.op_type for n in proto.graph.node}
    run = _runner(path, runtime)
    gen = torch.Generator().manual_seed(3)
    rois = random_rois(53, 2, gen)
    rois[:14, 5] = torch.tensor(special_angles(8))
    for k in (53, 1, 0):
        expected = ri_roi_align_rotated(x, rois[:k], 7, SCALE, 2, 8).numpy()
        actual = run(x.numpy(), rois[:k].numpy())
        assert actual.shape == expected.shape == (k, FIELDS * 8, 7, 7)
        if k:
            assert np.abs(actual - expected).max() <= 1e-4, k
            assert np.abs(expected).max() > 1.0
