"""AOTInductor packages (export_model.py --format aoti): the reshape rewrite that works around an
Inductor indexing error, packages of a two-stage and a dense detector equal to the eager model at
the exported and at another resolution (within the stated AOTI tolerances), size checks, and the
C++ runner giving Python's outputs from the same package."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from deploy_runner import build_runner, parse_detections, run_runner
from small_detectors import SMALL_DETECTORS, config_path

from rotated_det.config import LazyConfig, instantiate
from rotated_det.export import TracingAdapter, compare_detections
from rotated_det.export.aoti import (
    compare_aoti_detections,
    flatten_unbacked_reshapes,
    load_aoti_package,
)
from rotated_det.modeling.roi_heads.rotated_fast_rcnn import fast_rcnn_inference_rotated
from sample_data import DOTA_SAMPLES, dota_samples_dir

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLE = DOTA_SAMPLES / "unlabeled" / "dota_patch_1024.jpg"
# The DOTA patch is resized to 160 x 160 (short side 160, long side at most 192).
MIN_SIZE, MAX_SIZE = 160, 192
OTHER_SIZE = (224, 136)  # taller than wide, not a multiple of 32
# Rotated RetinaNet is not used: with random weights its scores saturate at 1.0 on the DOTA patch,
# and the top-k among equal scores picks different boxes in eager and compiled code.
PACKAGED = ("rotated_faster_rcnn", "rotated_fcos")
# Packaging a detector is 3-11 minutes of C++ compilation on 2 cores (11 under load 6), more than
# the suite's budget allows: the suite compiles the box selection only (the reshape fix), and
# ROTATED_DET_EXPORT_ALL=1 (as in test_export.py) runs the package tests below (5 passed in 13
# minutes under load 6 with Rotated Faster R-CNN alone).
needs_packages = pytest.mark.skipif(
    not os.environ.get("ROTATED_DET_EXPORT_ALL"),
    reason="AOTInductor packages take minutes to compile: set ROTATED_DET_EXPORT_ALL=1",
)


class _BoxSelection(torch.nn.Module):
    """The final box selection of the R-CNN heads: clipping in place, a reshape of a tensor with
    a data-dependent number of rows, a per-class gather and NMS."""

    def forward(self, boxes, scores):
        instances, _ = fast_rcnn_inference_rotated([boxes], [scores], [(160, 192)], 0.05, 0.5, 100)
        inst = instances[0]
        return inst.pred_boxes.tensor, inst.scores, inst.pred_classes


def _box_selection_inputs(rois=100, classes=15):
    g = torch.Generator().manual_seed(0)
    boxes = torch.cat(
        [
            torch.rand(rois, classes, 2, generator=g) * 150,
            torch.rand(rois, classes, 2, generator=g) * 40 + 5,
            torch.rand(rois, classes, 1, generator=g) * 180 - 90,
        ],
        dim=-1,
    ).reshape(rois, classes * 5)
    scores = torch.softmax(torch.randn(rois, classes + 1, generator=g) * 2, dim=-1)
    return boxes, scores


def test_flatten_unbacked_reshapes_rewrites_only_data_dependent_reshapes():
    module, inputs = _BoxSelection(), _box_selection_inputs()
    program = torch.export.export(module, inputs, strict=False)
    # boxes[valid] has a data-dependent row count u0: [u0, 75] -> [15 u0, 5] and back
    assert flatten_unbacked_reshapes(program) == 2
    assert flatten_unbacked_reshapes(program) == 0  # already through 1-d
    expected = module(*inputs)
    assert len(expected[0]) == 100
    actual = tuple(program.module()(*inputs))
    assert compare_detections(actual, expected, rtol=0, score_atol=0) is None


@pytest.mark.slow  # one AOTInductor compilation (about 30 s of CPU)
def test_compiled_box_selection_equals_eager(tmp_path):
    """Compiled after the rewrite, the box selection returns the eager boxes exactly (without
    it, torch 2.13's Inductor returned one repeated box per class)."""
    module, inputs = _BoxSelection(), _box_selection_inputs()
    program = torch.export.export(module, inputs, strict=False)
    flatten_unbacked_reshapes(program)
    path = torch._inductor.aoti_compile_and_package(
        program, package_path=str(tmp_path / "selection.pt2")
    )
    compiled = torch._inductor.aoti_load_package(path)
    expected = module(*inputs)
    actual = tuple(compiled(*inputs))
    assert compare_detections(actual, expected, rtol=1e-6, score_atol=1e-7) is None


def _build(name: str, weights: str | None = None) -> torch.nn.Module:
    cfg = LazyConfig.apply_overrides(LazyConfig.load(config_path(name)), SMALL_DETECTORS[name])
    torch.manual_seed(0)
    model = instantiate(cfg.model).eval()
    if weights:
        model.load_state_dict(torch.load(weights)["model"])
    return model


def _export_with_tool(name: str, work) -> dict:
    """export_model.py --format aoti on the DOTA patch for a small detector with seeded weights."""
    work.mkdir()
    weights = work / "weights.pth"
    torch.save({"model": _build(name).state_dict()}, weights)
    config = work / "deploy_config.py"
    config.write_text(
        textwrap.dedent(
            f"""
            from rotated_det.config import LazyCall as L
            from rotated_det.config import LazyConfig
            from rotated_det.data.transforms import ResizeShortestEdge

            model = LazyConfig.load({config_path(name)!r}).model
            train = dict(init_checkpoint={str(weights)!r}, device="cpu")
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
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(REPO, "tools", "deploy", "export_model.py"),
            "--config-file",
            str(config),
            "--format",
            "aoti",
            "--sample-image",
            str(SAMPLE),
            "--output",
            str(out),
            *SMALL_DETECTORS[name],
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    info = json.loads((out / "export_info.json").read_text())
    return {"out": out, "info": info, "model": _build(name, str(weights))}


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    """Both detectors exported by the tool (each a few minutes of C++ compilation)."""
    dota_samples_dir()
    work = tmp_path_factory.mktemp("aoti")
    return {name: _export_with_tool(name, work / name) for name in PACKAGED}


def _other_image(sample: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.interpolate(
        sample[None], size=OTHER_SIZE, mode="bilinear", align_corners=False
    )[0]


@needs_packages
@pytest.mark.slow
@pytest.mark.parametrize("name", PACKAGED)
def test_package_equals_eager_at_two_resolutions(packages, name):
    exported = packages[name]
    info, out, model = exported["info"], exported["out"], exported["model"]
    assert info["format"] == "aoti" and info["model_file"] == "model.pt2"
    assert info["dynamic_resolution"] and info["traced_size"] == [MIN_SIZE, MIN_SIZE]
    assert "rotated_det::batched_nms_rotated" in info["rotated_det_ops"]
    if name == "rotated_faster_rcnn":
        assert "rotated_det::roi_align_rotated_forward" in info["rotated_det_ops"]
    assert "AOTInductor" in (out / "README.md").read_text()
    detector = load_aoti_package(str(out / "model.pt2"))
    assert detector.metadata["rotated_det.ops"] == ",".join(info["rotated_det_ops"])
    sample = torch.load(out / "sample_input.pt")
    for image in (sample, _other_image(sample)):
        with torch.no_grad():
            expected = TracingAdapter(model)(image)
        assert len(expected[0]) > 10
        diff = compare_aoti_detections(detector(image), expected)
        assert diff is None, f"{tuple(image.shape)}: {diff}"


@needs_packages
@pytest.mark.slow
def test_package_refuses_sizes_outside_its_range(packages):
    detector = load_aoti_package(str(packages["rotated_faster_rcnn"]["out"] / "model.pt2"))
    assert detector.size_range == (65, 4096)
    with pytest.raises(ValueError, match=r"accepts sides in \[65, 4096\] pixels, got 64 x 128"):
        detector(torch.full((3, 64, 128), 100.0))


@pytest.fixture(scope="module")
def runner():
    return build_runner()


@needs_packages
@pytest.mark.slow
@pytest.mark.parametrize("name", PACKAGED)
def test_cpp_runner_gives_python_outputs_of_the_package(packages, runner, tmp_path, name):
    """The runner loads model.pt2 with AOTIModelPackageLoader: on the sample (as the PPM the
    tool wrote and as a tensor file) and at another size, the same detections as the package
    in Python (boxes within 1e-3 relative, same classes and order, scores within 1e-5)."""
    out = packages[name]["out"]
    detector = load_aoti_package(str(out / "model.pt2"))
    sample = torch.load(out / "sample_input.pt")
    other = _other_image(sample)
    torch.save(other, tmp_path / "other.pt")
    images = [out / "sample_input.ppm", out / "sample_input.pt", tmp_path / "other.pt"]
    proc = run_runner(runner, out / "model.pt2", images, "--threads", torch.get_num_threads())
    results = parse_detections(proc.stdout, images)
    # sample_input.ppm holds the sample rounded to uint8, as sample_input.pt (0-255 integers)
    for (boxes, scores, classes), image in zip(results, [sample, sample, other]):
        with torch.no_grad():
            expected = detector(image)
        assert len(boxes) == len(expected[0]) > 10
        diff = compare_detections((boxes, scores, classes), expected, score_atol=1e-5)
        assert diff is None, diff
    small = tmp_path / "small.pt"
    torch.save(torch.full((3, 64, 128), 100.0), small)
    proc = subprocess.run(
        [runner, str(out / "model.pt2"), str(small)], capture_output=True, text=True
    )
    lo, hi = packages[name]["info"]["size_range"]  # 65 (P6 of the R-CNN FPN) or 129 (P7)
    assert proc.returncode != 0 and f"accepts sides in [{lo}, {hi}] pixels" in proc.stderr
