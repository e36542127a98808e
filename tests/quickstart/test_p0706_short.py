"""The real-data config (configs/quickstart/dota_p0706_*.py) on the real DOTA scene P0706.

- parsing and splitting: the full scene has 536 objects of which the 5 "harbor" ones are skipped
  (counted), leaving 531 ships (6 difficult); the 512 px split gives 9 patches;
- oracle: the patches' own labels, fed to the evaluator as detections and merged back, score
  AP50 = 100 on the full scene (splitting, patch names, merging and evaluation agree);
- a shortened training run (16 iterations) through tools/lazyconfig_train_net.py: every log
  period's losses are finite, and the merged evaluation returns a finite AP50 for "ship".

Reads tests/data/dota_samples (or $ROTATED_DET_SHARED_DATA); fails if it is missing.
"""

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from rotated_det.config import LazyConfig
from rotated_det.data import DatasetCatalog, MetadataCatalog
from rotated_det.evaluation import DOTAEvaluator
from rotated_det.structures import Instances, RotatedBoxes
from sample_data import DOTA_SAMPLES, dota_samples_dir

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLES = str(DOTA_SAMPLES)
DATA_CONFIG = os.path.join(REPO, "configs", "quickstart", "dota_p0706_data.py")
CONFIG = os.path.join(REPO, "configs", "quickstart", "dota_p0706_rotated_faster_rcnn_R_18_FPN.py")


def _check_samples():
    dota_samples_dir()


@pytest.fixture(scope="module")
def datasets_root(tmp_path_factory):
    _check_samples()
    root = str(tmp_path_factory.mktemp("datasets"))
    old = os.environ.get("ROTATED_DET_DATASETS")
    os.environ["ROTATED_DET_DATASETS"] = root
    for name in ("dota_p0706", "dota_p0706_512"):  # registered by an earlier load: fresh paths
        if name in DatasetCatalog.list():
            DatasetCatalog.remove(name)
        if name in MetadataCatalog.list():
            MetadataCatalog.remove(name)
    LazyConfig.load(DATA_CONFIG)  # registers dota_p0706 and dota_p0706_512
    yield root
    if old is None:
        os.environ.pop("ROTATED_DET_DATASETS")
    else:
        os.environ["ROTATED_DET_DATASETS"] = old


def test_parse_and_split_counts(datasets_root):
    full = DatasetCatalog.get("dota_p0706")
    assert len(full) == 1
    anns = full[0]["annotations"]
    with open(os.path.join(SAMPLES, "labelTxt", "P0706.txt")) as f:
        lines = [ln.split() for ln in f if len(ln.split()) >= 9]
    harbors = sum(1 for ln in lines if ln[8] == "harbor")
    assert len(lines) == 536 and harbors == 5
    assert len(anns) == 536 - harbors
    assert sum(a["difficult"] for a in anns) == 6
    assert (full[0]["height"], full[0]["width"]) == (1182, 1111)
    patches = DatasetCatalog.get("dota_p0706_512")
    # windows at x in {0, 384, 599}, y in {0, 384, 670}
    assert len(patches) == 9
    assert all((d["height"], d["width"]) == (512, 512) for d in patches)
    # every ship lies whole in some patch (overlap 128 > longest ship), so pieces >= objects
    assert sum(len(d["annotations"]) for d in patches) >= len(anns)


def test_oracle_patch_labels_merge_to_ap_100(datasets_root):
    patches = DatasetCatalog.get("dota_p0706_512")
    evaluator = DOTAEvaluator(
        "dota_p0706_512",
        merge_patches=True,
        full_dataset_name="dota_p0706",
        iou_thresholds=[0.5],
        plot_pr_curves=False,
        distributed=False,
    )
    evaluator.reset()
    for d in patches:
        boxes = torch.tensor([a["bbox"] for a in d["annotations"]], dtype=torch.float32)
        inst = Instances((d["height"], d["width"]))
        inst.pred_boxes = RotatedBoxes(boxes.reshape(-1, 5))
        # a ship cut by a patch border is also whole in a neighbouring patch: rank whole copies
        # (larger) first so that the merging NMS keeps them
        inst.scores = (boxes[:, 2] * boxes[:, 3]) / 1e4 if len(boxes) else torch.zeros(0)
        inst.pred_classes = torch.zeros(len(boxes), dtype=torch.int64)
        evaluator.process([d], [{"instances": inst}])
    res = evaluator.evaluate()["rbox"]
    assert res["AP-ship"] == pytest.approx(100.0, abs=0.01), res


def _run_short_training(out_dir: str, root: str, iters: int) -> None:
    env = dict(os.environ, ROTATED_DET_DATASETS=root, PYTHONUNBUFFERED="1")
    if "OMP_NUM_THREADS" not in env and os.getloadavg()[0] >= (os.cpu_count() or 1):
        env["OMP_NUM_THREADS"] = "1"  # on a busy machine OpenMP threads spin-wait for each other
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [
        sys.executable,
        os.path.join(REPO, "tools", "lazyconfig_train_net.py"),
        "--config-file",
        CONFIG,
        f"train.output_dir={out_dir}",
        f"train.max_iter={iters}",
        "train.log_period=4",
        "train.checkpointer.period=1000",
        "train.tensorboard=False",
        "dataloader.train.num_workers=0",
        "dataloader.test.num_workers=0",
    ]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.mark.slow  # trains in a subprocess
def test_short_training_logs_finite_losses_and_ap(datasets_root, tmp_path):
    out = str(tmp_path / "out")
    _run_short_training(out, datasets_root, iters=16)
    with open(os.path.join(out, "metrics.json")) as f:
        records = [json.loads(line) for line in f if line.strip()]
    # A pipeline check, not a learning check: 16 iterations inside the 50-iteration warm-up are
    # too few for the loss to fall reliably (last/first logged loss over train.seed 0-4: 0.81 to
    # 1.35). Learning is asserted with margins in tests/modeling/test_overfit.py and measured in
    # full by dev/train_p0706.sh.
    logged = [(r["iteration"], r["total_loss"]) for r in records if "total_loss" in r]
    assert [it for it, _ in logged] == [3, 7, 11, 15], records  # every log period, once each
    assert all(math.isfinite(v) and v > 0 for _, v in logged), logged
    evals = [r for r in records if "rbox/AP-ship" in r]
    assert evals, f"no evaluation in metrics.json: {records[-1]}"
    ap = evals[-1]["rbox/AP-ship"]
    assert math.isfinite(ap) and 0.0 <= ap <= 100.0
    assert os.path.isfile(os.path.join(out, "model_final.pth"))
