"""tools/lazyconfig_train_net.py end to end in subprocesses: train, --eval-only, --resume (killed
with SIGKILL at any moment, possibly mid-checkpoint-write), and --resume after the kill."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(REPO, "tools", "lazyconfig_train_net.py")
HERE = os.path.dirname(os.path.abspath(__file__))

pytestmark = pytest.mark.slow  # trains in subprocesses

CONFIG = """
from rotated_det.config import LazyCall as L
from rotated_det.solver import get_default_optimizer_params, multistep_with_warmup

from {common}.train import train
from {common}.optim import SGD as optimizer
from {common}.schedule import multistep

model = L("engine_tiny_task.TinyRegressor")(hidden=8)
dataloader = dict(
    train=L("engine_tiny_task.StatefulTrainLoader")(batch_size=8),
    test=L("engine_tiny_task.TestLoader")(num_batches=2),
    evaluator=L("engine_tiny_task.MSEEvaluator")(),
)
optimizer.lr = 0.05
train.max_iter = 8
train.output_dir = {out!r}
train.device = "cpu"
train.eval_period = 0
train.log_period = 2
train.checkpointer.period = 4
train.tensorboard = False
train.seed = 1
lr_multiplier = multistep(1000, steps=[800], warmup_iters=2)
"""


def _write_config(tmp_path) -> str:
    # the config imports configs/common through a relative import, as real configs do
    cfg_dir = tmp_path / "configs" / "exp"
    cfg_dir.mkdir(parents=True)
    common = os.path.join(REPO, "configs", "common")
    os.symlink(common, tmp_path / "configs" / "common")
    path = cfg_dir / "tiny.py"
    path.write_text(textwrap.dedent(CONFIG.format(common="..common", out=str(tmp_path / "out"))))
    return str(path)


def _cmd(config, *args):
    return [sys.executable, TOOL, "--config-file", config, *args]


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([HERE, REPO, env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    return env


def _run(cmd, timeout=120):
    p = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"{cmd} failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p.stdout + p.stderr


def test_train_eval_only_resume_and_kill(tmp_path):
    config = _write_config(tmp_path)
    out = tmp_path / "out"

    # 1) train 8 iterations
    log = _run(_cmd(config))
    assert (out / "model_final.pth").exists() and (out / "model_0000003.pth").exists()
    assert "regression" in log and "'count': 8.0" in log  # final evaluation ran
    final = torch.load(out / "model_final.pth", weights_only=True)
    assert final["iteration"] == 7
    assert (out / "config.yaml").exists()

    # 2) --eval-only with those weights: same metric as the end of training
    log_eval = _run(_cmd(config, "--eval-only", f"train.init_checkpoint={out / 'model_final.pth'}"))
    mse_train = float(log.split("'mse': ")[-1].split(",")[0].rstrip("}"))
    mse_eval = float(log_eval.split("'mse': ")[-1].split(",")[0].rstrip("}"))
    assert abs(mse_train - mse_eval) < 1e-9
    assert "Starting training" not in log_eval

    # 3) --resume: continues at 8 towards a far max_iter, checkpointing every iteration;
    #    SIGKILLed mid-way
    proc = subprocess.Popen(
        _cmd(config, "--resume", "train.max_iter=100000", "train.checkpointer.period=1",
             "train.checkpointer.max_to_keep=3", "train.log_period=1000"),
        env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.time() + 90
    try:
        while time.time() < deadline:
            tag = (out / "last_checkpoint").read_text().strip()
            if tag.startswith("model_0") and tag >= "model_0000030.pth":
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the long run never reached iteration 30")
        time.sleep(0.13)  # land anywhere, also inside a checkpoint write
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with open(out / "log.txt") as f:
        assert "Resuming at iteration 8" in f.read()
    tag = (out / "last_checkpoint").read_text().strip()
    killed_at = int(tag.split("_")[1].split(".")[0])
    assert killed_at >= 30

    # 4) resume after the kill: accepts the last checkpoint, continues right after it
    log_after = _run(_cmd(config, "--resume", f"train.max_iter={killed_at + 4}"))
    assert f"Resuming at iteration {killed_at + 1}" in log_after
    assert torch.load(out / "model_final.pth", weights_only=True)["iteration"] == killed_at + 3
    with open(out / "metrics.json") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    assert rows[-1]["iteration"] >= killed_at + 3
