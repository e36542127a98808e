import pytest

from rotated_det.structures.dota_patch_name import (
    format_patch_name,
    is_patch_name,
    parse_patch_name,
)


def test_parse_examples():
    assert parse_patch_name("P0706__1.0__0___824") == ("P0706", 1.0, 0, 824)
    assert parse_patch_name("P0004__1__0___0") == ("P0004", 1.0, 0, 0)  # DOTA-devkit style rate
    assert parse_patch_name("P1234__0.5__1648___2472.png") == ("P1234", 0.5, 1648, 2472)
    assert parse_patch_name("/a/b/P1__1.5__10___20.jpg") == ("P1", 1.5, 10, 20)
    # names may contain underscores, even double ones
    assert parse_patch_name("my_img__v2__0.5__3___4") == ("my_img__v2", 0.5, 3, 4)
    # a patch of a patch keeps the inner name
    assert parse_patch_name("P0004__1__0___0__1.0__0___0") == ("P0004__1__0___0", 1.0, 0, 0)
    assert parse_patch_name("a__1.0__-5___7") == ("a", 1.0, -5, 7)


def test_format_roundtrip():
    for args in [("P0706", 1.0, 0, 824), ("x_y", 0.5, 12, 0), ("a", 1.5, 1648, 99)]:
        name = format_patch_name(*args)
        assert is_patch_name(name)
        assert parse_patch_name(name) == args
    assert format_patch_name("P0706", 1, 0, 824) == "P0706__1.0__0___824"


@pytest.mark.parametrize("bad", ["P0706", "P0706__1.0__0__824", "P0706__x__0___1", "__1.0__0___1"])
def test_bad_names(bad):
    assert not is_patch_name(bad)
    with pytest.raises(ValueError, match="NAME__RATE__X___Y"):
        parse_patch_name(bad)
