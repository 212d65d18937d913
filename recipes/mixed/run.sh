#!/usr/bin/env bash
# Mixed recipe: trains vocalsep's default model, the U-Net mask network (mir1k-unet), on MIR-1K's
# training singers over MIR-1K accompaniments and a produced instrumental pool.
#
#   recipes/mixed/run.sh [--stage N] [--stop-stage N] [--tag NAME] [--data DIR] [--set key=value]...
#
# Stages: 0 fetch, screen and convert the instrumental pool (recipes/mixed/prepare_pool.py),
#         1 train the U-Net from scratch (conf.toml: 256-frame chunks, speed augmentation, half the
#           accompaniments from the pool; checkpoints chosen on the unseen singers),
#         2 continue from stage 1's best at a lower learning rate,
#         3 score on the generalisation validation sets (recipes/mixed/validate.py),
#         4 bundle the model into the package and make it the default.
# Everything a run makes goes under exp/<tag>/. Re-running a training stage resumes it.
set -euo pipefail
cd "$(dirname "$0")/../.."

stage=0; stop_stage=3; tag=mixed_unet; data=../shared/data/mir1k; sets=()
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
conf=recipes/mixed/conf.toml
exp=exp/$tag
mkdir -p "$exp"
git rev-parse HEAD > "$exp/git_commit" 2>/dev/null || true
source recipes/lib.sh
model=$exp/continue/phase1/best.pt

if want 0; then
  echo "stage 0: the instrumental pool"
  python recipes/mixed/prepare_pool.py --work exp/pool --manifest data/pool/accompaniment.tsv
fi
if want 1; then
  echo "stage 1: training the U-Net from scratch"
  vs train -c "$conf" -o "$exp/scratch" --set data_root="$data" "${sets[@]}" 2>&1 | tee -a "$exp/train.log"
fi
if want 2; then
  echo "stage 2: continuing at a lower learning rate"
  vs train -c "$conf" -o "$exp/continue" --set data_root="$data" --set init_from="$exp/scratch/phase1/best.pt" \
     --set phases.0.lr=3e-4 "${sets[@]}" 2>&1 | tee -a "$exp/train.log"
fi
if want 3; then
  echo "stage 3: validation (unseen singers, produced songs)"
  python recipes/mixed/validate.py --model "$model" --json "$exp/validation.json" | tee "$exp/validation.txt"
fi
if want 4; then
  echo "stage 4: bundling the model"
  python recipes/mir1k/package.py "$model" --name mir1k-unet --default \
     --description "U-Net mask network (5 levels, 16-256 channels) trained on MIR-1K singers (abjones, amy) over MIR-1K and produced instrumental accompaniments" \
     --license "research use only (trained on MIR-1K); accompaniment pool: GPL-2+/GPL-3+/CC-BY-SA-3.0/Expat, see data/pool/accompaniment.tsv"
fi
