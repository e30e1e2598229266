#!/bin/sh
# Builds the host emulation of gpu/kernels/ops.cu's gemv_nt (the products
# of one row, decoding) on tools/flashemu/emu.h with AddressSanitizer and
# UndefinedBehaviorSanitizer and runs harness.cpp, which compares it with a
# float64 reference. Needs g++ with C++20; no GPU, no CUDA. Usage:
# tools/gemvemu/run.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
emu=$here/../flashemu
. "$emu/emu.sh"
gpu="$here/../../gpu/kernels"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
{
	sed -n '/^#ifndef KVC_STORAGE_CUH/,$p' "$gpu/storage.cuh"
	sed -n '/^#define WARP /p; /^#define FULL_MASK /p' "$gpu/ops.cu"
	sed -n '/^\/\/ gemv_nt sets/,$p' "$gpu/ops.cu"
} >"$work/gemv_sub.cu"
test "$(grep -c 'gemv_nt_t' "$work/gemv_sub.cu")" -ge 2
emu_cc "$work/gemv" -I"$work" -include "$here/extra.h" "$here/harness.cpp"
"$work/gemv"
