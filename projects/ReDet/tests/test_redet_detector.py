"""ReDet as a detector: the configs carry the authors' settings and build, the quickstart mirrors
the library's RoI Transformer quickstart, a small ReDet trains on images without objects, returns
well-formed empty outputs, overfits two images and exports (TorchScript trace and torch.export)
with the eager model's detections at two resolutions."""

import importlib.util
import math
import sys
import warnings
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

pytest.importorskip("e2cnn", reason="ReDet needs the redet extra: pip install -e '.[redet]'")

REPO = Path(__file__).resolve().parents[3]
for path in (REPO, REPO / "tests"):  # `projects` is a folder, not an installed package; the
    if str(path) not in sys.path:  # library's test helpers draw the scenes
        sys.path.insert(0, str(path))

from modeling._helpers import make_batch, single_thread, small_model_cfg  # noqa: E402

from projects.ReDet.re_fpn import ReFPN  # noqa: E402
from projects.ReDet.re_resnet import ReResNet  # noqa: E402
from projects.ReDet.redet import ReDet  # noqa: E402
from rotated_det.config import LazyConfig, instantiate  # noqa: E402
from rotated_det.data import MetadataCatalog  # noqa: E402
from rotated_det.export import (  # noqa: E402
    TracingAdapter,
    compare_detections,
    export_torch_export,
    export_torchscript_tracing,
)
from rotated_det.layers import RiRoIAlignRotated  # noqa: E402
from rotated_det.modeling import check_model_config  # noqa: E402
from rotated_det.structures import Instances, RotatedBoxes, pairwise_iou_rotated  # noqa: E402

CONFIGS = REPO / "projects" / "ReDet" / "configs"
DOTA_V1_PATCHES = 21046  # trainval patches of 1024 px with objects (configs/DOTA-Rotated)


def _load(name: str):
    return LazyConfig.load(str(CONFIGS / name))


