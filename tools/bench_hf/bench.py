#!/usr/bin/env python3
"""Time prefill and decoding of a random Llama-3.1-8B-shaped model with
Hugging Face transformers and PyTorch SDPA attention (bf16), the baseline of
`kvcascade bench`.

The model is built directly on the GPU (random initialisation, no weight
files). Each prompt length gets one forward pass (random token ids, timed
with torch.cuda.synchronize, after an untimed warm-up); at the lengths in
--decode-at, --decode tokens are then decoded greedily through the
DynamicCache and reported as ms/token. The columns are those of
`kvcascade bench`: cache MiB is the bf16 KV cache of the full context, device
MiB the device memory in use after the run as the driver sees it
(total − free).

    python3 tools/bench_hf/bench.py --lengths 4096,16384,32768 --decode-at 16384,32768 --decode 8
"""

import argparse
import csv
import sys
import time

import torch
import transformers
from transformers import AutoModelForCausalLM, LlamaConfig

# Llama-3.1-8B's architecture (config.json without the weights).
LLAMA31_8B = dict(
    vocab_size=128256,
    hidden_size=4096,
    intermediate_size=14336,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=8,
    head_dim=128,
    hidden_act="silu",
    max_position_embeddings=131072,
    rms_norm_eps=1e-5,
    tie_word_embeddings=False,
    attention_bias=False,
    mlp_bias=False,
    bos_token_id=128000,
    eos_token_id=[128001, 128008, 128009],
)
ROPE = dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
            original_max_position_embeddings=8192)
ROPE_THETA = 500000.0

MIB = 1 << 20


def ints(s):
    return sorted(int(v) for v in s.split(",") if v.strip())


def make_config(layers):
    kw = dict(LLAMA31_8B)
    if layers:
        kw["num_hidden_layers"] = layers
    major = int(transformers.__version__.split(".")[0])
    if major >= 5:
        kw["rope_parameters"] = dict(ROPE, rope_theta=ROPE_THETA)
    else:
        kw["rope_scaling"] = dict(ROPE)
        kw["rope_theta"] = ROPE_THETA
    return LlamaConfig(**kw)


def build(config, seed):
    torch.manual_seed(seed)
    major = int(transformers.__version__.split(".")[0])
    dtype_kw = {"dtype": torch.bfloat16} if major >= 5 else {"torch_dtype": torch.bfloat16}
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa", **dtype_kw)
    model = model.to(device="cuda", dtype=torch.bfloat16).eval()
    return model


def used_mib():
    free, total = torch.cuda.mem_get_info()
    return (total - free) // MIB


def run(model, n, decode, gen):
    """Prefill n random tokens, then decode `decode` tokens; returns (prefill s, ms/token or None)."""
    vocab = model.config.vocab_size
    ids = torch.randint(vocab, (1, n), device="cuda", generator=gen)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
    torch.cuda.synchronize()
    prefill = time.perf_counter() - t0
    per_token = None
    if decode > 0:
        past = out.past_key_values
        tok = out.logits[:, -1:].argmax(-1)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(decode):
            out = model(input_ids=tok, past_key_values=past, use_cache=True)
            past = out.past_key_values
            tok = out.logits[:, -1:].argmax(-1)
        tok.item()  # waits for the last token
        per_token = (time.perf_counter() - t0) * 1000 / decode
    return prefill, per_token, out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lengths", type=ints, default=[4096, 16384, 32768], help="prompt lengths, comma-separated")
    ap.add_argument("--decode-at", type=ints, default=[32768], help="lengths after which to decode")
    ap.add_argument("--decode", type=int, default=16, help="tokens decoded at the --decode-at lengths")
    ap.add_argument("--layers", type=int, default=0, help="use only this many layers (0: all 32)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--format", choices=["table", "csv"], default="table")
    a = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench.py: no CUDA device")

    config = make_config(a.layers)
    t0 = time.perf_counter()
    model = build(config, a.seed)
    torch.cuda.synchronize()
    params = sum(p.numel() for p in model.parameters())
    print(f"bench.py: random Llama-3.1-8B shape, {config.num_hidden_layers} layers, {params / 1e9:.2f} B parameters "
          f"({next(model.parameters()).dtype}), attention {model.config._attn_implementation}, built in "
          f"{time.perf_counter() - t0:.1f} s on {torch.cuda.get_device_name()}; torch {torch.__version__}, "
          f"transformers {transformers.__version__}", file=sys.stderr, flush=True)

    gen = torch.Generator(device="cuda")
    gen.manual_seed(a.seed)
    label = "full (transformers sdpa bf16)"
    cols = ["policy", "length", "prefill_s", "prefill_tok_s", "decode_ms_tok", "cache_MiB", "device_MiB", "decode_GB_s"]
    # bytes a decoding step must read besides the cache: every bf16 weight
    # but the input embedding's (one row of it), as `kvcascade bench` counts
    step_weights = 2 * (params - config.vocab_size * config.hidden_size)
    w = csv.writer(sys.stdout) if a.format == "csv" else None
    if w:
        w.writerow(cols)
    else:
        print(f"# transformers {transformers.__version__} + torch {torch.__version__} SDPA, random Llama-3.1-8B shape "
              f"({config.num_hidden_layers} layers, bf16), {torch.cuda.get_device_name()}")
        print(f"{'policy':<{len(label)}}  {'length':>7}  {'prefill s':>10}  {'prefill tok/s':>13}  "
              f"{'decode ms/tok':>13}  {'cache MiB':>10}  {'device MiB':>10}  {'decode GB/s':>11}")
    sys.stdout.flush()

    with torch.inference_mode():
        run(model, min(1024, a.lengths[0]), 2, gen)  # warm-up: kernels, allocator, cuBLAS handles
        for n in sorted(set(a.lengths) | set(a.decode_at)):
            decode = a.decode if n in a.decode_at else 0
            try:
                prefill, per_token, out = run(model, n, decode, gen)
            except torch.cuda.OutOfMemoryError as e:
                # the longer lengths would not fit either: report and stop
                torch.cuda.empty_cache()
                print(f"bench.py: {n} tokens: out of device memory ({str(e).splitlines()[0]}); "
                      f"skipping the longer lengths", file=sys.stderr, flush=True)
                if w:
                    w.writerow([label, n, "OOM", "", "", "", "", ""])
                else:
                    print(f"{label:<{len(label)}}  {n:>7}  {'OOM':>10}")
                sys.stdout.flush()
                break
            kv = 2 * config.num_hidden_layers * config.num_key_value_heads * config.head_dim * (n + decode) * 2
            dev = used_mib()
            del out
            torch.cuda.empty_cache()
            ms = f"{per_token:.2f}" if per_token is not None else "-"
            # a step reads the weights and the cache of the n + decode/2
            # tokens held on average while decoding
            step = step_weights + kv * (n + decode / 2) / (n + decode)
            gbs = f"{step / (per_token * 1e6):.1f}" if per_token else "-"
            if w:
                w.writerow([label, n, f"{prefill:.4f}", f"{n / prefill:.1f}", ms, f"{kv / MIB:.1f}", dev, gbs])
            else:
                print(f"{label:<{len(label)}}  {n:>7}  {prefill:>10.3f}  {n / prefill:>13.1f}  {ms:>13}  "
                      f"{kv / MIB:>10.1f}  {dev:>10}  {gbs:>11}")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
