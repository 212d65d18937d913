#!/usr/bin/env bash
# Mixed recipe: trains vocalsep's default model, the U-Net mask network (voices-unet1024): first on MIR-1K's
# training singers over MIR-1K accompaniments (mir1k-unet1024), then on many voices and the instrumental pool.
#
#   recipes/mixed/run.sh [--stage N] [--stop-stage N] [--tag NAME] [--data DIR] [--exp-root DIR] [--repos DIR]
#                        [--voices TSV --voices-root DIR] [--pool TSV --pool-root DIR] [--set key=value]...
#
# Stages: 0 fetch, screen and convert the instrumental pool (recipes/mixed/prepare_pool.py), and, with
#           --repos DIR (the cloned voice repositories), select, screen and convert the voices
#           (recipes/mixed/prepare_voices.py: data/voices/voices.tsv, audio under exp/voices),
#         1 train the U-Net (conf.toml: 256-frame chunks, speed augmentation; phase 1 from scratch,
#           phases 2 and 3 from the previous best at lr 3e-4, then 1e-4, checkpoints chosen on the unseen
#           singers; phase 4 from phase 3's best at lr 1e-4 with pitch, reverb and EQ augmentation of the
#           voice, every epoch kept), then average phase 4's weights from its 14th epoch to its last;
#           then fine-tune that average on a 1024-point STFT (conf_1024.toml) for two seeds, every epoch
#           kept, and average the epochs of both runs from the 10th on (mir1k-unet1024, the MIR-1K-protocol
#           model); then fine-tune that on every voice source over MIR-1K and pool accompaniments
#           (conf_voices.toml, every epoch kept) in runs whose late epochs are averaged, widened to 24
#           channels on the way (the default; the steps are below, with each run's epoch count),
#         2 score on the generalisation validation sets (recipes/mixed/validate.py),
#         3 bundle the model into the package and make it the default.
# Everything a run makes goes under <exp-root>/<tag>/ (exp/mixed_unet/). Re-running a training stage resumes it.
set -euo pipefail
cd "$(dirname "$0")/../.."

stage=1; stop_stage=2; tag=mixed_unet; data=../shared/data/mir1k; exp_root=exp; sets=(); repos=""
voices=data/voices/voices.tsv; voices_root=exp/voices/audio; pool=data/pool/accompaniment.tsv; pool_root=exp/pool/audio
while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2; shift 2;;
    --stop-stage) stop_stage=$2; shift 2;;
    --tag) tag=$2; shift 2;;
    --data) data=$2; shift 2;;
    --exp-root) exp_root=$2; shift 2;;
    --repos) repos=$2; shift 2;;
    --voices) voices=$2; shift 2;;
    --voices-root) voices_root=$2; shift 2;;
    --pool) pool=$2; shift 2;;
    --pool-root) pool_root=$2; shift 2;;
    --set) sets+=(--set "$2"); shift 2;;
    *) echo "unknown option $1" >&2; exit 2;;
  esac
