#!/usr/bin/env python3
"""Record the scores the official cascade attention's flash path stores, chunk by chunk.

kvcascade's cascade policy has `scoring = "reference"`, which reproduces the scores of the
official code (jeffwillette/cascading_cache_2, commit 4232407) on its flash path: the path
every prefill chunk of the paper's runs took.  This script makes the fixture its Go test
(policies/flash_fixture_test.go) replays: it runs the official `LlamaCascadeAttention`
(cascade/models/cascade_attention.py, forward_cascade with use_flash, the Triton kernel of
cascade/models/flash_attention.py and the cache kernel of cascade/models/cascading_cache.py)
on one small random Llama-shaped attention layer in float16 on a GPU, feeds it a random
prompt in chunks, and records for every chunk:

  * the layer's queries, keys and values before RoPE, as float16 (base64, little-endian);
  * the raw per-query-head scores the flash kernel returns over [sinks ; cache ; chunk];
  * the cache after the chunk: per KV head and storage slot the float16 score, the original
    position plus one (og_pos) and the empty-slot mask, and per cascade the fill and the start
    index.

The official code is read from a local checkout given on the command line and is never
copied into this project; the script copies the four files it needs into a temporary folder
and patches two lines there (recorded in the fixture):
  * cascading_cache.py: the kernel's "newest entry" index `(start - 1.0) % stored` relied on
    the floor semantics of float `%` in Triton 3.0 (the authors' version); Triton >= 3.2 computes
    C fmod and gets -1.  It is rewritten to the equal integer form `(start - 1 + stored) % stored`.
  * cascading_cache.py: `super().__init__()` of CascadingKVCache is allowed to fail with a
    TypeError or ValueError (transformers 5's Cache.__init__ takes arguments and 5.17 raises a
    ValueError without them; the class uses no Cache
    behaviour).

RoPE is made the identity so that the Go replay, which rotates in float32, sees the very
logits the kernel saw: rope_theta is so large that every inverse frequency but the first is 0,
and the q/k projection rows of the first rotary pair are zero.  The fixture records the
inverse frequencies and the script checks that rotating changes no query or key.

Needs: a CUDA GPU, torch, triton and transformers (the authors used transformers 4.43.4,
torch 2.4 and Triton 3.0; newer versions are patched around where known).  No network.

    python tools/reference/record_official_scores.py --official PATH/TO/cascading_cache_2 \
        --out policies/testdata/flash/official_scores.json

The checkout should be at commit 4232407 (the script records `git rev-parse HEAD` when it can).
"""

import argparse
import base64
import datetime
import importlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile

FORMAT = "kvcascade/flash-scores/v1"
FILES = ["cascade/__init__.py", "cascade/models/__init__.py", "cascade/models/cascade_attention.py",
         "cascade/models/flash_attention.py", "cascade/models/cascading_cache.py"]

# (file, old, new, count): the patches, applied to the temporary copy only
PATCHES = [
    ("cascade/models/cascading_cache.py", "(start_idx_i.to(tl.float32) - 1)", "(start_idx_i - 1 + stored_tokens_i)", 1),
    # transformers >= 5 turns Cache attributes the class assigns (max_batch_size, ...) into
    # read-only properties; the class uses no Cache behaviour, so it derives from object.
    ("cascade/models/cascading_cache.py", "class CascadingKVCache(Cache):", "class CascadingKVCache(object):", 1),
    # Triton >= 3.2 has no default for tl.flip's dim; Triton 3.0 flipped the last dimension.
    ("cascade/models/flash_attention.py", "tl.flip(tl.arange(0, BLOCK_M))[:, None]  # original",
     "tl.flip(tl.arange(0, BLOCK_M), 0)[:, None]  # original", 1),
]
INIT_OLD = "        super().__init__()\n\n        if isinstance(max_seq_len, int) != isinstance(window_length, int):"
INIT_NEW = ("        try:\n            super().__init__()\n        except (TypeError, ValueError):  # transformers 5: Cache.__init__ takes arguments\n"
            "            pass\n\n        if isinstance(max_seq_len, int) != isinstance(window_length, int):")

