#!/usr/bin/env python3
"""Model and tokenizer parity fixtures for the Go runtime.

Trains two small tokenizers with the `tokenizers` library on a built-in corpus
(byte-level BPE as in Llama 3 / Qwen2, SentencePiece-style BPE with byte
fallback as in Llama 2 / Mistral), builds three tiny randomly initialised
decoder models with `transformers` (Llama with llama3 RoPE scaling, Qwen2 with
q/k/v biases and tied embeddings, Mistral), and writes golden outputs:

  OUT/tokenizer/<name>/tokenizer.json, golden.json
  OUT/model/<name>/config.json, model.safetensors, generation_config.json,
                   tokenizer.json, tokenizer_config.json, golden.json,
                   rope.json, logits_<i>.f32

Everything runs on the CPU in float32 and is seeded.  Works with
transformers 4.4x and 5.x.

    python tools/reference/make_fixtures.py --out DIR
"""

import argparse
import json
import math
import os
import platform
import re
import shutil
import sys
import time

import torch

MIB = 1 << 20
MODEL_DIR_LIMIT = MIB  # every model directory must stay below 1 MiB

LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
    r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# ---------------------------------------------------------------------------
# Built-in training corpus (original text written for this project).
# ---------------------------------------------------------------------------
CORPUS = [
    "The river town woke slowly that morning. Fog lay over the water, and the ferry "
    "waited at the dock while the captain counted his passengers twice. Nobody was in "
    "a hurry; the bakery on the corner had already sold most of its bread, and the smell "
    "of coffee drifted down the street.",
    "Mara kept a small notebook in her coat pocket. In it she wrote numbers: the price of "
    "apples (3.25 a kilo), the time the train left (07:45), and the number of steps from "
    "her door to the station, which was 1,284 on a good day and 1,302 when it rained.",
    "\"Don't forget the keys,\" her brother said. \"I'm not going back for them again. "
    "They'll lock the gate at nine, and we can't climb it like we did when we were kids.\" "
    "She laughed, because he'd said the same thing every week for years. You're right, "
    "she told him; we've been lucky, and I'd rather not test it.",
    "Machines in the old factory still hummed at night. Engineers had replaced the gears, "
    "the belts and the motors, but the building itself remained: brick walls, iron "
    "windows, and a clock that was always eleven minutes slow.",
    "In the library, students read about history, mathematics and music. One book "
    "explained how a simple rule, applied again and again, can produce patterns that look "
    "complicated; another listed every king of a country that no longer exists.",
    "Travelers asked for directions in many languages. A woman from Paris ordered a café "
    "au lait and a croissant; a man from München asked where the Straße to the museum "
    "began; two students practiced their Greek, saying καλημέρα and ευχαριστώ; a family "
    "from Kyiv said добрий день and привіт; a tourist wrote 你好，世界 on a postcard and "
    "drew a small sun ☀ next to it.",
    "Weather report: temperatures between -3 and 12 degrees, wind from the north-west at "
    "25 km/h, a 40% chance of rain after 18:00. Roads A1, B27 and C3 are open; bridge 9 is "
    "closed until 2025-03-14.",
    "Prices: $4.99, €3.50, £2, ¥150. Codes: #A7F, x=42, y==7, a->b, [1, 2, 3], "
    "{key: value}, (one; two; three)... Really?! Yes!!! Well -- maybe.",
    "At dusk the lamps came on one by one. The ferry made its last crossing, the bakery "
    "closed its shutters, and the town grew quiet again, except for a dog that barked at "
    "the moon as if it had never seen it before.",
    "THE END. The end. the end. THE RIVER, THE TOWN, THE FERRY.",
    "0 1 2 3 4 5 6 7 8 9 10 11 12 42 100 256 1024 2024 31415 271828 1000000",
    "def add(a, b):\n    return a + b\n\n\nfor i in range(10):\n\tprint(i)\n",
    "Dear reader,\n\nthis letter is short.\n\nWith kind regards,\n  the captain\n",
]

