"""poly_to_rbox on the real DOTA sample labels (tests/data/dota_samples/labelTxt), including a
line whose four points are not in a consistent order."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from shapely.geometry import MultiPoint, Polygon

from rotated_det.structures import poly_to_rbox, rbox_to_poly


def read_polygons(path: Path) -> np.ndarray:
    """Plain DOTA Task1 parsing: skip `imagesource:`/`gsd:` headers, take the 8 numbers."""
    polys = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) < 9 or ":" in parts[0]:
            continue
        polys.append([float(v) for v in parts[:8]])
    return np.array(polys, dtype=np.float64).reshape(-1, 8)


@pytest.fixture(scope="module")
def polygons(dota_samples) -> dict[str, np.ndarray]:
    files = sorted((dota_samples / "labelTxt").glob("*.txt"))
    return {f.stem: read_polygons(f) for f in files}


def _check(polys: np.ndarray, boxes: torch.Tensor, tol: float):
    boxes = boxes.double()
    assert torch.isfinite(boxes).all()
    w, h, a = boxes[:, 2], boxes[:, 3], boxes[:, 4]
    assert (w >= h).all() and (h >= 0).all() and (a >= -90).all() and (a < 90).all()
    # the rectangle covers the original points
    corners = rbox_to_poly(boxes).view(-1, 4, 2).numpy()
    for p, c in zip(polys.reshape(-1, 4, 2), corners, strict=True):
        rect = Polygon(c)
        assert rect.buffer(tol).covers(MultiPoint([tuple(x) for x in p]))
    # and has the minimum area, as cv2.minAreaRect finds it
    cv_area = np.array(
        [np.prod(cv2.minAreaRect(p.astype(np.float32))[1]) for p in polys.reshape(-1, 4, 2)]
    )
    assert np.allclose((w * h).numpy(), cv_area, rtol=1e-4, atol=1e-2)


def test_all_sample_labels(polygons):
    total = 0
    for _name, polys in polygons.items():
        assert len(polys) > 0
        for dtype, tol in ((torch.float64, 1e-6), (torch.float32, 1e-2)):
            boxes = poly_to_rbox(torch.from_numpy(polys).to(dtype))
            assert boxes.dtype == dtype
            _check(polys, boxes, tol)
        total += len(polys)
    assert total > 600  # P0706 alone has 536 ships


def test_inconsistently_ordered_line(polygons):
    polys = polygons["P0004__1__0___0"]
    bad = np.array([126.0, 191.0, 128.0, 171.0, 123.0, 178.0, 221.0, 199.0])
    idx = int(np.where((polys == bad).all(axis=1))[0][0])
    # as written, the polygon is not a simple convex outline: its own area is far from the hull's
    ring = Polygon(bad.reshape(4, 2))
    hull = MultiPoint([tuple(x) for x in bad.reshape(4, 2)]).convex_hull
    assert not ring.is_valid or abs(ring.area - hull.area) > 0.1 * hull.area
    box = poly_to_rbox(torch.from_numpy(polys[idx : idx + 1]))
    _check(polys[idx : idx + 1], box, 1e-6)
    # a long thin plane-sized box: about 100 x 20 px
    assert 90 < box[0, 2] < 110 and 10 < box[0, 3] < 25


def test_sample_labels_saved_on_windows_parse_the_same(polygons, dota_samples, tmp_path):
    """Each sample label file saved as a Windows editor does (UTF-8 byte-order mark, CRLF line
    ends) gives the same objects, header and difficult flags through the library's parser."""
    from rotated_det.structures.dota_format import parse_dota_label_file

    for name, polys in polygons.items():
        src = dota_samples / "labelTxt" / f"{name}.txt"
        ref = parse_dota_label_file(str(src))
        np.testing.assert_array_equal(ref.polys, polys)
        dst = tmp_path / f"{name}.txt"
        text = "\r\n".join(src.read_text(encoding="utf-8").splitlines()) + "\r\n"
        dst.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
        got = parse_dota_label_file(str(dst))
        np.testing.assert_array_equal(got.polys, ref.polys)
        assert got.class_names == ref.class_names and got.header == ref.header
        np.testing.assert_array_equal(got.difficult, ref.difficult)
        assert set(got.difficult.tolist()) <= {0, 1}
