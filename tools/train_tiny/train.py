#!/usr/bin/env python3
"""Trains kvcascade's embedded Llama models (tiny, mini).

The model is the miniature of the cascade paper's set-up: a Llama
architecture trained with full attention at a short context (1,024 tokens
for tiny, 4,096 for mini) on natural English plus passkey documents, then
run by kvcascade far past that length through each cache policy. The
defaults are tiny's recipe; tools/train_tiny/train_mini.sh gives mini's.

Inputs (made by tools/train_tiny/prepare.sh or prepare_mini.sh):
DATA/train.txt (natural text), DATA/heldout.txt (natural text never trained
on), each possibly gzipped (.txt.gz), and DATA/passkey.jsonl.gz (passkey
documents in exactly the layout of kvcascade's passkey experiment).

Output: an HF model directory (config.json, model.safetensors in bf16,
tokenizer.json, generation_config.json) plus train_log.json (loss curve and
final figures), train_log.txt (what it printed) and golden.json +
logits_*.f32 (reference logits of the bf16 weights computed in float32, for
the Go parity test).

Usage: python tools/train_tiny/train.py --data .train --out OUT [--steps N] [--ctx N] ...
"""

import argparse
import gzip
import itertools
import json
import math
import os
import random
import re
import time

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import LlamaConfig, LlamaForCausalLM

LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                  r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
BOS, EOS = "<|begin_of_text|>", "<|end_of_text|>"
QUESTION = "What is the pass key? The pass key is"


