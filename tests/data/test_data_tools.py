"""tools/generate_synthetic.py and tools/visualize_data.py, run in-process."""

import json
import os
import pickle
from pathlib import Path

import cv2
import numpy as np
from script_loading import load_script

from rotated_det.data import DatasetCatalog, MetadataCatalog, register_dota_instances
from rotated_det.data.datasets import builtin

REPO = Path(__file__).resolve().parents[2]


def _tool(name):
    return load_script(REPO / "tools" / f"{name}.py")


def test_generate_synthetic_tool(tmp_path, capsys):
    tool = _tool("generate_synthetic")
    s = tool.main(
        [
            "--root",
            str(tmp_path / "syn"),
            "--num-train",
            "2",
            "--num-val",
            "1",
            "--image-size",
            "520",
            "--seed",
            "5",
        ]
    )
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["train"]["images"] == 2 and s["val"]["images"] == 1
    assert (tmp_path / "syn" / "split_512" / "DONE").is_file()
    assert len(os.listdir(tmp_path / "syn" / "split_512" / "train" / "labelTxt")) >= 2
    tool.main(
        ["--root", str(tmp_path / "nosplit"), "--num-train", "1", "--num-val", "0", "--no-split"]
    )
    assert not (tmp_path / "nosplit" / "split_512").exists()


def test_visualize_annotations(dota_samples, tmp_path):
    name = "test_vis_dota_samples"
    register_dota_instances(name, {}, str(dota_samples / "images"), str(dota_samples / "labelTxt"))
    try:
        files = _tool("visualize_data").main(
            [
                "--source",
                "annotation",
                "--dataset",
                name,
                "--output-dir",
                str(tmp_path),
                "--num-images",
                "2",
            ]
        )
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    assert len(files) == 2
    for f in files:
        drawn = cv2.imread(f)
        stem = os.path.splitext(os.path.basename(f))[0]
        orig = cv2.imread(str(dota_samples / "images" / f"{stem}.png"))
        assert drawn.shape == orig.shape
        assert np.abs(drawn.astype(int) - orig).mean() > 0.5  # boxes were drawn


def test_visualize_dataloader(tmp_path, monkeypatch):
    monkeypatch.setenv("ROTATED_DET_DATASETS", str(tmp_path / "ds"))
    monkeypatch.setattr(
        builtin, "SYNTHETIC_ARGS", dict(num_train=2, num_val=1, seed=0, image_size=600)
    )
    files = _tool("visualize_data").main(
        [
            "--source",
            "dataloader",
            "--config-file",
            str(REPO / "configs" / "common" / "data" / "synthetic.py"),
            "--output-dir",
            str(tmp_path / "vis"),
            "--num-images",
            "3",
            "dataloader.train.num_workers=0",
        ]
    )
    assert len(files) == 3 and all(cv2.imread(f).shape == (512, 512, 3) for f in files)


def test_metadata_pickles():
    md = MetadataCatalog.get("synthetic_train")
    back = pickle.loads(pickle.dumps(md))
    assert back.thing_classes == md.thing_classes and back.name == "synthetic_train"
