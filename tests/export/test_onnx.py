"""ONNX export without a custom-op library (rotated_det.export.onnx_export and its parts).

Fast tests check the pieces against the compiled ops: the grid_sample RoIAlign, the numpy
rotated IoU / NMS post-processor, and the deferral of the final NMS (the detector's candidates
plus the NMS outside equal the detector's own detections). Slow tests export every detector of
tests/modeling/_helpers.py and run the file in ONNX Runtime and OpenVINO (CPU, float32):

- before the NMS, the runtime's candidates equal PyTorch's on the same operators
  (:class:`PreNMSDetector`), one to one in any order: same classes, scores within 1e-4, box
  corners within 1e-3 x max(1, |coordinate|) pixels (detection_matching's tolerances);
- after the NMS (numpy post-processor), the detections equal those of the PyTorch model (for
  two-stage detectors: with the same horizontal proposal NMS) with the same tolerances,

on the export's sample and at a second size (dynamic height and width). The cases are
conditioned so that float differences between runtimes cannot move a candidate across a cut
(tests/export/onnx_cases.py). A test skips only when its runtime is not installed.
"""

import importlib.util
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from onnx_cases import (
    DETECTORS,
    TWO_STAGE,
    build_small_model,
    onnx_test_detector,
    random_rois,
    scene,
)

from rotated_det.export import TracingAdapter
from rotated_det.export.detection_matching import box_corners, match_detections
from rotated_det.export.onnx_export import DEFAULT_OPSET, export_onnx
from rotated_det.export.onnx_postprocess import (
    batched_nms_rotated as numpy_batched_nms,
)
from rotated_det.export.onnx_postprocess import box_iou_rotated_pairs, postprocess
from rotated_det.export.roi_align_rotated_grid import roi_align_rotated_grid
from rotated_det.export.standard_ops import (
    PreNMSDetector,
    StandardOpsMode,
    find_final_nms,
    horizontal_batched_nms,
)
from rotated_det.layers import batched_nms_rotated, box_iou_rotated, roi_align_rotated

warnings.filterwarnings("ignore", category=DeprecationWarning)
# Exporting is slow (about 40 s per detector on a loaded 2-core machine): the suite covers one
# detector of each structure: two-stage with RoIAlign and proposal NMS here, dense with an angle
# coder (FCOS + PSC) in the export tool's test (TOOL_DETECTOR); ROTATED_DET_ONNX_ALL=1 covers
# every detector here (`ROTATED_DET_ONNX_ALL=1 pytest tests/export/test_onnx.py`, about 25
# minutes).
RUNTIME_DETECTORS = DETECTORS if os.environ.get("ROTATED_DET_ONNX_ALL") else ("oriented_rcnn",)
TOOL_DETECTOR = "rotated_fcos_psc"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def numpy_out(t):
    return tuple(x.detach().cpu().numpy() for x in t)


# ---------------------------------------------------------------------------------------------
# RoIAlign from grid_sample


@pytest.mark.parametrize("sampling_ratio", [2, 1, 3, 0])
@pytest.mark.parametrize("batch", [1, 2])
def test_roi_align_grid_equals_compiled_op(sampling_ratio, batch):
    """Random maps and RoIs (partly outside the map, any angle), with invalid rows: the
    grid_sample formulation equals the compiled op within 1e-4. Adaptive sampling (0) with bins
    of at most 8 feature pixels and 8 sample slots is exact too."""
    gen = torch.Generator().manual_seed(sampling_ratio + 10 * batch)
    x = torch.randn(batch, 5, 21, 26, generator=gen)
    scale = 1 / 8
    rois = random_rois(120, batch, 21, 26, scale, gen, smax=8 * 3)
    rois[0, 3] = 0.0  # zero width
    rois[1, 4] = -5.0  # negative height: treated as 0
    rois[2, 1] = float("nan")  # non-finite: zeros
    rois[3, 0] = batch  # batch index outside [0, N): zeros
    expected = roi_align_rotated(x, rois, (7, 5), scale, sampling_ratio)
    actual = roi_align_rotated_grid(x, rois, scale, 7, 5, sampling_ratio, max_adaptive_samples=8)
    assert actual.shape == expected.shape == (120, 5, 7, 5)
    assert (actual - expected).abs().max().item() <= 1e-4
    assert expected[2:4].abs().max() == 0 and actual[2:4].abs().max() == 0
    assert expected.abs().max() > 1.0  # the comparison is not between zeros


