#!/bin/sh
# Builds the host emulation of kernels of gpu/kernels/ops.cu on
# tools/flashemu/emu.h with AddressSanitizer and UndefinedBehaviorSanitizer
# and runs harness.cpp: gemv_nt (the products of one row, decoding) against
# a float64 reference, add_rmsnorm against add then rmsnorm, bit for bit.
# Needs g++ with C++20; no GPU, no CUDA. Usage: tools/opsemu/run.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
emu=$here/../flashemu
. "$emu/emu.sh"
gpu="$here/../../gpu/kernels"
emu_work
# The kernels it takes: from ops.cu's top to rmsnorm's end (block_sum,
# embed, rmsnorm), add_rmsnorm, add, and gemv_nt to the end; the other
# shared arrays become function statics, shared by the emulated threads of
# the block (blocks run one after another).
{
	emu_storage
	sed -n '1,/^EACH3(RMSNORM)/p' "$gpu/ops.cu"
	sed -n '/^\/\/ add_rmsnorm adds/,/^EACH3(ADD_RMSNORM)/p' "$gpu/ops.cu"
	sed -n '/^\/\/ add sets dst += x/,/^EACH2(ADD)/p' "$gpu/ops.cu"
	sed -n '/^\/\/ gemv_nt sets/,$p' "$gpu/ops.cu"
} | sed 's/__shared__/static/g' >"$work/ops_sub.cu"
test "$(grep -c 'gemv_nt_t\|add_rmsnorm_t' "$work/ops_sub.cu")" -ge 4
emu_cc "$work/ops" -I"$work" -include "$here/extra.h" "$here/harness.cpp"
"$work/ops"
