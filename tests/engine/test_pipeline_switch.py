"""PipelineSwitchHook through DefaultTrainer: the last ``train.pipeline_switch.last_iters``
iterations train on the switched mapper's images, also in a run resumed before or past the switch,
and resumed runs see the same batches as an uninterrupted one (mosaic caches included)."""

import logging
import os
import uuid

import cv2
import numpy as np
import pytest
import torch
from omegaconf import DictConfig
from torch import nn

from rotated_det.config import LazyCall as L
from rotated_det.data import (
    CachedMosaic,
    DatasetCatalog,
    DatasetMapper,
    build_detection_train_loader,
)
from rotated_det.engine import DefaultTrainer, hooks
from rotated_det.structures import BoxMode

MAX_ITER, LAST_ITERS = 12, 4  # the switch happens before iteration 8


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("switch")
    rng = np.random.default_rng(1)
    dicts = []
    for i in range(7):
        p = root / f"{i}.png"
        cv2.imwrite(str(p), rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
        annos = [
            {
                "bbox": [16.0, 16.0, 10.0, 4.0, 15.0 * i],
                "bbox_mode": BoxMode.XYWHA_ABS,
                "category_id": 0,
            }
        ]
        dicts.append(
            {"file_name": str(p), "height": 32, "width": 32, "image_id": i, "annotations": annos}
        )
    name = f"switch_{uuid.uuid4().hex[:6]}"
    DatasetCatalog.register(name, lambda: [dict(d) for d in dicts])
    yield name
    DatasetCatalog.remove(name)


class TaggedMapper(DatasetMapper):
    """A DatasetMapper that writes its ``tag`` into each output."""

    def __init__(self, tag: str, **kwargs):
        super().__init__(**kwargs)
        self.tag = tag

    def __call__(self, d):
        out = super().__call__(d)
        out["tag"] = self.tag
        return out


class LoggingModel(nn.Module):
    """Logs (tag, image bytes) of every batch it trains on."""

    log: list = []

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 1)

    def forward(self, batch):
        LoggingModel.log.append([(d["tag"], d["image"].numpy().tobytes()) for d in batch])
        x = torch.stack([d["image"].float().mean(dim=(1, 2)) / 255 for d in batch])
        return {"loss": self.fc(x).pow(2).mean()}


class LoggingBNModel(LoggingModel):
    """LoggingModel with a BatchNorm layer, so that PreciseBN runs on it."""

    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm1d(3)

    def forward(self, batch):
        out = super().forward(batch)
        x = torch.stack([d["image"].float().mean(dim=(1, 2)) for d in batch])
        return {"loss": out["loss"] + self.bn(x).pow(2).mean()}


def _config(out_dir, dataset):
    strong = L(TaggedMapper)(
        tag="strong", is_train=True, mosaic=L(CachedMosaic)(image_size=32, max_cached_images=5)
    )
    return DictConfig(
        dict(
            model=L(LoggingModel)(),
            dataloader=dict(
                train=L(build_detection_train_loader)(
                    dataset=dataset, mapper=strong, total_batch_size=2, seed=3
                )
            ),
            optimizer=L(torch.optim.SGD)(params=None, lr=0.01),
            train=dict(
                output_dir=str(out_dir),
                init_checkpoint="",
                max_iter=MAX_ITER,
                checkpointer=dict(period=1, max_to_keep=20),
                eval_period=0,
                log_period=100,
                device="cpu",
                tensorboard=False,
                pipeline_switch=dict(
                    last_iters=LAST_ITERS, mapper=L(TaggedMapper)(tag="weak", is_train=True)
                ),
            ),
        ),
        flags={"allow_objects": True},
    )


@pytest.fixture
def restore_logging():
    from rotated_det.utils.logger import setup_logger

    lg = logging.getLogger("rotated_det")
    saved = (list(lg.handlers), lg.propagate, lg.level)
    yield
    for h in list(lg.handlers):
        if h not in saved[0]:
            lg.removeHandler(h)
    lg.propagate, lg.level = saved[1], saved[2]
    setup_logger.cache_clear()


