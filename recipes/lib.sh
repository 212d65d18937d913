# Shared by the recipes' run.sh (sourced, after $stage, $stop_stage, $conf, $exp, $data and the
# sets array are known): the vocalsep command, stage selection, and the two curriculum stages.
vs() { python -m vocalsep.cli "$@"; }
want() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }
train_stages() {
  local p
  for p in 1 2; do
    if want "$p"; then
      echo "stage $p: training curriculum phase $p (chunk length from $conf)"
      vs train -c "$conf" -o "$exp" --phase "$p" --set data_root="$data" "${sets[@]}" 2>&1 | tee -a "$exp/train.log"
    fi
  done
}
