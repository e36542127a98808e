"""EventStorage and writers, comm in one process, logger helpers, seeding."""

import json
import logging
import random

import numpy as np
import pytest
import torch

from rotated_det.utils import comm
from rotated_det.utils.collect_env import collect_env_info
from rotated_det.utils.env import get_rng_state, seed_all_rng, set_rng_state
from rotated_det.utils.events import (
    CommonMetricPrinter,
    EventStorage,
    JSONWriter,
    TensorboardXWriter,
    get_event_storage,
    supersede_rows,
    superseded_path,
)
from rotated_det.utils.logger import log_every_n, log_first_n, setup_logger


class _Logs(logging.Handler):
    def __init__(self, name):
        super().__init__(logging.DEBUG)
        self.records = []
        self.logger = logging.getLogger(name)

    def emit(self, record):
        self.records.append(record.getMessage())

    def __enter__(self):
        self.logger.addHandler(self)
        self.level = self.logger.level
        self.logger.setLevel(logging.DEBUG)
        return self

    def __exit__(self, *exc):
        self.logger.removeHandler(self)
        self.logger.setLevel(self.level)


def test_event_storage_history_smoothing_and_scope():
    with pytest.raises(RuntimeError, match="EventStorage"):
        get_event_storage()
    with EventStorage(start_iter=5) as s:
        assert get_event_storage() is s
        for v in [1.0, 100.0, 3.0]:
            s.put_scalar("loss", torch.tensor(v))
            s.put_scalar("lr", v / 10, smoothing_hint=False)
            s.step()
        with s.name_scope("val"):
            s.put_scalar("mAP", 0.5, smoothing_hint=False)
        assert s.iter == 8
        assert s.history("loss").values() == [(1.0, 5), (100.0, 6), (3.0, 7)]
        smoothed = s.latest_with_smoothing_hint(window_size=3)
        assert smoothed["loss"] == (3.0, 7)  # median of 1, 100, 3
        assert smoothed["lr"] == (0.3, 7)  # not smoothed: latest
        assert s.latest()["val/mAP"] == (0.5, 8)
        with pytest.raises(ValueError, match="smoothing_hint"):
            s.put_scalar("lr", 1.0, smoothing_hint=True)


def test_json_writer_writes_new_rows_once(tmp_path):
    path = tmp_path / "metrics.json"
    with EventStorage() as s:
        w = JSONWriter(str(path), window_size=2)
        for i in range(4):
            s.put_scalars(loss=float(i), lr=0.1)
            if i % 2 == 1:
                w.write()
            s.step()
        w.write()  # nothing new
        w.close()
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [1, 3]
    assert rows[1]["loss"] == pytest.approx(2.5)  # median of last 2 values (2, 3)


def test_json_writer_start_supersedes_rows_of_an_earlier_run(tmp_path):
    path = tmp_path / "metrics.json"
    side = tmp_path / "metrics_superseded.json"
    earlier = [{"iteration": i, "loss": float(i)} for i in (4, 9, 14, 19)]
    # a run killed while writing leaves a half line (no newline) at the end
    path.write_text("".join(json.dumps(r) + "\n" for r in earlier) + '{"iteration": 2')
    assert superseded_path(str(path)) == str(side)
    with EventStorage(start_iter=10) as s:
        w = JSONWriter(str(path))
        w.start(10)
        s.put_scalar("loss", 100.0, smoothing_hint=False)
        w.write()
        w.close()
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows == [earlier[0], earlier[1], {"iteration": 10, "loss": 100.0}]
    moved = [json.loads(line) for line in side.read_text().splitlines()]
    assert moved == [
        {**earlier[2], "superseded_at": 10},
        {**earlier[3], "superseded_at": 10},
        {"unparsed_line": '{"iteration": 2', "superseded_at": 10},
    ]
    # a second resume appends to the superseded rows; nothing to move leaves the file as is
    assert supersede_rows(str(path), 5) == 2
    assert len(side.read_text().splitlines()) == 5
    before = path.read_text()
    assert supersede_rows(str(path), 5) == 0 and path.read_text() == before
    assert supersede_rows(str(tmp_path / "none.json"), 0) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", side.name]