class _Stop(Exception):
    pass


def _run(out_dir, dataset, stop_at=None):
    os.makedirs(out_dir, exist_ok=True)
    LoggingModel.log.clear()
    trainer = DefaultTrainer(_config(out_dir, dataset))
    if stop_at is not None:

        def stop(t):
            if t.iter == stop_at:
                raise _Stop()

        trainer.register_hooks([hooks.CallbackHook(before_step=stop)])
    trainer.resume_or_load(resume=True)
    if stop_at is None:
        trainer.train()
    else:
        with pytest.raises(_Stop):
            trainer.train()
    return trainer, list(LoggingModel.log)


def test_switch_at_the_configured_iteration_and_after_resume(scenes, tmp_path, restore_logging):
    trainer, straight = _run(tmp_path / "straight", scenes)
    switch = [h for h in trainer._hooks if isinstance(h, hooks.PipelineSwitchHook)]
    assert len(switch) == 1 and switch[0].switch_iter == MAX_ITER - LAST_ITERS
    tags = [{tag for tag, _ in batch} for batch in straight]
    assert tags == [{"strong"}] * 8 + [{"weak"}] * 4
    # mosaics (64 px) in the strong part once the cache is warm, plain 32 px images after
    assert len(straight[6][0][1]) == 64 * 64 * 3 and len(straight[9][0][1]) == 32 * 32 * 3

    for stop_at in (5, 10):  # killed before, and past, the switch
        out = tmp_path / f"stopped_{stop_at}"
        _run(out, scenes, stop_at=stop_at)
        resumed_trainer, resumed = _run(out, scenes)
        assert resumed_trainer.start_iter == stop_at
        assert [{t for t, _ in b} for b in resumed] == tags[stop_at:]
        # the same batches as the uninterrupted run (the mosaic cache refilled on resume)
        assert resumed == straight[stop_at:]


def test_precise_bn_sees_the_switched_images(scenes, tmp_path, restore_logging):
    """PreciseBN builds its own loader: it switches too, so the statistics recomputed after
    training come from the images of the last iterations (the weak pipeline)."""
    cfg = _config(tmp_path, scenes)
    cfg.model = L(LoggingBNModel)()
    cfg.train.precise_bn = dict(enabled=True, num_iter=3)
    LoggingModel.log.clear()
    trainer = DefaultTrainer(cfg)
    trainer.train()
    switches = [h for h in trainer._hooks if isinstance(h, hooks.PipelineSwitchHook)]
    assert [h.switch_iter for h in switches] == [MAX_ITER - LAST_ITERS] * 2
    tags = [{tag for tag, _ in batch} for batch in LoggingModel.log]
    assert tags == [{"strong"}] * 8 + [{"weak"}] * 4 + [{"weak"}] * 3  # 3 PreciseBN batches


def test_config_errors_name_the_key(scenes, tmp_path, restore_logging):
    cfg = _config(tmp_path, scenes)
    cfg.train.pipeline_switch.last_iters = MAX_ITER + 1
    with pytest.raises(ValueError, match="train.pipeline_switch.last_iters"):
        DefaultTrainer(cfg)
    cfg = _config(tmp_path, scenes)
    cfg.train.pipeline_switch.mapper = None
    with pytest.raises(ValueError, match="train.pipeline_switch.mapper"):
        DefaultTrainer(cfg)
    with pytest.raises(ValueError, match="switch_iter"):
        hooks.PipelineSwitchHook(-1, lambda d: d)


def test_hook_refuses_a_loader_without_set_mapper():
    hook = hooks.PipelineSwitchHook(0, lambda d: d, data_loader=[[{}]])

    class FakeTrainer:
        iter = 0

    hook.trainer = FakeTrainer()  # type: ignore[assignment]
    with pytest.raises(TypeError, match="set_mapper"):
        hook.before_step()
