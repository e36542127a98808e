"""tools/visualize_data.py: datasets registered by a config file, names from data kept inside
--output-dir."""

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from script_loading import load_script

from rotated_det.data import DatasetCatalog, MetadataCatalog
from rotated_det.data.datasets.dota import load_dota_instances

REPO = Path(__file__).resolve().parents[2]


def _tool():
    return load_script(REPO / "tools" / "visualize_data.py")


def _tiny_dota(root: Path) -> tuple[Path, Path]:
    """Two 96 x 128 grey images with one plane each, in DOTA layout."""
    (root / "images").mkdir(parents=True)
    (root / "labelTxt").mkdir()
    for i in range(2):
        cv2.imwrite(str(root / "images" / f"img{i}.png"), np.full((96, 128, 3), 90, np.uint8))
        (root / "labelTxt" / f"img{i}.txt").write_text("20 20 70 20 70 50 20 50 plane 0\n")
    return root / "images", root / "labelTxt"


@pytest.fixture
def unregister():
    names = []
    yield names
    for n in names:
        if n in DatasetCatalog.list():
            DatasetCatalog.remove(n)
        if n in MetadataCatalog:
            MetadataCatalog.remove(n)


def _drawn(path: str) -> bool:
    img = cv2.imread(path)
    return (
        img is not None and img.shape == (96, 128, 3) and (np.abs(img.astype(int) - 90) > 30).any()
    )


@pytest.mark.parametrize("with_dataset_flag", [False, True])
def test_annotation_source_draws_a_dataset_registered_by_the_config(
    tmp_path, unregister, with_dataset_flag
):
    images, labels = _tiny_dota(tmp_path / "data")
    name = "test_vis_cfg_registered"
    unregister.append(name)
    config = tmp_path / "my_config.py"
    config.write_text(
        "from rotated_det.data import DatasetCatalog, register_dota_instances\n"
        f"if {name!r} not in DatasetCatalog.list():\n"
        f"    register_dota_instances({name!r}, {{}}, {str(images)!r}, {str(labels)!r},\n"
        "                            class_names=['plane', 'ship'])\n"
        f"dataloader = dict(train=dict(dataset=dict(names={name!r})))\n"
    )
    argv = ["--source", "annotation", "--config-file", str(config)]
    argv += ["--output-dir", str(tmp_path / "vis")]
    if with_dataset_flag:
        argv += ["--dataset", name]
    files = _tool().main(argv)
    assert sorted(os.path.basename(f) for f in files) == ["img0.jpg", "img1.jpg"]
    assert all(_drawn(f) for f in files)


def test_annotation_source_names_the_missing_registration(tmp_path):
    with pytest.raises(SystemExit, match="not registered.*--config-file"):
        _tool().main(
            ["--source", "annotation", "--dataset", "no_such_ds", "--output-dir", str(tmp_path)]
        )


def test_image_ids_from_data_never_leave_the_output_dir(tmp_path, unregister):
    images, labels = _tiny_dota(tmp_path / "data")
    dicts = load_dota_instances(str(images), str(labels), ("plane",))
    hostile = ["../escaped", str(tmp_path / "absolute")]
    for d, image_id in zip(dicts, hostile):
        d["image_id"] = image_id
    name = "test_vis_hostile_ids"
    unregister.append(name)
    DatasetCatalog.register(name, lambda: dicts)
    MetadataCatalog.get(name).set(thing_classes=["plane"])
    out = tmp_path / "sub" / "vis"
    files = _tool().main(["--source", "annotation", "--dataset", name, "--output-dir", str(out)])
    assert len(files) == 2 and all(os.path.dirname(f) == str(out) for f in files)
    assert sorted(os.listdir(out)) == sorted(os.path.basename(f) for f in files)
    assert all(_drawn(f) for f in files)
    # nothing written next to the output folder or at the absolute id
    assert os.listdir(tmp_path / "sub") == ["vis"]
    assert not (tmp_path / "absolute.jpg").exists()
    assert sorted(os.listdir(tmp_path)) == ["data", "sub"]


def test_dataloader_source_escapes_image_ids(tmp_path):
    config = tmp_path / "loader_config.py"
    config.write_text(
        "import torch\n"
        "from rotated_det.config import LazyCall as L\n"
        "from rotated_det.structures import Instances, RotatedBoxes\n"
        "def batches(dataset, mapper):\n"
        "    inst = Instances((64, 64))\n"
        "    inst.gt_boxes = RotatedBoxes(torch.tensor([[32.0, 32.0, 30.0, 10.0, 30.0]]))\n"
        "    inst.gt_classes = torch.tensor([0])\n"
        "    image = torch.full((3, 64, 64), 90, dtype=torch.uint8)\n"
        "    return [[{'image': image, 'instances': inst, 'image_id': '/../../escaped'}]]\n"
        "dataloader = dict(train=L(batches)(dataset=dict(names='unregistered_loader_ds'),\n"
        "                                   mapper=dict(image_format='BGR')))\n"
    )
    out = tmp_path / "vis"
    files = _tool().main(
        ["--source", "dataloader", "--config-file", str(config), "--output-dir", str(out)]
    )
    assert len(files) == 1 and os.path.dirname(files[0]) == str(out)
    assert os.listdir(out) == [os.path.basename(files[0])]
    assert sorted(os.listdir(tmp_path)) == ["loader_config.py", "vis"]