# ---------------------------------------------------------------------------
# Tricky strings for the tokenizer golden files.
# ---------------------------------------------------------------------------
TOKENIZER_CASES = [
    "",
    " ",
    "     ",
    "\t",
    "\n",
    "\n\n\n",
    " \n \n",
    "hello\tworld",
    "a  b   c    d",
    "tabs\t\tand  spaces \t mixed",
    "   leading spaces",
    "trailing spaces   ",
    "trailing newline\n",
    "line one\nline two\n\nline three",
    "windows\r\nline\r\nendings\r\n",
    "1",
    "12",
    "123",
    "1234",
    "12345",
    "123456",
    "1234567",
    "3.14159 and 2,718,281 and 0x1F",
    "I'm here, you're there, DON'T go, they'll see, she'd've",
    "It's JOHN'S book; 'quoted' text",
    "café naïve résumé é",
    "Straße ß GROSS",
    "Ωμέγα αλφάβητο",
    "Привет, мир! Съешь же ещё этих",
    "中文字符测试，你好世界。",
    "日本語のテキスト",
    "emoji 😀😃 👍🏽",
    "family 👨\u200d👩\u200d👧\u200d👦 ZWJ",
    "flags 🇫🇷🇯🇵",
    "mixed: English русский 中文 العربية",
    "combining e\u0301 accent and zero\u200bwidth",
    "\u00a0non-breaking\u00a0space",
    "hello <|eot_id|> world",
    "<|begin_of_text|>start<|end_of_text|>",
    "<s> x </s>",
    "a<unk>b",
    "!!!???...,,,;;;::",
    "foo()[]{}<>==!=->=>",
    "email@example.com https://example.org/path?q=1&r=2#frag",
    "ALL CAPS SHOUTING and lower case",
    "The quick brown fox jumps over the lazy dog while the ferry waits at the dock, "
    "and 1,284 steps later Mara writes 07:45 in her notebook — café, Straße, καλημέρα, "
    "привіт, 你好 — before the clock, eleven minutes slow, strikes nine!",
]

PROMPTS = [
    # (target max tokens incl. BOS, text)
    (6, ["The ferry waited at the dock", "Fog lay over the water", "The river town woke slowly",
         "At dusk the lamps came on", "The end of the river", "In the library"]),
    (40,
     "At dusk the lamps came on one by one. The ferry made its last crossing, the bakery "
     "closed its shutters, and the town grew quiet again, except for a dog that barked at "
     "the moon as if it had never seen it before."),
    (100,
     "Mara kept a small notebook in her coat pocket. In it she wrote numbers: the price of "
     "apples, the time the train left, and the number of steps from her door to the "
     "station. \"Don't forget the keys,\" her brother said. \"I'm not going back for them "
     "again.\" In the library, students read about history, mathematics and music. One "
     "book explained how a simple rule, applied again and again, can produce patterns "
     "that look complicated; another listed every king of a country that no longer "
     "exists. Machines in the old factory still hummed at night, and the clock was always "
     "eleven minutes slow. Weather report: temperatures between -3 and 12 degrees, wind "
     "from the north-west at 25 km/h, a 40% chance of rain after 18:00."),
]
MIN_LONG_PROMPT = 64  # the long prompt must stay longer than twice the 32-token chunk


def log(*a):
    print(*a, flush=True)


def version_tuple(v):
    return tuple(int(x) for x in re.findall(r"\d+", v)[:3])


# ---------------------------------------------------------------------------
# Tokenizers
# ---------------------------------------------------------------------------

