"""Task1Writer / read_task1_results: exact line format, zip, round trip, errors."""

import zipfile

import numpy as np
import pytest

from rotated_det.evaluation.dota_submission import Task1Writer, read_task1_results


def test_line_format_zip_and_round_trip(tmp_path):
    out = tmp_path / "task1"
    with Task1Writer(str(out), ["plane", "ship"]) as w:
        # Axis-aligned 4 x 2 box at (10, 20): corners (8, 19), (12, 19), (12, 21), (8, 21).
        w.add("dir/P0001.png", np.array([[10.0, 20.0, 4.0, 2.0, 0.0]]), [0.5], [1])
        w.add("P0002", np.zeros((0, 5)), [], [])
        w.add("P0003__1.0__0___824", np.array([[1.0, 1.0, 2.0, 2.0, 0.0]] * 2), [0.25, 1], [0, 0])
    assert (out / "Task1_ship.txt").read_text() == (
        "P0001 0.500000 8.00 19.00 12.00 19.00 12.00 21.00 8.00 21.00\n"
    )
    plane = (out / "Task1_plane.txt").read_text().splitlines()
    assert [line.split()[:2] for line in plane] == [
        ["P0003__1.0__0___824", "0.250000"],
        ["P0003__1.0__0___824", "1.000000"],
    ]
    assert w.num_images == 3 and w.num_detections == 3
    with zipfile.ZipFile(str(out) + ".zip") as z:
        assert sorted(z.namelist()) == ["Task1_plane.txt", "Task1_ship.txt"]
        assert z.read("Task1_ship.txt").decode() == (out / "Task1_ship.txt").read_text()
    back = read_task1_results(str(out))
    np.testing.assert_allclose(back["ship"]["polys"], [[8, 19, 12, 19, 12, 21, 8, 21]])
    np.testing.assert_allclose(back["plane"]["scores"], [0.25, 1.0])


def test_writer_errors(tmp_path):
    with pytest.raises(ValueError, match="cannot be used in a Task1 file name"):
        Task1Writer(str(tmp_path / "a"), ["small vehicle"])
    w = Task1Writer(str(tmp_path / "b"), ["plane"], zip_path="")
    with pytest.raises(ValueError, match=r"class ids must lie in \[0, 1\)"):
        w.add("P1", np.zeros((1, 5)), [1.0], [3])
    assert w.close() is None
    with pytest.raises(RuntimeError, match="after close"):
        w.add("P1", np.zeros((0, 5)), [], [])