def test_common_metric_printer_line():
    with _Logs("rotated_det.utils.events") as logs, EventStorage(start_iter=10) as s:
        p = CommonMetricPrinter(max_iter=110, window_size=5)
        s.put_scalars(total_loss=1.5, loss_cls=1.0, loss_box=0.5, time=0.2, data_time=0.01)
        s.put_scalar("lr", 0.02, smoothing_hint=False)
        p.write()
    line = logs.records[-1]
    # 99 iterations left at 0.2 s
    assert "eta: 0:00:19" in line and "iter: 10/110" in line
    assert "loss_cls: 1" in line and "total_loss: 1.5" in line
    assert "time: 0.2000 s/it" in line and "data_time: 0.0100 s" in line and "lr: 0.02" in line


def test_tensorboard_writer(tmp_path):
    with EventStorage() as s:
        w = TensorboardXWriter(str(tmp_path))
        s.put_scalar("loss", 1.0)
        s.put_image("img", torch.rand(3, 8, 8))
        s.put_histogram("h", torch.randn(100))
        w.write()
        w.close()
        assert s._vis_data == [] and s._histograms == []
    files = list(tmp_path.iterdir())
    assert files and files[0].name.startswith("events.out.tfevents") and files[0].stat().st_size > 0


def test_tensorboard_writer_start_purges_from_start_iter(tmp_path, monkeypatch):
    import torch.utils.tensorboard

    made = []

    class Recording(torch.utils.tensorboard.SummaryWriter):
        def __init__(self, *args, **kwargs):
            made.append(kwargs)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(torch.utils.tensorboard, "SummaryWriter", Recording)
    w = TensorboardXWriter(str(tmp_path))
    w.start(10)
    w.close()
    assert made == [{"purge_step": 10}]


def test_comm_single_process():
    assert comm.get_world_size() == 1 and comm.get_rank() == 0 and comm.get_local_rank() == 0
    assert comm.is_main_process()
    comm.synchronize()
    assert comm.all_gather({"a": 1}) == [{"a": 1}]
    assert comm.gather(3) == [3]
    d = {"x": torch.tensor(2.0)}
    assert comm.reduce_dict(d) is d
    s = comm.shared_random_seed()
    assert isinstance(s, int) and 0 <= s < 2**31


def test_seed_and_rng_state_round_trip():
    seed_all_rng(7)
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    seed_all_rng(7)
    state = get_rng_state()
    b = (random.random(), np.random.rand(), torch.rand(1).item())
    assert a == b
    set_rng_state(state)
    c = (random.random(), np.random.rand(), torch.rand(1).item())
    assert c == a
    # the state is storable in a weights_only checkpoint
    import io

    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    set_rng_state(torch.load(buf, weights_only=True))
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a
    assert isinstance(seed_all_rng(None), int)


def test_setup_logger_file_and_rate_limits(tmp_path):
    logger = setup_logger(str(tmp_path), name="rd_test_logger", color=False)
    logger.info("hello file")
    setup_logger(str(tmp_path / "r1.log"), distributed_rank=1, name="rd_test_logger2")
    logging.getLogger("rd_test_logger2").warning("rank one")
    with _Logs("rd_test_rate") as logs:
        for i in range(10):
            log_first_n(logging.INFO, f"first {i}", n=2, name="rd_test_rate")
            log_every_n(logging.INFO, f"every {i}", n=4, name="rd_test_rate")
    assert "hello file" in (tmp_path / "log.txt").read_text()
    assert "rank one" in (tmp_path / "r1.log.rank1").read_text()
    assert [r for r in logs.records if r.startswith("first")] == ["first 0", "first 1"]
    assert [r for r in logs.records if r.startswith("every")] == ["every 0", "every 4", "every 8"]


def test_collect_env_info_mentions_versions():
    info = collect_env_info()
    assert torch.__version__ in info and "fvcore" in info and "rotated_det._C" in info
