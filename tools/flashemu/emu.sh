# Shell functions the emulators' run.sh scripts share (tools/flashemu,
# tools/decodeemu, tools/cascadeemu): source it with emu set to this
# folder.

# emu_smem FILE prints FILE with its extern __shared__ array made a
# pointer to the emulated block's buffer (emu.h's emu_smem).
emu_smem() {
	sed 's/extern __shared__ __align__(16) unsigned char smem\[\];/unsigned char *smem = emu_smem;/' "$@"
}

# emu_cc OUT ARGS... builds OUT from ARGS (more g++ options, the harness)
# on emu.h and emu.cpp, in C++20, with AddressSanitizer and
# UndefinedBehaviorSanitizer.
emu_cc() {
	out=$1
	shift
	g++ -std=c++20 -O1 -g -fsanitize=address,undefined -fno-strict-aliasing -DKVC_HOST_EMULATION \
		-I"$emu" -include emu.h "$@" "$emu/emu.cpp" -o "$out" -lpthread
}

# emu_work makes a scratch folder, work, removed when the script exits.
emu_work() {
	work=$(mktemp -d)
	trap 'rm -rf "$work"' EXIT
}

# emu_storage prints gpu/kernels/storage.cuh from its include guard on,
# the types and conversions every kernel file is compiled after.
emu_storage() {
	sed -n '/^#ifndef KVC_STORAGE_CUH/,$p' "$emu/../../gpu/kernels/storage.cuh"
}
