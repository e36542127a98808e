import os
import shutil

import pytest

from rotated_det.config import LazyConfig, instantiate
from rotated_det.data import DatasetCatalog, MetadataCatalog
from rotated_det.data.datasets import builtin
from rotated_det.structures.dota_patch_name import is_patch_name

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_builtin_names_and_metadata():
    names = set(DatasetCatalog.list())
    for v, n in (("v1", 15), ("v15", 16), ("v2", 18)):
        for split in ("train", "val", "trainval", "test"):
            for suffix in ("", "_ss", "_ms"):
                assert f"dota_{v}_{split}{suffix}" in names
        md = MetadataCatalog.get(f"dota_{v}_trainval_ss")
        assert len(md.thing_classes) == n and md.evaluator_type == "dota"
        assert len(md.thing_colors) == n and md.full_dataset_name == f"dota_{v}_trainval"
    for n in (
        "hrsc2016_trainval",
        "hrsc2016_test",
        "hrsc2016_trainval_fine",
        "synthetic_train",
        "synthetic_val",
        "synthetic_train_512",
        "synthetic_val_512",
    ):
        assert n in names
    assert MetadataCatalog.get("hrsc2016_test").thing_classes == ["ship"]
    assert MetadataCatalog.get("hrsc2016_test").evaluator_type == "hrsc"
    assert len(MetadataCatalog.get("synthetic_val_512").thing_colors) == 6
    assert MetadataCatalog.get("synthetic_val_512").full_dataset_name == "synthetic_val"


def test_dota_layout_under_the_env_root(dota_samples, tmp_path, monkeypatch):
    monkeypatch.setenv("ROTATED_DET_DATASETS", str(tmp_path))
    for split in ("train", "val"):
        os.makedirs(tmp_path / "DOTA-v1.0" / split / "images")
        os.makedirs(tmp_path / "DOTA-v1.0" / split / "labelTxt")
    shutil.copy(dota_samples / "images" / "P1888.png", tmp_path / "DOTA-v1.0/train/images")
    shutil.copy(dota_samples / "labelTxt" / "P1888.txt", tmp_path / "DOTA-v1.0/train/labelTxt")
    shutil.copy(dota_samples / "images" / "P0706.png", tmp_path / "DOTA-v1.0/val/images")
    shutil.copy(dota_samples / "labelTxt" / "P0706.txt", tmp_path / "DOTA-v1.0/val/labelTxt")
    shutil.copytree(dota_samples / "unlabeled", tmp_path / "DOTA-v1.0/test/images")
    assert [d["image_id"] for d in DatasetCatalog.get("dota_v1_trainval")] == ["P1888", "P0706"]
    test = DatasetCatalog.get("dota_v1_test")
    assert len(test) == 2 and "annotations" not in test[0]
    with pytest.raises(FileNotFoundError, match="DOTA-v1.5"):
        DatasetCatalog.get("dota_v15_train")


def test_synthetic_is_generated_and_split_on_first_use(tmp_path, monkeypatch):
    monkeypatch.setenv("ROTATED_DET_DATASETS", str(tmp_path))
    monkeypatch.setattr(
        builtin, "SYNTHETIC_ARGS", dict(num_train=2, num_val=1, seed=0, image_size=600)
    )
    patches = DatasetCatalog.get("synthetic_train_512")
    assert len(patches) >= 2 and all(is_patch_name(d["image_id"]) for d in patches)
    assert all(d["height"] == d["width"] == 512 for d in patches)
    full = DatasetCatalog.get("synthetic_train")
    assert [d["image_id"] for d in full] == ["syn_train_0000", "syn_train_0001"]
    assert (tmp_path / "synthetic" / "split_512" / "DONE").is_file()


def test_dota_samples_found_from_env_or_repository(dota_samples, tmp_path, monkeypatch):
    monkeypatch.delenv("ROTATED_DET_SHARED_DATA", raising=False)
    assert builtin.find_dota_samples() == str(dota_samples)  # the repository's tests/data copy
    for env in (dota_samples.parent, dota_samples):  # the folder holding dota_samples/, or itself
        monkeypatch.setenv("ROTATED_DET_SHARED_DATA", str(env))
        assert builtin.find_dota_samples() == str(dota_samples)
    monkeypatch.setenv("ROTATED_DET_SHARED_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"labelTxt/P0706\.txt.*looked in.*"):
        builtin.find_dota_samples()


def test_p0706_is_prepared_once_under_the_env_root(tmp_path, monkeypatch):
    """The P0706 datasets of the quickstart: copied and split on first use, registered once
    (a second call keeps the first registration), metadata naming the full-scene dataset."""
    monkeypatch.setenv("ROTATED_DET_DATASETS", str(tmp_path))
    names = ("dota_p0706", "dota_p0706_512")
    # the catalogs are global: set aside what an earlier test registered, and restore it
    saved = [(c, n, c.pop(n)) for c in (DatasetCatalog, MetadataCatalog) for n in names if n in c]
    try:
        builtin.register_dota_p0706()
        loader = DatasetCatalog["dota_p0706"]
        builtin.register_dota_p0706()
        assert DatasetCatalog["dota_p0706"] is loader
        md = MetadataCatalog.get("dota_p0706_512")
        assert md.thing_classes == ["ship"] and md.full_dataset_name == "dota_p0706"
        assert md.image_root == str(tmp_path / "dota_p0706" / "split_512" / "images")
        assert not (tmp_path / "dota_p0706").exists()  # registering reads and writes nothing
        patches = DatasetCatalog.get("dota_p0706_512")
        assert len(patches) == 9 and all(is_patch_name(d["image_id"]) for d in patches)
        assert (tmp_path / "dota_p0706" / "split_512" / "DONE").is_file()
        assert builtin.prepare_dota_p0706() == str(tmp_path / "dota_p0706")
    finally:
        for c in (DatasetCatalog, MetadataCatalog):
            for n in names:
                c.pop(n, None)
        for c, n, v in saved:
            c[n] = v


def test_data_configs_load_and_instantiate(tmp_path, monkeypatch):
    monkeypatch.setenv("ROTATED_DET_DATASETS", str(tmp_path))
    monkeypatch.setattr(
        builtin, "SYNTHETIC_ARGS", dict(num_train=2, num_val=1, seed=0, image_size=600)
    )
    for f in ("synthetic", "dota", "hrsc"):
        cfg = LazyConfig.load(os.path.join(REPO, "configs", "common", "data", f"{f}.py"))
        assert {"train", "test", "evaluator"} <= set(cfg.dataloader.keys())
    cfg = LazyConfig.load(os.path.join(REPO, "configs", "common", "data", "synthetic.py"))
    cfg.dataloader.train.num_workers = 0
    cfg.dataloader.test.num_workers = 0
    batch = next(iter(instantiate(cfg.dataloader.train)))
    assert len(batch) == 4 and batch[0]["image"].shape[0] == 3
    assert all(len(x["instances"]) > 0 for x in batch)
    test = instantiate(cfg.dataloader.test)
    assert len(test) == len(DatasetCatalog.get("synthetic_val_512"))
    ev = instantiate(cfg.dataloader.evaluator)
    assert type(ev).__name__ == "DOTAEvaluator"
