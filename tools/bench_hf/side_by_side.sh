#!/bin/sh
# side_by_side.sh runs the transformers baseline (bench.py, bf16 SDPA) and
# `kvcascade bench` (f32, CUDA backend) on one GPU, one after the other, and
# writes both tables to $OUT (default ./out). The kvcascade binary and the
# gpu test binary are built beforehand (no Go on the GPU machine); the whole
# script stays within $BUDGET_S seconds (default 450), kvcascade getting what
# bench.py left:
#
#   CGO_ENABLED=1 go build -o .gpurun/bench/kvcascade ./cmd/kvcascade
#   go test -c -o .gpurun/bench/gpu.test ./gpu
set -u
start=$(date +%s)
OUT=${OUT:-out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv | tee "$OUT/gpu.txt"
(cd gpu && KVCASCADE_REQUIRE_GPU=1 ../.gpurun/bench/gpu.test -test.run 'TestRandomNormal' -test.v 2>&1 | tail -4)
PYTHONUNBUFFERED=1 timeout 170 python3 tools/bench_hf/bench.py --lengths 4096,16384,32768 --decode-at 16384,32768 --decode 8 \
	> "$OUT/transformers_bf16.txt" 2> "$OUT/transformers_bf16.log"
tail -8 "$OUT/transformers_bf16.log"
cat "$OUT/transformers_bf16.txt"
left=$(( ${BUDGET_S:-450} - ($(date +%s) - start) ))
echo "kvcascade bench gets ${left} s"
timeout "$left" .gpurun/bench/kvcascade bench --backend cuda --shape llama-3.1-8b ${KV_LAYERS:+--layers $KV_LAYERS} \
	--lengths 4096,16384,32768 --max-prefill 40s --chunk 4096 --decode 8 \
	--policy full --policy cascade:sinks=64,size=65536,cascades=8 \
	> "$OUT/kvcascade_f32.txt" 2> "$OUT/kvcascade_f32.log"
echo "kvcascade exit $?"
cat "$OUT/kvcascade_f32.log"
cat "$OUT/kvcascade_f32.txt"
