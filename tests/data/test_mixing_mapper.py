"""The strong augmentation in the mapper and the loader: RandomRotation(rect_classes=...),
DatasetMapper(mosaic=..., mixup=...), and exact resume of a loader whose mapper caches images."""

import itertools
import uuid

import cv2
import numpy as np
import pytest

import rotated_det.data.transforms as T
from rotated_det.data import (
    CachedMixUp,
    CachedMosaic,
    DatasetCatalog,
    DatasetMapper,
    build_detection_train_loader,
)
from rotated_det.structures import BoxMode


# ----------------------------------------------------------------------------- RandomRotation
def _rotation_angle(aug, classes, seed):
    np.random.seed(seed)
    inp = T.AugInput(
        np.zeros((64, 64, 3), np.uint8),
        boxes=np.zeros((len(classes), 5)),
        classes=np.asarray(classes),
    )
    tfm = aug(inp)
    return getattr(tfm, "angle", 0.0)


def test_rect_classes_turn_only_by_quarter_turns():
    aug = T.RandomRotation((-180, 180), expand=False, prob=1.0, rect_classes=[9, 11])
    with_rect = {_rotation_angle(aug, [3, 11], s) for s in range(60)}
    assert with_rect == {90.0, 180.0, -90.0, -180.0}
    without = [_rotation_angle(aug, [3, 4], s) for s in range(60)]
    assert sum(a % 90 != 0 for a in without) == 60
    # the draw of whether to rotate is the same either way: prob 0.5 skips the same images
    half = T.RandomRotation((-180, 180), prob=0.5, rect_classes=[9])
    skipped_rect = [_rotation_angle(half, [9], s) == 0 for s in range(40)]
    skipped_other = [_rotation_angle(half, [1], s) == 0 for s in range(40)]
    assert skipped_rect == skipped_other and 5 < sum(skipped_rect) < 35
    # boxes of the listed classes stay axis-aligned
    np.random.seed(3)
    inp = T.AugInput(
        np.zeros((64, 64, 3), np.uint8),
        boxes=np.array([[32, 32, 10, 20, 0.0]]),
        classes=np.array([9]),
    )
    aug(inp)
    assert inp.boxes[0, 4] % 90 == pytest.approx(0, abs=1e-9)


def test_rect_classes_need_the_classes():
    aug = T.RandomRotation(rect_classes=[9])
    with pytest.raises(ValueError, match="rect_classes.*classes"):
        aug(T.AugInput(np.zeros((8, 8, 3), np.uint8), boxes=np.zeros((0, 5))))
    # without rect_classes nothing changes: classes are not needed
    T.RandomRotation()(T.AugInput(np.zeros((8, 8, 3), np.uint8)))


# ----------------------------------------------------------------------------- mapper and loader
@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """10 textured 48 x 48 images with 2 boxes each, registered as a dataset."""
    root = tmp_path_factory.mktemp("mixing")
    rng = np.random.default_rng(0)
    dicts = []
    for i in range(10):
        p = root / f"{i}.png"
        cv2.imwrite(str(p), rng.integers(0, 255, (48, 48, 3), dtype=np.uint8))
        annos = [
            {
                "bbox": [14.0 + 20 * k, 24.0, 12.0, 6.0, 30.0 * i],
                "bbox_mode": BoxMode.XYWHA_ABS,
                "category_id": (i + k) % 3,
            }
            for k in range(2)
        ]
        dicts.append(
            {"file_name": str(p), "height": 48, "width": 48, "image_id": i, "annotations": annos}
        )
    name = f"mixing_{uuid.uuid4().hex[:6]}"
    DatasetCatalog.register(name, lambda: [dict(d) for d in dicts])
    yield name
    DatasetCatalog.remove(name)


def _strong_mapper():
    return DatasetMapper(
        is_train=True,
        augmentations=[
            T.RandomRotation((-180, 180), expand=False, prob=0.5, rect_classes=[2]),
            T.RandomCrop("absolute", (64, 64)),
            T.RandomFlip(prob=0.5),
        ],
        mosaic=CachedMosaic(image_size=48, max_cached_images=6),
        mixup=CachedMixUp(image_size=64, ratio_range=(0.8, 1.2), max_cached_images=4),
    )


