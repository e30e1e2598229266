"""Merges side_by_side.sh's tables into one Markdown table.

Reads the tables that bench.py and `kvcascade bench` printed into a folder
(transformers_bf16.txt, kvcascade_full.txt, kvcascade_cascade.txt; any of
them may be missing) and prints one row per prompt length: the prefill
seconds of each, kvcascade full over transformers, and the cascade's device
memory. The GPU is named from gpu.txt (nvidia-smi's CSV) when it is there.

    python3 tools/bench_hf/one_table.py out > out/side_by_side.md
"""

import os
import sys


def read_table(path):
    """Returns {length: (prefill s, device MiB)} from a bench table, or {}.

    Tables since 2026-12-07 end with a decode GB/s column (their header
    says so); older ones end with device MiB."""
    rows = {}
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return rows
    extra = 0  # columns after device MiB
    for n, line in enumerate(lines, 1):
        if line.startswith("policy"):
            extra = 1 if "GB/s" in line else 0
            continue
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split()
        if "OOM" in fields:  # bench.py ran out of device memory at this length
            continue
        if len(fields) < 7 + extra:
            sys.exit(f"{path}:{n}: {line!r}: want a policy and {6 + extra} columns")
        try:
            length, prefill = int(fields[-6 - extra]), float(fields[-5 - extra])
            device = fields[-1 - extra]
        except ValueError as e:
            sys.exit(f"{path}:{n}: {line!r}: {e}")
        rows[length] = (prefill, device)
    return rows


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: one_table.py FOLDER")
    d = sys.argv[1]
    gpu = "GPU not recorded"
    try:
        with open(os.path.join(d, "gpu.txt")) as f:
            lines = f.read().splitlines()
        if len(lines) > 1:
            gpu = lines[1].split(",")[0].strip()
    except FileNotFoundError:
        pass
    hf = read_table(os.path.join(d, "transformers_bf16.txt"))
    full = read_table(os.path.join(d, "kvcascade_full.txt"))
    casc = read_table(os.path.join(d, "kvcascade_cascade.txt"))
    print(f"Prefill seconds on one {gpu}, random Llama-3.1-8B shape, bf16, same device call.\n")
    print("| length | transformers + SDPA | kvcascade full | full / transformers | kvcascade cascade | cascade device MiB |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for n in sorted(set(hf) | set(full) | set(casc)):
        h, f, c = hf.get(n), full.get(n), casc.get(n)
        ratio = f"{f[0] / h[0]:.2f}×" if h and f and h[0] > 0 else "–"
        print(f"| {n:,} | {h[0]:.3f} |" if h else f"| {n:,} | – |", end="")
        print(f" {f[0]:.3f} |" if f else " – |", end="")
        print(f" {ratio} |", end="")
        print(f" {c[0]:.3f} | {c[1]} |" if c else " – | – |")


if __name__ == "__main__":
    main()