# The layer and the cache: Llama-shaped (GQA 4 query heads over 2 KV heads), head_dim 32 (the
# flash kernel needs head_dim >= its key block of 32), sinks + size = 128, a multiple of the
# kernel's 64 as the official paper setting (64 + 65,536) is, with the paper's 64 sinks; each
# cascade's window (16) is a power of two, as the cache kernel's tl.arange needs.
SHAPE = dict(hidden=128, q_heads=4, kv_heads=2, head_dim=32)
POLICY = dict(sinks=64, size=64, cascades=4, rule="pow2", reduction="max", beta=0.9999,
              eager_fill=True, homogeneous=False)
# chunk sizes: several not multiples of 64, so the kernel's padded query rows are exercised. The
# first chunk must be the largest: the official layer keeps the query positions of its first
# chunk (self.query_pos) and slices them for later ones.
CHUNKS = [128, 64, 100, 128, 64, 128, 96, 128, 37]
WEIGHT_STD = dict(qk=0.14, v=0.09, o=0.09)  # logits of std ~2.5: peaked attention


def die(msg):
    print(f"record_official_scores: {msg}", file=sys.stderr)
    sys.exit(1)


def f16_b64(t):
    """float16 tensor -> base64 of its little-endian bytes (row-major)."""
    import numpy as np
    a = t.detach().to("cpu").contiguous().numpy().astype("<f2", copy=False)
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode("ascii")