def _record(batches):
    return [
        [
            (x["image"].numpy().tobytes(), x["instances"].gt_boxes.tensor.numpy().tobytes())
            for x in b
        ]
        for b in batches
    ]


def test_mapper_outputs_mosaics_with_consistent_instances(scenes):
    mapper = _strong_mapper()
    assert mapper.history_length == 10
    outs = [mapper(d) for d in DatasetCatalog.get(scenes)]
    # the first 4 images pass without a mosaic (48 px), later ones are 96 px mosaics cut to 64
    assert [tuple(o["image"].shape[1:]) for o in outs[:4]] == [(48, 48)] * 4
    assert all(tuple(o["image"].shape[1:]) == (64, 64) for o in outs[5:])
    for o in outs:
        boxes = o["instances"].gt_boxes.tensor
        assert len(boxes) == len(o["instances"].gt_classes)
    # mosaic + mixup bring in other images' objects
    assert max(len(o["instances"]) for o in outs[5:]) > 2
    assert "mosaic=CachedMosaic" in repr(mapper)
    mapper.reset_history()
    assert len(mapper.mosaic.cache) == 0 and len(mapper.mixup.cache) == 0


@pytest.mark.parametrize("num_workers", [0, 2])
def test_resume_rebuilds_the_caches_exactly(scenes, num_workers):
    def loader():
        return build_detection_train_loader(
            scenes, mapper=_strong_mapper(), total_batch_size=2, num_workers=num_workers, seed=5
        )

    straight = _record(itertools.islice(loader(), 16))
    first = loader()
    _record(itertools.islice(first, 9))
    state = first.state_dict()
    del first
    second = loader()
    second.load_state_dict(state)
    resumed = _record(itertools.islice(second, 7))
    assert resumed == straight[9:], "batches after resume differ from an uninterrupted run"
    if num_workers == 0:
        # control: without the replay the caches start empty and the batches differ
        third = loader()
        third.load_state_dict(state)
        third.stream._rebuild_history = lambda *args: None  # type: ignore[method-assign]
        assert _record(itertools.islice(third, 7)) != straight[9:]


def test_set_mapper_switches_an_iterator_in_use(scenes):
    loader = build_detection_train_loader(
        scenes, mapper=_strong_mapper(), total_batch_size=2, num_workers=2, seed=5
    )
    weak = DatasetMapper(is_train=True, augmentations=[])
    it = iter(loader)
    before = [next(it) for _ in range(6)]
    assert any(tuple(x["image"].shape[1:]) == (64, 64) for b in before for x in b)
    loader.set_mapper(weak)
    after = [next(it) for _ in range(4)]
    # every image after the switch is a plain 48 px image with its own two boxes
    assert all(tuple(x["image"].shape[1:]) == (48, 48) for b in after for x in b)
    assert all(len(x["instances"]) == 2 for b in after for x in b)
    assert loader.batches_taken == 10 and loader.mapper is weak


def test_resize_scale_fits_the_scaled_target_keeping_the_aspect_ratio():
    aug = T.ResizeScale(0.5, 2.0, target_height=100, target_width=100)
    img = np.zeros((60, 120, 3), np.uint8)
    sizes = []
    for seed in range(50):
        np.random.seed(seed)
        s = np.random.uniform(0.5, 2.0)
        np.random.seed(seed)
        out, tfm = T.apply_augmentations([aug], img)
        # the longer side (120) becomes 100 s: the shorter one follows at ratio 1/2
        assert out.shape[:2] == (int(60 * 100 * s / 120 + 0.5), int(100 * s + 0.5))
        sizes.append(out.shape[1])
    assert min(sizes) < 60 and max(sizes) > 180
    with pytest.raises(ValueError, match="min_scale"):
        T.ResizeScale(2.0, 1.0, 10, 10)