def _redet_model_module():
    spec = importlib.util.spec_from_file_location("_redet_model", CONFIGS / "_redet_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def small_redet_cfg(num_classes: int = 3):
    """The library's small test RoI Transformer (64-channel pyramid, 256-d heads, BatchNorm) as a
    ReDet with a ReResNet-18 (BatchNorm over fields) from scratch."""
    redet_model = _redet_model_module().redet_model
    cfg = small_model_cfg("roi_transformer", num_classes)
    return redet_model(cfg, depth=18, norm="BN", freeze_at=0, imagenet_input=False)


def build_small_redet(seed: int = 0, num_classes: int = 3):
    torch.manual_seed(seed)
    return instantiate(small_redet_cfg(num_classes))


@pytest.mark.parametrize(
    "name,epochs,images,lr,learner_angle_std,rotated_angle_std",
    [
        ("redet_re50_refpn_1x_dota.py", 12, DOTA_V1_PATCHES, 0.005, 1.0, 0.5),
        ("redet_re50_refpn_3x_hrsc.py", 36, 617, 0.01, 0.1, 0.05),
    ],
)
def test_configs_have_the_authors_settings(
    name, epochs, images, lr, learner_angle_std, rotated_angle_std
):
    cfg = _load(name)
    classes = MetadataCatalog.get(cfg.dataloader.train.dataset.names).thing_classes
    check_model_config(cfg.model, thing_classes=classes)
    model = cfg.model
    assert model._target_ is ReDet
    assert model.backbone._target_ is ReFPN and model.backbone.out_channels == 256
    bottom_up = model.backbone.bottom_up
    assert bottom_up._target_ is ReResNet
    assert (bottom_up.depth, bottom_up.num_orientations, bottom_up.norm) == (50, 8, "BN")
    assert bottom_up.freeze_at == 2  # the authors' frozen_stages=1: stem and first stage
    pooler = model.roi_heads.box_pooler  # the rotated stage: RiRoIAlign 7x7, 2 samples, C8
    assert pooler.pooler_type == "RiRoIAlignRotated"
    assert (pooler.output_size, pooler.sampling_ratio, pooler.num_orientations) == (7, 2, 8)
    learner = model.roi_heads.rroi_learner
    assert learner.box_pooler.pooler_type == "ROIAlignRotated"  # axis-aligned RoIs: RoIAlign
    assert learner.box_pooler.sampling_ratio == 0
    # MMRotate's target stds: the learner's angle is normalised by 2 pi
    learner_weights = learner.box_predictor.box2box_transform.weights
    assert learner_weights[4] == pytest.approx(1 / (2 * math.pi * learner_angle_std))
    rotated_weights = model.roi_heads.box_predictor.box2box_transform.weights
    assert rotated_weights[4] == pytest.approx(1 / rotated_angle_std)
    assert model.roi_heads.box_head.fc_dims == [1024, 1024]
    assert model.pixel_std == [57.375, 57.12, 58.395]  # ImageNet statistics of the weights
    assert cfg.optimizer.lr == lr
    assert cfg.dataloader.train.total_batch_size == 2
    assert cfg.train.max_iter == epochs * (images // 2)
    assert list(cfg.lr_multiplier.step_fractions) == pytest.approx(
        [8 / 12, 11 / 12] if epochs == 12 else [24 / 36, 33 / 36]
    )


def test_quickstart_config_mirrors_the_roi_transformer_quickstart():
    ours = _load("synthetic_redet.py")
    theirs = LazyConfig.load(str(REPO / "configs" / "quickstart" / "synthetic_roi_transformer.py"))
    for key in ("dataloader", "optimizer", "lr_multiplier"):
        assert OmegaConf.to_container(ours[key]) == OmegaConf.to_container(theirs[key]), key
    assert ours.train.max_iter == theirs.train.max_iter
    model = OmegaConf.to_container(ours.model)
    reference = OmegaConf.to_container(theirs.model)
    backbone = model.pop("backbone")
    assert backbone["_target_"] is ReFPN and backbone["out_channels"] == 64  # 8 fields
    assert backbone["bottom_up"]["depth"] == 18 and backbone["bottom_up"]["norm"] == "GN"
    reference.pop("backbone")
    pooler = model["roi_heads"]["box_pooler"]
    assert (pooler.pop("pooler_type"), pooler.pop("num_orientations")) == ("RiRoIAlignRotated", 8)
    reference["roi_heads"]["box_pooler"].pop("pooler_type")
    assert model.pop("_target_") is ReDet
    reference.pop("_target_")
    assert model == reference  # the same heads, samplers and coders


def test_quickstart_model_trains_a_step():
    cfg = _load("synthetic_redet.py")
    with single_thread():
        torch.manual_seed(0)
        model = instantiate(cfg.model)
        assert sum(p.numel() for p in model.backbone.bottom_up.parameters()) < 1.3e6
        cfg.optimizer.optimizer.params.model = model
        optimizer = instantiate(cfg.optimizer)
        model.train()
        losses = model(make_batch(160))
        assert {"loss_rroi_cls", "loss_rroi_box_reg", "loss_cls", "loss_box_reg"} <= set(losses)
        total = sum(losses.values())
        assert torch.isfinite(total)
        total.backward()
        optimizer.step()


def _empty_batch(size: int = 96) -> list[dict]:
    return [
        {
            "image": torch.full((3, size, size), 110.0),
            "instances": Instances(
                (size, size),
                gt_boxes=RotatedBoxes(torch.zeros(0, 5)),
                gt_classes=torch.zeros(0, dtype=torch.int64),
            ),
        }
        for _ in range(2)
    ]


def test_images_without_objects_in_training_and_inference():
    with single_thread():
        model = build_small_redet()
        model.train()
        for batch in (_empty_batch() + make_batch(96)[:1], _empty_batch()):
            losses = model(batch)
            assert all(torch.isfinite(v) for v in losses.values()), losses
            sum(losses.values()).backward()
        model.eval()
        model.roi_heads.box_predictor.test_score_thresh = 1.0  # nothing can pass
        with torch.no_grad():
            outputs = model(_empty_batch())
    for o in outputs:
        inst = o["instances"]
        assert len(inst) == 0 and inst.pred_boxes.tensor.shape == (0, 5)
        assert inst.scores.shape == (0,) and inst.pred_classes.shape == (0,)


def test_mismatched_orientations_and_poolers_are_named():
    cfg = small_redet_cfg()
    cfg.roi_heads.box_pooler.num_orientations = 4
    with pytest.raises(ValueError, match=r"aligns \[4\] orientations but .*num_orientations=8"):
        instantiate(cfg)
    cfg = small_redet_cfg()
    cfg.roi_heads.box_pooler.pooler_type = "ROIAlignRotated"
    del cfg.roi_heads.box_pooler["num_orientations"]
    with pytest.raises(ValueError, match="must pool with RiRoIAlignRotated"):
        instantiate(cfg)
    model = build_small_redet()
    assert all(isinstance(p, RiRoIAlignRotated) for p in model.roi_heads.box_pooler.level_poolers)


def test_bfloat16_autocast_then_float32_inference():
    """Training and inference under CPU bfloat16 autocast; the inference filter cache made under
    autocast keeps the weights' dtype, so a float32 pass afterwards works and agrees."""
    with single_thread():
        model = build_small_redet()
        model.train()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            losses = model(make_batch(96))
        assert all(torch.isfinite(v) for v in losses.values()), losses
        sum(losses.values()).backward()
        model.eval()
        batch = make_batch(96, with_gt=False)
        with torch.no_grad():
            with torch.autocast("cpu", dtype=torch.bfloat16):
                low = model(batch)
            full = model(batch)
    for a, b in zip(low, full):
        assert b["instances"].scores.dtype == torch.float32
        top_low, top_full = a["instances"].scores[:1], b["instances"].scores[:1]
        assert len(top_full) == 1 and (top_low - top_full).abs().max() < 0.05


OVERFIT_ITERS = 100


@pytest.mark.slow  # 100 iterations of a small two-stage detector: 50-100 s on a shared 2-core CPU
def test_overfits_two_images():
    """The library's overfit criterion (tests/modeling/test_overfit.py) in 100 iterations: the
    loss falls by 80% and every object is found at rotated IoU > 0.7 with score > 0.5.

    Margins over model seeds 0-4 (one thread; smallest best IoU of the six objects): loss ratio
    0.039-0.063, min IoU 0.863-0.942 (0.863 on seed 0, the one tested).
    """
    with single_thread():
        model = build_small_redet()
        batch = make_batch(128)
        torch.manual_seed(0)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-4)
        history = []
        model.train()
        for it in range(OVERFIT_ITERS):
            # 10-iteration linear warm-up, lr x0.1 for the last quarter
            factor = min(1.0, (it + 1) / 10) * (0.1 if it >= 3 * OVERFIT_ITERS // 4 else 1.0)
            for group in optimizer.param_groups:
                group["lr"] = 1e-3 * factor
            loss = sum(model(batch).values())
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 10.0)
            optimizer.step()
            history.append(loss.item())
        final = sum(history[-5:]) / 5
        assert final <= 0.2 * history[0], history[::10]
        model.eval()
        with torch.no_grad():
            outputs = model(make_batch(128, with_gt=False))
    for i, (out, inputs) in enumerate(zip(outputs, batch)):
        pred, gt = out["instances"], inputs["instances"]
        confident = pred[pred.scores > 0.5]
        assert len(confident) > 0, f"no confident detection in image {i}"
        iou = pairwise_iou_rotated(gt.gt_boxes, confident.pred_boxes)
        same_class = gt.gt_classes[:, None] == confident.pred_classes[None, :]
        best = (iou * same_class).max(dim=1).values
        assert (best > 0.7).all(), f"image {i}: best IoU per object {best.tolist()}"


def _image(h: int, w: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(3, h, w, generator=g) * 255


@pytest.mark.slow  # tracing and a dynamic torch.export: 30-150 s on a shared 2-core CPU
def test_traces_and_exports_for_any_resolution():
    """As tests/export's detectors: the TorchScript trace and the dynamic torch.export program
    made at 160 x 192 reproduce the eager detections at 160 x 192 and at 224 x 136. The
    equivariant convolutions expand their filters in the graph (plain einsum + conv2d)."""
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    cfg = small_redet_cfg()
    cfg.proposal_generator.pre_nms_topk = [300, 300]
    cfg.proposal_generator.post_nms_topk = [100, 100]
    cfg.roi_heads.box_predictor.test_topk_per_image = 100
    with single_thread():
        torch.manual_seed(0)
        model = instantiate(cfg).eval()
        sample, other = _image(160, 192), _image(224, 136, seed=3)
        with torch.no_grad():
            expected = [TracingAdapter(model)(x) for x in (sample, other)]
        assert all(len(e[0]) > 0 for e in expected)
        traced = export_torchscript_tracing(model, sample)
        assert "rotated_det::ri_roi_align_rotated_forward" in traced.ops
        assert traced.dynamic_resolution
        exported = export_torch_export(model, sample)
        assert exported.dynamic_resolution, exported.message
        assert set(exported.ops) == set(traced.ops)
        program = exported.program.module()
        for x, e in zip((sample, other), expected):
            assert compare_detections(tuple(traced.module(x)), e) is None
            assert compare_detections(tuple(program(x)), e) is None
