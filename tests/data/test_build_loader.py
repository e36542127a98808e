import itertools
import logging
import uuid

import cv2
import numpy as np
import pytest
import torch

import rotated_det.data.transforms as T
from rotated_det.data import (
    DatasetCatalog,
    DatasetFromList,
    DatasetMapper,
    MetadataCatalog,
    build_detection_test_loader,
    build_detection_train_loader,
    get_detection_dataset_dicts,
)
from rotated_det.structures import BoxMode


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """8 images (5 landscape, 3 portrait), image 7 without objects; registered as a dataset."""
    root = tmp_path_factory.mktemp("toy")
    dicts = []
    for i in range(8):
        h, w = (60, 90) if i < 5 else (90, 60)
        p = root / f"{i}.png"
        cv2.imwrite(str(p), np.full((h, w, 3), i * 20, np.uint8))
        annos = (
            []
            if i == 7
            else [
                {
                    "bbox": [30.0, 30.0, 20.0, 8.0, 10.0 * i],
                    "bbox_mode": BoxMode.XYWHA_ABS,
                    "category_id": i % 2,
                    "difficult": 0,
                }
            ]
        )
        dicts.append(
            {"file_name": str(p), "height": h, "width": w, "image_id": i, "annotations": annos}
        )
    name = f"toy_{uuid.uuid4().hex[:6]}"
    DatasetCatalog.register(name, lambda: [dict(d) for d in dicts])
    MetadataCatalog.get(name).thing_classes = ["a", "b"]
    yield name, dicts
    DatasetCatalog.remove(name)


def test_dataset_from_list_serialises_exactly(toy):
    _, dicts = toy
    ds = DatasetFromList(dicts, copy=False, serialize=True)
    assert len(ds) == 8 and all(ds[i] == dicts[i] for i in range(8)) and ds[-1] == dicts[-1]
    assert isinstance(ds._buf, np.ndarray) and ds._buf.dtype == np.uint8
    plain = DatasetFromList(dicts, copy=True, serialize=False)
    assert plain[3] == dicts[3] and plain[3] is not dicts[3]


def test_get_detection_dataset_dicts(toy, caplog):
    name, _ = toy
    with caplog.at_level(logging.INFO):
        d = get_detection_dataset_dicts(name)
    assert len(d) == 7 and "Removed 1 images with no annotations" in caplog.text
    assert "a: 4, b: 3" in caplog.text
    assert len(get_detection_dataset_dicts([name], filter_empty=False)) == 8
    assert len(get_detection_dataset_dicts([name, name])) == 14
    with pytest.raises(KeyError, match="not registered"):
        get_detection_dataset_dicts("no_such_dataset_abc")
    other = f"toy_other_{uuid.uuid4().hex[:6]}"
    DatasetCatalog.register(other, lambda: get_detection_dataset_dicts(name))
    MetadataCatalog.get(other).thing_classes = ["x"]
    try:
        with pytest.raises(ValueError, match="different thing_classes"):
            get_detection_dataset_dicts([name, other])
    finally:
        DatasetCatalog.remove(other)
    empty = f"toy_empty_{uuid.uuid4().hex[:6]}"
    DatasetCatalog.register(empty, lambda: [])
    try:
        with pytest.raises(ValueError, match=f"Dataset '{empty}' is empty"):
            get_detection_dataset_dicts(empty)
    finally:
        DatasetCatalog.remove(empty)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_train_loader_batches_with_aspect_grouping(toy, num_workers):
    name, _ = toy
    loader = build_detection_train_loader(
        get_detection_dataset_dicts(name),
        mapper=DatasetMapper(is_train=True, augmentations=[T.RandomFlip()]),
        total_batch_size=2,
        num_workers=num_workers,
        seed=0,
    )
    seen = set()
    for batch in itertools.islice(loader, 12):
        assert len(batch) == 2
        shapes = [tuple(x["image"].shape[1:]) for x in batch]
        assert len({h > w for h, w in shapes}) == 1  # landscape and portrait never mixed
        for x in batch:
            assert x["image"].dtype == torch.uint8 and len(x["instances"]) == 1
            seen.add(x["image_id"])
    assert seen == set(range(7))  # the empty image was filtered, all others appear


