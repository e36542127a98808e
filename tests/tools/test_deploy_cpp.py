"""The C++ runner (tools/deploy): built with CMake against the installed torch's libtorch and the
rotated_det ops library, it runs a detector exported by tools/deploy/export_model.py on a real
DOTA sample and prints the same detections as Python (boxes within 1e-3 relative, same classes and
order, same scores)."""

import json
import os
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from deploy_runner import build_runner, parse_detections, run_runner

from rotated_det.layers.ops_library import library_path
from sample_data import DOTA_SAMPLES, dota_samples_dir

pytestmark = pytest.mark.slow  # builds the C++ runner with CMake, runs it in subprocesses

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLE = str(DOTA_SAMPLES / "unlabeled" / "dota_patch_1024.jpg")
DETECTOR = "oriented_rcnn"  # uses both compiled ops the runner must find: RoIAlign and NMS
# The configs/common/models detector made small (ResNet-18, few proposals) to keep the test fast.
OVERRIDES = [
    "model.backbone.bottom_up.stages.depth=18",
    "model.proposal_generator.pre_nms_topk=[300,300]",
    "model.proposal_generator.post_nms_topk=[100,100]",
    "model.roi_heads.box_head.fc_dims=[256,256]",
    "model.roi_heads.box_predictor.input_shape.channels=256",
    "model.roi_heads.box_predictor.test_topk_per_image=100",
]
MIN_SIZE, MAX_SIZE = 192, 256


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    """Configure and build tools/deploy once per test session (about 20-60 s), in a folder of its
    own (build/deploy_tests is the other C++ tests', which may run at the same time)."""
    return build_runner(str(tmp_path_factory.mktemp("deploy_build")))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A small oriented R-CNN with seeded weights, exported with tools/deploy/export_model.py."""
    from rotated_det.config import LazyConfig, instantiate

    dota_samples_dir()
    work = tmp_path_factory.mktemp("export")
    model_cfg = os.path.join(REPO, "configs", "common", "models", f"{DETECTOR}.py")
    cfg = LazyConfig.apply_overrides(LazyConfig.load(model_cfg), OVERRIDES)
    torch.manual_seed(0)
    model = instantiate(cfg.model)
    torch.save({"model": model.state_dict()}, work / "weights.pth")
    config = work / "deploy_config.py"
    config.write_text(
        textwrap.dedent(
            f"""
            from rotated_det.config import LazyCall as L
            from rotated_det.config import LazyConfig
            from rotated_det.data.transforms import ResizeShortestEdge

            model = LazyConfig.load({model_cfg!r}).model
            train = dict(init_checkpoint={str(work / "weights.pth")!r}, device="cpu")
            dataloader = dict(
                test=dict(
                    mapper=dict(
                        augmentations=[
                            L(ResizeShortestEdge)(short_edge_length={MIN_SIZE}, max_size={MAX_SIZE})
                        ]
                    )
                )
            )
            """
        )
    )
    out = work / "out"
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(REPO, "tools", "deploy", "export_model.py"),
            "--config-file",
            str(config),
            "--format",
            "torchscript",
            "--export-method",
            "tracing",
            "--sample-image",
            SAMPLE,
            "--output",
            str(out),
            *OVERRIDES,
        ],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out


def run_cpp(exe, model, images, *options):
    """Run the runner on several images in one process; returns (boxes, scores, classes) each."""
    return parse_detections(run_runner(exe, model, images, *options).stdout, images)


def assert_same(cpp, boxes, scores, classes):
    b, s, c = cpp
    assert len(b) == len(boxes) > 0
    assert torch.equal(c, classes.long()), "classes or their order differ"
    rel = (b - boxes.double()).abs() / boxes.double().abs().clamp(min=1.0)
    assert rel.max() <= 1e-3, f"boxes differ by {rel.max():.2e} relative"
    assert torch.allclose(s, scores.double(), atol=1e-5)


def test_export_readme_documents_io(exported):
    readme = (exported / "README.md").read_text()
    for text in (
        "float32 `[3, H, W]`",
        "BGR",
        "`boxes` | float32 `[N, 5]`",
        "int64 `[N]`",
        "rotated_det::roi_align_rotated_forward",
        "rotated_det::batched_nms_rotated",
        f"--min-size {MIN_SIZE} --max-size {MAX_SIZE}",
    ):
        assert text in readme, text


def test_cpp_runner_matches_python_on_preprocessed_sample(runner, exported):
    """sample_input.ppm is the resized sample; Python's eager outputs are in sample_outputs.pt."""
    expected = torch.load(exported / "sample_outputs.pt")
    # The PPM image and the same input as a tensor file written by torch.save.
    images = [exported / "sample_input.ppm", exported / "sample_input.pt"]
    for cpp in run_cpp(runner, exported / "model.ts", images):
        assert_same(cpp, expected["boxes"], expected["scores"], expected["classes"])


