"""The repository stands alone: no test, script, config, example or document reaches outside it
for data or documents (the DOTA samples are in tests/data/dota_samples, the design in
docs/design.md)."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Text files a user of a bare clone runs or reads; generated and environment folders are left out.
SCANNED = ["README.md", "DEVELOPERS.md", "setup.py", "pyproject.toml", "docs", "rotated_det",
           "configs", "tools", "demo", "dev", "tests", "projects"]  # fmt: skip
SUFFIXES = {".py", ".md", ".sh", ".toml", ".txt", ".cff", ".cfg", ".yaml", ".yml", ".json"}
SKIP_DIRS = {"__pycache__", ".venv", "build", "output", "dota_samples"}
# A path into a sibling folder of the repository: "../shared/...", ".."/"shared" joined by
# os.path.join or pathlib, or the absolute /work/shared.
OUTSIDE = re.compile(
    r"\.\./shared\b"
    r"|['\"]\.\.['\"]\s*(?:,|/)\s*['\"]shared['\"]"
    r"|/work/shared\b"
)


def _files():
    for entry in SCANNED:
        path = REPO / entry
        if path.is_file():
            yield path
        elif path.is_dir():
            for f in sorted(path.rglob("*")):
                if f.is_file() and f.suffix in SUFFIXES and not SKIP_DIRS & set(f.parts):
                    yield f
    yield from sorted((REPO / "datasets").glob("*.md"))
    yield from sorted((REPO / "datasets").glob("*.sh"))


def test_nothing_points_outside_the_repository():
    this = Path(__file__).resolve()
    hits = []
    for f in _files():
        if f.resolve() == this:
            continue
        for n, line in enumerate(f.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if OUTSIDE.search(line):
                hits.append(f"{f.relative_to(REPO)}:{n}: {line.strip()}")
    assert not hits, (
        "paths outside the repository (use tests/data/dota_samples through the dota_samples "
        "fixture or tests/sample_data.py, and docs/design.md):\n" + "\n".join(hits)
    )


def test_the_pattern_catches_each_form():
    for line in [
        "see ../shared/DESIGN.md",
        'os.path.join(REPO, "..", "shared", "data")',
        'REPO / ".." / "shared" / "data"',
        "--input /work/shared/data/x.jpg",
    ]:
        assert OUTSIDE.search(line), line
    for line in ["configs/common (shared pieces)", "comm.shared_random_seed()", "tests/data/x"]:
        assert not OUTSIDE.search(line), line
