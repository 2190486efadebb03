"""Vectorised weighted sampling helpers shared by the catalogue, histories and requests.

All functions draw many samples at once from a numpy Generator; none loops in Python per sample.
"""
from __future__ import annotations

import numpy as np
from numpy.random import Generator, SeedSequence


def stream(seed: int, *key: int) -> Generator:
    """Independent random stream for one component (and block), derived from the world seed.

    The key names the component (and the user block), so adding draws to one component never
    shifts another's numbers.
    """
    return np.random.default_rng(SeedSequence(entropy=seed, spawn_key=tuple(int(k) for k in key)))


class PoolSampler:
    """Weighted draws from many pools stored back to back: pool k = members[offsets[k]:offsets[k + 1]].

    Each draw picks a member of its pool with probability proportional to its weight. One global
    cumulative sum serves all pools, so a draw is one `searchsorted`.
    """

    def __init__(self, members: np.ndarray, weights: np.ndarray, offsets: np.ndarray) -> None:
        sizes = np.diff(offsets)
        if sizes.min(initial=1) < 1:
            raise ValueError(f"every pool must be non-empty; empty pools: {np.flatnonzero(sizes < 1)[:10]}")
        self.members = np.asarray(members)
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.cum = np.cumsum(np.asarray(weights, dtype=np.float64))
        self.base = np.concatenate([[0.0], self.cum])  # base[k] = total weight before position k

    def sample(self, rng: Generator, pools: np.ndarray) -> np.ndarray:
        """One member per entry of `pools` (int array of pool indices) -> array of members."""
        start = self.offsets[pools]
        end = self.offsets[pools + 1]
        lo, hi = self.base[start], self.base[end]
        pos = np.searchsorted(self.cum, lo + rng.random(pools.shape[0]) * (hi - lo), side="right")
        return self.members[np.clip(pos, start, end - 1)]


def pools_from_labels(labels: np.ndarray, n_pools: int, weights: np.ndarray) -> PoolSampler:
    """PoolSampler whose pool k holds the indices i with labels[i] == k."""
    order = np.argsort(labels, kind="stable")
    offsets = np.searchsorted(labels[order], np.arange(n_pools + 1))
    return PoolSampler(order, weights[order], offsets)


def sample_rows(rng: Generator, probs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """For each r in `rows`, one column index drawn from the (unnormalised) row probs[r] -> (len(rows),)."""
    cum = np.cumsum(probs, axis=1)
    u = rng.random(rows.shape[0]) * cum[rows, -1]
    return (cum[rows] < u[:, None]).sum(axis=1)


def gumbel_top_k(rng: Generator, logits: np.ndarray, k: int) -> np.ndarray:
    """k distinct column indices per row drawn without replacement with probs softmax(logits) -> (R, k)."""
    keys = logits + rng.gumbel(size=logits.shape)
    return np.argsort(-keys, axis=1, kind="stable")[:, :k]
