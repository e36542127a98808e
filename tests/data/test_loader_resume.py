"""Exact resume of the training loader: a run interrupted after some batches and resumed from
the loader's state_dict() in a fresh loader sees the same batches (image ids, pixels after the
random augmentations, boxes) as an uninterrupted run; also through DefaultTrainer --resume."""

import itertools
import logging
import os
import uuid

import cv2
import numpy as np
import pytest
import torch
from torch import nn

import rotated_det.data.transforms as T
from rotated_det.data import DatasetCatalog, DatasetMapper, build_detection_train_loader
from rotated_det.data.train_loader import TrainDataLoader
from rotated_det.structures import BoxMode


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """9 small images of different sizes (landscape and portrait), 1-3 boxes each, textured so
    that augmentations change the pixels; registered as a dataset."""
    root = tmp_path_factory.mktemp("resume")
    rng = np.random.default_rng(0)
    dicts = []
    for i in range(9):
        h, w = [(40, 64), (64, 40), (48, 48), (36, 72), (70, 44)][i % 5]
        img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        p = root / f"{i}.png"
        cv2.imwrite(str(p), img)
        annos = [
            {
                "bbox": [w / 2 + k, h / 2 - k, 16.0 + 3 * k, 6.0 + k, 20.0 * i + 35 * k],
                "bbox_mode": BoxMode.XYWHA_ABS,
                "category_id": k % 2,
                "difficult": 0,
            }
            for k in range(1 + i % 3)
        ]
        dicts.append(
            {"file_name": str(p), "height": h, "width": w, "image_id": i, "annotations": annos}
        )
    name = f"resume_{uuid.uuid4().hex[:6]}"
    DatasetCatalog.register(name, lambda: [dict(d) for d in dicts])
    yield name
    DatasetCatalog.remove(name)


class DropImage:
    """DatasetMapper that returns None for one image (exercises the loader's fallback)."""

    def __init__(self, drop_id: int, **kw):
        self.drop_id = drop_id
        self.mapper = DatasetMapper(**kw)

    def __call__(self, d):
        return None if d["image_id"] == self.drop_id else self.mapper(d)


def _augmentations():
    # random rotation with expand changes the image size, hence the aspect-ratio grouping
    return [
        T.RandomFlip(prob=0.5),
        T.RandomRotation((-60, 60), expand=True, prob=0.7),
        T.RandomBrightness(0.7, 1.3),
    ]


def _loader(name, num_workers, seed, grouping=True, batch=2):
    return build_detection_train_loader(
        name,
        mapper=DropImage(4, is_train=True, augmentations=_augmentations()),
        total_batch_size=batch,
        aspect_ratio_grouping=grouping,
        num_workers=num_workers,
        seed=seed,
    )


def _record(batches):
    """Batches as comparable values: (image id, image bytes, boxes) per image."""
    return [
        [
            (x["image_id"], x["image"].numpy().tobytes(), x["instances"].gt_boxes.tensor.numpy())
            for x in b
        ]
        for b in batches
    ]


def _assert_same(a, b):
    assert len(a) == len(b)
    for i, (ba, bb) in enumerate(zip(a, b)):
        assert [x[0] for x in ba] == [x[0] for x in bb], f"batch {i}: image ids differ"
        for (_, ima, boxa), (_, imb, boxb) in zip(ba, bb):
            assert ima == imb, f"batch {i}: pixels differ"
            np.testing.assert_array_equal(boxa, boxb)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_resume_in_fresh_loader_gives_the_same_batches(scenes, num_workers, tmp_path):
    straight = _record(itertools.islice(_loader(scenes, num_workers, seed=7), 20))
    assert 4 not in {x[0] for b in straight for x in b}  # the dropped image never appears
    # different augmentations from batch to batch (not a constant stream)
    assert len({x[1] for b in straight for x in b}) > 30

    first = _loader(scenes, num_workers, seed=7)
    part1 = _record(itertools.islice(first, 10))  # workers have prefetched beyond batch 10
    state = first.state_dict()
    assert state["batches"] == 10
    # the aspect-ratio buckets held images when the state was taken: they are restored too
    assert any(s["pending"] for s in state["streams"])
    torch.save(state, tmp_path / "s.pth")
    state = torch.load(tmp_path / "s.pth", weights_only=True)
    del first

    # a new loader with another seed: the seeds come from the state
    second = _loader(scenes, num_workers, seed=12345)
    second.load_state_dict(state)
    part2 = _record(itertools.islice(second, 10))
    _assert_same(part1 + part2, straight)
    assert second.state_dict()["batches"] == 20


def test_batches_do_not_depend_on_num_workers_without_grouping(scenes):
    a = _record(itertools.islice(_loader(scenes, 0, seed=3, grouping=False, batch=3), 6))
    b = _record(itertools.islice(_loader(scenes, 2, seed=3, grouping=False, batch=3), 6))
    _assert_same(a, b)


def test_loading_leaves_the_main_process_random_state_alone(scenes):
    np.random.seed(5)
    torch.manual_seed(5)
    ref = (np.random.rand(3), torch.rand(3))
    np.random.seed(5)
    torch.manual_seed(5)
    loader = _loader(scenes, 0, seed=1)
    list(itertools.islice(loader, 4))
    got = (np.random.rand(3), torch.rand(3))
    np.testing.assert_array_equal(got[0], ref[0])
    assert torch.equal(got[1], ref[1])


