"""rotated_det.utils.file_io.safe_path: names from data stay inside their folder."""

import itertools
import os

import pytest

from rotated_det.utils.file_io import safe_path

HOSTILE = [
    "../x",
    "../../etc/passwd",
    "/abs/x",
    "a/../../b",
    "..",
    ".",
    "C:evil",
    "a\\..\\b",
    ".hidden",
    "a\x00b",
    "%2E.%2Fx",
    "a%2Fb",
    "a/b",
    "a_b",
]


def test_ordinary_names_are_unchanged():
    assert safe_path("out", "P0706", ".jpg") == os.path.join("out", "P0706.jpg")
    assert safe_path("out", 12, ".jpg") == os.path.join("out", "12.jpg")
    assert safe_path("o", "P0706__1.0__0___0") == os.path.join("o", "P0706__1.0__0___0")
    assert safe_path("o", "船 ship-1") == os.path.join("o", "船 ship-1")


@pytest.mark.parametrize("name", HOSTILE)
def test_data_names_stay_directly_inside_the_folder(tmp_path, name):
    folder = tmp_path / "out"
    folder.mkdir()
    path = safe_path(str(folder), name, ".jpg")
    assert os.path.dirname(path) == str(folder)
    base = os.path.basename(path)
    assert not base.startswith(".") and "/" not in base and "\\" not in base and ":" not in base
    with open(path, "w") as f:  # really writable, and really inside
        f.write("x")
    assert os.listdir(folder) == [base]


def test_escaping_is_one_to_one():
    paths = [safe_path("o", n) for n in HOSTILE]
    assert len(set(paths)) == len(HOSTILE)
    for a, b in itertools.combinations(HOSTILE, 2):
        assert safe_path("o", a) != safe_path("o", b)
    assert safe_path("o", "../x") == os.path.join("o", "%2E.%2Fx")


def test_empty_name_and_bad_suffix_are_errors():
    with pytest.raises(ValueError, match="empty name"):
        safe_path("o", "")
    with pytest.raises(ValueError, match="suffix"):
        safe_path("o", "a", "/../x")
