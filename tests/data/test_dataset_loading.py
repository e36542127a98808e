"""What the dataset loaders share (rotated_det.data.datasets.loading): image sizes from file
headers and the image listing."""

import cv2
import numpy as np
import pytest

from rotated_det.data.datasets.loading import image_size, list_images


def test_huge_image_header_is_read(tmp_path):
    """A 20000 x 20000 PNG (DOTA v2.0 size) is sized from its header, past Pillow's
    decompression-bomb limit, without decoding it."""
    import struct
    import zlib

    ok, buf = cv2.imencode(".png", np.zeros((1, 1, 3), np.uint8))
    data = bytearray(buf.tobytes())
    # IHDR chunk: length(4) type(4) width(4) height(4) ...; patch the size and its CRC
    i = data.index(b"IHDR")
    data[i + 4 : i + 12] = struct.pack(">II", 20000, 20000)
    crc = zlib.crc32(bytes(data[i : i + 17])) & 0xFFFFFFFF
    data[i + 17 : i + 21] = struct.pack(">I", crc)
    p = tmp_path / "huge.png"
    p.write_bytes(bytes(data))
    assert image_size(str(p)) == (20000, 20000)


def test_list_images_filters_extensions_and_hidden_files(tmp_path):
    for name in ("b.PNG", "a.jpg", ".hidden.png", "notes.txt", "c.tif"):
        (tmp_path / name).write_bytes(b"")
    assert list_images(str(tmp_path)) == ["a.jpg", "b.PNG", "c.tif"]
    assert list_images(str(tmp_path), (".png",)) == ["b.PNG"]
    with pytest.raises(FileNotFoundError, match="missing"):
        list_images(str(tmp_path / "missing"))


def test_unreadable_image_names_the_path(tmp_path):
    p = tmp_path / "broken.png"
    p.write_bytes(b"not an image")
    with pytest.raises(OSError, match="broken.png"):
        image_size(str(p))
