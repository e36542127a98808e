"""Where the tests find the real DOTA samples: ``tests/data/dota_samples`` (see its README.md for
the source and the academic-use terms).

Tests take the ``dota_samples`` fixture of ``tests/conftest.py``. Module-level paths and helpers
that are not tests import ``DOTA_SAMPLES`` / ``dota_samples_dir`` from here (``tests/`` is on
``sys.path``: pytest puts the directory of the root ``conftest.py`` there).
"""

from pathlib import Path

import pytest

DOTA_SAMPLES = Path(__file__).resolve().parent / "data" / "dota_samples"

# Every file of the folder, each used by at least one test.
DOTA_SAMPLE_FILES = (
    "images/P0004__1__0___0.png",
    "images/P0706.png",
    "images/P1888.png",
    "labelTxt/P0004__1__0___0.txt",
    "labelTxt/P0706.txt",
    "labelTxt/P0770.txt",
    "labelTxt/P1088.txt",
    "labelTxt/P1234.txt",
    "labelTxt/P1888.txt",
    "labelTxt/P2598.txt",
    "labelTxt/P2709.txt",
    "unlabeled/dota_patch_1024.jpg",
    "unlabeled/dota_scene_1616x1565.jpg",
)


def dota_samples_dir() -> Path:
    """Absolute path of ``tests/data/dota_samples``.

    Fails the calling test (never skips) with the missing files named when the folder is
    incomplete, e.g. in a checkout that left out binary files.
    """
    missing = [f for f in DOTA_SAMPLE_FILES if not (DOTA_SAMPLES / f).is_file()]
    if missing:
        pytest.fail(
            f"DOTA sample files missing under {DOTA_SAMPLES}: {', '.join(missing)}. They are part "
            "of the repository (tests/data/dota_samples/README.md); restore them with "
            "`git checkout -- tests/data/dota_samples`."
        )
    return DOTA_SAMPLES
