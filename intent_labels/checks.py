"""Cross-batch checks of `label-intents` between its two passes, each a one-line ValueError naming
the file, the column and the first offending ids: duplicate (request_id, item_id) rows across
batches, impressions of items without a vector, requests of unknown users, a split without a click.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from common.contract import FILES

from .batch import REASONS, SHOW_IDS
from .config import LabelConfig
from .labelled import REJECTS

if TYPE_CHECKING:
    from .pipeline import Requests


def check_cross_batch_duplicates(files: list[Path], request_ids: np.ndarray, batch_rows: int) -> None:
    """Duplicate (request_id, item_id) among requests whose rows span several runs or batches."""
    if request_ids.size == 0:
        return
    keys = pa.array(request_ids)
    parts = []
    from .pipeline import iter_impression_batches  # the pipeline imports this module

    for f, offset, batch in iter_impression_batches(files, batch_rows, ["request_id", "item_id"]):
        mask = pc.is_in(batch.column("request_id"), value_set=keys)
        rows = np.flatnonzero(mask.to_numpy(zero_copy_only=False))
        if rows.size:
            parts.append((str(f), rows + offset, batch.column("request_id").to_numpy()[rows],
                          batch.column("item_id").to_numpy()[rows]))
    src = np.concatenate([np.full(p[1].size, i) for i, p in enumerate(parts)])
    row, rid, item = (np.concatenate([p[k] for p in parts]) for k in (1, 2, 3))
    order = np.lexsort((item, rid))
    same = (rid[order][1:] == rid[order][:-1]) & (item[order][1:] == item[order][:-1])
    if same.any():
        k = order[1:][same][0]
        raise ValueError(f"{parts[src[k]][0]}: {int(same.sum())} duplicate (request_id, item_id) row(s); "
                         f"one at row {row[k]} (request_id {rid[k]}, item_id {item[k]})")


def check_request_users(runs: pa.Table, user_ids: np.ndarray, files: list[Path]) -> None:
    """Every request's user is in users.parquet (checked on pass 1's request runs)."""
    users = runs.column("user_id").to_numpy()
    pos = np.minimum(np.searchsorted(user_ids, users), max(user_ids.size - 1, 0))
    bad = np.flatnonzero(user_ids[pos] != users) if user_ids.size else np.arange(users.size)
    if bad.size:
        rid = runs.column("request_id").to_numpy()[bad]
        raise ValueError(f"{files[0] if len(files) == 1 else files[0].parent}: column 'user_id': "
                         f"{np.unique(rid).size} request(s) refer to users absent from {FILES['users']}; "
                         f"first request_id(s) {rid[:SHOW_IDS].tolist()} (user ids {users[bad][:SHOW_IDS].tolist()})")


def check_split_clicks(requests: Requests, boundary: int) -> None:
    """Each split holds a click: without one the model learns nothing (train) or its AUC is
    undefined (test)."""
    for split, mask in (("train", requests.ts < boundary), ("test", requests.ts >= boundary)):
        if int(requests.n_clicks[mask].sum()) == 0:
            raise ValueError(f"impressions: column 'clicked': the {split} split's {int(mask.sum())} requests "
                             "hold no click (clicked = 1) on an item with a vector; "
                             + ("a model has nothing to learn" if split == "train" else
                                "its AUC would be undefined") + "; check the clicked column or the split")


def check_rejects(counts: dict[str, int], rejects: pa.Table, config: LabelConfig) -> None:
    """In "fail" mode, any impression missing from the store stops the run, naming the first ids."""
    total = sum(counts.values())
    if total == 0 or config.on_missing == "drop":
        return
    items = rejects.filter(pc.is_in(rejects.column("reason"), value_set=pa.array([REASONS[0], REASONS[2]])))
    trigs = rejects.filter(pc.is_in(rejects.column("reason"), value_set=pa.array([REASONS[1], REASONS[2]])))
    raise ValueError(
        f"{total} impression row(s) (columns 'item_id', 'trigger_item_id') refer to items absent from the store {config.store} "
        f"({', '.join(f'{k}: {v}' for k, v in counts.items() if v)}); first item ids "
        f"{items.column('item_id').to_pylist()[:SHOW_IDS]}, first trigger ids "
        f"{trigs.column('trigger_item_id').to_pylist()[:SHOW_IDS]}. Rebuild the store over "
        f"{FILES['items']}, or pass on_missing='drop' (--on-missing drop) to write them to {REJECTS}")
