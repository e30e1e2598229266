#!/bin/sh
# Builds the host emulation of gpu/kernels/decode.cu (the flash-decoding
# kernels) on tools/flashemu/emu.h with AddressSanitizer and
# UndefinedBehaviorSanitizer for HEAD_DIM 64, 128 and 256 (EMU_DEFS: more
# -D options, such as -DDEC_UNROLL=4) and runs
# harness.cpp, which compares them with a float64 reference. Needs g++ with
# C++20; no GPU, no CUDA. Usage: tools/decodeemu/run.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
gpu="$here/../../gpu/kernels"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The extern __shared__ array becomes a pointer to the block's buffer
# (emu.h), the other shared arrays function statics, shared by the
# emulated threads of the block (blocks run one after another).
{
	sed -n '/^#ifndef KVC_STORAGE_CUH/,$p' "$gpu/storage.cuh"
	sed -e 's/extern __shared__ __align__(16) unsigned char smem\[\];/unsigned char *smem = emu_smem;/' \
		-e 's/__shared__/static/g' "$gpu/decode.cu"
} >"$work/decode_sub.cu"
test "$(grep -c 'smem = emu_smem' "$work/decode_sub.cu")" = 1
for hd in ${HDS:-64 128 256}; do
	g++ -std=c++20 -O1 -g -fsanitize=address,undefined -fno-strict-aliasing \
		-DKVC_HOST_EMULATION -DHEAD_DIM=$hd ${EMU_DEFS:-} -I"$here/../flashemu" -I"$work" -include emu.h -include "$here/extra.h" \
		"$here/harness.cpp" "$here/../flashemu/emu.cpp" -o "$work/decode$hd" -lpthread
	"$work/decode$hd"
done
