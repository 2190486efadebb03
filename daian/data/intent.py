"""Intent features and targets derived from the labels: leave-one-out intent and past intent.

`leave_one_out_intent` is DAIAN's stage-2 target: a row's request intent without the row's own
click. `past_intent` is UIM's view of the user's earlier requests: the mean intent of the same
user's labelled train requests that started strictly before the row's request.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
import torch

from intent_labels.labelled import similarity_level

if TYPE_CHECKING:
    from daian.data.dataset import TIRDataset

log = logging.getLogger(__name__)


def leave_one_out_intent(request_id: np.ndarray, clicked: np.ndarray, intent: np.ndarray,
                         has_intent: np.ndarray, sim: np.ndarray,
                         bin_edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's request intent without the row's own click -> (intent_loo (N, n), has_intent_loo (N,)).

    A request's intent p = c / C counts its clicks per similarity level. Handed to the model for
    the request's clicked row, p carries that row's label: p is zero at the target's level exactly
    when no row at that level was clicked. DAIAN's stage 2 therefore receives, per row,
    (c - y onehot(level)) / (C - y): the request's other clicks. Rows left without another click
    (the only click of a request, rows of requests without clicks) and rows whose intent does not
    decompose into whole clicks at the labelled levels (labels made elsewhere) get none.
    """
    n = intent.shape[1]
    if len(bin_edges) != n + 1:
        raise ValueError(f"bin_edges hold {len(bin_edges)} values; {n} levels need {n + 1}")
    if not len(request_id):
        return np.zeros_like(intent), np.zeros(0, bool)
    _, inv = np.unique(request_id, return_inverse=True)
    total = np.bincount(inv, weights=clicked)[inv]  # C, clicks of the row's request
    counts = intent.astype(np.float64) * total[:, None]
    whole = np.rint(counts)
    level = similarity_level(sim, bin_edges).astype(np.int64)  # in [0, n - 1]
    rows = np.arange(len(level))
    own = clicked.astype(bool)
    ok = has_intent & (np.abs(counts - whole) < 1e-3).all(axis=1)
    ok &= ~own | (whole[rows, level] >= 1)
    whole[rows[own], level[own]] -= 1
    rest = total - own
    has = ok & (rest > 0)
    out = np.where(has[:, None], whole / np.maximum(rest, 1)[:, None], 0.0).astype(np.float32)
    return out, has


def past_intent(user_id: np.ndarray, ts: np.ndarray, pool_user: np.ndarray, pool_ts: np.ndarray,
                pool_intent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's mean intent over its user's pooled requests that started strictly before it.

    `pool_*` hold one entry per labelled request (user, start time, intent p). Returns (mean p
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


def attach_past_intent(pool: TIRDataset, *datasets: TIRDataset) -> bool:
    """Set `past_intent` / `past_count` of each dataset from `pool`'s labelled requests.

    The pool is the train split: a train row sees its user's earlier train requests, a test row all
    of its user's train requests (the test split follows them in time) and never another test
    request's clicks, so nothing of an evaluated request's clicks reaches the model. Without a `ts`
    column in the pool and the dataset the features stay zero; returns whether they were set.
    """
    if "ts" not in pool.meta or any("ts" not in ds.meta for ds in datasets):
        log.warning("labelled data without a 'ts' column: past_intent (UIM's view of the user's "
                    "earlier requests) stays zero")
        return False
    labelled = pool.columns["has_intent"].numpy()
    _, first = np.unique(pool.meta["request_id"], return_index=True)
    first = first[labelled[first]]
    p_user, p_ts = pool.meta["user_id"][first], pool.meta["ts"][first]
    p_int = pool.columns["intent"].numpy()[first]
    for ds in datasets:
        mean, count = past_intent(ds.meta["user_id"], ds.meta["ts"], p_user, p_ts, p_int)
        ds.columns["past_intent"] = torch.from_numpy(mean)
        ds.columns["past_count"] = torch.from_numpy(count)
    return True
