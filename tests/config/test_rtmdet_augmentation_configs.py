"""RTMDet's training recipe in the configs: MMRotate's random rotation with quarter turns for the
round DOTA classes in the 3x configs; the *_aug configs' strong pipeline (mosaic, jitter,
rotation, crop, flips, mixup), its switch to the weak one for MMRotate's last 10 epochs, and EMA;
the synthetic quickstart variant, whose mapper runs on generated scenes."""

import os

import numpy as np
import pytest

from rotated_det.config import LazyConfig, instantiate
from rotated_det.data import DOTA_V1_CLASSES, CachedMixUp, CachedMosaic
from rotated_det.data import transforms as T

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _load(rel):
    return LazyConfig.load(os.path.join(REPO, "configs", rel))


def _types(mapper):
    return [type(a) for a in mapper.augmentations.augs]


def test_dota_3x_rotation_keeps_storage_tanks_and_roundabouts_axis_aligned():
    cfg = _load("DOTA-Rotated/rotated_rtmdet_tiny_3x.py")
    rotation = instantiate(cfg.dataloader.train.mapper).augmentations.augs[-1]
    assert isinstance(rotation, T.RandomRotation) and rotation.prob == 0.5
    names = {DOTA_V1_CLASSES[c] for c in rotation.rect_classes}
    assert names == {"storage-tank", "roundabout"} and rotation.rect_classes == (9, 11)


@pytest.mark.parametrize("split", ["train", "test"])
def test_hrsc_3x_resizes_the_longer_side_to_800(split):
    """MMRotate's HRSC RTMDet resize (keep ratio into 800 x 800): a 1000 x 600 image becomes
    800 x 480 and a 500 x 300 one is enlarged to the same."""
    cfg = _load("HRSC-Rotated/rotated_rtmdet_tiny_3x.py")
    resize = instantiate(getattr(cfg.dataloader, split).mapper).augmentations.augs[0]
    for h, w in ((600, 1000), (300, 500), (1000, 600)):
        t = resize.get_transform(np.zeros((h, w, 3), np.uint8))
        assert (t.new_h, t.new_w) == ((480, 800) if w > h else (800, 480))


@pytest.mark.parametrize(
    "rel, size, epochs, iters_per_epoch",
    [
        ("DOTA-Rotated/rotated_rtmdet_l_100e_aug.py", 1024, 100, 2630),
        ("HRSC-Rotated/rotated_rtmdet_l_300e_aug.py", 800, 300, 77),
        ("HRSC-Rotated/rotated_rtmdet_tiny_300e_aug.py", 800, 300, 77),
    ],
)
def test_aug_configs_follow_mmrotate(rel, size, epochs, iters_per_epoch):
    cfg = _load(rel)
    strong = instantiate(cfg.dataloader.train.mapper)
    weak = instantiate(cfg.train.pipeline_switch.mapper)
    assert isinstance(strong.mosaic, CachedMosaic) and strong.mosaic.image_size == (size, size)
    assert isinstance(strong.mixup, CachedMixUp) and strong.mixup.ratio_range == (1.0, 1.0)
    assert weak.mosaic is None and weak.mixup is None
    head = [T.ResizeScale, T.RandomRotation, T.RandomCrop]
    assert _types(strong)[:3] == head and _types(weak)[:3] == head
    assert set(_types(strong)[3:]) == {T.RandomFlip}
    # jitter of the 2S mosaic canvas, then of S; crops of S
    assert strong.augmentations.augs[0].target_height == 2 * size
    assert weak.augmentations.augs[0].target_height == size
    assert strong.augmentations.augs[2].crop_size == (size, size)
    # MMRotate: 100 epochs (HRSC: of the 3 x repeated set), the last 10 without mosaic / mixup
    assert cfg.train.max_iter == epochs * iters_per_epoch
    assert cfg.train.pipeline_switch.last_iters == epochs // 10 * iters_per_epoch
    assert cfg.train.model_ema.enabled and cfg.train.model_ema.decay == 0.9998
    if "tiny" in rel:
        assert strong.augmentations.augs[0].min_scale == 0.5 == weak.augmentations.augs[0].min_scale
        assert strong.mosaic.max_cached_images == 20 and strong.mixup.max_cached_images == 10
        assert strong.mixup.prob == 0.5
    else:
        assert strong.mosaic.max_cached_images == 40 and strong.mixup.max_cached_images == 20
    if "DOTA" in rel:
        assert strong.augmentations.augs[1].rect_classes == (9, 11)


def test_synthetic_quickstart_aug_maps_generated_scenes(tmp_path):
    from rotated_det.data import SYNTHETIC_CLASSES, generate_synthetic_dataset, load_dota_instances

    cfg = _load("quickstart/synthetic_rtmdet_tiny_aug.py")
    assert cfg.train.max_iter == 1100 and cfg.train.pipeline_switch.last_iters == 300
    generate_synthetic_dataset(
        str(tmp_path), num_train=6, num_val=0, image_size=256, large_fraction=0, progress=False
    )
    split = os.path.join(str(tmp_path), "train")
    dicts = load_dota_instances(
        os.path.join(split, "images"), os.path.join(split, "labelTxt"), SYNTHETIC_CLASSES
    )
    strong = instantiate(cfg.dataloader.train.mapper)
    np.random.seed(0)
    outs = [strong(d) for d in dicts * 2]
    # the cache warms up: the first 4 images pass without a mosaic (a 320 px crop or less)
    assert all(max(o["image"].shape[1:]) <= 320 for o in outs[:4])
    assert all(o["image"].shape[1:] == (320, 320) for o in outs[5:])  # 320 px mosaic crops
    assert sum(len(o["instances"]) for o in outs[5:]) > 0
