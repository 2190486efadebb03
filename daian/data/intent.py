"""Intent features and targets derived from the labels, for labelled folders that lack them.

`label-intents` writes `intent_loo`, `has_intent_loo`, `past_intent` and `past_count` itself
(`intent_labels.derived`); folders written before then get them here, from the whole split in
memory, with the same functions.

`leave_one_out_intent` is DAIAN's stage-2 target: a row's request intent without the row's own
click. `past_intent` is UIM's view of the user's earlier requests: the mean intent of the same
user's labelled train requests that started strictly before the row's request.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
import torch

from intent_labels.derived import leave_one_out, past_intent

if TYPE_CHECKING:
    from daian.data.dataset import TIRDataset

log = logging.getLogger(__name__)


def leave_one_out_intent(request_id: np.ndarray, clicked: np.ndarray, intent: np.ndarray,
                         has_intent: np.ndarray, sim: np.ndarray,
                         bin_edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`intent_labels.derived.leave_one_out` with each request's clicks counted over the rows given
    (a whole split: every row of a request is in it)."""
    if not len(request_id):
        return np.zeros_like(intent), np.zeros(0, bool)
    _, inv = np.unique(request_id, return_inverse=True)
    total = np.bincount(inv, weights=clicked)[inv]  # C, clicks of the row's request
    return leave_one_out(total, clicked, intent, has_intent, sim, bin_edges)


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
