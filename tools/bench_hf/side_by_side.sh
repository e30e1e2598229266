#!/bin/sh
# side_by_side.sh times the Llama-3.1-8B shape (random weights) on one GPU
# with transformers + PyTorch SDPA (bench.py, bf16) and with `kvcascade
# bench` (CUDA backend, bf16), one after the other in the same run, and
# writes their tables to $OUT (default ./out), then one table of them all
# (one_table.py: side_by_side.md). kvcascade runs `full` and the
# paper's cascade (64 sinks, 65,536 slots, 8 cascades, chunks of 4,096).
#
# The binaries are built beforehand (no Go on the GPU machine) and carried:
#
#   CGO_ENABLED=1 go build -o .gpurun/bench/kvcascade ./cmd/kvcascade
#
# Settings (environment):
#   HF_LENGTHS       transformers prompt lengths      (4096,16384,65536,131072)
#   HF_DECODE_AT     lengths decoded after             (32768)
#   FULL_LENGTHS     kvcascade full lengths            (4096,16384,65536,131072)
#   CASCADE_LENGTHS  kvcascade cascade lengths         (4096,16384,65536,131072,262144,524288,1048576)
#   DECODE           tokens decoded per length         (8)
#   BUDGET_S         seconds for the whole script      (570); each part gets
#                    what the earlier ones left, and a policy stops at the
#                    first prefill longer than MAX_PREFILL (240s)
#   SKIP_HF=1        run only kvcascade
set -u
start=$(date +%s)
OUT=${OUT:-out}
BIN=${BIN:-.gpurun/bench/kvcascade}
mkdir -p "$OUT"
left() { echo $(( ${BUDGET_S:-570} - ($(date +%s) - start) )); }
nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv | tee "$OUT/gpu.txt"
if [ -z "${SKIP_HF:-}" ]; then
	PYTHONUNBUFFERED=1 timeout 200 python3 tools/bench_hf/bench.py \
		--lengths "${HF_LENGTHS:-4096,16384,65536,131072}" --decode-at "${HF_DECODE_AT:-32768}" --decode "${DECODE:-8}" \
		> "$OUT/transformers_bf16.txt" 2> "$OUT/transformers_bf16.log"
	echo "transformers exit $?"
	tail -4 "$OUT/transformers_bf16.log"
	cat "$OUT/transformers_bf16.txt"
fi
bench() { # policy lengths file
	t=$(left)
	echo "kvcascade $1 gets ${t} s"
	[ "$t" -gt 30 ] || return 0
	timeout "$t" "$BIN" bench --backend cuda --shape llama-3.1-8b --chunk 4096 --decode "${DECODE:-8}" \
		--lengths "$2" --max-prefill "${MAX_PREFILL:-240s}" --policy "$1" > "$OUT/$3.txt" 2> "$OUT/$3.log"
	echo "kvcascade $1 exit $?"
	cat "$OUT/$3.log" "$OUT/$3.txt"
}
bench full "${FULL_LENGTHS:-4096,16384,65536,131072}" kvcascade_full
bench cascade:sinks=64,size=65536,cascades=8 "${CASCADE_LENGTHS:-4096,16384,65536,131072,262144,524288,1048576}" kvcascade_cascade
python3 "$(dirname "$0")/one_table.py" "$OUT" > "$OUT/side_by_side.md" && cat "$OUT/side_by_side.md"