def build_bytelevel(seed):
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"]
    # Llama-3 layout: the model vocabulary holds the byte alphabet and the merges; the special
    # tokens are added tokens with ids after it (509, 510, 511 here).
    trainer = trainers.BpeTrainer(
        vocab_size=512 - len(specials),
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|>:0 $A:0",
        pair="<|begin_of_text|>:0 $A:0 <|begin_of_text|>:1 $B:1",
        special_tokens=[("<|begin_of_text|>", bos)],
    )
    notes = []
    # ignore_merges (Llama 3 sets it): a pre-token that is itself in the vocabulary is emitted whole.
    j = json.loads(tok.to_str())
    j["model"]["ignore_merges"] = True
    try:
        tok2 = Tokenizer.from_str(json.dumps(j, ensure_ascii=False))
        if json.loads(tok2.to_str())["model"].get("ignore_merges") is True:
            tok = tok2
            notes.append("model.ignore_merges=true")
        else:
            notes.append("ignore_merges not kept by this tokenizers version")
    except Exception as ex:  # older tokenizers
        notes.append(f"ignore_merges unsupported: {ex}")
    info = {
        "bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>",
        "bos_token_id": tok.token_to_id("<|begin_of_text|>"),
        "eos_token_id": tok.token_to_id("<|end_of_text|>"),
        "eot_token_id": tok.token_to_id("<|eot_id|>"),
        "pad_token_id": tok.token_to_id("<|end_of_text|>"),
        "notes": notes,
    }
    return tok, info


def build_spbpe(seed):
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    # 1) learn merges with a whitespace-aware split ("▁word" pieces, like SentencePiece training)
    train_tok = Tokenizer(models.BPE(unk_token="<unk>"))
    train_tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    train_tok.pre_tokenizer = pre_tokenizers.Split("▁", behavior="merged_with_next", invert=False)
    n_fixed = 3 + 256
    trainer = trainers.BpeTrainer(
        vocab_size=512 - n_fixed,
        show_progress=False,
        special_tokens=[],
        limit_alphabet=96,  # rarer characters fall back to <0xXX> byte tokens
    )
    train_tok.train_from_iterator(CORPUS, trainer=trainer)
    tj = json.loads(train_tok.to_str())
    trained_vocab = tj["model"]["vocab"]
    merges = []
    for m in tj["model"]["merges"]:
        if isinstance(m, str):
            a, b = m.split(" ", 1)
        else:
            a, b = m
        merges.append((a, b))

    # 2) Llama-2 layout: <unk>=0, <s>=1, </s>=2, <0x00>..<0xFF>=3..258, then the learned pieces
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for t, _ in sorted(trained_vocab.items(), key=lambda kv: kv[1]):
        if t not in vocab:
            vocab[t] = len(vocab)

    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    # no pre-tokenizer: the whole normalized string is one BPE word (as in the Llama-2 HF files)
    tok.decoder = decoders.Sequence([
        decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0),
    ])
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in ["<unk>", "<s>", "</s>"]])
    tok.post_processor = processors.TemplateProcessing(
        single="<s>:0 $A:0", pair="<s>:0 $A:0 <s>:1 $B:1", special_tokens=[("<s>", 1)],
    )
    info = {
        "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
        "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": None,
        "notes": ["merges learned with Split('▁', merged_with_next); saved without pre-tokenizer"],
    }
    return tok, info


def tokenizer_golden(tok):
    out = []
    for text in TOKENIZER_CASES:
        enc = tok.encode(text, add_special_tokens=True)
        plain = tok.encode(text, add_special_tokens=False)
        out.append({
            "text": text,
            "ids": list(enc.ids),
            "ids_plain": list(plain.ids),
            "tokens": list(enc.tokens),
            "decoded": tok.decode(list(enc.ids), skip_special_tokens=False),
        })
    return out


def write_json(path, obj, compact=False):
    with open(path, "w", encoding="utf-8") as f:
        if compact:
            json.dump(obj, f, ensure_ascii=False, separators=(",", ":"))
        else:
            json.dump(obj, f, ensure_ascii=False, indent=1)
        f.write("\n")


