#!/bin/sh
# Builds the host emulation of gpu/kernels/cascade.cu's walks
# (cascade_walk: staged, in parallel, on global memory; cascade_step, one
# token) on tools/flashemu/emu.h with AddressSanitizer and
# UndefinedBehaviorSanitizer and runs harness.cpp, which walks random
# chunks through random states with each and with the walk as it was
# before staging (reference.cu), and compares every output bit for bit;
# and cascade_reduce_scores with decode_mass's terms (mass_term) reduced
# by cascade_reduce.
# Needs g++ with C++20; no GPU, no CUDA. A few minutes on two cores.
# Usage: tools/cascadeemu/run.sh [cases [seed]]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
emu=$here/../flashemu
. "$emu/emu.sh"
emu_work
# The kernel's extern __shared__ array becomes a pointer to the block's buffer,
# the other shared arrays function statics (blocks run one after another).
{
	emu_storage
	emu_smem "$here/../../gpu/kernels/cascade.cu" | sed 's/__shared__/static/g'
} >"$work/cascade_sub.cu"
test "$(grep -c emu_smem "$work/cascade_sub.cu")" = 1
emu_cc "$work/cascade" -DWALK_PAR_MIN=1 -fno-sanitize-recover=undefined -I"$here" -I"$work" -include "$here/extra.h" "$here/harness.cpp"
"$work/cascade" "$@"