def test_train_loader_without_grouping_and_bad_batch(toy):
    name, _ = toy
    loader = build_detection_train_loader(
        name, total_batch_size=3, aspect_ratio_grouping=False, seed=1
    )
    batch = next(iter(loader))
    assert isinstance(batch, list) and len(batch) == 3
    with pytest.raises(ValueError, match="total_batch_size"):
        build_detection_train_loader(name, total_batch_size=0)


def test_test_loader_visits_every_image_once_in_order(toy):
    name, dicts = toy
    loader = build_detection_test_loader(name, batch_size=3)
    ids = [x["image_id"] for batch in loader for x in batch]
    assert ids == list(range(8))
    first = next(iter(build_detection_test_loader(dicts, num_workers=2)))[0]
    assert "instances" not in first and first["image"].shape == (3, 60, 90)


def test_seeded_loader_is_reproducible_with_workers(toy):
    name, _ = toy

    def first_batches():
        loader = build_detection_train_loader(
            name,
            mapper=DatasetMapper(is_train=True, augmentations=[T.RandomRotation((-90, 90))]),
            total_batch_size=2,
            num_workers=2,
            seed=123,
        )
        return [
            [(x["image_id"], x["image"].clone(), x["instances"].gt_boxes.tensor.clone()) for x in b]
            for b in itertools.islice(loader, 3)
        ]

    a, b = first_batches(), first_batches()
    for ba, bb in zip(a, b):
        for (ia, ima, boxa), (ib, imb, boxb) in zip(ba, bb):
            assert ia == ib and torch.equal(ima, imb) and torch.equal(boxa, boxb)


class _CountingMapper(DatasetMapper):
    calls = 0

    def __call__(self, d):
        type(self).calls += 1
        return super().__call__(d)


def test_train_loader_refuses_a_dataset_whose_boxes_are_all_dropped(toy):
    """YOLO-OBB pixel labels read as normalised: every box far outside its image. The loader
    builder fails before any image is mapped, not with zero box losses from iteration 0."""
    _, dicts = toy
    bad = [
        {**d, "annotations": [{**a, "bbox": [v * 90 for v in a["bbox"][:4]] + [0.0]}]}
        for d in dicts
        for a in d["annotations"]
    ]
    name = f"pixels_{uuid.uuid4().hex[:6]}"
    DatasetCatalog.register(name, lambda: bad)
    try:
        for dataset in (name, [name], bad):
            with pytest.raises(ValueError, match="zero box losses") as e:
                build_detection_train_loader(
                    dataset, mapper=_CountingMapper(is_train=True), total_batch_size=2
                )
            assert "7 mostly outside the image" in str(e.value)
            assert (f"dataset ['{name}']" in str(e.value)) == (dataset is not bad)
        assert _CountingMapper.calls == 0
        # the default mapper checks too
        with pytest.raises(ValueError, match="zero box losses"):
            build_detection_train_loader(name, total_batch_size=2)
    finally:
        DatasetCatalog.remove(name)


def test_train_loader_warns_when_many_boxes_are_dropped(toy, caplog):
    _, dicts = toy
    thin = [
        {**d, "annotations": [{**a, "bbox": a["bbox"][:3] + [0.5, 0.0]} for a in d["annotations"]]}
        if i < 2
        else d
        for i, d in enumerate(dicts[:7])
    ]
    with caplog.at_level(logging.INFO, logger="rotated_det"):
        loader = build_detection_train_loader(thin, total_batch_size=2, seed=0)
    (rec,) = [r for r in caplog.records if "Box check of" in r.getMessage()]
    assert rec.levelno == logging.WARNING and "dropped 2 of 7 boxes (28.6%)" in rec.getMessage()
    assert "2 degenerate" in rec.getMessage()
    assert len(next(iter(loader))) == 2  # a warning, not an error: training goes on
