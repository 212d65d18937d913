#!/usr/bin/env bash
# MUSDB18 recipe: train the MIREX 2016 system on MUSDB18, score it with museval, package a submission.
# (recipes/dsd100/run.sh runs this script with --corpus dsd100.)
#
#   recipes/musdb18/run.sh [--stage N] [--stop-stage N] [--tag NAME] [--data DIR] [--exp-root DIR]
#                          [--name XXXX] [--quick] [--set key=value]...
#
# Stages: 0 check the data, 1 train on 100-frame chunks, 2 continue on 500-frame chunks,
#         3 separate the test set, 4 score it (MUSDB18: museval v4; DSD100: BSS Eval v3, 30 s windows),
#         5 package the MUSDB18 leaderboard submission.
# Everything a run makes goes under <exp-root>/<tag>/. Re-running a training stage resumes it.
# --quick runs every stage in a few minutes on ../shared/data/musdb18-sample with a tiny network.
set -euo pipefail
cd "$(dirname "$0")/../.."

stage=0; stop_stage=5; corpus=musdb18; tag=; data=; exp_root=exp; name=VSDC; quick=0; sets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2; shift 2;;
    --stop-stage) stop_stage=$2; shift 2;;
    --tag) tag=$2; shift 2;;
    --data) data=$2; shift 2;;
    --exp-root) exp_root=$2; shift 2;;
    --name) name=$2; shift 2;;
    --quick) quick=1; shift;;
    --corpus) corpus=$2; shift 2;;
    --set) sets+=(--set "$2"); shift 2;;
    *) echo "unknown option $1" >&2; exit 2;;
  esac
done
case "$corpus" in
  musdb18) flag=--musdb; subsets="train test";;
  dsd100) flag=--dsd100; subsets="Sources/Dev Sources/Test Mixtures/Test";;
  *) echo "unknown corpus $corpus (musdb18 or dsd100)" >&2; exit 2;;
esac
conf=recipes/$corpus/conf.toml
if [ "$quick" = 1 ]; then
  [ "$corpus" = musdb18 ] || { echo "--quick needs the MUSDB18 sample; there is no DSD100 sample" >&2; exit 2; }
  [ -n "$data" ] || data=../shared/data/musdb18-sample
  [ -n "$tag" ] || tag=quick
  # the sample has one train and one test track: validate on the test track, tiny network, few steps
  sets=(--set train_set=train-all --set valid_set=test --set model.hidden=16 --set model.layers=1
        --set voice_rule_batches=2 --set "phases=[{chunk_frames=50, batch_size=4, steps_per_epoch=3, max_epochs=2}, {chunk_frames=100, batch_size=2, steps_per_epoch=2, max_epochs=1}]"
        "${sets[@]}")
fi
[ -n "$data" ] || data=../shared/data/$corpus
[ -n "$tag" ] || tag=$corpus
exp=$exp_root/$tag
mkdir -p "$exp"
git rev-parse HEAD > "$exp/git_commit" 2>/dev/null || true
source recipes/lib.sh

if want 0; then
  echo "stage 0: checking $data"
  for sub in $subsets; do
    [ -d "$data/$sub" ] || { echo "missing $data/$sub (see README for the $corpus layout)" >&2; exit 1; }
    echo "  $sub: $(ls "$data/$sub" | wc -l) tracks"
  done
fi
train_stages
if want 3; then
  echo "stage 3: separating the test set"
  vs evaluate "$flag" "$data" --model "$exp/phase2/best.pt" -o "$exp/eval" --separate-only
fi
if want 4; then
  echo "stage 4: scoring"
  vs evaluate "$flag" "$data" --estimates "$exp/eval/estimates" -o "$exp/eval" | tee "$exp/eval/results.txt"
fi
if want 5 && [ "$corpus" = musdb18 ]; then
  echo "stage 5: packaging the submission"
  vs submission --name "$name" --scores "$exp/eval" --musdb "$data" --model "$exp/phase2/best.pt" --force "$exp/submission"
fi
