#!/usr/bin/env bash
# The main job: set up .venv, prepare the embedded corpus, train the default model (eight
# minutes on 2 CPU cores; 14 to 18 for the whole job), fit its mixture with the n-gram on
# validation, evaluate it beside the n-gram on the test split and show next-word predictions.
# Environment: TIME_BUDGET (training seconds, default 480), DATA, MODEL (dirs), RETRAIN=1.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup-venv.sh
ime=.venv/bin/rnn-ime
data="${DATA:-data/default}"
model="${MODEL:-models/default}"
budget="${TIME_BUDGET:-480}"

[ "${RETRAIN:-0}" = "1" ] && rm -rf "$model"
[ -f "$data/manifest.json" ] || $ime prepare --out "$data"
resume=()
[ -f "$model/train_state.pt" ] && resume=(--resume)  # go on with (or reuse) an earlier run
$ime train --data "$data" --out "$model" --time-budget "$budget" "${resume[@]}"
# the model mixed with a Kneser-Ney n-gram, when that wins on validation (it says which it uses)
$ime mix --model "$model"
$ime evaluate --model "$model" --baseline ngram
echo
for prefix in "这家酒店" "我今天" "房间很" "中国人民" "经济"; do
    printf '%s → ' "$prefix"
    $ime predict --model "$model" "$prefix"
done
echo "(main job: $((SECONDS / 60)) min $((SECONDS % 60)) s)"
if [ -t 0 ] && [ -t 1 ]; then
    echo
    $ime predict --model "$model"
fi
