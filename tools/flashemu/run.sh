#!/bin/sh
# Builds the host emulation of gpu/kernels/flash.cu (emu.h) with AddressSanitizer and
# UndefinedBehaviorSanitizer for HEAD_DIM 64 and 128 and runs harness.cpp,
# which compares the kernels with a float64 reference: once with flash_fwd
# and flash_mass (mma.sync), once with the Hopper kernels flash_fwd90 and
# flash_mass90 in their place (-DKVC_WGMMA, tools/flashemu/wgmma.h), the
# latter once as compiled by default (W90=0) and once with the options the
# benchmarks try (W90=1: the consumer warpgroups' ping-pong, W_PINGPONG,
# and flash_mass90's ex2_fma, W_MPOLY). Needs g++ with C++20
# (std::barrier); no GPU, no CUDA. A few minutes on two cores. Usage:
#   [HDS="64 128"] [W90="0 1"] tools/flashemu/run.sh [case number]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
emu=$here
. "$emu/emu.sh"
emu_work
# The kernels' extern __shared__ array becomes a pointer to the block's buffer.
emu_smem "$here/../../gpu/kernels/flash.cu" >"$work/flash_sub.cu"
test "$(grep -c emu_smem "$work/flash_sub.cu")" = "$(grep -c "extern __shared__" "$here/../../gpu/kernels/flash.cu")"
for hd in ${HDS:-64 128}; do
	emu_cc "$work/flash$hd" -DHEAD_DIM=$hd -I"$work" "$here/harness.cpp"
	"$work/flash$hd" "$@"
	for v in ${W90:-0 1}; do
		emu_cc "$work/flash90_$hd" -DHEAD_DIM=$hd -DKVC_WGMMA -DW_PINGPONG=$v -DW_MPOLY=$((8 * v)) -I"$work" "$here/harness.cpp"
		"$work/flash90_$hd" "$@"
	done
done
