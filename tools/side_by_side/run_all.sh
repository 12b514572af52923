#!/usr/bin/env bash
# The whole side-by-side comparison (docs/SIDE_BY_SIDE.md): tfstylegan vs NVlabs/stylegan2-ada-pytorch trained on
# the same phantom data with the 'demo' settings, judged by one classifier.
#
#   TORCH_PY=/path/to/torch-venv/bin/python tools/side_by_side/run_all.sh REFERENCE_CHECKOUT WORK_DIR
#
# Run from the repository root. REFERENCE_CHECKOUT: a checkout of NVlabs/stylegan2-ada-pytorch (not part of this
# repository). TORCH_PY: a Python with torch, numpy, scipy, pillow, click, requests, tqdm, psutil (CPU wheels do).
# OUR_PY (default .venv/bin/python): our venv. KIMG (default 12, an integer; both sides), NUM (default 100 images
# per class) and SETS (default 3 seed sets) can be overridden; REF_THREADS=1 gives the reference one torch
# thread (much faster on a shared, oversubscribed CPU). Steps whose output exists are skipped, so a rerun continues.
set -euo pipefail

if [ $# -ne 2 ]; then
  sed -n 2,13p "$0"; exit 2
fi
REF=$(cd "$1" && pwd)
WORK=$(mkdir -p "$2" && cd "$2" && pwd)
: "${TORCH_PY:?set TORCH_PY to the python of a venv with torch (see docs/SIDE_BY_SIDE.md)}"
OUR_PY=${OUR_PY:-.venv/bin/python}
KIMG=${KIMG:-12}
NUM=${NUM:-100}
SETS=${SETS:-3}
TOOLS=$(cd "$(dirname "$0")" && pwd)
export TF_CPP_MIN_LOG_LEVEL=2
[ -f "$REF/train.py" ] || { echo "error: $REF is not a stylegan2-ada-pytorch checkout" >&2; exit 1; }
[ -x "$OUR_PY" ] || { echo "error: $OUR_PY not found; run from the repository root after 'make setup'" >&2; exit 1; }

step() { echo; echo "== $*"; }
# the newest numbered run folder under $1 (empty if none); "$1/" follows a symlinked folder
only_dir() { [ -d "$1" ] && find "$1/" -mindepth 1 -maxdepth 1 -type d ! -name '.*' | sort | tail -1; true; }

# 1. the demo's data (launchers/demo.py: same launchers, flags and seeds)
if [ ! -f "$WORK/data/manifest.json" ]; then
  step "phantom data and prepare_data (32x32, patient-wise 0.6/0.2/0.2)"
  "$OUR_PY" -m launchers.make_phantom --out="$WORK/phantom_mat" --patients_per_class=30 --slices_per_patient=4 --seed=0
  "$OUR_PY" -m launchers.prepare_data --source="$WORK/phantom_mat" --out="$WORK/data" --resolution=32 --split=0.6,0.2,0.2
fi

# 2. the train split in the reference's format + our preset as its spec
if [ ! -f "$WORK/reference_input/reference_spec.json" ]; then
  step "reference dataset (zip + dataset.json) and spec"
  "$OUR_PY" "$TOOLS/make_reference_data.py" --data "$WORK/data" --out "$WORK/reference_input" --kimg "$KIMG"
fi

# 3. the reference, trained from its own code
if ! ls "$WORK"/reference_runs/*/side_by_side_timing.json >/dev/null 2>&1; then
  step "train stylegan2-ada-pytorch ($KIMG kimg)"
  "$TORCH_PY" "$TOOLS/run_reference.py" --reference "$REF" --input "$WORK/reference_input" \
      --outdir "$WORK/reference_runs" ${REF_THREADS:+--threads "$REF_THREADS"}
fi
REF_RUN=$(dirname "$(ls "$WORK"/reference_runs/*/side_by_side_timing.json | tail -1)")

# 4. ours, with the demo's flags (launchers/demo.py `common`)
OUR_RUN=$(only_dir "$WORK/ours")
if [ -z "$OUR_RUN" ]; then
  step "train tfstylegan ($KIMG kimg)"
  "$OUR_PY" -m launchers.train_stylegan --out="$WORK/ours" --conditional --data="$WORK/data" --preset=demo \
      --kimg="$KIMG" --kimg_per_tick=2 --batch=8 --snapshot_ticks=2 --mirror
  OUR_RUN=$(only_dir "$WORK/ours")
elif ! grep -q '"Progress/kimg": '"$KIMG"'\b' "$OUR_RUN/stats.jsonl" 2>/dev/null; then
  echo "error: $OUR_RUN did not finish $KIMG kimg (interrupted?); continue it with launchers.train_stylegan" \
       "--resume=$OUR_RUN or remove it" >&2
  exit 1
fi

# 5. one judge (launchers/demo.py: random init, 75 px, 8 epochs)
if [ ! -f "$WORK/judge/classifier.keras" ]; then
  step "the judge"
  "$OUR_PY" -m launchers.train_classifier --data="$WORK/data" --out="$WORK/judge" --weights=none --epochs=8 \
      --input_size=75 --batch=32 --patience=0
fi

# 6. samples, 7. comparison
N=$((NUM * SETS))
[ -f "$WORK/samples/reference.npz" ] || "$TORCH_PY" "$TOOLS/export_reference_samples.py" --reference "$REF" \
    --run "$REF_RUN" --out "$WORK/samples/reference.npz" --num "$N"
[ -f "$WORK/samples/ours.npz" ] || "$OUR_PY" "$TOOLS/export_ours_samples.py" --checkpoint "$OUR_RUN" \
    --out "$WORK/samples/ours.npz" --num "$N"
step "compare"
"$OUR_PY" "$TOOLS/compare.py" --data "$WORK/data" --classifier "$WORK/judge/classifier.keras" \
    --samples "ours=$WORK/samples/ours.npz" --samples "reference=$WORK/samples/reference.npz" \
    --baseline reference --num_images "$NUM" --sets "$SETS" --out "$WORK/comparison" --overwrite
python3 "$TOOLS/timing.py" --ours "$OUR_RUN" --reference "$REF_RUN"