def tokenizer_config(info, model_max_length=4096):
    cfg = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": info["bos_token"],
        "eos_token": info["eos_token"],
        "add_bos_token": True,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": model_max_length,
    }
    if info.get("unk_token"):
        cfg["unk_token"] = info["unk_token"]
    if info.get("pad_token_id") is not None and info["pad_token_id"] != info.get("eos_token_id"):
        cfg["pad_token"] = info.get("pad_token")
    return cfg


# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------

def expected_inv_freq(head_dim, theta, scaling):
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).to(torch.float) / head_dim))
    if not scaling or scaling.get("rope_type", "default") == "default":
        return inv, 1.0
    assert scaling["rope_type"] == "llama3"
    factor = scaling["factor"]
    lo, hi = scaling["low_freq_factor"], scaling["high_freq_factor"]
    old = scaling["original_max_position_embeddings"]
    low_wavelen = old / lo
    high_wavelen = old / hi
    wavelen = 2 * math.pi / inv
    scaled = torch.where(wavelen > low_wavelen, inv / factor, inv)
    smooth = (old / wavelen - lo) / (hi - lo)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)
    return torch.where(medium, smoothed, scaled), 1.0


def rope_config_forms(theta, scaling):
    """Keyword forms for RoPE settings: transformers 5 uses rope_parameters, 4.x rope_theta/rope_scaling."""
    import transformers
    v5 = {"rope_parameters": dict(scaling or {"rope_type": "default"}, rope_theta=float(theta))}
    legacy = {"rope_theta": float(theta), "rope_scaling": dict(scaling) if scaling else None}
    if version_tuple(transformers.__version__)[0] >= 5:
        return [("rope_parameters", v5), ("legacy", legacy)]
    return [("legacy", legacy), ("rope_parameters", v5)]


def rotary_module(model):
    inner = getattr(model, "model", model)
    rot = getattr(inner, "rotary_emb", None)
    if rot is not None:
        return rot
    for m in model.modules():
        if hasattr(m, "inv_freq"):
            return m
    raise RuntimeError("no rotary embedding module found")