def test_roi_align_grid_adaptive_caps_large_bins():
    """Adaptive sampling with bins wider than the slot cap: a RoI whose bins need more than S
    samples per side is sampled on S x S points, i.e. equals the compiled op with
    sampling_ratio=S; small RoIs stay exact."""
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(1, 4, 40, 40, generator=gen)
    big = torch.tensor([[0.0, 80.0, 90.0, 200.0, 150.0, 33.0]])  # bins of 7 x 5 feature px
    small = torch.tensor([[0.0, 60.0, 50.0, 20.0, 12.0, -20.0]])  # bins of 1 x 1 px
    cap = 3
    got = roi_align_rotated_grid(x, torch.cat([big, small]), 0.25, 7, 7, 0, cap)
    assert torch.allclose(got[:1], roi_align_rotated(x, big, 7, 0.25, cap), atol=1e-5)
    assert torch.allclose(got[1:], roi_align_rotated(x, small, 7, 0.25, 0), atol=1e-5)
    assert not torch.allclose(got[:1], roi_align_rotated(x, big, 7, 0.25, 0), atol=1e-3)


# ---------------------------------------------------------------------------------------------
# numpy post-processor


def random_boxes(n, rng, extent=200.0, smin=2.0, smax=60.0):
    return np.concatenate(
        [
            rng.uniform(0, extent, (n, 2)),
            rng.uniform(smin, smax, (n, 2)),
            rng.uniform(-180, 180, (n, 1)),
        ],
        axis=1,
    ).astype(np.float32)


def test_standard_ops_mode_writes_hypot_as_square_root():
    """ONNX has no hypot (poly_to_rbox uses it, e.g. in Gliding Vertex's decoding): under
    StandardOpsMode the exported graph computes sqrt(a^2 + b^2) instead, with the same values."""

    class Hypot(torch.nn.Module):
        def forward(self, a, b):
            return torch.hypot(a, b)

    a, b = torch.tensor([3.0, -5.0, 0.0]), torch.tensor([4.0, 12.0, 0.0])
    with StandardOpsMode():
        program = torch.export.export(Hypot(), (a, b))
    targets = [str(n.target) for n in program.graph.nodes if n.op == "call_function"]
    assert not any("hypot" in t for t in targets) and any("sqrt" in t for t in targets), targets
    assert torch.equal(program.module()(a, b), torch.tensor([5.0, 13.0, 0.0]))


def test_numpy_iou_equals_compiled_op():
    rng = np.random.default_rng(0)
    a, b = random_boxes(3000, rng, 60), random_boxes(3000, rng, 60)
    b[:50] = a[:50]  # identical
    b[50:100] = a[50:100] + np.array([0, 0, 0, 0, 180], np.float32)  # same box, angle + 180
    b[100:150] = a[100:150, [0, 1, 3, 2, 4]] + np.array([0, 0, 0, 0, 90], np.float32)  # w <-> h
    b[150:200, :2], b[150:200, 2:4], b[150:200, 4] = (
        a[150:200, :2],
        a[150:200, 2:4] / 2,
        a[150:200, 4],
    )
    a[200:250, 4], b[200:250, 4] = 0.0, 90.0  # axis-aligned
    a[250, 2] = 0.0  # empty
    a[251, 0] = np.nan  # invalid
    expected = box_iou_rotated(torch.from_numpy(a), torch.from_numpy(b), aligned=True).numpy()
    actual = box_iou_rotated_pairs(a, b)
    assert np.abs(actual - expected).max() <= 1e-5
    assert np.allclose(actual[:150], 1.0, atol=1e-5)
    assert np.allclose(actual[150:200], 0.25, atol=1e-5)  # a box and its half-size copy
    assert actual[250] == 0.0 and actual[251] == 0.0
    assert 0.2 < (actual > 0).mean() < 0.9


