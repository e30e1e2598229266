#!/bin/sh
# Builds the host emulation of gpu/kernels/decode.cu (the flash-decoding
# kernels) on tools/flashemu/emu.h with AddressSanitizer and
# UndefinedBehaviorSanitizer for HEAD_DIM 64 and 128 (EMU_DEFS: more
# -D options, such as -DDEC_STAGES=3) and runs
# harness.cpp, which compares them with a float64 reference. Needs g++ with
# C++20; no GPU, no CUDA. Usage: tools/decodeemu/run.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
emu=$here/../flashemu
. "$emu/emu.sh"
gpu="$here/../../gpu/kernels"
emu_work
# The extern __shared__ array becomes a pointer to the block's buffer
# (emu.h), the other shared arrays function statics, shared by the
# emulated threads of the block (blocks run one after another).
{
	emu_storage
	emu_smem "$gpu/decode.cu" | sed 's/__shared__/static/g'
} >"$work/decode_sub.cu"
test "$(grep -c 'smem = emu_smem' "$work/decode_sub.cu")" = 1
for hd in ${HDS:-64 128}; do
	emu_cc "$work/decode$hd" -DHEAD_DIM=$hd ${EMU_DEFS:-} -I"$work" -include "$here/extra.h" "$here/harness.cpp"
	"$work/decode$hd"
done
