"""DetectionCheckpointer: atomic saves, resume checks, loading foreign formats."""

import os
import pickle
import re

import numpy as np
import pytest
import torch
from torch import nn

from rotated_det.checkpoint import DetectionCheckpointer, IncompatibleCheckpointError


def _model(out=3):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.Linear(5, out))


def test_save_load_round_trip_with_checkpointables(tmp_path):
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(6, 4)).sum().backward()
    opt.step()
    ckpt = DetectionCheckpointer(model, str(tmp_path), optimizer=opt)
    ckpt.save("model_0000004", iteration=4)
    assert open(tmp_path / "last_checkpoint").read() == "model_0000004.pth"
    assert not [f for f in os.listdir(tmp_path) if ".tmp" in f]

    model2 = _model()
    with torch.no_grad():
        for p in model2.parameters():
            p.zero_()
    opt2 = torch.optim.SGD(model2.parameters(), lr=0.1, momentum=0.9)
    extra = DetectionCheckpointer(model2, str(tmp_path), optimizer=opt2).resume_or_load(
        "", resume=True
    )
    assert extra["iteration"] == 4
    for (k, a), b in zip(model.state_dict().items(), model2.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=k)
    torch.testing.assert_close(
        opt.state_dict()["state"][0]["momentum_buffer"],
        opt2.state_dict()["state"][0]["momentum_buffer"],
    )


def test_exception_mid_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    model = _model()
    ckpt = DetectionCheckpointer(model, str(tmp_path))
    ckpt.save("model_0000000", iteration=0)
    good = open(tmp_path / "model_0000000.pth", "rb").read()

    real_save = torch.save

    def dying_save(obj, f, *a, **k):
        f.write(b"half a checkpoint")  # partial bytes, then the "kill"
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save("model_0000001", iteration=1)
    monkeypatch.setattr(torch, "save", real_save)

    assert not (tmp_path / "model_0000001.pth").exists()
    assert not [f for f in os.listdir(tmp_path) if ".tmp" in f]
    assert open(tmp_path / "last_checkpoint").read() == "model_0000000.pth"
    assert open(tmp_path / "model_0000000.pth", "rb").read() == good
    extra = DetectionCheckpointer(_model(), str(tmp_path)).resume_or_load("", resume=True)
    assert extra["iteration"] == 0


def test_resume_with_other_shapes_names_keys(tmp_path):
    DetectionCheckpointer(_model(out=3), str(tmp_path)).save("model_final")
    with pytest.raises(IncompatibleCheckpointError) as e:
        DetectionCheckpointer(_model(out=7), str(tmp_path)).resume_or_load("", resume=True)
    msg = str(e.value)
    assert "2.weight: checkpoint (3, 5) vs model (7, 5)" in msg
    assert "2.bias: checkpoint (3,) vs model (7,)" in msg


def test_finetune_load_skips_mismatched_head_with_warning(tmp_path, capture_logs):
    src = _model(out=3)
    DetectionCheckpointer(src, str(tmp_path)).save("pretrained")
    dst = _model(out=7)
    with torch.no_grad():
        dst[0].weight.zero_()
    with capture_logs("rotated_det.checkpoint") as caplog:
        DetectionCheckpointer(dst).resume_or_load(str(tmp_path / "pretrained.pth"), resume=False)
    torch.testing.assert_close(dst[0].weight, src[0].weight)
    assert dst[2].weight.shape == (7, 5)
    assert "2.weight" in caplog.text and "incompatible" in caplog.text.lower()


def test_load_plain_state_dict_mmcv_and_pkl(tmp_path):
    src = _model()
    sd = src.state_dict()
    torch.save(sd, tmp_path / "plain.pth")
    torch.save({"state_dict": sd, "meta": {"epoch": 12}}, tmp_path / "mm.pth")
    with open(tmp_path / "w.pkl", "wb") as f:
        pickle.dump({"model": {k: v.numpy() for k, v in sd.items()}}, f)
    for name in ("plain.pth", "mm.pth", "w.pkl"):
        dst = _model()
        with torch.no_grad():
            for p in dst.parameters():
                p.fill_(3.0)
        DetectionCheckpointer(dst).load(str(tmp_path / name))
        for k, v in sd.items():
            torch.testing.assert_close(dst.state_dict()[k], torch.as_tensor(v), msg=f"{name}:{k}")


def test_checkpoint_matching_nothing_is_an_error(tmp_path):
    torch.save({"model": {"other.weight": torch.zeros(2)}}, tmp_path / "x.pth")
    with pytest.raises(IncompatibleCheckpointError, match="x.pth: no parameter") as e:
        DetectionCheckpointer(_model()).load(str(tmp_path / "x.pth"))
    assert "other.weight" in str(e.value) and "torchvision" in str(e.value)


def test_last_checkpoint_pointing_to_missing_file(tmp_path):
    (tmp_path / "last_checkpoint").write_text("model_0000099.pth")
    with pytest.raises(FileNotFoundError, match="model_0000099.pth"):
        DetectionCheckpointer(_model(), str(tmp_path)).resume_or_load("", resume=True)


def test_only_main_process_writes(tmp_path):
    DetectionCheckpointer(_model(), str(tmp_path), save_to_disk=False).save("m")
    assert os.listdir(tmp_path) == []


def test_numpy_values_load_without_the_unsafe_path(tmp_path, capture_logs):
    # numpy arrays and scalars are data, not code: no opt-in needed, no warning
    src = _model()
    extra_in = {"extra": np.arange(3), "best_metric": np.float64(0.5)}
    torch.save({"model": src.state_dict(), **extra_in}, tmp_path / "np.pth")
    with capture_logs("rotated_det.checkpoint") as caplog:
        extra = DetectionCheckpointer(_model()).load(str(tmp_path / "np.pth"))
    assert "allow_unsafe" not in caplog.text
    assert list(extra["extra"]) == [0, 1, 2] and extra["best_metric"] == 0.5


def test_load_report_counts_matched_converted_unmatched_missing(tmp_path, capture_logs):
    src = _model()
    state = dict(src.state_dict())
    state["head.extra"] = torch.zeros(2)  # in the file only
    del state["2.bias"]  # in the model only
    torch.save(state, tmp_path / "partial.pth")
    ckpt = DetectionCheckpointer(_model())
    with capture_logs("rotated_det.checkpoint") as logs:
        ckpt.load(str(tmp_path / "partial.pth"))
    report = ckpt.load_report
    assert report.unmatched == ["head.extra"] and report.missing == ["2.bias"]
    assert report.matched == [k for k in src.state_dict() if k != "2.bias"]
    assert not report.renamed and report.source_format == "as is"
    table = logs.text
    for row, count in (("matched", 8), ("unmatched in the file", 1), ("missing in the model", 1)):
        assert re.search(rf"{row}\s+{count}\b", table), table
    assert "head.extra" in table and "2.bias" in table