@pytest.mark.parametrize("seed", range(4))
def test_numpy_nms_equals_compiled_op(seed):
    rng = np.random.default_rng(seed)
    n = 600
    boxes = random_boxes(n, rng)
    scores = rng.uniform(0, 1, n).astype(np.float32)
    classes = rng.integers(0, 3, n)
    scores[10:20] = scores[0]  # ties: lower index first
    boxes[20:25] = boxes[0]  # duplicates
    boxes[30, 3] = 0.0  # empty box: kept when its score allows, suppresses nothing
    scores[40] = np.nan  # NaN scores rank last
    for thr in (0.1, 0.5, 0.9):
        expected = batched_nms_rotated(
            torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(classes), thr
        ).numpy()
        actual = numpy_batched_nms(boxes, scores, classes, thr)
        assert np.array_equal(actual, expected), thr
        assert 30 in actual and 40 not in actual[:-1]  # NaN score: visited last


def test_postprocess_sorts_limits_and_checks():
    boxes = np.array([[10, 10, 8, 4, 0], [10.5, 10, 8, 4, 0], [50, 50, 6, 6, 30]], np.float32)
    scores = np.array([0.5, 0.9, 0.7], np.float32)
    classes = np.array([1, 1, 0])
    b, s, c = postprocess(boxes, scores, classes, 0.5, max_detections=-1)
    assert s.tolist() == pytest.approx([0.9, 0.7]) and c.tolist() == [1, 0]
    assert c.dtype == np.int64 and b.dtype == np.float32
    b, s, c = postprocess(boxes, scores, classes, 0.5, max_detections=1)
    assert s.tolist() == pytest.approx([0.9])
    # another class: no suppression across classes
    assert len(postprocess(boxes, scores, np.array([1, 0, 0]), 0.5, -1)[0]) == 3
    with pytest.raises(ValueError, match="iou_threshold"):
        postprocess(boxes, scores, classes, 1.5, 10)
    with pytest.raises(ValueError, match="same number of rows"):
        postprocess(boxes, scores[:2], classes, 0.5, 10)


def test_match_detections_accepts_order_and_equivalent_box_forms():
    rng = np.random.default_rng(1)
    b = random_boxes(5, rng)
    s = np.array([0.9, 0.8, 0.7, 0.6, 0.5], np.float32)
    c = np.array([0, 1, 0, 2, 1])
    flipped = b[:, [0, 1, 3, 2, 4]] + np.array([0, 0, 0, 0, 90], np.float32)  # same rectangles
    assert np.allclose(box_corners(b)[0], box_corners(b)[0])
    order = rng.permutation(5)
    assert match_detections((flipped[order], s[order], c[order]), (b, s, c)) is None
    moved = b.copy()
    moved[2, 0] += 1.0
    assert "corner" in match_detections((moved, s, c), (b, s, c))
    assert "no counterpart" in match_detections((b, s + 1e-3, c), (b, s, c))
    assert "5 detections vs 4" in match_detections((b, s, c), (b[:4], s[:4], c[:4]))


# ---------------------------------------------------------------------------------------------
# Standard-operator mode and the deferred NMS (PyTorch only)


def test_horizontal_nms_is_per_group_nms_of_bounding_boxes():
    import torchvision

    rng = np.random.default_rng(2)
    boxes = torch.from_numpy(random_boxes(300, rng, extent=120))
    scores = torch.rand(300, generator=torch.Generator().manual_seed(0))
    groups = torch.from_numpy(rng.integers(0, 4, 300))
    keep = horizontal_batched_nms(boxes, scores, groups, 0.6)
    from rotated_det.structures import rbox_to_hbox

    expected = torchvision.ops.batched_nms(rbox_to_hbox(boxes), scores, groups, 0.6)
    assert torch.equal(keep, expected)


def test_final_nms_settings_and_errors():
    model = build_small_model("rotated_retinanet")
    nms = find_final_nms(model)
    assert nms.module == "" and nms.limit_attribute == "max_detections_per_image"
    assert nms.iou_threshold == model.test_nms_thresh
    two = build_small_model("oriented_rcnn")
    nms = find_final_nms(two)
    assert nms.module == "roi_heads.box_predictor" and nms.limit_attribute == "test_topk_per_image"
    with pytest.raises(ValueError, match="exactly one module"):
        find_final_nms(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="proposal_nms"):
        StandardOpsMode(proposal_nms="soft")
    with pytest.raises(NotImplementedError, match="box_iou_rotated"):
        with StandardOpsMode():
            box_iou_rotated(torch.rand(2, 5) + 1, torch.rand(2, 5) + 1)
    img = scene(128)
    with pytest.raises(ValueError, match="rotated"):
        export_onnx(two, img, "unused.onnx", proposal_nms="rotated")