def copy_official(root, tmp):
    for rel in FILES:
        src = os.path.join(root, rel)
        if not os.path.isfile(src):
            die(f"{src} not found: --official must be a checkout of jeffwillette/cascading_cache_2")
        dst = os.path.join(tmp, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(src, dst)
    applied = []
    for rel, old, new, count in PATCHES:
        path = os.path.join(tmp, rel)
        src = open(path, encoding="utf-8").read()
        n = src.count(old)
        if n != count:
            die(f"patch anchor found {n} times in {rel}, expected {count}: {old!r} (is the checkout at 4232407?)")
        open(path, "w", encoding="utf-8").write(src.replace(old, new))
        applied.append(f"{rel}: {old!r} -> {new!r}")
    path = os.path.join(tmp, "cascade/models/cascading_cache.py")
    src = open(path, encoding="utf-8").read()
    if src.count(INIT_OLD) != 1:
        die("CascadingKVCache.__init__ anchor not found once (is the checkout at 4232407?)")
    src = src.replace(INIT_OLD, INIT_NEW)
    applied.append("cascade/models/cascading_cache.py: CascadingKVCache.__init__ tolerates a TypeError or ValueError from Cache.__init__")
    open(path, "w", encoding="utf-8").write(src)
    return applied


def git_head(root):
    # Only a checkout whose top level is root itself: a plain copy of the files (git archive)
    # inside another repository would otherwise report that repository's commit.
    try:
        top = subprocess.run(["git", "-C", root, "rev-parse", "--show-toplevel"], capture_output=True,
                             text=True, check=True).stdout.strip()
        if os.path.realpath(top) != os.path.realpath(root):
            return None
        return subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except Exception:  # not a git checkout, or no git: the fixture says so
        return None


def build_layer(ca, torch, dev, seed):
    from transformers import LlamaConfig
    hd = SHAPE["head_dim"]
    cfg = LlamaConfig(hidden_size=SHAPE["hidden"], num_attention_heads=SHAPE["q_heads"],
                      num_key_value_heads=SHAPE["kv_heads"], head_dim=hd, intermediate_size=256,
                      num_hidden_layers=1, max_position_embeddings=4096, rope_theta=1e300,
                      attention_bias=False)
    cfg._head_reduction = POLICY["reduction"]
    cfg._homogeneous_heads = POLICY["homogeneous"]
    cfg._do_og_pos = False
    cfg._attn_implementation = "eager"
    attn = ca.LlamaCascadeAttention(cfg, layer_idx=0)
    # transformers >= 4.48 keeps these elsewhere; the official code reads them off the layer
    for name, val in [("num_heads", SHAPE["q_heads"]), ("num_key_value_heads", SHAPE["kv_heads"]),
                      ("num_key_value_groups", SHAPE["q_heads"] // SHAPE["kv_heads"]), ("head_dim", hd)]:
        if getattr(attn, name, None) != val:
            setattr(attn, name, val)
    if not hasattr(attn, "rotary_emb"):
        from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding
        attn.rotary_emb = LlamaRotaryEmbedding(config=cfg)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for lin, std in [(attn.q_proj, WEIGHT_STD["qk"]), (attn.k_proj, WEIGHT_STD["qk"]),
                         (attn.v_proj, WEIGHT_STD["v"]), (attn.o_proj, WEIGHT_STD["o"])]:
            lin.weight.copy_(torch.randn(lin.weight.shape, generator=g) * std)
        # zero the first rotary pair (dims 0 and hd/2 of every head), the only one that rotates
        for lin, heads in [(attn.q_proj, SHAPE["q_heads"]), (attn.k_proj, SHAPE["kv_heads"])]:
            for h in range(heads):
                lin.weight[h * hd + 0].zero_()
                lin.weight[h * hd + hd // 2].zero_()
    attn = attn.to(device=dev, dtype=torch.float16).eval()
    attn.rotary_emb = attn.rotary_emb.to(dev)
    return cfg, attn


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--official", required=True, help="local checkout of jeffwillette/cascading_cache_2 (commit 4232407)")
    ap.add_argument("--out", default="policies/testdata/flash/official_scores.json")
    ap.add_argument("--seed", type=int, default=20261206)
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args()

    import numpy as np  # noqa: F401  (f16_b64)
    import torch
    import triton
    import transformers

    if not torch.cuda.is_available():
        die("no CUDA GPU: the official flash path is a Triton kernel")
    dev = torch.device(args.device)
    root = os.path.abspath(args.official)
    tmp = tempfile.mkdtemp(prefix="official_cascade_")
    patches = copy_official(root, tmp)
    sys.path.insert(0, tmp)
    try:
        ca = importlib.import_module("cascade.models.cascade_attention")
        cc = importlib.import_module("cascade.models.cascading_cache")
    except ImportError as e:
        die(f"importing the official modules failed ({e}); the authors used transformers 4.43.4")
    if os.path.abspath(ca.__file__).startswith(root):
        die("imported the checkout itself instead of the patched copy: remove it from PYTHONPATH")

    if max(CHUNKS) != CHUNKS[0]:
        die("the first chunk must be the largest (the official layer slices its first chunk's query positions)")
    torch.manual_seed(args.seed)
    cfg, attn = build_layer(ca, torch, dev, args.seed)
    hq, hkv, hd = SHAPE["q_heads"], SHAPE["kv_heads"], SHAPE["head_dim"]
    inv_freq = attn.rotary_emb.inv_freq.detach().float().cpu()
    if inv_freq[0].item() != 1.0 or any(x != 0.0 for x in inv_freq[1:].tolist()):
        print(f"warning: inverse frequencies are not [1, 0, ...]: {inv_freq.tolist()}", file=sys.stderr)

    cache = cc.CascadingKVCache(
        window_length=POLICY["size"] // POLICY["cascades"], num_sink_tokens=POLICY["sinks"], max_batch_size=1,
        heads=hkv, dim=hd, max_seq_len=POLICY["size"], device=dev, dtype=torch.float16,
        cascade_func=POLICY["rule"], head_reduction=POLICY["reduction"], layers=1,
        eager_fill=POLICY["eager_fill"], verbose=False)
    if abs(cache.beta - POLICY["beta"]) > 0:
        die(f"the official cache's beta is {cache.beta}, the fixture says {POLICY['beta']}")

    # hooks: the layer's q/k/v before RoPE, the flash kernel's raw scores, the flash path taken
    seen = {}
    orig_qkv = attn.qkv

    def qkv(x, size, kv_size):
        q, k, v = orig_qkv(x, size, kv_size)
        seen["q"], seen["k"], seen["v"] = q, k, v
        return q, k, v

    attn.qkv = qkv
    orig_attention = ca.attention

    def attention(*a, **kw):
        out, scores = orig_attention(*a, **kw)
        seen["scores"] = scores.detach().clone()
        return out, scores

    ca.attention = attention

    def rope_change(x, pos):
        r, _, _ = attn.rope(x, pos)
        return (r.float() - x.float()).abs().max().item()

    g = torch.Generator().manual_seed(args.seed + 1)
    chunks, start, rope_max = [], 0, 0.0
    for idx, n in enumerate(CHUNKS):
        hidden = (torch.randn(1, n, SHAPE["hidden"], generator=g)).to(device=dev, dtype=torch.float16)
        seen.clear()
        with torch.no_grad():
            attn.forward(hidden_states=hidden, past_key_value=cache, use_cache=True)
        if getattr(attn, "last_attn_called", None) != "flash" or "scores" not in seen:
            die(f"chunk {idx}: the flash path did not run (last_attn_called = {getattr(attn, 'last_attn_called', None)})")
        torch.cuda.synchronize()
        q, k, v = seen["q"], seen["k"], seen["v"]  # [1, H, n, hd] before RoPE
        for p0 in (start, start + POLICY["sinks"] + POLICY["size"]):
            pos = torch.arange(p0, p0 + n, device=dev).view(1, -1)
            rope_max = max(rope_max, rope_change(q, pos), rope_change(k, pos))
        L = POLICY["sinks"] + POLICY["size"]
        scores = seen["scores"][0]  # [Hq, L + n] float16
        if scores.shape != (hq, L + n):
            die(f"chunk {idx}: flash scores of shape {tuple(scores.shape)}, want {(hq, L + n)}")
        state = dict(
            score=[[float(x) for x in row] for row in cache.score_cache[0][0].float().cpu().tolist()],
            og_pos=cache.og_pos[0][0].cpu().tolist(),
            mask=cache.mask[0][0].cpu().tolist(),
            stored_tokens=cache.stored_tokens[0][0].cpu().tolist(),
            start_indices=cache.start_indices[0][0].cpu().tolist(),
            stored_sinks=cache.stored_sinks[0][0].cpu().tolist(),
        )
        chunks.append(dict(
            index=idx, start=start, size=n,
            # [n, H·hd] row-major, as kvcascade's Attention takes them
            q=f16_b64(q[0].transpose(0, 1).reshape(n, hq * hd)),
            k=f16_b64(k[0].transpose(0, 1).reshape(n, hkv * hd)),
            v=f16_b64(v[0].transpose(0, 1).reshape(n, hkv * hd)),
            flash_scores=f16_b64(scores),  # [Hq, L + n]
            after=state,
        ))
        start += n
        print(f"chunk {idx}: {n} tokens, flash scores max {scores.float().max().item():.4g}, "
              f"{sum(1 for m in state['mask'][0] if not m)} slots held by head 0")
    if rope_max != 0.0:
        print(f"warning: RoPE changes queries/keys by up to {rope_max} (the Go replay expects none)", file=sys.stderr)

    out = dict(
        format=FORMAT,
        provenance=dict(
            official_repository="jeffwillette/cascading_cache_2", official_commit=git_head(root),
            expected_commit="4232407", patches=patches,
            date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            python=platform.python_version(), torch=torch.__version__, triton=triton.__version__,
            transformers=transformers.__version__, gpu=torch.cuda.get_device_name(dev), seed=args.seed,
            rope_max_abs_change=rope_max,
            note="atomic adds of the flash kernel run in a hardware-chosen order: another run may differ by float16 roundings",
        ),
        shape=SHAPE, policy=POLICY, inv_freq=inv_freq.tolist(), scale=1.0 / (hd ** 0.5),
        chunks=chunks,
    )
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {args.out}: {len(chunks)} chunks, {start} tokens")


if __name__ == "__main__":
    main()
