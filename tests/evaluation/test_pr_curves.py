"""save_pr_curves: one file per class, named from the class inside the output folder."""

import os

import numpy as np

from rotated_det.evaluation.pr_curves import save_pr_curves


def test_distinct_class_names_give_distinct_files_inside_the_folder(tmp_path):
    # a regex sanitiser maps all three to "pr_small_vehicle.png"; the last would overwrite the
    # others, and a separator in a name must not leave the folder
    names = ["small vehicle", "small/vehicle", "small-vehicle", "../ship"]
    curve = (np.array([0.5, 1.0]), np.array([1.0, 0.5]))
    paths = save_pr_curves(str(tmp_path), names, [curve] * 4, [0.75] * 4, 0.5)
    assert len(set(paths)) == len(paths) == 5
    assert paths[-1] == os.path.join(str(tmp_path), "pr_all.png")
    for p in paths:
        assert os.path.dirname(p) == str(tmp_path) and os.path.isfile(p)
    assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(p) for p in paths)
