"""Planted item latent vectors and the similarity levels defined on them.

An item's latent vector is a weighted sum of unit directions, one per attribute value:

    z = w_top*T[top] + w_leaf*L[leaf] + w_related*R[leaf] + w_brand*B[brand] + w_colour*C[colour]
        + w_material*M[material] + w_style*S[style] + w_noise*eps,      latent = z / |z|

with R[leaf] = unit(sum of L[p] over the leaf's complementary partners p). Latent similarity is the
cosine of two latent vectors; items of the same leaf are close, complementary leaves (toothbrush,
toothpaste) are closer than unrelated ones, and a shared colour or brand adds a little.

Levels: n equal-width bins of latent cosine on [level_min, level_max]; values outside clip to the
end bins. Level 0 is the least similar, level n-1 the most similar.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .catalogue import Catalogue
from .config import WorldConfig
from .sampling import stream
from .words import COLOURS, MATERIALS, STYLES

SEED_LATENT = 2  # component key of the latent directions' random stream


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@dataclass
class Directions:
    """One unit direction per attribute value (the building blocks of item and taste vectors)."""

    top: np.ndarray  # (T, d)
    leaf: np.ndarray  # (L, d)
    related: np.ndarray  # (L, d), zero rows for leaves without partners
    brand: np.ndarray  # (B, d)
    colour: np.ndarray  # (C, d)
    material: np.ndarray  # (M, d)
    style: np.ndarray  # (S, d)


def build_directions(cfg: WorldConfig, cat: Catalogue) -> Directions:
    rng = stream(cfg.seed, SEED_LATENT)
    d = cfg.latent_dim

    def draw(k: int) -> np.ndarray:
        return _unit_rows(rng.standard_normal((k, d)))

    tree = cat.tree
    top, leaf = draw(tree.n_top), draw(tree.n_leaves)
    related = np.zeros_like(leaf)
    for i, partners in enumerate(tree.related):
        if partners.size:
            related[i] = leaf[partners].sum(axis=0)
            related[i] /= np.linalg.norm(related[i])
    return Directions(top=top, leaf=leaf, related=related, brand=draw(len(cat.brand_names)),
                      colour=draw(len(COLOURS)), material=draw(len(MATERIALS)), style=draw(len(STYLES)))


def item_latent(cfg: WorldConfig, cat: Catalogue, dirs: Directions) -> np.ndarray:
    """(N, d) float32 unit latent vectors, one per catalogue row."""
    rng = stream(cfg.seed, SEED_LATENT, 1)
    z = (cfg.w_top * dirs.top[cat.top] + cfg.w_leaf * dirs.leaf[cat.leaf]
         + cfg.w_related * dirs.related[cat.leaf] + cfg.w_brand * dirs.brand[cat.brand]
         + cfg.w_colour * dirs.colour[cat.colour] + cfg.w_material * dirs.material[cat.material]
         + cfg.w_style * dirs.style[cat.style])
    noise = _unit_rows(rng.standard_normal((cat.n_items, cfg.latent_dim)))
    return _unit_rows(z + cfg.w_noise * noise).astype(np.float32)


def level_edges(cfg: WorldConfig) -> np.ndarray:
    """(n+1,) bin edges of the similarity levels."""
    return np.linspace(cfg.level_min, cfg.level_max, cfg.n_levels + 1)


def assign_levels(cfg: WorldConfig, similarity: np.ndarray) -> np.ndarray:
    """Latent cosine -> level in 0..n-1 (int8); out-of-range values clip to the end levels."""
    width = (cfg.level_max - cfg.level_min) / cfg.n_levels
    return np.clip(np.floor((similarity - cfg.level_min) / width), 0, cfg.n_levels - 1).astype(np.int8)


def levels_description(cfg: WorldConfig) -> dict:
    """Contents of truth/levels.json."""
    return {
        "n_levels": cfg.n_levels,
        "edges": [float(e) for e in level_edges(cfg)],
        "similarity": "cosine of the two items' rows in truth/item_latent.npy "
                      "(rows ordered as truth/item_ids.npy)",
        "rule": "level = clip(floor((similarity - edges[0]) / (edges[1] - edges[0])), 0, n_levels - 1); "
                "level 0 = least similar, level n_levels-1 = most similar",
    }
