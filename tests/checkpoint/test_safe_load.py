"""Checkpoint files are read without running code they carry, unless the user opts in."""

import builtins
import os
import pickle
import struct

import numpy as np
import pytest
import torch
from torch import nn

from rotated_det.checkpoint import DetectionCheckpointer, UnsafeCheckpointError
from rotated_det.checkpoint.safe_load import load_checkpoint_file


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))


class ShellPayload:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class ExecPayload:
    """Unpickling this runs Python code (a callable named in __reduce__) that creates ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.exec, (f"open({self.marker!r}, 'w').close()",))


PAYLOADS = {"os.system": ShellPayload, "builtins.exec": ExecPayload}


def _write_malicious(path, payload, marker, state: dict) -> None:
    """A checkpoint holding real weights plus a payload, as torch.save or pickle would write."""
    if path.suffix == ".pkl":
        blobs = {k: v.numpy() for k, v in state.items()}
        with open(path, "wb") as f:
            pickle.dump({"model": blobs, "__author__": payload(marker)}, f)
    else:
        torch.save({"model": state, "meta": payload(marker)}, path)


@pytest.mark.parametrize("payload", sorted(PAYLOADS))
@pytest.mark.parametrize("suffix", [".pth", ".pkl"])
def test_malicious_checkpoint_is_refused_without_running_its_payload(tmp_path, suffix, payload):
    marker = tmp_path / "payload_ran"
    path = tmp_path / f"weights{suffix}"
    _write_malicious(path, PAYLOADS[payload], marker, _model().state_dict())
    dst = _model()
    before = {k: v.clone() for k, v in dst.state_dict().items()}
    with pytest.raises(UnsafeCheckpointError) as e:
        DetectionCheckpointer(dst).resume_or_load(str(path), resume=False)
    assert not marker.exists(), "the payload ran"
    msg = str(e.value)
    expected_global = {"os.system": "system", "builtins.exec": "builtins.exec"}[payload]
    assert str(path) in msg and expected_global in msg
    assert "train.allow_unsafe_checkpoint=True" in msg and "allow_unsafe=True" in msg
    assert "run arbitrary code" in msg
    for k, v in dst.state_dict().items():  # nothing was loaded
        torch.testing.assert_close(v, before[k])


@pytest.mark.parametrize("suffix", [".pth", ".pkl"])
def test_malicious_checkpoint_loads_with_explicit_opt_in(tmp_path, suffix, capture_logs):
    marker = tmp_path / "payload_ran"
    path = tmp_path / f"weights{suffix}"
    src = _model()
    for p in src.parameters():
        p.data.normal_()
    _write_malicious(path, ShellPayload, marker, src.state_dict())
    dst = _model()
    with capture_logs("rotated_det.checkpoint") as logs:
        DetectionCheckpointer(dst, allow_unsafe=True).resume_or_load(str(path), resume=False)
    assert marker.exists()  # the user asked for it: the file's code ran
    assert "allow_unsafe" in logs.text and "system" in logs.text
    for k, v in src.state_dict().items():
        torch.testing.assert_close(dst.state_dict()[k], v)


def _msra_blobs() -> dict:
    rng = np.random.default_rng(0)
    return {
        "conv1_w": rng.standard_normal((64, 3, 7, 7)).astype(np.float32),
        "res_conv1_bn_s": rng.standard_normal(64).astype(np.float32),
        "res2_0_branch2a_w": rng.standard_normal((64, 64, 1, 1)).astype(np.float32),
        "fc1000_b": rng.standard_normal(1000).astype(np.float32),
    }


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
@pytest.mark.parametrize("under_blobs", [False, True])
def test_msra_style_pkl_loads_safely(tmp_path, protocol, under_blobs):
    blobs = _msra_blobs()
    path = tmp_path / "R-50.pkl"
    with open(path, "wb") as f:
        pickle.dump({"blobs": blobs} if under_blobs else blobs, f, protocol=protocol)
    data = load_checkpoint_file(str(path))
    got = data["blobs"] if under_blobs else data
    assert sorted(got) == sorted(blobs)
    for k, v in blobs.items():
        assert got[k].dtype == np.float32
        np.testing.assert_array_equal(got[k], v)


class _Python2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 ``str`` opcodes (BINSTRING), as the Caffe2 / MSRA files do."""

    def save_bytes(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[bytes] = save_bytes


def test_python2_numpy1_pickle_loads(tmp_path):
    # what Detectron's R-50.pkl looks like: protocol 2, numpy.core names, str data (latin-1)
    blobs = {"conv1_w": np.arange(6, dtype=np.float32).reshape(2, 3), "lr": np.float32(0.5)}
    path = tmp_path / "py2.pkl"
    with open(path, "wb") as f:
        _Python2Pickler(f, protocol=2).dump(blobs)
    raw = path.read_bytes().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray" in raw and pickle.SHORT_BINSTRING in raw
    path.write_bytes(raw)
    got = load_checkpoint_file(str(path))
    np.testing.assert_array_equal(got["conv1_w"], blobs["conv1_w"])
    assert got["lr"] == np.float32(0.5)


def test_pkl_holding_torch_objects_needs_opt_in(tmp_path):
    # a .pkl written by pickle.dump of torch tensors names torch's rebuild helpers: code
    path = tmp_path / "tensors.pkl"
    with open(path, "wb") as f:
        pickle.dump({"w": torch.ones(2)}, f)
    with pytest.raises(UnsafeCheckpointError, match=r"tensors\.pkl.*torch"):
        load_checkpoint_file(str(path))
    assert torch.equal(load_checkpoint_file(str(path), allow_unsafe=True)["w"], torch.ones(2))


def test_train_config_has_the_opt_in_key_off_by_default():
    from rotated_det.config import LazyConfig

    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    cfg = LazyConfig.load(os.path.join(repo, "configs", "common", "train.py"))
    assert cfg.train.allow_unsafe_checkpoint is False
