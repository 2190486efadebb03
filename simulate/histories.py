"""Organic behaviour stream: the clicks, add-to-carts and purchases users make outside TIR pages.

Clicks run over the whole window (history days and request days) at a Poisson rate
activity * clicks_per_day per user and day, at uniform times. A click comes from the user's
long-term interests with probability interest_share (leaf drawn from the user's leaf weights, then
the user picks among `choice_candidates` popularity-drawn items of that leaf the one with the best
taste_weight * affinity + Gumbel noise), otherwise it explores: an item drawn by popularity from
the whole catalogue. Each click (organic or on a TIR page) is followed by an add-to-cart with
probability cart_prob (30 s to 15 min later), each cart by a purchase with probability buy_prob
(1 min to 2 h later).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import WorldConfig
from .sampling import PoolSampler, sample_rows
from .users import Users

ACTIONS = ("click", "cart", "buy")  # action codes 0, 1, 2 (also the sort order at equal times)
CHUNK = 1 << 16


@dataclass
class Pools:
    """Popularity-weighted item pools of the catalogue (indices are catalogue rows)."""

    by_leaf: PoolSampler
    by_top: PoolSampler
    anywhere: PoolSampler


def affinity(latent: np.ndarray, taste: np.ndarray, user_rows: np.ndarray, item_rows: np.ndarray) -> np.ndarray:
    """cos(item latent, user taste) for aligned arrays of user rows and item rows (any shape) -> float32."""
    flat_u, flat_i = user_rows.ravel(), item_rows.ravel()
    out = np.empty(flat_i.shape[0], dtype=np.float32)
    for s in range(0, flat_i.shape[0], CHUNK):
        out[s:s + CHUNK] = np.einsum("pd,pd->p", latent[flat_i[s:s + CHUNK]], taste[flat_u[s:s + CHUNK]])
    return out.reshape(item_rows.shape)


def choose_in_leaf(cfg: WorldConfig, rng: np.random.Generator, pools: Pools, latent: np.ndarray,
                   users: Users, user_rows: np.ndarray, leaves: np.ndarray) -> np.ndarray:
    """Each user picks one item of the given leaf: best of a few popular candidates by taste + noise."""
    m = cfg.choice_candidates
    cand = pools.by_leaf.sample(rng, np.repeat(leaves, m)).reshape(-1, m)
    score = cfg.taste_weight * affinity(latent, users.taste, np.repeat(user_rows, m).reshape(-1, m), cand)
    score = score + rng.gumbel(size=cand.shape)
    return cand[np.arange(cand.shape[0]), score.argmax(axis=1)]


def organic_clicks(cfg: WorldConfig, rng: np.random.Generator, pools: Pools, latent: np.ndarray,
                   users: Users) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user_rows, item_rows, ts) of all organic clicks of a user block, sorted by (user, ts)."""
    days = cfg.history_days + cfg.request_days
    counts = rng.poisson(users.activity * cfg.clicks_per_day * days)
    user_rows = np.repeat(np.arange(users.n), counts)
    ts = cfg.start_ts + rng.integers(0, days * 86_400, user_rows.shape[0])
    order = np.lexsort((ts, user_rows))
    ts = ts[order]
    n = user_rows.shape[0]
    from_interest = rng.random(n) < cfg.interest_share
    items = pools.anywhere.sample(rng, np.zeros(n, dtype=np.int64))
    rows = np.flatnonzero(from_interest)
    leaves = sample_rows(rng, users.leaf_weight, user_rows[rows])
    items[rows] = choose_in_leaf(cfg, rng, pools, latent, users, user_rows[rows], leaves)
    return user_rows, items, ts


def follow_ups(cfg: WorldConfig, rng: np.random.Generator, user_rows: np.ndarray, items: np.ndarray,
               ts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Carts and buys following the given clicks -> (user_rows, items, ts, action codes)."""
    cart = rng.random(items.shape[0]) < cfg.cart_prob
    cart_ts = ts[cart] + rng.integers(30, 900, int(cart.sum()))
    buy = rng.random(cart_ts.shape[0]) < cfg.buy_prob
    buy_ts = cart_ts[buy] + rng.integers(60, 7_200, int(buy.sum()))
    cu, ci = user_rows[cart], items[cart]
    return (np.concatenate([cu, cu[buy]]), np.concatenate([ci, ci[buy]]), np.concatenate([cart_ts, buy_ts]),
            np.concatenate([np.full(cart_ts.shape[0], 1, np.int8), np.full(buy_ts.shape[0], 2, np.int8)]))
