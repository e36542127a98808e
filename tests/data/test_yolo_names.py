"""read_yolo_names: the class names of an Ultralytics dataset YAML, and what is wrong with one
that has none."""

import pytest

from rotated_det.data.datasets.yolo_obb import read_yolo_names


def test_names_as_list_or_index_map(tmp_path):
    (tmp_path / "a.yaml").write_text("path: x\nnames: [ship, plane]\n")
    (tmp_path / "b.yaml").write_text("names:\n  1: plane\n  0: ship\n")
    assert read_yolo_names(str(tmp_path / "a.yaml")) == ["ship", "plane"]
    assert read_yolo_names(str(tmp_path / "b.yaml")) == ["ship", "plane"]


@pytest.mark.parametrize("text", ["path: x\n", "- ship\n- plane\n"])
def test_a_yaml_without_names_mapping_is_named(tmp_path, text):
    (tmp_path / "data.yaml").write_text(text)
    with pytest.raises(KeyError, match="data.yaml has no 'names' entry"):
        read_yolo_names(str(tmp_path / "data.yaml"))
