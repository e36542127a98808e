"""What the dataset loaders share: listing the images of a folder, reading an image's size from its
file header, and pausing the garbage collector while many dataset dicts are built."""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator, Sequence

from rotated_det.utils.file_io import IMAGE_EXTENSIONS

__all__ = ["IMAGE_EXTENSIONS", "image_size", "list_images", "gc_paused"]


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many small containers that all stay
    alive (collections would find nothing to free and cost more than the parsing). Also a
    decorator."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def image_size(path: str) -> tuple[int, int]:
    """(height, width) in pixels from the image header, without decoding the pixels.

    Pillow's decompression-bomb limit (about 179 megapixels) is lifted for this header read:
    DOTA v2.0 has images of 20000 x 20000 pixels.

    Raises:
        OSError: naming ``path`` when it is missing or not a readable image.
    """
    try:
        import warnings

        from PIL import Image

        limit = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(path) as im:
                    w, h = im.size
        finally:
            Image.MAX_IMAGE_PIXELS = limit
        return int(h), int(w)
    except ImportError:  # pragma: no cover - Pillow comes with matplotlib/torchvision
        pass
    except Exception as e:
        raise OSError(f"Cannot read image {path}: {e}") from e
    import cv2

    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise OSError(f"Cannot read image {path}: missing or not a supported image file")
    return int(img.shape[0]), int(img.shape[1])


def list_images(image_dir: str, image_exts: Sequence[str] = IMAGE_EXTENSIONS) -> list[str]:
    """Sorted names (not paths) of the files in ``image_dir`` whose extension is one of
    ``image_exts`` (any case); hidden files (``.name``) are left out.

    Raises:
        FileNotFoundError: ``image_dir`` does not exist.
    """
    if not os.path.isdir(image_dir):
        raise FileNotFoundError(f"Image directory {image_dir} does not exist")
    exts = tuple(e.lower() for e in image_exts)
    return sorted(
        f for f in os.listdir(image_dir) if f.lower().endswith(exts) and not f.startswith(".")
    )
