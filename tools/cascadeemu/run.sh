#!/bin/sh
# Builds the host emulation of gpu/kernels/cascade.cu's cascade_walk (on
# global memory, staged, in parallel) on tools/flashemu/emu.h with
# AddressSanitizer and UndefinedBehaviorSanitizer and runs harness.cpp,
# which walks random chunks through random states with each path and with
# the walk as it was before staging (reference.cu), and compares every
# output bit for bit. WALK_PAR_MIN 1 lets short chunks walk in parallel
# too. Needs g++ with C++20; no GPU, no CUDA. About two minutes on two
# cores. Usage: tools/cascadeemu/run.sh [cases [seed]]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
emu=$here/../flashemu
. "$emu/emu.sh"
emu_work
# The kernel's extern __shared__ array becomes a pointer to the block's buffer.
emu_smem "$here/../../gpu/kernels/cascade.cu" >"$work/cascade_sub.cu"
test "$(grep -c emu_smem "$work/cascade_sub.cu")" = 1
emu_cc "$work/cascade" -DWALK_PAR_MIN=1 -fno-sanitize-recover=undefined -I"$here" -I"$work" -include "$here/extra.h" "$here/harness.cpp"
"$work/cascade" "$@"
