"""The DOTA label format: class lists, the parser on the real sample labels and on malformed,
headerless, 9-field and byte-order-marked files."""

import logging

import numpy as np
import pytest

from rotated_det.structures.dota_format import (
    DOTA_V1_CLASSES,
    DOTA_V2_CLASSES,
    DOTA_V15_CLASSES,
    parse_dota_label_file,
    parse_dota_label_text,
)


def test_class_lists():
    assert len(DOTA_V1_CLASSES) == 15 and len(DOTA_V15_CLASSES) == 16
    assert len(DOTA_V2_CLASSES) == 18
    assert DOTA_V15_CLASSES[-1] == "container-crane"
    assert DOTA_V2_CLASSES[-2:] == ("airport", "helipad")
    assert len(set(DOTA_V2_CLASSES)) == 18


def test_parse_p0706_real_labels(dota_samples):
    path = dota_samples / "labelTxt" / "P0706.txt"
    labels = parse_dota_label_file(str(path))
    lines = [ln.split() for ln in path.read_text().splitlines()[2:] if ln.strip()]
    assert len(labels) == len(lines) == 536
    assert labels.header == {"imagesource": "GoogleEarth", "gsd": "0.255589285596"}
    assert labels.difficult.sum() == sum(ln[9] == "1" for ln in lines)
    np.testing.assert_array_equal(labels.polys[0], [1054, 1028, 1063, 1011, 1111, 1040, 1112, 1062])
    assert labels.class_names == [ln[8] for ln in lines]
    assert set(labels.class_names) == {"ship", "harbor"}


def test_header_optional_and_nine_token_lines():
    lab = parse_dota_label_text("1 2 3 2 3 4 1 4 plane\n5 6 7 6 7 8 5 8 ship 1\n")
    assert lab.header == {} and list(lab.difficult) == [0, 1]
    lab = parse_dota_label_text("imagesource:GF\ngsd:null\n\n1 2 3 2 3 4 1 4 plane 0\n")
    assert lab.header == {"imagesource": "GF", "gsd": "null"} and len(lab) == 1
    assert parse_dota_label_text("").polys.shape == (0, 8)


def test_malformed_line_names_file_and_line(tmp_path, caplog):
    p = tmp_path / "x.txt"
    p.write_text("gsd:1\n1 2 3 2 3 4 1 4 plane 0\n1 2 3 plane 0\n1 2 3 2 3 4 1 4 ship 0\n")
    with pytest.raises(ValueError, match=r"x\.txt:3: malformed DOTA label line"):
        parse_dota_label_file(str(p))
    with caplog.at_level(logging.WARNING):
        lab = parse_dota_label_file(str(p), skip_malformed=True)
    assert len(lab) == 2 and lab.num_malformed == 1 and "x.txt:3" in caplog.text
    p.write_text("1 2 3 2 3 4 1 abc plane 0\n")
    with pytest.raises(ValueError, match=r"x\.txt:1: .*non-numeric"):
        parse_dota_label_file(str(p))
    p.write_text("1 2 3 2 3 4 1 4 plane 7\n")
    with pytest.raises(ValueError, match=r"x\.txt:1"):
        parse_dota_label_file(str(p))


@pytest.mark.parametrize("flag", ["2", "-1", "01", "1.0", "yes"])
def test_difficult_flag_other_than_0_or_1_names_file_and_line(tmp_path, caplog, flag):
    p = tmp_path / "x.txt"
    p.write_text(f"gsd:1\n1 2 3 2 3 4 1 4 plane 1\n1 2 3 2 3 4 1 4 ship {flag}\n")
    with pytest.raises(ValueError, match=rf"x\.txt:3: .*difficult flag '{flag}', expected 0 or 1"):
        parse_dota_label_file(str(p))
    with caplog.at_level(logging.WARNING):
        lab = parse_dota_label_file(str(p), skip_malformed=True)
    assert lab.class_names == ["plane"] and lab.num_malformed == 1 and "x.txt:3" in caplog.text


@pytest.mark.parametrize("header", ["", "imagesource:GoogleEarth\ngsd:0.146\n"])
def test_byte_order_mark_is_accepted(tmp_path, header):
    text = header + "1 2 3 2 3 4 1 4 plane 0\r\n5 6 7 6 7 8 5 8 ship 1\r\n"
    p = tmp_path / "x.txt"
    p.write_text(text, encoding="utf-8-sig")  # what Windows Notepad writes as "UTF-8 with BOM"
    assert p.read_bytes()[:3] == b"\xef\xbb\xbf"
    plain = parse_dota_label_text(text)
    for lab in (parse_dota_label_file(str(p)), parse_dota_label_text("\ufeff" + text)):
        np.testing.assert_array_equal(lab.polys, plain.polys)
        assert lab.class_names == ["plane", "ship"] and lab.difficult.tolist() == [0, 1]
        assert lab.header == plain.header and lab.line_numbers.tolist() == (
            plain.line_numbers.tolist()
        )
    assert plain.header == ({"imagesource": "GoogleEarth", "gsd": "0.146"} if header else {})
