"""Tiny random Qwen-VL checkpoints (qwen2_vl, qwen2_5_vl, qwen3_vl) for tests and benchmarks.

`build_tiny_qwen_vl(out, family)` writes a folder shaped like a real checkpoint: `config.json` and
`model.safetensors` (via `save_pretrained`), a byte-level BPE tokenizer trained locally with `tokenizers`
that carries the Qwen special tokens (saved as a `Qwen2Tokenizer`), and `processor_config.json` holding
the PIL image processor. It loads back through the same path a user's checkpoint takes
(`AutoModel` / `AutoTokenizer` / the image processor's `from_pretrained`). About 0.1-0.2 M parameters,
built and saved in well under a second once transformers is imported.

The shape constraints that matter (our reading of transformers 5.x): the vision `spatial_merge_size`
equals the image processor's `merge_size`; text `mrope_section` sums to head_dim / 2; Qwen3-VL uses
16-pixel patches (resize factor 32) and a square learned position grid (`num_position_embeddings`).
`lm_head=True` saves the `...ForConditionalGeneration` class, as released checkpoints (and GME) are.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

import torch

FAMILIES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                  "<|image_pad|>", "<|video_pad|>")
_WORDS = ("red blue green black white grey pink navy cotton linen wool silk leather denim shirt dress "
          "jeans shoes boots sneakers jacket coat bag watch phone case cable charger lamp chair table "
          "mug kettle pan knife book pen toy doll ball men women kids size small medium large pack set "
          "new classic sport slim soft warm summer winter brand style product item represent this for "
          "finding similar products system user assistant the a of and with 0 1 2 3 4 5 6 7 8 9")


@functools.lru_cache(maxsize=4)
def _trained_bpe(vocab_size: int) -> tuple[tuple[tuple[str, int], ...], tuple[tuple[str, str], ...]]:
    """Vocab and merges of a byte-level BPE trained on a fixed product-word corpus (deterministic)."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    words = _WORDS.split()
    corpus = [" ".join(words[i:i + 7]) for i in range(len(words))] * 4
    tok.train_from_iterator(corpus, trainer)
    model = json.loads(tok.to_str())["model"]
    merges = tuple(tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"])
    return tuple(model["vocab"].items()), merges


def tiny_tokenizer(vocab_size: int = 512):
    """A `Qwen2Tokenizer` with the Qwen special tokens at ids 0..6 (`<|endoftext|>` = 0 is the pad)."""
    from transformers import Qwen2Tokenizer

    vocab, merges = _trained_bpe(vocab_size)
    return Qwen2Tokenizer(vocab=dict(vocab), merges=list(merges), eos_token="<|im_end|>",
                          pad_token="<|endoftext|>", extra_special_tokens=list(SPECIAL_TOKENS[1:]))


def tiny_config(family: str, vocab_size: int, hidden_size: int = 32, num_layers: int = 2):
    """A random-init config of `family` with 4 heads of 8 (mrope_section [2, 1, 1] sums to 8 / 2)."""
    from transformers import Qwen2_5_VLConfig, Qwen2VLConfig, Qwen3VLConfig

    if family not in FAMILIES:
        raise ValueError(f"unknown Qwen-VL family {family!r}; choose from {FAMILIES}")
    heads = 4
    head_dim = hidden_size // heads
    if head_dim % 8:
        raise ValueError(f"hidden_size {hidden_size} must be a multiple of 32 (4 heads, head_dim % 8 == 0)")
    q = head_dim // 8
    rope = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2 * q, q, q]}
    ids = {name: SPECIAL_TOKENS.index(tok) for name, tok in (
        ("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
        ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>"))}
    text = dict(vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                num_hidden_layers=num_layers, num_attention_heads=heads, num_key_value_heads=heads // 2,
                max_position_embeddings=4096, rope_parameters=rope,
                bos_token_id=0, eos_token_id=SPECIAL_TOKENS.index("<|im_end|>"), pad_token_id=0)
    vision = dict(depth=num_layers, num_heads=2, spatial_merge_size=2, temporal_patch_size=2)
    if family == "qwen2_vl":
        return Qwen2VLConfig(text_config=text, vision_config=dict(
            vision, embed_dim=hidden_size, hidden_size=hidden_size, mlp_ratio=2, patch_size=14), **ids)
    if family == "qwen2_5_vl":
        return Qwen2_5_VLConfig(text_config=text, vision_config=dict(
            vision, hidden_size=hidden_size, out_hidden_size=hidden_size, intermediate_size=2 * hidden_size,
            patch_size=14, window_size=56, fullatt_block_indexes=[num_layers - 1]), **ids)
    text3 = dict(text, head_dim=head_dim, rope_parameters=dict(rope, mrope_interleaved=True))
    return Qwen3VLConfig(text_config=text3, vision_config=dict(
        vision, hidden_size=hidden_size, out_hidden_size=hidden_size, intermediate_size=2 * hidden_size,
        patch_size=16, num_position_embeddings=64, deepstack_visual_indexes=[0]), **ids)


def build_tiny_qwen_vl(out: str | Path, family: str = "qwen2_vl", *, seed: int = 0, hidden_size: int = 32,
                       num_layers: int = 2, lm_head: bool = False, min_pixels: int | None = None,
                       max_pixels: int | None = None, vocab_size: int = 512) -> Path:
    """Write a tiny random `family` checkpoint to `out` and return the folder.

    Pixel bounds default to 4..64 merged tokens per picture (factor 28, or 32 for Qwen3-VL).
    """
    from transformers import AutoModel
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from .processor import QwenVLImageTextProcessor, register_processor

    out = Path(out)
    tokenizer = tiny_tokenizer(vocab_size)
    config = tiny_config(family, len(tokenizer), hidden_size, num_layers)
    torch.manual_seed(seed)
    if lm_head:
        from transformers import AutoModelForImageTextToText

        model = AutoModelForImageTextToText.from_config(config)
    else:
        model = AutoModel.from_config(config)
    patch = config.vision_config.patch_size
    factor = patch * config.vision_config.spatial_merge_size
    image_processor = Qwen2VLImageProcessorPil(
        patch_size=patch, merge_size=config.vision_config.spatial_merge_size,
        temporal_patch_size=config.vision_config.temporal_patch_size,
        min_pixels=min_pixels or 4 * factor * factor, max_pixels=max_pixels or 64 * factor * factor)
    register_processor()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    QwenVLImageTextProcessor(image_processor, tokenizer).save_pretrained(out)
    return out


_COLORS = {"red": (200, 30, 30), "blue": (30, 60, 200), "green": (30, 160, 60), "black": (20, 20, 20),
           "white": (235, 235, 235), "pink": (240, 140, 180)}
_MATERIALS = ("cotton", "linen", "wool", "silk", "leather", "denim")
_KINDS = ("shirt", "dress", "jeans", "shoes", "jacket", "bag", "mug", "lamp")


def write_tiny_catalogue(out: str | Path, n: int = 12, *, seed: int = 0, no_picture_every: int = 5) -> Path:
    """Write a small items.parquet (the shared items contract) with one PNG per item under images/.

    Titles are "<color> <material> <kind>"; pictures are a colored background with a lighter square,
    of varied sizes (so they cost a varied number of visual tokens); every `no_picture_every`-th item
    has no picture (image = null). Returns the items.parquet path.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image, ImageDraw

    from common.contract import FILES

    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    colors = list(_COLORS)
    rows = {"item_id": [], "title": [], "image": [], "category_id": [], "top_category_id": [],
            "brand_id": [], "price": []}
    for i in range(n):
        item_id = 1000 + 7 * i
        color, material = colors[i % len(colors)], _MATERIALS[(i // 2) % len(_MATERIALS)]
        kind = _KINDS[i % len(_KINDS)]
        image = None
        if not (no_picture_every and i % no_picture_every == no_picture_every - 1):
            w, h = int(rng.integers(40, 160)), int(rng.integers(40, 160))
            img = Image.new("RGB", (w, h), _COLORS[color])
            ImageDraw.Draw(img).rectangle([w // 4, h // 4, 3 * w // 4, 3 * h // 4],
                                          fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
            image = f"images/{item_id}.png"
            img.save(out / image)
        rows["item_id"].append(item_id)
        rows["title"].append(f"{color} {material} {kind}")
        rows["image"].append(image)
        rows["category_id"].append(i % len(_KINDS))
        rows["top_category_id"].append(i % 2)
        rows["brand_id"].append(int(rng.integers(0, 5)))
        rows["price"].append(float(np.round(rng.uniform(5, 200), 2)))
    schema = pa.schema([("item_id", pa.int64()), ("title", pa.string()), ("image", pa.string()),
                        ("category_id", pa.int64()), ("top_category_id", pa.int64()),
                        ("brand_id", pa.int64()), ("price", pa.float64())])
    path = out / FILES["items"]
    pq.write_table(pa.table(rows, schema=schema), path)
    return path
