#!/usr/bin/env bash
# MIR-1K recipe: trains vocalsep's bundled default model.
#
#   recipes/mir1k/run.sh [--stage N] [--stop-stage N] [--tag NAME] [--data DIR] [--set key=value]...
#
# Stages: 0 check the data, 1 train on 100-frame chunks, 2 continue on 500-frame chunks,
#         3 separate the held-out test clips, 4 score them (GNSDR/GSIR/GSAR, BSS Eval v3),
#         5 bundle the model into the package (half precision) and register it.
# Everything a run makes goes under exp/<tag>/. Re-running a training stage resumes it.
set -euo pipefail
cd "$(dirname "$0")/../.."

stage=0; stop_stage=4; tag=mir1k_default; data=../shared/data/mir1k; sets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2; shift 2;;
    --stop-stage) stop_stage=$2; shift 2;;
    --tag) tag=$2; shift 2;;
    --data) data=$2; shift 2;;
    --set) sets+=(--set "$2"); shift 2;;
    *) echo "unknown option $1" >&2; exit 2;;
  esac
done
conf=recipes/mir1k/conf.toml
exp=exp/$tag
mkdir -p "$exp"
git rev-parse HEAD > "$exp/git_commit" 2>/dev/null || true
source recipes/lib.sh

if want 0; then
  echo "stage 0: checking $data"
  for m in train valid test; do
    n=0; while read -r f; do [ -z "$f" ] && continue; [ -f "$data/$f" ] || { echo "missing $data/$f" >&2; exit 1; }; n=$((n+1)); done < data/mir1k/$m.txt
    echo "  $m: $n clips"
  done
fi
train_stages
if want 3; then
  echo "stage 3: separating the held-out test clips"
  vs evaluate --mir1k "$data" --manifest data/mir1k/test.txt --model "$exp/phase2/best.pt" \
     --out "$exp/test" --separate-only
fi
if want 4; then
  echo "stage 4: scoring"
  vs evaluate --mir1k "$data" --manifest data/mir1k/test.txt --model "$exp/phase2/best.pt" \
     --out "$exp/test" | tee "$exp/test/results.txt"
fi
if want 5; then
  echo "stage 5: bundling the model"
  python recipes/mir1k/package.py "$exp/phase2/best.pt" --name mir1k-blstm --default
fi
