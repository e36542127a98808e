"""Task1 result files are named after classes: a class name cannot send them elsewhere."""

import numpy as np
import pytest

from rotated_det.evaluation.dota_submission import write_task1_results


@pytest.mark.parametrize("cls", ["/../../escaped", "a\\..\\b", "two words", ""])
def test_write_task1_results_refuses_class_names_that_are_not_file_names(tmp_path, cls):
    out = tmp_path / "a" / "task1"
    one = {"image_names": ["P0001"], "scores": np.array([0.9]), "polys": np.zeros((1, 8))}
    with pytest.raises(ValueError, match="cannot be used in a Task1 file name"):
        write_task1_results({"plane": one, cls: one}, str(out), zip_path="")
    assert list(tmp_path.rglob("*")) == []  # nothing written, anywhere


def test_write_task1_results_writes_ordinary_class_names(tmp_path):
    one = {"image_names": ["P0001"], "scores": np.array([0.9]), "polys": np.zeros((1, 8))}
    write_task1_results({"large-vehicle": one}, str(tmp_path / "t"), zip_path="")
    assert (tmp_path / "t" / "Task1_large-vehicle.txt").read_text().startswith("P0001 0.900000")
