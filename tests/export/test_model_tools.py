"""tools/analyze_model.py and tools/benchmark.py on small configs, with hand-worked references."""

import os

import pytest
import torch
from script_loading import load_script
from torch import nn

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.dirname(os.path.abspath(__file__))


def load_tool(name):
    return load_script(os.path.join(REPO, "tools", f"{name}.py"))


class LinearLossModel(nn.Module):
    """Training: {"loss_l2": mean squared output}; inference: one Instances-free dict per image."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 1)

    def forward(self, batched_inputs):
        x = torch.stack([d["image"].float().mean(dim=(1, 2)) for d in batched_inputs])
        y = self.lin(x)
        if self.training:
            return {"loss_l2": (y**2).mean()}
        return [{"value": v} for v in y]


def make_batches(num_batches=4, batch_size=3, size=16):
    g = torch.Generator().manual_seed(0)
    return [
        [{"image": torch.rand(3, size, size, generator=g) * 255} for _ in range(batch_size)]
        for _ in range(num_batches)
    ]


def write_config(path, body):
    path.write_text(f"import sys\nsys.path.insert(0, {HERE!r})\n" + body)
    return str(path)


def test_analyze_model_counts_rotated_roi_align_and_lists_nms(tmp_path, capsys):
    cfg = write_config(
        tmp_path / "tiny.py",
        "from rotated_det.config import LazyCall as L\n"
        "from tiny_detector import TinyRotatedDetector\n"
        "model = L(TinyRotatedDetector)(num_classes=3, topk=60)\n",
    )
    res = load_tool("analyze_model").main(
        [
            "--config-file",
            cfg,
            "--tasks",
            "flop",
            "parameter",
            "structure",
            "--input-size",
            "128",
            "160",
        ]
    )
    flop = res["flop"]
    # 60 rotated RoIs x 16 channels x 3 x 3 bins x (2 x 2 samples) x 4 multiply-adds.
    assert flop["per_module"]["model.pool"] == 60 * 16 * 9 * 4 * 4
    # Stem conv1: 16 x 3 x 3 x 3 multiply-adds per output pixel, 64 x 80 outputs.
    assert flop["per_module"]["model.stem.0"] == 16 * 27 * 64 * 80
    assert flop["uncounted"]["rotated_det::batched_nms_rotated"] == 1
    assert flop["total"] >= flop["per_module"]["model.stem.0"] + flop["per_module"]["model.pool"]
    from tiny_detector import TinyRotatedDetector

    n = sum(p.numel() for p in TinyRotatedDetector().parameters())
    assert res["parameter"]["total"] == n
    assert "ROIAlignRotated" in res["structure"]
    out = capsys.readouterr().out
    assert "Rotated ops not counted" in out and "rotated_det::batched_nms_rotated: 1" in out


@pytest.mark.parametrize("task", ["data", "train", "eval"])
def test_benchmark_tasks_count_iterations_and_images(tmp_path, task):
    cfg = write_config(
        tmp_path / "bench.py",
        "from rotated_det.config import LazyCall as L\n"
        "import torch\n"
        "from test_model_tools import LinearLossModel, make_batches\n"
        "model = L(LinearLossModel)()\n"
        "dataloader = dict(train=L(make_batches)(num_batches=50, batch_size=3),\n"
        "                  test=L(make_batches)(num_batches=2, batch_size=2))\n"
        "optimizer = L(torch.optim.SGD)(params=None, lr=1e-6)\n"
        "train = dict(device='cpu', init_checkpoint='')\n",
    )
    res = load_tool("benchmark").main(
        ["--config-file", cfg, "--task", task, "--num-iter", "7", "--warmup", "2"]
    )
    assert res["task"] == task and res["iterations"] == 7
    per_batch = 2 if task == "eval" else 3
    assert res["images_per_s"] == pytest.approx(res["iter_per_s"] * per_batch)
    assert res["seconds"] > 0
