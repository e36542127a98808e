"""The LSKNet configs: the authors' DOTA settings, the quickstart mirrors the library's, the models
build and train, the authors' backbone weights load through train.init_checkpoint."""

import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parents[3]
if str(REPO) not in sys.path:  # `projects` is a folder of the repository, not an installed package
    sys.path.insert(0, str(REPO))

from projects.LSKNet.lsknet import LSKNET_S, LSKNET_T, LSKNet  # noqa: E402
from rotated_det.checkpoint import DetectionCheckpointer  # noqa: E402
from rotated_det.config import LazyConfig, instantiate  # noqa: E402
from rotated_det.data import MetadataCatalog  # noqa: E402
from rotated_det.modeling import OrientedRCNN, check_model_config  # noqa: E402
from rotated_det.structures import Instances, RotatedBoxes  # noqa: E402

CONFIGS = REPO / "projects" / "LSKNet" / "configs"
DOTA_V1_PATCHES = 21046  # trainval patches of 1024 px with objects (configs/DOTA-Rotated)


def _load(name: str):
    return LazyConfig.load(str(CONFIGS / name))


@pytest.mark.parametrize(
    "name,variant,lr,images",
    [
        ("oriented_rcnn_lsknet_t_FPN_1x_dota.py", LSKNET_T, 2e-4, 16),
        ("oriented_rcnn_lsknet_s_FPN_1x_dota.py", LSKNET_S, 1e-4, 8),
    ],
)
def test_dota_configs_have_the_authors_settings(name, variant, lr, images):
    cfg = _load(name)
    classes = MetadataCatalog.get(cfg.dataloader.train.dataset.names).thing_classes
    check_model_config(cfg.model, thing_classes=classes)
    assert cfg.model._target_ is OrientedRCNN
    bottom_up = cfg.model.backbone.bottom_up
    assert bottom_up._target_ is LSKNet
    assert list(bottom_up.embed_dims) == list(variant["embed_dims"])
    assert list(bottom_up.depths) == list(variant["depths"])
    assert (bottom_up.drop_rate, bottom_up.drop_path_rate) == (0.1, 0.1)
    assert cfg.optimizer._target_ is torch.optim.AdamW
    assert (cfg.optimizer.lr, cfg.optimizer.weight_decay) == (lr, 0.05)
    assert cfg.optimizer.params.weight_decay_norm is None  # decay on every parameter
    assert cfg.dataloader.train.total_batch_size * cfg.train.grad_accum_steps == images
    assert cfg.train.auto_scale_lr.base_batch_size == images
    assert cfg.train.max_iter * images == pytest.approx(12 * DOTA_V1_PATCHES, abs=images)
    assert list(cfg.lr_multiplier.step_fractions) == [8 / 12, 11 / 12]
    assert cfg.lr_multiplier.max_iter == cfg.train.max_iter
    assert cfg.train.sync_bn


def test_quickstart_config_mirrors_the_library_quickstart():
    ours = _load("synthetic_lsknet_t.py")
    theirs = LazyConfig.load(str(REPO / "configs" / "quickstart" / "synthetic_quickstart.py"))
    for key in ("dataloader", "optimizer", "lr_multiplier"):
        assert OmegaConf.to_container(ours[key]) == OmegaConf.to_container(theirs[key]), key
    assert ours.train.max_iter == theirs.train.max_iter
    model = OmegaConf.to_container(ours.model)
    reference = OmegaConf.to_container(theirs.model)
    for key in ("pixel_mean", "pixel_std"):
        model.pop(key), reference.pop(key)
    assert model["backbone"].pop("bottom_up")["_target_"] is LSKNet
    reference["backbone"].pop("bottom_up")
    assert model == reference  # same detector, FPN and heads around another bottom-up network


def _batch(size: int = 128) -> list[dict]:
    """Two grey images with two bright rotated rectangles each, as training inputs."""
    batch = []
    boxes = torch.tensor([[40.0, 50.0, 50.0, 20.0, 30.0], [90.0, 80.0, 30.0, 30.0, -45.0]])
    for i in range(2):
        image = torch.full((3, size, size), 110.0)
        for cx, cy, w, h, _ in boxes.tolist():  # axis-aligned paint is enough to train a step
            image[:, int(cy - h / 2) : int(cy + h / 2), int(cx - w / 2) : int(cx + w / 2)] = 220.0
        instances = Instances(
            (size, size), gt_boxes=RotatedBoxes(boxes), gt_classes=torch.tensor([i, 1])
        )
        batch.append({"image": image, "height": size, "width": size, "instances": instances})
    return batch


def test_quickstart_model_trains_a_step():
    cfg = _load("synthetic_lsknet_t.py")
    torch.manual_seed(0)
    model = instantiate(cfg.model)
    assert sum(p.numel() for p in model.backbone.bottom_up.parameters()) < 2.1e6
    cfg.optimizer.optimizer.params.model = model  # AdamW inside the gradient clipping
    optimizer = instantiate(cfg.optimizer)
    model.train()
    losses = model(_batch())
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    optimizer.step()


def test_authors_backbone_file_loads_through_the_checkpointer(tmp_path):
    # the authors' ImageNet file: their network's names, a classifier, under "state_dict"
    torch.manual_seed(1)
    state = LSKNet(**LSKNET_T).state_dict()
    state["head.weight"] = torch.randn(1000, 256)
    state["head.bias"] = torch.zeros(1000)
    path = str(tmp_path / "lsk_t_backbone.pth")
    torch.save({"state_dict": state, "epoch": 300}, path)
    cfg = _load("oriented_rcnn_lsknet_t_FPN_1x_dota.py")
    model = instantiate(cfg.model)
    ckpt = DetectionCheckpointer(model)
    ckpt.resume_or_load(path, resume=False)
    report = ckpt.load_report
    prefix = "backbone.bottom_up."
    assert report.resnet_prefix == prefix
    ours = {k: v for k, v in model.state_dict().items() if k.startswith(prefix)}
    assert ours and all(torch.equal(v, state[k[len(prefix) :]]) for k, v in ours.items())
    assert not [k for k in report.missing if k.startswith(prefix)]
    assert sorted(report.ignored) == ["head.bias", "head.weight"]
    assert not report.unmatched and not report.needs_attention