@pytest.mark.slow
@pytest.mark.parametrize("name", DETECTORS)
def test_deferred_nms_plus_postprocess_equals_model(name):
    """The detector's candidates (compiled ops kept, final NMS deferred) + the final NMS
    outside give exactly the detector's detections; also with a detection limit that cuts."""
    img = scene(256)
    model = onnx_test_detector(name, img)
    expected = TracingAdapter(model)(img)
    pre = PreNMSDetector(model, proposal_nms="rotated", standard_roi_align=False)
    nms = pre.final_nms
    with torch.no_grad():
        b, s, c = pre(img)
    assert len(s) >= len(expected[0]) > 5
    keep = batched_nms_rotated(b, s, c, nms.iou_threshold)
    if nms.max_detections >= 0:
        keep = keep[: nms.max_detections]
    from rotated_det.export import compare_detections

    assert compare_detections((b[keep], s[keep], c[keep]), expected) is None
    assert (
        match_detections(
            postprocess(*numpy_out((b, s, c)), nms.iou_threshold, -1), numpy_out(expected)
        )
        is None
    )
    # A limit that cuts: lifted in the graph, applied by the post-processor. The model drops
    # boxes of zero side after its cut and the graph before it (documented), so the model's
    # detections are the first of the post-processor's (all of them without such boxes).
    holder = model.get_submodule(nms.module)
    setattr(holder, nms.limit_attribute, 8)
    cut = numpy_out(TracingAdapter(model)(img))
    got = postprocess(
        *numpy_out(PreNMSDetector(model, "rotated", standard_roi_align=False)(img)),
        nms.iou_threshold,
        8,
    )
    assert len(got[0]) == 8 and 0 < len(cut[0]) <= 8
    assert match_detections(tuple(x[: len(cut[0])] for x in got), cut) is None


# ---------------------------------------------------------------------------------------------
# ONNX files in ONNX Runtime and OpenVINO


@pytest.fixture(scope="module")
def onnx_exports(tmp_path_factory):
    """Exports made on demand, once per detector: name -> (model, OnnxExport)."""
    out = tmp_path_factory.mktemp("onnx")
    cache = {}

    def get(name):
        if name not in cache:
            model = onnx_test_detector(name, scene(256))
            cache[name] = (model, export_onnx(model, scene(256), str(out / f"{name}.onnx")))
        return cache[name]

    return get


def reference_detections(model, image):
    """The PyTorch model's detections, with the horizontal proposal NMS of the ONNX graph for
    two-stage detectors (RoIAlign and the final NMS: the compiled ops)."""
    mode = StandardOpsMode(
        getattr(model, "proposal_generator", None),
        "horizontal",
        defer_final_nms=False,
        standard_roi_align=False,
    )
    with mode, torch.no_grad():
        return numpy_out(TracingAdapter(model)(image))


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
@pytest.mark.parametrize("name", RUNTIME_DETECTORS)
def test_runtime_matches_pytorch(onnx_exports, runtime, name):
    if importlib.util.find_spec(runtime) is None:
        pytest.skip(f"{runtime} is not installed (pip install -r dev/requirements.txt)")
    from rotated_det.export.onnx_runtime import OnnxDetector

    model, result = onnx_exports(name)
    assert result.dynamic_resolution and result.opset == DEFAULT_OPSET
    detector = OnnxDetector(result.path, runtime)
    assert detector.iou_threshold == find_final_nms(model).iou_threshold
    reference = PreNMSDetector(model, "horizontal")
    # the sample, and another size and aspect ratio (the graph's height and width are dynamic)
    for image in (scene(256), scene(192, index=1)[:, :, :160].contiguous()):
        with torch.no_grad():
            expected = numpy_out(reference(image))
        actual = detector.pre_nms(image.numpy())
        assert len(actual[0]) > 10
        assert match_detections(actual, expected) is None, (image.shape, "before the NMS")
        detections = detector(image.numpy())
        assert len(detections[0]) > 5
        diff = match_detections(detections, reference_detections(model, image))
        assert diff is None, (image.shape, "after the NMS")


