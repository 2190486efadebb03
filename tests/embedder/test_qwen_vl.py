"""Qwen-VL backend against a direct transformers forward, and its batching invariants."""
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from embedder import Item, ItemEmbedder

FAMILIES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")
INSTRUCTION = "Find products like this one."  # the session embedders' instruction (conftest)


def catalogue_items(path):
    table = pq.read_table(path).to_pylist()
    return [Item(text=r["title"], picture=(path.parent / r["image"]) if r["image"] else None, item_id=r["item_id"])
            for r in table]


def reference_vector(model_dir, item, pooling="last"):
    """Independent computation: hand-written ChatML with the image pads expanded here, the PIL image
    processor and tokenizer loaded from the folder, AutoModel forward, pooling, L2 norm."""
    from transformers import AutoModel, AutoTokenizer
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir, dtype=torch.float32).eval()
    cfg = json.loads((model_dir / "config.json").read_text())
    user, extra = item.text, {}
    if item.picture is not None:
        proc = Qwen2VLImageProcessorPil.from_pretrained(model_dir)
        pix = proc(images=[Image.open(item.picture).convert("RGB")], return_tensors="pt")
        n_pad = int(pix["image_grid_thw"][0].prod()) // proc.merge_size ** 2
        user = "<|vision_start|>" + "<|image_pad|>" * n_pad + "<|vision_end|>" + item.text
        extra = dict(pix)
    text = (f"<|im_start|>system\n{INSTRUCTION}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n"
            "<|im_start|>assistant\n<|endoftext|>")
    ids = torch.tensor([tok(text)["input_ids"]])
    if extra:
        extra["mm_token_type_ids"] = (ids == cfg["image_token_id"]).int()
    with torch.no_grad():
        hidden = model(input_ids=ids, attention_mask=torch.ones_like(ids), **extra).last_hidden_state[0]
    vec = hidden[-1] if pooling == "last" else hidden.mean(0)
    return (vec / vec.norm()).numpy()


@pytest.mark.parametrize("family", FAMILIES)
def test_encode_matches_direct_forward(family, tiny_dirs, qwen_embedders, catalogue):
    items = catalogue_items(catalogue)[:5]  # 4 with a picture, 1 without
    got = qwen_embedders[family].encode(items, batch_size=3)
    ref = np.stack([reference_vector(tiny_dirs[family], it) for it in items])
    cos = (got * ref).sum(1)
    assert cos.min() >= 0.9999, cos


def test_mean_pooling_matches_direct_forward(tiny_dirs, catalogue):
    emb = ItemEmbedder("qwen-vl", str(tiny_dirs["qwen2_5_vl"]), instruction=INSTRUCTION, pooling="mean")
    items = catalogue_items(catalogue)[3:6]
    got = emb.encode(items, batch_size=3)
    ref = np.stack([reference_vector(tiny_dirs["qwen2_5_vl"], it, pooling="mean") for it in items])
    assert (got * ref).sum(1).min() >= 0.9999


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("side", ["left", "right"])
def test_batched_equals_one_by_one(family, side, qwen_embedders, catalogue):
    emb = qwen_embedders[family]
    items = catalogue_items(catalogue)
    old = emb.backend.tokenizer.padding_side
    emb.backend.tokenizer.padding_side = side
    try:
        batched = emb.encode(items, batch_size=5)
        text_only = emb.encode(["mug", "a long title of blue linen running shoes for men"], batch_size=2)
    finally:
        emb.backend.tokenizer.padding_side = old
    single = np.stack([emb.encode([it], batch_size=1)[0] for it in items])
    single_text = emb.encode(["mug"])[0], emb.encode(["a long title of blue linen running shoes for men"])[0]
    assert (batched * single).sum(1).min() >= 0.9999
    assert (text_only * np.stack(single_text)).sum(1).min() >= 0.9999


def test_norms_order_and_dtype(qwen_embedders, catalogue):
    emb = qwen_embedders["qwen3_vl"]
    items = catalogue_items(catalogue)
    fwd = emb.encode(items, batch_size=4)
    rev = emb.encode(items[::-1], batch_size=4)[::-1]
    assert fwd.dtype == np.float32 and fwd.shape == (len(items), emb.dim)
    np.testing.assert_allclose(np.linalg.norm(fwd, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(fwd, rev, atol=1e-5)
    # rows are distinct items, so a permutation bug would show up as mismatched rows
    assert np.abs(fwd[0] - fwd[1]).max() > 1e-3
    raw = emb.encode(items[:2], normalize=False)
    np.testing.assert_allclose(raw / np.linalg.norm(raw, axis=1, keepdims=True), fwd[:2], atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_picture_changes_the_vector(family, qwen_embedders, tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    Image.new("RGB", (80, 60), (200, 20, 20)).save(a)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(b)
    va, vb, vt = qwen_embedders[family].encode(
        [Item("red cotton shirt", a), Item("red cotton shirt", b), Item("red cotton shirt")])
    assert float(va @ vb) < 0.9999 and float(va @ vt) < 0.9999
    # a PIL image in memory gives the same vector as its file
    vmem = qwen_embedders[family].encode([Item("red cotton shirt", Image.open(a))])[0]
    assert float(va @ vmem) >= 0.9999


def test_pixel_bounds_change_picture_cost(tiny_dirs):
    small = ItemEmbedder("qwen-vl", str(tiny_dirs["qwen3_vl"]), max_pixels=4 * 32 * 32, min_pixels=32 * 32)
    assert small.backend.factor == 32
    assert small.backend.picture_tokens(320, 320) == 4  # 320x320 bounded to 64x64 -> 2x2 merged tokens
    q2 = ItemEmbedder("qwen-vl", str(tiny_dirs["qwen2_vl"]), min_pixels=28 * 28, max_pixels=9 * 28 * 28)
    assert q2.backend.factor == 28 and q2.backend.picture_tokens(280, 280) == 9
    assert q2.settings()["max_pixels"] == 9 * 28 * 28


def test_picture_only_item_and_bad_inputs(qwen_embedders, catalogue, tmp_path):
    emb = qwen_embedders["qwen2_vl"]
    pic = catalogue_items(catalogue)[0].picture
    assert emb.encode([Item("", pic)]).shape == (1, emb.dim)
    with pytest.raises(ValueError, match="neither text nor picture"):
        emb.encode([Item("ok"), Item("", None, item_id=9)])
    with pytest.raises(ValueError, match="duplicate item ids"):
        emb.encode([Item("a", item_id=1), Item("b", item_id=1)])
    missing = tmp_path / "nope.png"
    with pytest.raises(ValueError, match=rf"item 5: picture {missing}: file not found"):
        emb.encode([Item("a", missing, item_id=5)])
    vec = emb.encode([Item("a", missing, item_id=5)], on_bad_image="text-only")
    np.testing.assert_allclose(vec, emb.encode(["a"]), atol=1e-6)


def test_not_a_qwen_vl_model(text_embedder):
    with pytest.raises(ValueError, match="not a Qwen-VL family"):
        ItemEmbedder("qwen-vl", str(text_embedder.backend.model_dir))
    with pytest.raises(ValueError, match="needs a model"):
        ItemEmbedder("qwen-vl", None)