def train_tokenizer(texts, vocab):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=[BOS, EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    bos = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", special_tokens=[(BOS, bos)])
    return tok


LOG = []  # every line printed, written to train_log.txt


def say(msg):
    LOG.append(msg)
    print(msg, flush=True)


def read_text(data, name):
    """DATA/name, or DATA/name.gz when only the gzipped file is there."""
    path = os.path.join(data, name)
    if os.path.exists(path):
        return open(path, encoding="utf-8").read()
    with gzip.open(path + ".gz", "rt", encoding="utf-8") as f:
        return f.read()


def encode_lines(tok, lines):
    """Token ids of "\n".join(lines) without BOS, encoded line by line in
    parallel (each line but the last with its newline): the same ids as one
    encode of the joined text, since the pre-tokenizer splits at newlines,
    except that runs of empty lines are not merged into one token."""
    texts = [l + "\n" for l in lines[:-1]] + lines[-1:]
    encs = tok.encode_batch(texts, add_special_tokens=False)
    return np.fromiter(itertools.chain.from_iterable(e.ids for e in encs), dtype=np.int32)


def prompt_of(text):
    """The passkey document text up to and including its question."""
    return text[: text.rindex(QUESTION) + len(QUESTION)]


def load_passkey(path):
    docs = []
    with gzip.open(path, "rt") as f:
        for line in f:
            docs.append(json.loads(line))
    return docs


def encode_passkey(tok, docs, max_len):
    """Token ids of each document and the positions of its answer tokens.
    A document longer than max_len is dropped, never cropped, so the key and
    the answer are always in what is trained on."""
    prompts = [prompt_of(d["text"]) for d in docs]
    encs_p = tok.encode_batch(prompts)
    encs_t = tok.encode_batch([d["text"] for d in docs])
    eos = tok.token_to_id(EOS)
    out = []
    for ep, et in zip(encs_p, encs_t):
        p = ep.ids
        ids = et.ids + [eos]
        if len(ids) > max_len or ids[: len(p)] != p:
            continue
        out.append((ids, len(p)))
    return out


def lr_at(step, steps, peak, warmup):
    if step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


def make_batch(rng, natural, pk, shortest, batch, length, pad, answer_weight, frac_passkey):
    """A batch of rows: passkey documents (shortest: the fewest tokens of any)
    or windows of natural text, and the loss weight of each token."""
    x = torch.full((batch, length), pad, dtype=torch.long)
    w = torch.zeros((batch, length), dtype=torch.float32)
    for b in range(batch):
        # A row is natural text when no passkey document fits the length
        # (the draw is made all the same, so the stream of draws is unchanged).
        if rng.random() < frac_passkey and shortest <= length:
            ids, plen = pk[rng.randrange(len(pk))]
            while len(ids) > length:
                ids, plen = pk[rng.randrange(len(pk))]
            x[b, : len(ids)] = torch.tensor(ids)
            w[b, 1: len(ids)] = 1.0
            w[b, plen: len(ids)] = answer_weight  # the key and the end of text
        else:
            s = rng.randrange(0, len(natural) - length - 1)
            x[b] = torch.from_numpy(natural[s: s + length].astype(np.int64))
            w[b, 1:] = 1.0
    return x, w


@torch.no_grad()
def passkey_accuracy(model, tok, docs, device, max_len, seconds=0.0, by_length=None):
    """Greedy passkey accuracy over the documents whose prompt and 8 new
    tokens fit in max_len, stopping early after seconds (0: no limit). When
    by_length is a list of prompt lengths, it also returns {bound: [correct,
    samples]} for the prompts of at most each bound tokens (and more than the
    bound before it)."""
    model.eval()
    ok = n = 0
    buckets = {b: [0, 0] for b in by_length or []}
    start = time.time()
    for d in docs:
        if seconds and time.time() - start > seconds:
            break
        ids = tok.encode(prompt_of(d["text"])).ids
        if len(ids) + 8 > max_len:
            continue
        inp = torch.tensor([ids], device=device)
        out = model.generate(inp, max_new_tokens=8, do_sample=False, pad_token_id=tok.token_to_id(EOS))
        ans = tok.decode(out[0, len(ids):].tolist())
        m = re.search(r"\d+", ans)
        hit = int(m is not None and m.group(0) == d["key"])
        ok += hit
        n += 1
        for b in sorted(buckets):
            if len(ids) <= b:
                buckets[b][0] += hit
                buckets[b][1] += 1
                break
    model.train()
    if by_length is not None:
        return ok, n, buckets
    return ok, n


@torch.no_grad()
def perplexity(model, ids, device, length):
    model.eval()
    nll, count = 0.0, 0
    for s in range(0, len(ids) - 1, length):
        chunk = torch.tensor([ids[s: s + length + 1]], device=device)
        if chunk.shape[1] < 2:
            break
        logits = model(chunk[:, :-1]).logits.float()
        loss = F.cross_entropy(logits[0], chunk[0, 1:], reduction="sum")
        nll += loss.item()
        count += chunk.shape[1] - 1
    model.train()
    return math.exp(nll / count), count


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=6000, help="planned steps (the cosine schedule spans them)")
    ap.add_argument("--batch-tokens", type=int, default=32768,
                    help="tokens per step: rows = max(8, batch-tokens // sequence length)")
    ap.add_argument("--ctx", "--context", dest="context", type=int, default=1024,
                    help="training context (max_position_embeddings) and final sequence length")
    ap.add_argument("--curriculum-start", type=int, default=256,
                    help="sequence length at step 0, growing to --ctx over the first 30 %% of steps")
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--heads", type=int, default=8, help="query heads (head dim = hidden / heads)")
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--ffn", type=int, default=688, help="SwiGLU intermediate size")
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--answer-weight", type=float, default=8.0)
    ap.add_argument("--passkey-fraction", type=float, default=0.5)
    ap.add_argument("--eval-every", type=int, default=250, help="steps between validation checks")
    ap.add_argument("--time-budget", type=float, default=450.0,
                    help="seconds of training (from its first step) after which it stops, keeping the best checkpoint")
    ap.add_argument("--eval-prompts", type=int, default=150, help="held-back passkey documents tried at the end")
    ap.add_argument("--eval-seconds", type=float, default=0.0, help="bound on the final passkey check (0: none)")
    ap.add_argument("--device", default="cuda", help="cuda, or cpu for a smoke test of the script")
    args = ap.parse_args()
    if args.hidden % args.heads or args.heads % args.kv_heads:
        ap.error("--hidden must be a multiple of --heads, and --heads of --kv-heads")

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = args.device
    t0 = time.time()

    natural_text = read_text(args.data, "train.txt")
    heldout_text = read_text(args.data, "heldout.txt")
    docs = load_passkey(os.path.join(args.data, "passkey.jsonl.gz"))
    eval_docs, train_docs = docs[:200], docs[200:]

    # Every 50th verse is a validation line: it picks the checkpoint, so the
    # held-out books stay untouched until the final report.
    lines = natural_text.split("\n")
    val_lines = lines[::50]
    train_lines = [l for i, l in enumerate(lines) if i % 50 != 0]
    say(f"read {len(natural_text)} + {len(heldout_text)} characters, {len(docs)} passkey docs; {time.time() - t0:.1f}s")
    tok = train_tokenizer(train_lines + [d["text"] for d in train_docs[:3000]], args.vocab)
    say(f"tokenizer trained; {time.time() - t0:.1f}s")
    natural = encode_lines(tok, train_lines)
    val = tok.encode("\n".join(val_lines)).ids
    heldout = tok.encode(heldout_text).ids
    say(f"natural text encoded; {time.time() - t0:.1f}s")
    pk = encode_passkey(tok, train_docs, args.context)
    pk_lens = sorted(len(ids) for ids, _ in pk)
    shortest = pk_lens[0] if pk else args.context + 1
    say(f"tokenizer {tok.get_vocab_size()} tokens; natural {len(natural)} tokens; validation {len(val)}; "
        f"held-out {len(heldout)}; {len(pk)} passkey docs of {len(train_docs)} fit {args.context} tokens "
        f"(median {pk_lens[len(pk_lens) // 2] if pk else 0}, longest {pk_lens[-1] if pk else 0}); "
        f"{time.time() - t0:.1f}s")

    cfg = LlamaConfig(
        vocab_size=tok.get_vocab_size(), hidden_size=args.hidden, intermediate_size=args.ffn,
        num_hidden_layers=args.layers, num_attention_heads=args.heads, num_key_value_heads=args.kv_heads,
        head_dim=args.hidden // args.heads, max_position_embeddings=args.context,
        rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=True, attention_bias=False,
        bos_token_id=tok.token_to_id(BOS), eos_token_id=tok.token_to_id(EOS),
    )
    model = LlamaForCausalLM(cfg).to(device)
    model.train()
    nparams = sum(p.numel() for p in model.parameters())
    say(f"model {nparams / 1e6:.2f}M parameters ({2 * nparams / 1e6:.1f} MB in bf16); "
        f"attention {getattr(model.config, '_attn_implementation', '?')}")
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.1,
                            **({"fused": True} if device == "cuda" else {}))
    rng = random.Random(args.seed)
    pad = tok.token_to_id(EOS)
    log = {"loss": [], "config": {k: v for k, v in vars(args).items() if k != "out"}}
    step = 0
    best = None  # (validation perplexity, step, weights)
    t_train = time.time()
    for step in range(args.steps):
        # Length curriculum: curriculum-start → context over the first 30 % of steps.
        frac = min(1.0, step / (0.3 * args.steps))
        length = int(args.curriculum_start + frac * (args.context - args.curriculum_start)) // 64 * 64
        batch = max(8, args.batch_tokens // length)  # similar tokens per step
        x, w = make_batch(rng, natural, pk, shortest, batch, length, pad, args.answer_weight, args.passkey_fraction)
        x, w = x.to(device), w.to(device)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.steps, args.lr, 200)
        with torch.autocast(device, dtype=torch.bfloat16):
            logits = model(x[:, :-1]).logits
        loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), x[:, 1:].reshape(-1), reduction="none")
        ww = w[:, 1:].reshape(-1)
        loss = (loss * ww).sum() / ww.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 50 == 0:
            log["loss"].append([step, length, round(loss.item(), 4)])
            say(f"step {step} len {length} batch {batch} loss {loss.item():.4f} {time.time() - t0:.0f}s")
        # The last step (by count or by the time budget) is always a
        # candidate: it falls between the regular checks.
        timed_out = time.time() - t_train > args.time_budget
        last = timed_out or step == args.steps - 1
        if (frac >= 1.0 and step % args.eval_every == 0) or last:
            vppl, _ = perplexity(model, val, device, args.context)
            log.setdefault("val_ppl", []).append([step, round(vppl, 3)])
            say(f"step {step} validation perplexity {vppl:.2f} {time.time() - t0:.0f}s")
            if best is None or vppl < best[0]:
                best = (vppl, step, {k: v.detach().clone() for k, v in model.state_dict().items()})
        if timed_out:
            say(f"time budget reached at step {step} of {args.steps} (length {length}, "
                f"learning rate {lr_at(step, args.steps, args.lr, 200):.2e})")
            break
    log["steps_done"] = step + 1
    log["stopped_by_time_budget"] = bool(timed_out)
    if best is not None:
        model.load_state_dict(best[2])
        log["chosen_step"], log["chosen_val_ppl"] = best[1], round(best[0], 3)
        say(f"keeping step {best[1]} (validation perplexity {best[0]:.2f})")
    log["train_seconds"] = round(time.time() - t0, 1)  # since the start, tokenisation included
    log["train_loop_seconds"] = round(time.time() - t_train, 1)

    # Ship bf16 weights; every figure below is measured on the shipped
    # directory reloaded in float32 (a reload also recomputes the RoPE
    # frequencies in float32, which a bf16 round trip of the module would not).
    os.makedirs(args.out, exist_ok=True)
    model.to(torch.bfloat16).save_pretrained(args.out, safe_serialization=True)
    tok.save(os.path.join(args.out, "tokenizer.json"))
    model.generation_config.save_pretrained(args.out)
    del model
    model = LlamaForCausalLM.from_pretrained(args.out, dtype=torch.float32).to(device).eval()
    t_eval = time.time()
    bounds = [b for b in (1024, 2048, 4096, 8192) if b < args.context] + [args.context]
    ok, n, buckets = passkey_accuracy(model, tok, eval_docs[: args.eval_prompts], device, args.context,
                                      args.eval_seconds, by_length=bounds)
    ppl, nt = perplexity(model, heldout, device, args.context)
    log["passkey_full_attention"] = {"correct": ok, "samples": n, "context": args.context,
                                     "by_prompt_length": {str(b): v for b, v in buckets.items()}}
    log["heldout_ppl"] = {"ppl": round(ppl, 3), "tokens": nt, "window": args.context}
    say(f"passkey {ok}/{n}; held-out perplexity {ppl:.2f} over {nt} tokens")
    say("passkey by prompt length: " + ", ".join(f"≤{b}: {c}/{m}" for b, (c, m) in buckets.items()) +
        f"; evaluation {time.time() - t_eval:.1f}s")

    # Reference logits in float32 for the Go parity test.
    prompts = [
        "In the beginning God created the heaven and the earth.",
        eval_docs[0]["text"][:400],
    ]
    golden = {"prompts": []}
    for i, p in enumerate(prompts):
        ids = tok.encode(p).ids
        with torch.no_grad():
            lg = model(torch.tensor([ids], device=device)).logits[0].float().cpu().numpy()
            gen = model.generate(torch.tensor([ids], device=device), max_new_tokens=8, do_sample=False,
                                 pad_token_id=pad)[0, len(ids):].tolist()
        name = f"logits_{i}.f32"
        lg.astype("<f4").tofile(os.path.join(args.out, name))
        golden["prompts"].append({"text": p, "ids": ids, "logits_file": name, "shape": list(lg.shape), "greedy": gen})
    json.dump(golden, open(os.path.join(args.out, "golden.json"), "w"))
    log["versions"] = {"torch": torch.__version__, "transformers": __import__("transformers").__version__,
                       "tokenizers": __import__("tokenizers").__version__}
    json.dump(log, open(os.path.join(args.out, "train_log.json"), "w"), indent=1)
    say(f"done {time.time() - t0:.0f}s")
    with open(os.path.join(args.out, "train_log.txt"), "w") as f:
        f.write("\n".join(LOG) + "\n")


if __name__ == "__main__":
    main()
