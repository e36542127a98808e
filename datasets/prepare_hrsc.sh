#!/usr/bin/env bash
# Check the HRSC2016 layout and show how many images and objects each split has.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
DATA="${ROTATED_DET_DATASETS:-$ROOT/datasets}"
BASE="$DATA/HRSC2016"
for p in FullDataSet/AllImages FullDataSet/Annotations ImageSets/trainval.txt ImageSets/test.txt; do
  [ -e "$BASE/$p" ] || { echo "missing $BASE/$p (see datasets/README.md)"; exit 1; }
done
ROTATED_DET_DATASETS="$DATA" "$PY" - <<'PYEOF'
from rotated_det.data import DatasetCatalog
for name in ("hrsc2016_trainval", "hrsc2016_test"):
    d = DatasetCatalog.get(name)
    print(f"{name}: {len(d)} images, {sum(len(x['annotations']) for x in d)} objects")
PYEOF