@pytest.mark.slow
@pytest.mark.parametrize("name", RUNTIME_DETECTORS)
def test_onnx_file_holds_standard_operators_and_metadata(onnx_exports, name):
    onnx = pytest.importorskip("onnx")
    model, result = onnx_exports(name)
    proto = onnx.load(result.path)
    domains = {n.domain for n in proto.graph.node} | {f.domain for f in proto.functions}
    assert domains <= {"", "ai.onnx"}
    ops = {n.op_type for n in proto.graph.node}
    if name in TWO_STAGE:
        assert {"GridSample", "NonMaxSuppression"} <= ops
    else:
        assert not ({"GridSample", "NonMaxSuppression"} & ops)
    opset = {o.domain: o.version for o in proto.opset_import}
    assert opset[""] == DEFAULT_OPSET
    image_dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert image_dims[0].dim_value == 3 and image_dims[1].dim_param and image_dims[2].dim_param
    meta = {p.key: p.value for p in proto.metadata_props}
    nms = find_final_nms(model)
    assert float(meta["rotated_det.final_nms_iou_threshold"]) == nms.iou_threshold
    assert int(meta["rotated_det.max_detections"]) == nms.max_detections
    assert meta["rotated_det.proposal_nms"] == ("horizontal" if name in TWO_STAGE else "")


@pytest.mark.slow
def test_export_tool_onnx_runs_without_torch(tmp_path):
    """export_model.py --format onnx on a config: the output directory holds the file, the
    post-processor and a README, and a Python process that imports only numpy and ONNX Runtime
    reproduces the tool's detections."""
    if importlib.util.find_spec("onnxruntime") is None:
        pytest.skip("onnxruntime is not installed (pip install -r dev/requirements.txt)")
    import cv2
    from script_loading import load_script

    image = scene(256)
    model = onnx_test_detector(TOOL_DETECTOR, image)
    torch.save({"model": model.state_dict()}, tmp_path / "weights.pth")
    cv2.imwrite(str(tmp_path / "scene.png"), image.permute(1, 2, 0).numpy().astype(np.uint8))
    cfg = tmp_path / "config.py"
    cfg.write_text(
        "import sys\n"
        f"sys.path.insert(0, {os.path.join(REPO, 'tests')!r})\n"
        "from modeling._helpers import small_model_cfg\n"
        f"model = small_model_cfg({TOOL_DETECTOR!r})\n"
        f"model.test_score_thresh = {model.test_score_thresh!r}\n"
        f"model.test_topk_candidates = {model.test_topk_candidates!r}\n"
        f"train = dict(init_checkpoint={str(tmp_path / 'weights.pth')!r}, device='cpu')\n"
    )
    out = tmp_path / "out"
    tool = load_script(os.path.join(REPO, "tools", "deploy", "export_model.py"))
    info = tool.main(
        [
            "--config-file",
            str(cfg),
            "--format",
            "onnx",
            "--sample-image",
            str(tmp_path / "scene.png"),
            "--output",
            str(out),
        ]
    )
    assert info["format"] == "onnx" and info["dynamic_resolution"]
    assert info["same_detections_as_pytorch_model"], info["difference_from_pytorch_model"]
    assert info["runtimes"]["onnxruntime"].startswith("matches")
    for f in ("model.onnx", "onnx_postprocess.py", "README.md", "export_info.json"):
        assert (out / f).is_file(), f
    readme = (out / "README.md").read_text()
    assert "before the final NMS" in readme and "onnx_postprocess" in readme
    assert json.loads((out / "export_info.json").read_text())["opset"] == DEFAULT_OPSET
    script = (
        "import json, sys\n"
        "import numpy as np, onnxruntime as ort\n"
        "from onnx_postprocess import postprocess\n"
        "s = ort.InferenceSession('model.onnx', providers=['CPUExecutionProvider'])\n"
        "meta = s.get_modelmeta().custom_metadata_map\n"
        "out = s.run(None, {'image': np.load('sample_input.npy')})\n"
        "b, sc, c = postprocess(*out, float(meta['rotated_det.final_nms_iou_threshold']),\n"
        "                       int(meta['rotated_det.max_detections']))\n"
        "assert 'torch' not in sys.modules and 'rotated_det' not in sys.modules\n"
        "print(json.dumps([b.tolist(), sc.tolist(), c.tolist()]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=out, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    b, s, c = json.loads(proc.stdout)
    expected = numpy_out(TracingAdapter(model)(image))
    assert len(s) == info["sample_detections"] > 5
    assert match_detections((np.array(b), np.array(s), np.array(c)), expected) is None
