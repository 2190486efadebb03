"""Users: profile codes, intent type and profile, long-term interests and taste.

- Profile: gender (0/1), age_level (0..6), city_id (1..50, Zipf). Each (gender, age) group has its
  own preference over top categories, so the profile says something about interests.
- Type: broad-intent with probability broad_share + 0.12 * (3 - age_level) / 3 (younger users
  explore more), else specific-intent. The intent profile over the n similarity levels is a
  Dirichlet draw around the type's template (specific: peaked at the most similar levels; broad:
  flatter, peaked at low-mid similarity), as DAIAN's Figure 5 describes the two populations.
- Interests: specific users follow 1-2 top categories, broad users 2-4 (broad users' histories are
  more diverse, a signal a model can use); inside each, a Gamma-weighted preference over leaves;
  2 preferred colours and 1-2 preferred styles.
- Taste: unit vector built from those interests with the same directions as item latents; a
  target's affinity with the user is cos(item latent, taste).
- Activity: log-normal with mean 1 (scales clicks and sessions); click bias: a per-user random effect.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .catalogue import Catalogue
from .config import WorldConfig
from .latent import Directions
from .sampling import gumbel_top_k, stream
from .words import COLOURS, STYLES

SEED_GROUPS = 4  # component key of the (gender, age) group preferences
SEED_USERS = 5  # component key of the per-block user draws
N_AGE_LEVELS = 7
N_CITIES = 50
AGE_PROBS = np.array([0.08, 0.2, 0.24, 0.2, 0.14, 0.09, 0.05])


@dataclass
class Users:
    """One block of users, one row per user."""

    user_ids: np.ndarray  # (U,) int64
    gender: np.ndarray  # (U,) int64
    age_level: np.ndarray  # (U,) int64
    city_id: np.ndarray  # (U,) int64
    broad: np.ndarray  # (U,) bool, True = broad-intent user
    intent: np.ndarray  # (U, n) float64, intent profile over similarity levels (rows sum to 1)
    leaf_weight: np.ndarray  # (U, L) interest distribution over leaves (rows sum to 1)
    colours: np.ndarray  # (U, 2) preferred colour indices
    taste: np.ndarray  # (U, d) float32 unit taste vectors
    activity: np.ndarray  # (U,) mean-1 activity multiplier
    bias: np.ndarray  # (U,) per-user click-logit random effect

    @property
    def n(self) -> int:
        return self.user_ids.shape[0]


def group_top_preference(cfg: WorldConfig, n_top: int) -> np.ndarray:
    """(2, N_AGE_LEVELS, T) preference of each (gender, age) group over top categories."""
    rng = stream(cfg.seed, SEED_GROUPS)
    return rng.dirichlet(np.full(n_top, 0.8), size=(2, N_AGE_LEVELS))


def intent_templates(cfg: WorldConfig) -> tuple[np.ndarray, np.ndarray]:
    spec = np.asarray(cfg.specific_template, dtype=np.float64)
    broad = np.asarray(cfg.broad_template, dtype=np.float64)
    return spec / spec.sum(), broad / broad.sum()


def make_users(cfg: WorldConfig, cat: Catalogue, dirs: Directions, group_pref: np.ndarray,
               first: int, count: int, block: int) -> Users:
    """Users with global rows first..first+count-1 (user_id = row + 1), drawn from block `block`'s stream."""
    rng = stream(cfg.seed, SEED_USERS, block)
    tree = cat.tree
    gender = rng.integers(0, 2, count)
    age = rng.choice(N_AGE_LEVELS, size=count, p=AGE_PROBS)
    city_w = 1.0 / np.arange(1, N_CITIES + 1) ** 0.9
    city = rng.choice(N_CITIES, size=count, p=city_w / city_w.sum()) + 1

    p_broad = np.clip(cfg.broad_share + 0.12 * (3 - age) / 3, 0.02, 0.98)
    broad = rng.random(count) < p_broad
    spec_t, broad_t = intent_templates(cfg)
    alpha = cfg.intent_concentration * np.where(broad[:, None], broad_t, spec_t)
    intent = rng.gamma(alpha)
    intent = np.maximum(intent, 1e-12)
    intent /= intent.sum(axis=1, keepdims=True)

    # Interests: k top categories by the group's preference, Gamma weights over their leaves.
    k = np.minimum(np.where(broad, 2 + rng.binomial(2, 0.5, count), 1 + rng.binomial(1, 0.5, count)), tree.n_top)
    ranked = gumbel_top_k(rng, np.log(group_pref[gender, age]), tree.n_top)  # (U, T)
    chosen = np.zeros((count, tree.n_top), dtype=bool)
    np.put_along_axis(chosen, ranked, np.arange(tree.n_top)[None, :] < k[:, None], axis=1)
    top_w = rng.gamma(1.0, size=(count, tree.n_top)) * chosen
    top_w /= top_w.sum(axis=1, keepdims=True)
    leaf_g = rng.gamma(0.7, size=(count, tree.n_leaves)) + 1e-9
    top_start = np.searchsorted(tree.leaf_top, np.arange(tree.n_top))
    within = leaf_g / np.add.reduceat(leaf_g, top_start, axis=1)[:, tree.leaf_top]
    leaf_weight = within * top_w[:, tree.leaf_top]

    colours = gumbel_top_k(rng, np.zeros((count, len(COLOURS))), 2)
    n_styles = 1 + rng.binomial(1, 0.5, count)
    styles = gumbel_top_k(rng, np.zeros((count, len(STYLES))), 2)
    style_w = np.stack([np.ones(count), (n_styles == 2).astype(float)], axis=1)

    taste = (leaf_weight @ (cfg.w_leaf * dirs.leaf + cfg.w_top * dirs.top[tree.leaf_top])
             + 0.5 * cfg.w_colour * dirs.colour[colours].sum(axis=1)
             + cfg.w_style * (style_w[:, :, None] * dirs.style[styles]).sum(axis=1))
    taste /= np.linalg.norm(taste, axis=1, keepdims=True)

    activity = rng.lognormal(-0.5 * cfg.activity_sigma ** 2, cfg.activity_sigma, count)
    bias = cfg.user_bias_sd * rng.standard_normal(count)
    return Users(user_ids=np.arange(first, first + count, dtype=np.int64) + 1, gender=gender.astype(np.int64),
                 age_level=age.astype(np.int64), city_id=city.astype(np.int64), broad=broad, intent=intent,
                 leaf_weight=leaf_weight, colours=colours, taste=taste.astype(np.float32),
                 activity=activity, bias=bias)
