"""Per-row intent features derived from the request table: leave-one-out intent and past intent.

Both need whole requests (all of a request's clicks) or the whole train split (a user's earlier
requests), so they are computed where those are at hand, once: `label-intents` holds the request
table between its passes and writes them as columns (`intent_loo`, `has_intent_loo`,
`past_intent`, `past_count`), so that training can stream the labelled files batch by batch. The
trainer computes the same columns with the same functions for labelled folders written before
these columns existed (`daian.data.intent`).
"""
from __future__ import annotations

import numpy as np

from .labelled import similarity_level


def leave_one_out(total: np.ndarray, clicked: np.ndarray, intent: np.ndarray, has_intent: np.ndarray,
                  sim: np.ndarray, bin_edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's request intent without the row's own click -> (intent_loo (N, n), has_intent_loo (N,)).

    `total` (N,) is C, the clicks of the row's request (counted over the whole request, wherever its
    rows are). A request's intent p = c / C counts its clicks per similarity level; handed to the
    model for the request's clicked row, p would carry that row's label, so DAIAN's stage 2 receives
    (c - y onehot(level)) / (C - y): the request's other clicks. Rows left without another click and
    rows whose intent does not decompose into whole clicks at the labelled levels get none.
    """
    n = intent.shape[1]
    if len(bin_edges) != n + 1:
        raise ValueError(f"bin_edges hold {len(bin_edges)} values; {n} levels need {n + 1}")
    if not len(total):
        return np.zeros_like(intent, dtype=np.float32), np.zeros(0, bool)
    total = np.asarray(total, dtype=np.float64)
    counts = intent.astype(np.float64) * total[:, None]
    whole = np.rint(counts)
    level = similarity_level(sim, bin_edges).astype(np.int64)  # in [0, n - 1]
    rows = np.arange(len(level))
    own = np.asarray(clicked).astype(bool)
    ok = np.asarray(has_intent, bool) & (np.abs(counts - whole) < 1e-3).all(axis=1)
    ok &= ~own | (whole[rows, level] >= 1)
    whole[rows[own], level[own]] -= 1
    rest = total - own
    has = ok & (rest > 0)
    out = np.where(has[:, None], whole / np.maximum(rest, 1)[:, None], 0.0).astype(np.float32)
    return out, has


def past_intent(user_id: np.ndarray, ts: np.ndarray, pool_user: np.ndarray, pool_ts: np.ndarray,
                pool_intent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's mean intent over its user's pooled requests that started strictly before it.

    `pool_*` hold one entry per labelled train request (user, start time, intent p). Returns (mean p
    (N, n) float32, zeros where there is none; number of such requests (N,) float32). Vectorised:
    the pool is sorted by (user, time) and cumulated, and each row finds its cut by a binary search
    on a combined (user, time) key.
    """
    n = pool_intent.shape[1]
    if not len(user_id) or not len(pool_user):
        return np.zeros((len(user_id), n), np.float32), np.zeros(len(user_id), np.float32)
    _, inv = np.unique(np.concatenate([pool_user, user_id]), return_inverse=True)
    times, tinv = np.unique(np.concatenate([pool_ts, ts]), return_inverse=True)
    key = inv.astype(np.int64) * (len(times) + 1) + tinv  # orders by user, then time
    pool_key, row_key = key[:len(pool_user)], key[len(pool_user):]
    order = np.argsort(pool_key, kind="stable")
    pool_key = pool_key[order]
    cum = np.vstack([np.zeros((1, n)), np.cumsum(pool_intent[order].astype(np.float64), axis=0)])
    row_user = inv[len(pool_user):].astype(np.int64)
    start = np.searchsorted(pool_key, row_user * (len(times) + 1), side="left")  # the user's first
    stop = np.searchsorted(pool_key, row_key, side="left")  # the user's first at or after the row
    count = stop - start
    total = cum[stop] - cum[start]
    mean = np.where(count[:, None] > 0, total / np.maximum(count, 1)[:, None], 0.0)
    return mean.astype(np.float32), count.astype(np.float32)
