"""Times PyTorch SDPA on the prefill shapes of gpu's BenchmarkFlashAttention.

One Llama-3.1-8B layer (32 query heads, 8 KV heads, head dim 128, bf16): S
queries over L cached keys plus the chunk itself, causal inside the chunk
(query i sees keys 0 .. L+i, the lower-right causal mask). The flash
backend is timed on every shape, cuDNN where L = 0 (torch gives it no
lower-right mask without materialising one) and, where L > 0, with no mask
at all (the "no mask" column, 4·S·(L+S)·hd·Hq flops: the speed its fused
kernel reaches on the shape), each with CUDA events, median of --repeat
calls after --warmup. TFLOP/s counts 4·S·(L+S/2)·hd·Hq flops, as the Go
benchmark does. Prints a table, and with --out writes one line per shape,
"S L best flash cudnn" (TFLOP/s, 0 where a backend did not run), for the Go
benchmark to read through $KVCASCADE_SDPA.

    python3 tools/bench_hf/sdpa_attention.py --shapes 4096:4096,4096:65536 --out sdpa.txt
"""

import argparse
import statistics
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.attention.bias import causal_lower_right

HQ, HKV, HD = 32, 8, 128


def time_call(fn, warmup, repeat):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeat):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)


def run(s, l, warmup, repeat):
    n = l + s
    g = torch.Generator(device="cuda").manual_seed(s * 7 + l)
    q = torch.randn(1, HQ, s, HD, device="cuda", dtype=torch.bfloat16, generator=g)
    k = torch.randn(1, HKV, n, HD, device="cuda", dtype=torch.bfloat16, generator=g)
    v = torch.randn(1, HKV, n, HD, device="cuda", dtype=torch.bfloat16, generator=g)
    # Not every backend takes enable_gqa: give them the expanded heads.
    ke, ve = k.repeat_interleave(HQ // HKV, dim=1), v.repeat_interleave(HQ // HKV, dim=1)
    # is_causal aligns the mask top-left; a chunk after a view needs it
    # lower-right, which torch runs on the flash kernel only (other
    # backends would get a materialised mask): cuDNN is timed on square
    # shapes (L = 0), and with no mask where L > 0 (see below).
    kw = {"is_causal": True} if l == 0 else {"attn_mask": causal_lower_right(s, n)}
    flops = 4.0 * s * (l + s / 2) * HD * HQ
    res = {}
    for name, be in (("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION)):
        if name == "cudnn" and l > 0:
            continue
        try:
            with sdpa_kernel(be):
                ms = time_call(lambda: F.scaled_dot_product_attention(q, ke, ve, **kw), warmup, repeat)
            res[name] = (ms, flops / ms / 1e9)
        except Exception as e:  # a backend that declines the shape
            print(f"S={s} L={l} {name}: {type(e).__name__}: {str(e).splitlines()[0][:160]}", file=sys.stderr)
    if l > 0:
        # cuDNN with no mask at all (every query sees all L+S keys): not
        # the same attention, but the speed its fused kernel would reach
        # on the shape, which an attention over a gathered view could use.
        try:
            with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
                ms = time_call(lambda: F.scaled_dot_product_attention(q, ke, ve), warmup, repeat)
            res["cudnn_nomask"] = (ms, 4.0 * s * n * HD * HQ / ms / 1e9)
        except Exception as e:
            print(f"S={s} L={l} cudnn without a mask: {type(e).__name__}: {str(e).splitlines()[0][:160]}", file=sys.stderr)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default="4096:4096,4096:65536,16384:0", help="S:L pairs, comma-separated")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    print(f"# {torch.cuda.get_device_name()}, torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}")
    print(f"{'S':>6} {'L':>7} {'flash ms':>9} {'TFLOP/s':>8} {'cuDNN ms':>9} {'TFLOP/s':>8} {'no mask':>8} {'TFLOP/s':>8}")
    lines = []
    for pair in a.shapes.split(","):
        s, l = (int(x) for x in pair.split(":"))
        r = run(s, l, a.warmup, a.repeat)
        fl, cu, nm = r.get("flash", (0.0, 0.0)), r.get("cudnn", (0.0, 0.0)), r.get("cudnn_nomask", (0.0, 0.0))
        print(f"{s:>6} {l:>7} {fl[0]:>9.2f} {fl[1]:>8.1f} {cu[0]:>9.2f} {cu[1]:>8.1f} {nm[0]:>8.2f} {nm[1]:>8.1f}", flush=True)
        lines.append(f"{s} {l} {max(fl[1], cu[1]):.1f} {fl[1]:.1f} {cu[1]:.1f}\n")
    if a.out:
        with open(a.out, "w") as f:
            f.writelines(lines)


if __name__ == "__main__":
    main()