done
conf=recipes/mixed/conf.toml
exp=$exp_root/$tag
mkdir -p "$exp"
git rev-parse HEAD > "$exp/git_commit" 2>/dev/null || true
source recipes/lib.sh
# the epoch files of a phase that kept them, from the $2-th on (only the last when it has fewer)
epochs_from() {
  local files=("$1"/epoch*.pt)
  local n=${#files[@]}
  local k=$(( $2 <= n ? $2 : n ))
  printf '%s\n' "${files[@]:k-1}"
}
# average_epochs OUT DIR N [DIR N]...: the mean of each epochs folder's files from its N-th on
average_epochs() {
  local out=$1 files=(); shift
  while [ $# -gt 0 ]; do
    mapfile -t -O "${#files[@]}" files < <(epochs_from "$1" "$2"); shift 2
  done
  python recipes/mixed/average.py "$out" "${files[@]}"
}
phase4=$exp/train/phase4/average.pt
mir1k_model=$exp/train1024/average.pt
model=$exp/voices/average.pt

if want 0; then
  echo "stage 0: the instrumental pool"
  python recipes/mixed/prepare_pool.py --work exp/pool --manifest data/pool/accompaniment.tsv
  if [ -n "$repos" ]; then
    python recipes/mixed/prepare_voices.py --repos "$repos" --work exp/voices --manifest data/voices/voices.tsv --mir1k "$data"
  else
    echo "stage 0: no --repos DIR: the voices are not prepared (git clone the repositories listed in recipes/mixed/prepare_voices.py into DIR)"
  fi
fi
if want 1; then
  echo "stage 1: training the U-Net"
  vs train -c "$conf" -o "$exp/train" --set data_root="$data" "${sets[@]}" 2>&1 | tee -a "$exp/train.log"
  # the validation loss stops falling after about 13 epochs of phase 4; the mean of the rest beat its best epoch
  mapfile -t kept < <(epochs_from "$exp/train/phase4/epochs" 14)
  python recipes/mixed/average.py "$phase4" "${kept[@]}"
  kept=()
  for seed in 1 2; do
    vs train -c recipes/mixed/conf_1024.toml -o "$exp/train1024/seed$seed" --set seed=$seed \
       --set init_from="$phase4" --set data_root="$data" "${sets[@]}" 2>&1 | tee -a "$exp/train.log"
    mapfile -t -O "${#kept[@]}" kept < <(epochs_from "$exp/train1024/seed$seed/phase1/epochs" 10)
  done
  python recipes/mixed/average.py "$mir1k_model" "${kept[@]}"
  # many voices (conf_voices.toml, every epoch kept), the steps the bundled default took, each run
  # stopped at the epoch count it reached: runs B and C from the MIR-1K-protocol model, averaged from
  # their 5th epochs (v1); run E from v1, averaged from its 5th (v2); v2 widened to 24 channels (the new
  # channels start at zero, so the run begins at v2's mask) in run W24 and, from W24's 21st epoch,
  # run W24b, both with bfloat16 steps, averaged from W24's 35th and W24b's 15th epochs (v3); runs V1
  # and V2 from v3, averaged from their 5th epochs (v4); v4 widened to 32 channels in run W32 and, from
  # W32's 24th epoch, run W32b, averaged from W32's 5th and W32b's 4th epochs (v5); run W32c from v5 at a
  # fifth of the learning rate (2e-5), every epoch averaged (the default). The bundled
  # default's runs E, W24, V1 and V2 started from the previous default's int8 file rather than the float
  # average, W24 ran its first 21 epochs in float32, and W32 started from V1's epochs 5-55 and V2's 5-54.
  voice_run() {  # OUT INIT SEED POOL_PROB EPOCHS [--set ...]
    local out=$1 init=$2 seed=$3 pool_prob=$4 epochs=$5; shift 5
    vs train -c recipes/mixed/conf_voices.toml -o "$out" --set init_from="$init" --set seed="$seed" \
       --set remix.pool_prob="$pool_prob" --set phases.0.max_epochs="$epochs" --set phases.0.max_minutes=0 \
       --set data_root="$data" --set voices="$voices" --set voices_root="$voices_root" --set pool="$pool" \
       --set pool_root="$pool_root" "$@" "${sets[@]}" 2>&1 | tee -a "$exp/train.log"
  }
  v=$exp/voices
  voice_run "$v/B" "$mir1k_model" 1 0.3 78
  voice_run "$v/C" "$mir1k_model" 2 0.5 67
  average_epochs "$v/v1.pt" "$v/B/phase1/epochs" 5 "$v/C/phase1/epochs" 5
  voice_run "$v/E" "$v/v1.pt" 3 0.4 37
  average_epochs "$v/v2.pt" "$v/E/phase1/epochs" 5
  wide=(--set model.channels=24 --set precision=bf16)
  voice_run "$v/W24" "$v/v2.pt" 6 0.4 62 "${wide[@]}"
  voice_run "$v/W24b" "$(epochs_from "$v/W24/phase1/epochs" 21 | head -n 1)" 7 0.4 41 "${wide[@]}"
  average_epochs "$v/v3.pt" "$v/W24/phase1/epochs" 35 "$v/W24b/phase1/epochs" 15
  voice_run "$v/V1" "$v/v3.pt" 8 0.4 94 "${wide[@]}"
  voice_run "$v/V2" "$v/v3.pt" 9 0.4 59 "${wide[@]}"
  average_epochs "$v/v4.pt" "$v/V1/phase1/epochs" 5 "$v/V2/phase1/epochs" 5
  wider=(--set model.channels=32 --set precision=bf16)
  voice_run "$v/W32" "$v/v4.pt" 10 0.4 56 "${wider[@]}"
  voice_run "$v/W32b" "$(epochs_from "$v/W32/phase1/epochs" 24 | head -n 1)" 11 0.4 31 "${wider[@]}"
  average_epochs "$v/v5.pt" "$v/W32/phase1/epochs" 5 "$v/W32b/phase1/epochs" 4
  voice_run "$v/W32c" "$v/v5.pt" 12 0.4 21 "${wider[@]}" --set phases.0.lr=2e-5
  average_epochs "$model" "$v/W32c/phase1/epochs" 1
fi
if want 2; then
  echo "stage 2: validation (unseen singers, produced songs)"
  python recipes/mixed/validate.py --model "$model" --no-postfilter --json "$exp/validation.json" | tee "$exp/validation.txt"
fi
if want 3; then
  echo "stage 3: bundling the model"
  python recipes/mir1k/package.py "$mir1k_model" --name mir1k-unet1024 \
     --description "U-Net mask network (5 levels, 16-256 channels) on 150 mel bands of a 1024-point STFT, trained on MIR-1K singers (abjones, amy) over MIR-1K accompaniments with pitch, reverb and EQ augmentation of the voice (weights averaged over the epochs of two fine-tuning runs)" \
     --no-postfilter head --license "research use only (trained on MIR-1K)"
  python recipes/mir1k/package.py "$model" --name voices-unet1024 --default \
     --description "U-Net mask network (32 channels) on 150 mel bands of a 1024-point STFT: mir1k-unet1024 fine-tuned on ten public sources of isolated singing beside MIR-1K's singers, over MIR-1K and produced instrumental accompaniments, then widened from 16 to 24 and 32 channels and trained further in runs whose late epochs are averaged" \
     --no-postfilter head --license "research use only (MIR-1K, SSVD, demo-page recordings; GTSinger CC BY-NC-SA 4.0; Milk voicebank terms; ALYS GPL-3.0)"
fi
