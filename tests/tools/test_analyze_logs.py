"""tools/analyze_logs.py on two small metrics.json files it is given: the series it plots are the
logged values, one curve per run that logged a key, missing keys and bad lines reported."""

import json
import logging

import cv2
import numpy as np
import pytest
from script_loading import load_script

C0, C1 = (0x1F, 0x77, 0xB4), (0xFF, 0x7F, 0x0E)  # matplotlib's first two line colours (RGB)


def _write(path, rows, extra_lines=()):
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(r) for r in rows] + list(extra_lines)
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def runs(tmp_path):
    a = [
        {"iteration": 9, "total_loss": 2.0, "loss_cls": 1.5, "lr": 0.001, "time": 0.5},
        {"iteration": 19, "total_loss": 1.0, "loss_cls": 0.7, "lr": 0.002, "time": 0.4},
        {"iteration": 19, "rbox/mAP": 40.0, "rbox/AP50": 40.0},
        {"iteration": 29, "total_loss": 0.5, "loss_cls": 0.3, "lr": 0.002, "time": 0.45},
    ]
    b = [
        {"iteration": 9, "total_loss": 3.0, "loss_cls": 2.0, "time": 0.9},
        {"iteration": 19, "total_loss": 9.9, "loss_cls": 9.9, "time": 9.9},  # replaced below
        {"iteration": 19, "total_loss": 2.5, "loss_cls": 1.0, "time": 0.8},
        {"iteration": 29, "rbox/mAP": 55.0, "rbox/AP50": 55.0},
    ]
    _write(tmp_path / "runA" / "metrics.json", a)
    _write(tmp_path / "runB" / "metrics.json", b, extra_lines=['{"iteration": 3', "[1, 2]"])
    return tmp_path


def _has_colour(img_bgr, rgb, tol=40):
    diff = np.abs(img_bgr[..., ::-1].astype(int) - np.array(rgb)).max(axis=-1)
    return int((diff < tol).sum())


def test_series_are_the_logged_values_and_pngs_have_one_curve_per_run(runs, caplog):
    tool = load_script("tools/analyze_logs.py")
    out = runs / "plots"
    keys = ["total_loss", "lr", "rbox/mAP", "time", "nonexistent_key"]
    with caplog.at_level(logging.WARNING):
        written, series, missing = tool.main(
            [str(runs / "runA"), str(runs / "runB" / "metrics.json"), "--keys", *keys,
             "--output", str(out)]
        )  # fmt: skip
    assert sorted(series) == ["lr", "rbox/mAP", "time", "total_loss"]
    assert missing == ["nonexistent_key", "lr (not in runB)"]

    def curves(key):
        return {label: (it.tolist(), val.tolist()) for label, it, val in series[key]}

    assert curves("total_loss") == {
        "runA": ([9, 19, 29], [2.0, 1.0, 0.5]),
        "runB": ([9, 19], [3.0, 2.5]),  # iteration 19 logged twice: the later row
    }
    assert curves("rbox/mAP") == {"runA": ([19], [40.0]), "runB": ([29], [55.0])}
    assert curves("lr") == {"runA": ([9, 19, 29], [0.001, 0.002, 0.002])}
    assert "skipped 2 line(s)" in caplog.text and "first: line 5" in caplog.text
    assert "1 iteration(s) logged twice" in caplog.text
    assert "Not plotted: nonexistent_key" in caplog.text

    names = sorted(p.name for p in out.iterdir())
    assert names == ["lr.png", "rbox_mAP.png", "time.png", "total_loss.png"]
    assert sorted(written) == sorted(str(p) for p in out.iterdir())
    two = cv2.imread(str(out / "total_loss.png"))
    one = cv2.imread(str(out / "lr.png"))
    assert two is not None and one is not None and two.shape[2] == 3
    assert _has_colour(two, C0) > 50 and _has_colour(two, C1) > 50  # two runs' curves
    assert _has_colour(one, C0) > 50 and _has_colour(one, C1) == 0  # runB has no lr


def test_default_keys_patterns_and_overwrite(runs):
    tool = load_script("tools/analyze_logs.py")
    rows = tool.load_metrics(tool.metrics_path(str(runs / "runA")))
    series, missing = tool.collect_series([("baseline", rows)], tool.DEFAULT_KEYS)
    assert sorted(series) == ["loss_cls", "lr", "rbox/AP50", "rbox/mAP", "time", "total_loss"]
    assert missing == ["*/AP75"]
    assert [label for label, _, _ in series["loss_cls"]] == ["baseline"]

    out = runs / "plots"
    argv = [str(runs / "runA"), "--output", str(out), "--keys", "lr"]
    tool.main(argv)
    with pytest.raises(SystemExit, match="exist already; pass --overwrite"):
        tool.main(argv)
    tool.main([*argv, "--overwrite"])
    with pytest.raises(SystemExit, match="2 labels for 1 runs"):
        tool.main([*argv, "--labels", "x", "y"])
    with pytest.raises(SystemExit, match="No metrics file"):
        tool.main([str(runs / "nothing_here"), "--output", str(out)])