def reinit_(model, seed, lin_std, emb_std):
    """Deterministic re-initialisation that does not depend on the library's own init."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g, dtype=torch.float32)
            if "norm" in name:
                p.copy_(1.0 + 0.1 * noise)
            elif name.endswith(".bias"):
                p.copy_(0.1 * noise)
            elif "embed_tokens" in name:
                p.copy_(emb_std * noise)
            else:
                p.copy_(lin_std * noise)


def make_model(spec, seed):
    import transformers
    cls_cfg = getattr(transformers, spec["config_class"])
    cls_model = getattr(transformers, spec["model_class"])
    want_inv, _ = expected_inv_freq(spec["head_dim"], spec["rope_theta"], spec["rope_scaling"])
    errors = []
    for form_name, rope_kw in rope_config_forms(spec["rope_theta"], spec["rope_scaling"]):
        try:
            kw = dict(spec["config"])
            kw.update(rope_kw)
            cfg = cls_cfg(**kw)
            torch.manual_seed(seed)
            try:
                model = cls_model._from_config(cfg, attn_implementation="eager")
            except TypeError:
                cfg._attn_implementation = "eager"
                model = cls_model(cfg)
            model = model.to(torch.float32).eval()
            got = rotary_module(model).inv_freq.detach().float().cpu()
            if got.shape != want_inv.shape or not torch.allclose(got, want_inv, rtol=1e-6, atol=0):
                errors.append(f"{form_name}: inv_freq mismatch {got.tolist()} vs {want_inv.tolist()}")
                continue
            reinit_(model, seed, spec["lin_std"], spec["emb_std"])
            return model, cfg, form_name
        except Exception as ex:  # try the other keyword form
            errors.append(f"{form_name}: {type(ex).__name__}: {ex}")
    raise RuntimeError("could not build %s: %s" % (spec["name"], "; ".join(errors)))


def save_model(model, d):
    try:
        model.save_pretrained(d, safe_serialization=True)
    except TypeError:  # transformers 5 removed the argument (always safetensors)
        model.save_pretrained(d)


def load_model(d):
    from transformers import AutoModelForCausalLM
    try:
        m = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager")
    except TypeError:
        m = AutoModelForCausalLM.from_pretrained(d, torch_dtype=torch.float32, attn_implementation="eager")
    return m.eval()


def legacy_config(cfg_json, spec):
    """Hub-style config.json: top-level rope_theta and rope_scaling (what released checkpoints carry)."""
    c = dict(cfg_json)
    c.pop("rope_parameters", None)
    c["rope_theta"] = float(spec["rope_theta"])
    c["rope_scaling"] = dict(spec["rope_scaling"]) if spec["rope_scaling"] else None
    if "torch_dtype" not in c:
        c["torch_dtype"] = "float32"
    return c


@torch.no_grad()
def forward_logits(model, ids):
    return model(input_ids=torch.tensor([ids]), use_cache=False).logits[0].float()


@torch.no_grad()
def chunked_logits(model, ids, chunk):
    past = None
    outs = []
    for s in range(0, len(ids), chunk):
        out = model(input_ids=torch.tensor([ids[s:s + chunk]]), past_key_values=past, use_cache=True)
        past = out.past_key_values
        outs.append(out.logits[0].float())
    return torch.cat(outs, 0)


@torch.no_grad()
def manual_greedy(model, ids, n):
    out = model(input_ids=torch.tensor([ids]), use_cache=True)
    past, logits = out.past_key_values, out.logits[0, -1].float()
    toks, margins = [], []
    for step in range(n):
        top = torch.topk(logits, 2)
        nxt = int(torch.argmax(logits))
        toks.append(nxt)
        margins.append(float(top.values[0] - top.values[1]))
        if step + 1 < n:
            out = model(input_ids=torch.tensor([[nxt]]), past_key_values=past, use_cache=True)
            past, logits = out.past_key_values, out.logits[0, -1].float()
    return toks, margins


@torch.no_grad()
def generate_greedy(model, ids, n, pad_id):
    saved = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = None  # never stop early: we want exactly n tokens
    try:
        inp = torch.tensor([ids])
        out = model.generate(input_ids=inp, attention_mask=torch.ones_like(inp), do_sample=False,
                             num_beams=1, max_new_tokens=n, pad_token_id=pad_id, eos_token_id=None)
        return [int(x) for x in out[0, len(ids):].tolist()]
    finally:
        model.generation_config.eos_token_id = saved


def fit_prompt(tok, text, max_tokens):
    words = text.split(" ")
    while True:
        t = " ".join(words)
        ids = tok.encode(t, add_special_tokens=True).ids
        if len(ids) <= max_tokens or len(words) <= 1:
            return t, list(ids)
        words.pop()


def closest_prompt(tok, candidates, target):
    best = None
    for text in candidates:
        ids = list(tok.encode(text, add_special_tokens=True).ids)
        if best is None or abs(len(ids) - target) < abs(len(best[1]) - target):
            best = (text, ids)
    return best


def dir_size(d):
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))


def model_specs(bl_info, sp_info):
    llama_scaling = {
        "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        # 64 rather than 32: with head_dim 16 and theta 5e5 the wavelengths are 6.3, 32.5, 168, ...;
        # 64 puts one frequency in each llama3 band (high: kept, medium: smoothed, low: /factor).
        "original_max_position_embeddings": 64,
    }
    return [
        {
            "name": "llama", "tokenizer": "bytelevel",
            "config_class": "LlamaConfig", "model_class": "LlamaForCausalLM",
            "head_dim": 16, "rope_theta": 500000.0, "rope_scaling": llama_scaling,
            "lin_std": 0.1, "emb_std": 0.5,
            "config": dict(vocab_size=512, hidden_size=64, num_hidden_layers=3, num_attention_heads=4,
                           num_key_value_heads=2, head_dim=16, intermediate_size=160, rms_norm_eps=1e-5,
                           max_position_embeddings=4096, tie_word_embeddings=False, hidden_act="silu",
                           attention_bias=False, mlp_bias=False, initializer_range=0.1,
                           bos_token_id=bl_info["bos_token_id"], eos_token_id=bl_info["eos_token_id"],
                           pad_token_id=None, use_cache=True),
            "generation_eos": [bl_info["eos_token_id"], bl_info["eot_token_id"]],
            "info": bl_info,
        },
        {
            "name": "qwen2", "tokenizer": "bytelevel",
            "config_class": "Qwen2Config", "model_class": "Qwen2ForCausalLM",
            "head_dim": 16, "rope_theta": 10000.0, "rope_scaling": None,
            # tied embeddings: a small embedding scale, else the model mostly repeats its input token
            "lin_std": 0.1, "emb_std": 0.1,
            "config": dict(vocab_size=512, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=2, intermediate_size=128, rms_norm_eps=1e-6,
                           max_position_embeddings=4096, tie_word_embeddings=True, hidden_act="silu",
                           use_sliding_window=False, initializer_range=0.1,
                           bos_token_id=bl_info["bos_token_id"], eos_token_id=bl_info["eos_token_id"],
                           use_cache=True),
            "generation_eos": bl_info["eos_token_id"],
            "info": bl_info,
        },
        {
            "name": "mistral", "tokenizer": "spbpe",
            "config_class": "MistralConfig", "model_class": "MistralForCausalLM",
            "head_dim": 8, "rope_theta": 10000.0, "rope_scaling": None,
            "lin_std": 0.1, "emb_std": 0.5,
            "config": dict(vocab_size=512, hidden_size=64, num_hidden_layers=2, num_attention_heads=8,
                           num_key_value_heads=2, head_dim=8, intermediate_size=96, rms_norm_eps=1e-5,
                           max_position_embeddings=4096, sliding_window=None, tie_word_embeddings=False,
                           hidden_act="silu", initializer_range=0.1,
                           bos_token_id=sp_info["bos_token_id"], eos_token_id=sp_info["eos_token_id"],
                           use_cache=True),
            "generation_eos": sp_info["eos_token_id"],
            "info": sp_info,
        },
    ]


def build_model_fixture(spec, tok, out_root, seed, versions):
    from transformers import GenerationConfig

    name = spec["name"]
    d = os.path.join(out_root, "model", name)
    os.makedirs(d, exist_ok=True)
    model, cfg, form = make_model(spec, seed)
    info = spec["info"]
    model.generation_config = GenerationConfig(
        bos_token_id=info["bos_token_id"], eos_token_id=spec["generation_eos"], do_sample=False)
    save_model(model, d)
    tok.save(os.path.join(d, "tokenizer.json"), pretty=False)
    write_json(os.path.join(d, "tokenizer_config.json"), tokenizer_config(info))
    for extra in os.listdir(d):  # keep only what the Go loader reads
        if extra not in ("config.json", "model.safetensors", "generation_config.json",
                         "tokenizer.json", "tokenizer_config.json"):
            log(f"  [{name}] removing extra file {extra}")
            p = os.path.join(d, extra)
            shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)

    # config.json as released checkpoints carry it (rope_theta / rope_scaling at the top level),
    # kept only if this transformers version reloads it to bit-identical logits.
    probe_text, probe_ids = fit_prompt(tok, PROMPTS[2][1], 100)
    ref_logits = forward_logits(model, probe_ids)
    cfg_path = os.path.join(d, "config.json")
    saved_cfg = json.load(open(cfg_path))
    config_form = "as saved by transformers (%s)" % form
    reload_diff = None
    try:
        write_json(cfg_path, legacy_config(saved_cfg, spec))
        m2 = load_model(d)
        reload_diff = float((forward_logits(m2, probe_ids) - ref_logits).abs().max())
        inv2 = rotary_module(m2).inv_freq.detach().float()
        if reload_diff == 0.0 and torch.equal(inv2, rotary_module(model).inv_freq.detach().float()):
            config_form = "legacy (top-level rope_theta/rope_scaling)"
        else:
            raise RuntimeError(f"legacy config reload differs: max|dlogits|={reload_diff}")
    except Exception as ex:
        log(f"  [{name}] legacy config not used: {type(ex).__name__}: {ex}")
        write_json(cfg_path, saved_cfg)
        m2 = load_model(d)
        reload_diff = float((forward_logits(m2, probe_ids) - ref_logits).abs().max())
    log(f"  [{name}] config form: {config_form}; reload max|dlogits| = {reload_diff}")

    # RoPE debugging aid
    rot = rotary_module(model)
    inv = rot.inv_freq.detach().float().cpu()
    want, _ = expected_inv_freq(spec["head_dim"], spec["rope_theta"], spec["rope_scaling"])
    rope = {
        "rope_type": (spec["rope_scaling"] or {}).get("rope_type", "default"),
        "rope_theta": spec["rope_theta"],
        "rope_scaling": spec["rope_scaling"],
        "head_dim": spec["head_dim"],
        "inv_freq": [float(x) for x in inv.tolist()],
        "attention_scaling": float(getattr(rot, "attention_scaling", 1.0)),
        "max_abs_diff_vs_formula": float((inv - want).abs().max()),
    }
    write_json(os.path.join(d, "rope.json"), rope)

    # prompt lengths: the long prompt gets what is left of the 1 MiB budget
    V = spec["config"]["vocab_size"]
    row = V * 4
    fixed = dir_size(d) + 24 * 1024  # + golden.json and a margin
    prompts = []
    short_text, short_ids = closest_prompt(tok, PROMPTS[0][1], PROMPTS[0][0])
    mid_text, mid_ids = fit_prompt(tok, PROMPTS[1][1], PROMPTS[1][0])
    room = (MODEL_DIR_LIMIT - fixed) // row - len(short_ids) - len(mid_ids)
    long_max = min(PROMPTS[2][0], room)
    if long_max < MIN_LONG_PROMPT:
        log(f"  [{name}] WARNING: only {long_max} tokens fit for the long prompt")
    long_text, long_ids = fit_prompt(tok, PROMPTS[2][1], long_max)
    for t, ids in ((short_text, short_ids), (mid_text, mid_ids), (long_text, long_ids)):
        prompts.append((t, ids))

    golden = {
        "model": name,
        "tokenizer": spec["tokenizer"],
        "dtype": "float32",
        "vocab_size": V,
        "seed": seed,
        "config_form": config_form,
        "reload_max_abs_diff": reload_diff,
        "attn_implementation": "eager",
        "versions": versions,
        "prompts": [],
    }
    pad = info["pad_token_id"] if info.get("pad_token_id") is not None else info["eos_token_id"]
    for i, (text, ids) in enumerate(prompts):
        logits = forward_logits(model, ids)
        fn = f"logits_{i}.f32"
        logits.contiguous().numpy().astype("<f4").tofile(os.path.join(d, fn))
        g_manual, margins = manual_greedy(model, ids, 8)
        try:
            g_gen = generate_greedy(model, ids, 8, pad)
        except Exception as ex:
            log(f"  [{name}] generate failed: {type(ex).__name__}: {ex}")
            g_gen = None
        if g_gen is not None and len(g_gen) == 8 and g_gen == g_manual:
            greedy, source = g_gen, "model.generate (equal to a manual greedy loop over the cache)"
        else:
            log(f"  [{name}] WARNING generate={g_gen} manual={g_manual}; using manual loop")
            greedy, source = g_manual, "manual greedy loop with the HF cache"
        chunk_diffs = {}
        for c in (16, 32):
            chunk_diffs[str(c)] = float((chunked_logits(model, ids, c) - logits).abs().max())
        golden["prompts"].append({
            "text": text,
            "ids": ids,
            "logits_file": fn,
            "shape": [len(ids), V],
            "greedy": greedy,
            "greedy_source": source,
            "greedy_top2_margins": margins,
            "logits_absmax": float(logits.abs().max()),
            "hf_chunked_max_abs_diff": chunk_diffs,
        })
        log(f"  [{name}] prompt {i}: T={len(ids)} greedy={greedy} min margin={min(margins):.4f} "
            f"|logits|max={float(logits.abs().max()):.3f} chunked diff={chunk_diffs}")
    write_json(os.path.join(d, "golden.json"), golden)
    size = dir_size(d)
    log(f"  [{name}] directory size {size} bytes ({'OK' if size < MODEL_DIR_LIMIT else 'OVER 1 MiB'})")
    n_params = sum(p.numel() for p in model.parameters())
    return {"name": name, "params": n_params, "bytes": size, "config_form": config_form}


def check_auto_tokenizer(d, tok):
    """Non-fatal: does transformers' AutoTokenizer read the directory to the same ids?"""
    try:
        from transformers import AutoTokenizer
        at = AutoTokenizer.from_pretrained(d)
        bad = []
        for text in TOKENIZER_CASES:
            if list(at(text, add_special_tokens=True)["input_ids"]) != list(tok.encode(text).ids):
                bad.append(text)
        return (f"AutoTokenizer ({type(at).__name__}): {len(bad)} of {len(TOKENIZER_CASES)} cases differ"
                + (f", e.g. {bad[:3]!r}" if bad else ""))
    except Exception as ex:
        return f"AutoTokenizer check skipped: {type(ex).__name__}: {ex}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output root (writes OUT/model/<name>, OUT/tokenizer/<name>)")
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()

    import tokenizers
    import transformers

    t0 = time.time()
    torch.manual_seed(args.seed)
    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "command": "python tools/reference/make_fixtures.py --out DIR --seed %d" % args.seed,
    }
    log("versions:", json.dumps(versions))

    toks = {}
    infos = {}
    for name, builder in (("bytelevel", build_bytelevel), ("spbpe", build_spbpe)):
        tok, info = builder(args.seed)
        d = os.path.join(args.out, "tokenizer", name)
        os.makedirs(d, exist_ok=True)
        tok.save(os.path.join(d, "tokenizer.json"), pretty=True)
        golden = tokenizer_golden(tok)
        write_json(os.path.join(d, "golden.json"), golden)
        toks[name], infos[name] = tok, info
        log(f"tokenizer {name}: vocab {tok.get_vocab_size(with_added_tokens=True)} "
            f"(model {tok.get_vocab_size(with_added_tokens=False)}), {len(golden)} cases, "
            f"bos={info['bos_token_id']} eos={info['eos_token_id']} notes={info['notes']}")

    summary = []
    for spec in model_specs(infos["bytelevel"], infos["spbpe"]):
        log(f"model {spec['name']}:")
        summary.append(build_model_fixture(spec, toks[spec["tokenizer"]], args.out, args.seed, versions))
        log("  ", check_auto_tokenizer(os.path.join(args.out, "model", spec["name"]), toks[spec["tokenizer"]]))

    log("summary:")
    for root, _, files in sorted(os.walk(args.out)):
        for f in sorted(files):
            p = os.path.join(root, f)
            log(f"  {os.path.relpath(p, args.out):45s} {os.path.getsize(p):9d}")
    for s in summary:
        log(f"  model {s['name']}: {s['params']} parameters, {s['bytes']} bytes, config {s['config_form']}")
    log(f"done in {time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()
