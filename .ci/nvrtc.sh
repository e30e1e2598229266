#!/usr/bin/env bash
# Fetches NVRTC (Debian's libnvrtc12 and its builtins, from the non-free
# component of the stable release, through the machine's own Debian
# mirror) into folder $1 and prints the folder that holds the libraries:
# with it on LD_LIBRARY_PATH, gpu's TestKernelsCompile compiles every
# kernel for sm_80 and sm_90a, and fails where ptxas serialises the
# warpgroup MMAs, on a machine without a GPU. Exits non-zero, printing
# nothing, when it cannot (the test then skips). Nothing is installed.
set -euo pipefail
dir=${1:?usage: .ci/nvrtc.sh folder}
uri=$(grep -h -E '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -1 || true)
if [ -z "$uri" ]; then
	uri=$(grep -h -E '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | grep -v security | head -1 || true)
fi
[ -n "$uri" ] || exit 1
mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial" "$dir/root"
echo "deb $uri trixie non-free" >"$dir/sources.list"
apt=(-o Dir::Etc::SourceList="$dir/sources.list" -o Dir::Etc::SourceParts=/dev/null -o Dir::State::Lists="$dir/lists"
	-o Dir::Cache="$dir/cache" -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
apt-get "${apt[@]}" update -qq >/dev/null 2>&1
(cd "$dir" && apt-get "${apt[@]}" download -qq libnvrtc12 'libnvrtc-builtins12.*' >/dev/null 2>&1)
for d in "$dir"/*.deb; do
	dpkg-deb -x "$d" "$dir/root"
done
lib=$(dirname "$(find "$dir/root" -name 'libnvrtc.so.12*' | head -1)")
[ -f "$lib/libnvrtc.so.12" ] || exit 1
echo "$lib"