def test_other_num_workers_resumes_approximately_with_a_warning(scenes, caplog):
    first = _loader(scenes, 2, seed=7)
    seen = [x["image_id"] for b in itertools.islice(first, 5) for x in b]
    assert len(seen) == 10
    other = _loader(scenes, 0, seed=7)
    with caplog.at_level(logging.WARNING, logger="rotated_det.data.train_loader"):
        other.load_state_dict(first.state_dict())
    assert "data order differs" in caplog.text
    assert len(next(iter(other))) == 2


def test_superseded_iterator_raises(scenes):
    loader = _loader(scenes, 0, seed=1)
    it = iter(loader)
    next(it)
    it2 = iter(loader)
    next(it2)
    with pytest.raises(RuntimeError, match="superseded"):
        next(it)
    with pytest.raises(ValueError, match="format"):
        loader.load_state_dict({"format": 99})


# ----------------------------------------------------------------------------- through the engine
class TinyRotatedModel(nn.Module):
    """Regresses each image's first gt box from its mean colour; logs what it trained on."""

    log: list = []

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 5)

    def forward(self, batch):
        x = torch.stack([d["image"].float().mean(dim=(1, 2)) / 255 for d in batch])
        y = torch.stack([d["instances"].gt_boxes.tensor[0] for d in batch]) / 64
        TinyRotatedModel.log.append([(d["image_id"], d["image"].numpy().tobytes()) for d in batch])
        return {"loss_box": nn.functional.mse_loss(self.fc(x), y)}


def _engine_config(out_dir, dataset, num_workers, seed):
    from omegaconf import DictConfig

    from rotated_det.config import LazyCall as L

    return DictConfig(
        dict(
            model=L(TinyRotatedModel)(),
            dataloader=dict(
                train=L(build_detection_train_loader)(
                    dataset=dataset,
                    mapper=L(DatasetMapper)(is_train=True, augmentations=_augmentations()),
                    total_batch_size=2,
                    num_workers=num_workers,
                    seed=seed,
                )
            ),
            optimizer=L(torch.optim.SGD)(params=None, lr=0.01, momentum=0.9),
            train=dict(
                output_dir=str(out_dir),
                init_checkpoint="",
                max_iter=20,
                amp=dict(enabled=False),
                checkpointer=dict(period=10, max_to_keep=2),
                eval_period=0,
                log_period=100,
                device="cpu",
                tensorboard=False,
            ),
        ),
        flags={"allow_objects": True},
    )


class _Stop(Exception):
    pass


@pytest.fixture
def restore_logging():
    """DefaultTrainer configures the "rotated_det" logger like an application (own handlers,
    no propagation); undo that so that later tests' caplog works."""
    from rotated_det.utils.logger import setup_logger

    lg = logging.getLogger("rotated_det")
    saved = (list(lg.handlers), lg.propagate, lg.level)
    yield
    for h in list(lg.handlers):
        if h not in saved[0]:
            lg.removeHandler(h)
    lg.propagate, lg.level = saved[1], saved[2]
    setup_logger.cache_clear()


@pytest.mark.parametrize("num_workers", [0, 2])
def test_default_trainer_resume_sees_the_same_batches(
    scenes, num_workers, tmp_path, restore_logging
):
    from rotated_det.engine import DefaultTrainer, hooks

    os.makedirs(tmp_path / "a")
    os.makedirs(tmp_path / "b")

    log = TinyRotatedModel.log
    log.clear()
    torch.manual_seed(0)  # the model's initial weights
    straight = DefaultTrainer(_engine_config(tmp_path / "a", scenes, num_workers, seed=11))
    straight.resume_or_load(resume=True)
    straight.train()
    ref_batches, ref_weights = list(log), straight.model.state_dict()
    assert len(ref_batches) == 20

    log.clear()
    torch.manual_seed(0)
    first = DefaultTrainer(_engine_config(tmp_path / "b", scenes, num_workers, seed=11))

    def stop(trainer):
        if trainer.iter == 10:
            raise _Stop()

    first.register_hooks([hooks.CallbackHook(before_step=stop)])
    first.resume_or_load(resume=True)
    with pytest.raises(_Stop):
        first.train()
    del first
    assert os.path.exists(tmp_path / "b" / "model_0000009.pth")
    # a fresh process would draw another random seed: the checkpoint's must win
    torch.manual_seed(12345)
    second = DefaultTrainer(_engine_config(tmp_path / "b", scenes, num_workers, seed=None))
    second.resume_or_load(resume=True)
    assert second.start_iter == 10
    second.train()
    assert len(log) == 20
    for i, (a, b) in enumerate(zip(log, ref_batches)):
        assert a == b, f"iteration {i}: different batch after resume"
    for k, v in second.model.state_dict().items():
        torch.testing.assert_close(v, ref_weights[k], rtol=0, atol=0)
    assert isinstance(second.data_loader, TrainDataLoader)
    assert second.data_loader.batches_taken == 20
