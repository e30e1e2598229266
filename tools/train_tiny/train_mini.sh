#!/usr/bin/env bash
# Trains the embedded mini model on one GPU (an H100 in about 7 minutes all
# told) from the data prepare_mini.sh wrote, then packs the model directory
# into OUT as mini.tar.part-aa, -ab, … (each under 15 MiB; rejoin with
# `cat mini.tar.part-* | tar -xf -`, which makes mini/) beside the printed
# log, train_stdout.log.
#
# Usage: tools/train_tiny/train_mini.sh OUT [DATA [TRAIN.PY FLAGS...]]   (run
# from the repository root; DATA defaults to .train-mini; further flags
# override mini's, e.g. --device cpu --ctx 256 --steps 20 for a smoke test;
# the unpacked directory is written to $MODEL_DIR, default a folder under
# /tmp, so that only the parts land in OUT; $PYTHON defaults to python3)
set -euo pipefail
out=${1:?usage: tools/train_tiny/train_mini.sh OUT [DATA]}
data=${2:-.train-mini}
shift $(($# < 2 ? $# : 2))
work=${MODEL_DIR:-$(mktemp -d /tmp/kvcascade-mini.XXXXXX)}
mkdir -p "$out" "$work"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=true

"${PYTHON:-python3}" tools/train_tiny/train.py --data "$data" --out "$work/mini" \
  --ctx 4096 --layers 8 --hidden 256 --heads 8 --kv-heads 2 --ffn 688 --vocab 8192 \
  --batch-tokens 32768 --steps 4000 --time-budget 330 --curriculum-start 512 \
  --eval-prompts 100 --eval-seconds 30 "$@" 2>&1 | tee "$out/train_stdout.log"

(cd "$work" && tar -cf - mini) | split -b 14m - "$out/mini.tar.part-"
ls -l "$work/mini" "$out"
tail -n 25 "$work/mini/train_log.txt"
