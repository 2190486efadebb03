"""The catalogue: category tree, brands, item attributes, price, quality and the popularity tail.

Items are ordered by row (0..N-1); `item_ids` is a random permutation of 1..N so that an id says
nothing about an item's category (and 0 stays free as a padding id for the models).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import WorldConfig
from .sampling import sample_rows, stream
from .words import (BRAND_SYLLABLES, BRAND_TIERS, COLOURS, MATERIALS, RELATED_LEAVES, STYLES,
                    TOP_CATEGORIES, TOP_MATERIALS)

SEED_CATALOGUE = 1  # component key of the catalogue's random stream


@dataclass
class Tree:
    """The category tree of a world: top categories, leaves and complementary leaf pairs."""

    top_names: list[str]
    top_words: list[tuple[str, ...]]  # title words naming each top category
    top_shapes: list[str]  # picture primitive of each top category
    top_sizes: list[tuple[str, ...]]  # size vocabulary of each top category
    top_materials: list[np.ndarray]  # material indices each top category may use
    leaf_names: list[str]
    leaf_synonyms: list[tuple[str, ...]]
    leaf_price: np.ndarray  # (L,) median price
    leaf_top: np.ndarray  # (L,) top index of each leaf
    leaf_variant: np.ndarray  # (L,) position of the leaf inside its top (picture variant)
    related: list[np.ndarray]  # partner leaf indices of each leaf (complementary categories)

    @property
    def n_top(self) -> int:
        return len(self.top_names)

    @property
    def n_leaves(self) -> int:
        return len(self.leaf_names)


def build_tree(n_top: int) -> Tree:
    """Tree of the first `n_top` top categories of the vocabulary (related pairs kept if both present)."""
    tops = TOP_CATEGORIES[:n_top]
    material_index = {name: i for i, (name, _) in enumerate(MATERIALS)}
    leaf_names, leaf_syn, leaf_price, leaf_top, leaf_variant = [], [], [], [], []
    for t, top in enumerate(tops):
        for v, (name, synonyms, price) in enumerate(top["leaves"]):
            leaf_names.append(name)
            leaf_syn.append(synonyms)
            leaf_price.append(price)
            leaf_top.append(t)
            leaf_variant.append(v)
    index = {name: i for i, name in enumerate(leaf_names)}
    partners: list[list[int]] = [[] for _ in leaf_names]
    for a, b in RELATED_LEAVES:
        if a in index and b in index:
            partners[index[a]].append(index[b])
            partners[index[b]].append(index[a])
    return Tree(
        top_names=[t["name"] for t in tops], top_words=[t["words"] for t in tops],
        top_shapes=[t["shape"] for t in tops], top_sizes=[t["sizes"] for t in tops],
        top_materials=[np.array([material_index[m] for m in TOP_MATERIALS[t["name"]]]) for t in tops],
        leaf_names=leaf_names, leaf_synonyms=leaf_syn, leaf_price=np.array(leaf_price),
        leaf_top=np.array(leaf_top), leaf_variant=np.array(leaf_variant),
        related=[np.array(sorted(p), dtype=np.int64) for p in partners],
    )


@dataclass
class Catalogue:
    """All items of a world, one row per item, plus brand tables."""

    tree: Tree
    item_ids: np.ndarray  # (N,) int64, permutation of 1..N
    leaf: np.ndarray  # (N,) leaf index
    top: np.ndarray  # (N,) top index
    brand: np.ndarray  # (N,) global brand index
    colour: np.ndarray  # (N,) index into words.COLOURS
    material: np.ndarray  # (N,) index into words.MATERIALS
    style: np.ndarray  # (N,) index into words.STYLES
    size: np.ndarray  # (N,) index into the top category's size list
    price: np.ndarray  # (N,) float64
    quality: np.ndarray  # (N,) float32, latent quality (click model)
    popularity: np.ndarray  # (N,) float64 exposure / choice weight (long tail)
    brand_names: list[str]
    brand_top: np.ndarray  # (B,) top index of each brand
    brand_tier: np.ndarray  # (B,) index into words.BRAND_TIERS

    @property
    def n_items(self) -> int:
        return self.item_ids.shape[0]

    def size_names(self) -> list[str]:
        return [self.tree.top_sizes[t][s] for t, s in zip(self.top.tolist(), self.size.tolist())]


def _brand_names(rng: np.random.Generator, count: int) -> list[str]:
    """`count` distinct made-up brand names from two or three syllables."""
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < count:
        k = int(rng.integers(2, 4))
        name = "".join(BRAND_SYLLABLES[i] for i in rng.integers(0, len(BRAND_SYLLABLES), k)).capitalize()
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


def _items_per_leaf(rng: np.random.Generator, n_items: int, n_leaves: int) -> np.ndarray:
    """Item counts per leaf: at least 2 each, the rest spread by a log-normal leaf size."""
    share = rng.lognormal(0.0, 0.5, n_leaves)
    counts = 2 + rng.multinomial(n_items - 2 * n_leaves, share / share.sum())
    return counts


def build_catalogue(cfg: WorldConfig) -> Catalogue:
    """Draw every item's category, brand, attributes, price, quality and popularity."""
    rng = stream(cfg.seed, SEED_CATALOGUE)
    tree = build_tree(cfg.n_top_categories)
    n = cfg.n_items
    leaf = np.repeat(np.arange(tree.n_leaves), _items_per_leaf(rng, n, tree.n_leaves))
    top = tree.leaf_top[leaf]

    # Brands: `brands_per_top` per top category, Zipf shares, a random price tier each.
    n_brands = cfg.brands_per_top * tree.n_top
    brand_top = np.repeat(np.arange(tree.n_top), cfg.brands_per_top)
    brand_tier = rng.choice(len(BRAND_TIERS), size=n_brands, p=[0.35, 0.45, 0.2])
    zipf = 1.0 / np.arange(1, cfg.brands_per_top + 1) ** cfg.brand_zipf
    brand_in_top = rng.choice(cfg.brands_per_top, size=n, p=zipf / zipf.sum())
    brand = top * cfg.brands_per_top + brand_in_top

    # Attributes: colour and style by per-top preferences, material from the top's list, size uniform.
    colour_pref = rng.dirichlet(np.full(len(COLOURS), 1.5), size=tree.n_top)
    colour = sample_rows(rng, colour_pref, top)
    style_pref = rng.dirichlet(np.full(len(STYLES), 1.5), size=tree.n_top)
    style = sample_rows(rng, style_pref, top)
    n_mat = np.array([len(m) for m in tree.top_materials])
    mat_table = np.zeros((tree.n_top, n_mat.max()), dtype=np.int64)
    for t, mats in enumerate(tree.top_materials):
        mat_table[t, : len(mats)] = mats
    material = mat_table[top, (rng.random(n) * n_mat[top]).astype(np.int64)]
    n_sizes = np.array([len(s) for s in tree.top_sizes])
    size = (rng.random(n) * n_sizes[top]).astype(np.int64)

    tier = brand_tier[brand]
    tier_mult = np.array([m for _, m in BRAND_TIERS])[tier]
    size_mult = 0.85 + 0.15 * size
    price = np.round(tree.leaf_price[leaf] * tier_mult * size_mult * rng.lognormal(0.0, 0.25, n), 2)
    price = np.maximum(price, 0.5)

    quality = (cfg.quality_sd * rng.standard_normal(n) + 0.3 * (tier - 1)).astype(np.float32)
    log_pop = cfg.popularity_sigma * rng.standard_normal(n) + cfg.popularity_quality * quality
    popularity = np.exp(log_pop - log_pop.max())

    item_ids = rng.permutation(n).astype(np.int64) + 1
    return Catalogue(tree=tree, item_ids=item_ids, leaf=leaf, top=top, brand=brand, colour=colour,
                     material=material, style=style, size=size, price=price.astype(np.float64),
                     quality=quality, popularity=popularity, brand_names=_brand_names(rng, n_brands),
                     brand_top=brand_top, brand_tier=brand_tier)