def test_cpp_runner_resizes_and_maps_back_like_python(runner, exported, tmp_path):
    """The runner resizes the full 1024 x 1024 sample itself (--min-size/--max-size) and reports
    boxes in its pixels; Python with the same resize and the same traced model agrees."""
    bgr = cv2.imread(SAMPLE, cv2.IMREAD_COLOR)
    ppm = tmp_path / "sample.ppm"
    cv2.imwrite(str(ppm), bgr)
    (cpp,) = run_cpp(
        runner, exported / "model.ts", [ppm], "--min-size", MIN_SIZE, "--max-size", MAX_SIZE
    )
    torch.ops.load_library(library_path())
    model = torch.jit.load(str(exported / "model.ts"))
    x = torch.from_numpy(np.ascontiguousarray(bgr.transpose(2, 0, 1))).float()
    h, w = x.shape[1:]
    s = min(MIN_SIZE / min(h, w), MAX_SIZE / max(h, w))
    size = (int(h * s + 0.5), int(w * s + 0.5))
    resized = F.interpolate(x[None], size=size, mode="bilinear", align_corners=False)[0]
    with torch.no_grad():
        boxes, scores, classes = model(resized)
    boxes = boxes.double().clone()
    boxes[:, :4] *= 0.5 * (w / size[1] + h / size[0])
    assert_same(cpp, boxes, scores, classes)
    assert float(boxes[:, 0].max()) > MAX_SIZE  # really in the 1024-pixel frame


def test_cpp_runner_rejects_bad_input(runner, exported, tmp_path):
    bad = tmp_path / "bad.ppm"
    bad.write_bytes(b"P5\n2 2\n255\n\x00\x00\x00\x00")
    proc = subprocess.run(
        [runner, str(exported / "model.ts"), str(bad)], capture_output=True, text=True
    )
    assert proc.returncode != 0 and "expected a binary PPM (magic P6)" in proc.stderr
    # The fixed-size guard of the trace (oriented R-CNN is traced at one resolution) or a
    # dynamic trace: either way a 128 x 96 image must not produce silently wrong boxes.
    info = json.loads((exported / "export_info.json").read_text())
    small = tmp_path / "small.ppm"
    cv2.imwrite(str(small), np.full((96, 128, 3), 90, np.uint8))
    proc = subprocess.run(
        [runner, str(exported / "model.ts"), str(small)], capture_output=True, text=True
    )
    if info["dynamic_resolution"]:
        assert proc.returncode == 0
    else:
        assert proc.returncode != 0 and "traced at input size" in proc.stderr


def test_exported_detector_runs_in_fresh_python_with_only_torch(exported):
    """model.ts of the real detector, loaded by a process that imports torch and the ops library
    only, reproduces the eager outputs the export tool saved."""
    script = textwrap.dedent(
        f"""
        import json, sys, torch
        torch.ops.load_library({library_path()!r})
        model = torch.jit.load({str(exported / "model.ts")!r})
        x = torch.load({str(exported / "sample_input.pt")!r})
        with torch.no_grad():
            boxes, scores, classes = model(x)
        torch.save({{"boxes": boxes, "scores": scores, "classes": classes}},
                   {str(exported / "fresh_outputs.pt")!r})
        print(json.dumps(sorted(m for m in sys.modules if m.startswith("rotated_det"))))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd="/"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []
    got = torch.load(exported / "fresh_outputs.pt")
    expected = torch.load(exported / "sample_outputs.pt")
    assert_same(
        (got["boxes"].double(), got["scores"].double(), got["classes"]),
        expected["boxes"],
        expected["scores"],
        expected["classes"],
    )
