"""Shared fixtures of the data tests: the real DOTA samples (``../shared/data/dota_samples``)."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLES = (REPO / ".." / "shared" / "data" / "dota_samples").resolve()


@pytest.fixture(scope="session")
def dota_samples() -> Path:
    """Path of the shared DOTA samples; fails (never skips) when they are missing."""
    needed = [SAMPLES / "images" / "P0706.png", SAMPLES / "labelTxt" / "P0706.txt"]
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        pytest.fail(
            f"The shared DOTA samples are missing ({', '.join(missing)}). The data tests need "
            f"them at {SAMPLES} (../shared/data/dota_samples relative to the repository root)."
        )
    return SAMPLES
