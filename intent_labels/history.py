"""Users' histories before a request, and the trigger-related subsequences drawn from them.

The behaviour log is sorted once by (user, ts) (ties keep file order) and keyed by one int64,
(user rank << bits) | (ts - ts0), so the window of every request is two `searchsorted` calls:
    lo = first behaviour of the user with ts >= t - hist_days * 86400   (inclusive: "within 14 days")
    hi = first behaviour of the user with ts >= t                      (strictly before the request)
A history is the last `max_hist` behaviours of [lo, hi), most recent first (among equal times the
later row of the file comes first). Every action (click, cart, buy) is a behaviour; an item clicked
and then bought appears twice.

Subsequences scan the whole window [lo, hi), not only the `max_hist` most recent items, following
DEI2N's remark that the hard-interest subsequence "covers a longer period of user historical
behaviours"; each keeps its first `max_subseq` matches, most recent first:
  - multimodal (DAIAN 4.2): behaviours whose cosine similarity to the trigger falls in a level
    >= `subseq_level` of the labelling's bin edges (items absent from the store never match);
  - category (DEI2N hard interest): behaviours whose item has the trigger's leaf category.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from common.contract import ACTIONS
from retrieval.store import EmbeddingStore

from .labelled import similarity_level
from .ragged import first_k_where, ragged_range, segment_ids
from .similarity import pair_similarity_fast

DAY_S = 86_400
NO_CATEGORY_ITEM = -1  # category of a behaviour whose item is absent from items.parquet
NO_CATEGORY_TRIGGER = -2  # never equal to NO_CATEGORY_ITEM, so unknowns never match


class IdIndex:
    """Row of each id in a unique id array, -1 where absent.

    A dense table when the ids are compact (span <= 4 x count, or <= 1M): one gather per lookup
    instead of a binary search, which matters for the 10M+ behaviour ids of a large log.
    """

    def __init__(self, ids: np.ndarray):
        ids = np.asarray(ids, dtype=np.int64)
        self.n = int(ids.size)
        self.table = None
        if self.n:
            lo, hi = int(ids.min()), int(ids.max())
            if hi - lo + 1 <= max(4 * self.n, 1 << 20):
                self.lo = lo
                self.table = np.full(hi - lo + 1, -1, np.int32 if self.n < 2**31 else np.int64)
                self.table[ids - lo] = np.arange(self.n)
                return
        self.order = np.argsort(ids, kind="stable")
        self.sorted = ids[self.order]

    def rows(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        if self.n == 0:
            return np.full(ids.shape, -1, np.int64)
        if self.table is not None:
            off = ids - self.lo
            inside = (off >= 0) & (off < self.table.size)
            return np.where(inside, self.table[np.where(inside, off, 0)], -1).astype(np.int64)
        pos = np.minimum(np.searchsorted(self.sorted, ids), self.n - 1)
        return np.where(self.sorted[pos] == ids, self.order[pos], -1)


@dataclass
class ItemCatalog:
    """Item id -> leaf and top category."""

    item_ids: np.ndarray  # (I,) int64
    category: np.ndarray  # (I,) int64 leaf category
    top_category: np.ndarray  # (I,) int64

    def __post_init__(self) -> None:
        self.index = IdIndex(self.item_ids)

    @classmethod
    def from_table(cls, items: pa.Table) -> "ItemCatalog":
        return cls(items.column("item_id").to_numpy(), items.column("category_id").to_numpy(),
                   items.column("top_category_id").to_numpy())

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """Row of each id in the catalogue, -1 where absent."""
        return self.index.rows(ids)

    def category_of(self, ids: np.ndarray, missing: int = NO_CATEGORY_ITEM) -> np.ndarray:
        rows = self.rows(ids)
        return np.where(rows >= 0, self.category[np.maximum(rows, 0)], missing)


def store_index(store: EmbeddingStore) -> IdIndex:
    """The store's id -> row index, built once per store object."""
    index = getattr(store, "_intent_labels_index", None)
    if index is None:
        index = IdIndex(store.item_ids)
        store._intent_labels_index = index
    return index


def store_rows(store: EmbeddingStore, ids: np.ndarray) -> np.ndarray:
    """Store row of each id, -1 where the store lacks it."""
    return store_index(store).rows(ids)


@dataclass
class BehaviourLog:
    """The behaviour log sorted by (user, ts), with what the labelling needs per behaviour."""

    user_ids: np.ndarray  # (U,) sorted unique users with at least one behaviour
    key: np.ndarray  # (B,) int64 (user rank << bits) | (ts - ts0), ascending
    ts: np.ndarray  # (B,) int64
    item_ids: np.ndarray  # (B,) int64
    action: np.ndarray  # (B,) int8 index into ACTIONS
    category: np.ndarray  # (B,) int64 leaf category, NO_CATEGORY_ITEM if unknown
    store_row: np.ndarray  # (B,) int64 row in the store, -1 if absent
    ts0: int  # smallest behaviour time
    bits: int  # bits of the key holding ts - ts0

    @classmethod
    def build(cls, behaviors: pa.Table, catalog: ItemCatalog, store: EmbeddingStore) -> "BehaviourLog":
        users = behaviors.column("user_id").to_numpy()
        ts = behaviors.column("ts").to_numpy()
        order = np.lexsort((ts, users))  # stable: equal (user, ts) keep file order
        users, ts = users[order], ts[order]
        items = behaviors.column("item_id").to_numpy()[order]
        action = pc.index_in(behaviors.column("action"), value_set=pa.array(ACTIONS)).to_numpy(
            zero_copy_only=False)[order].astype(np.int8)
        user_ids, rank = np.unique(users, return_inverse=True)
        ts0 = int(ts.min()) if ts.size else 0
        span = int(ts.max()) - ts0 if ts.size else 0
        bits = (span + 1).bit_length()
        if int(user_ids.size).bit_length() + bits > 62:
            raise ValueError(f"behaviors: {user_ids.size} users over a span of {span} s do not fit "
                             "the int64 (user, ts) key")
        key = (rank.astype(np.int64) << bits) | (ts - ts0)
        return cls(user_ids, key, ts, items, action, catalog.category_of(items),
                   store_rows(store, items), ts0, bits)

    def __len__(self) -> int:
        return int(self.key.size)

    def windows(self, users: np.ndarray, ts: np.ndarray, hist_days: float) -> tuple[np.ndarray, np.ndarray]:
        """[lo, hi) into the sorted log for each (user, ts): behaviours in [ts - hist_days, ts)."""
        users = np.asarray(users, dtype=np.int64)
        ts = np.asarray(ts, dtype=np.int64)
        lo = np.zeros(users.shape, np.int64)
        hi = np.zeros(users.shape, np.int64)
        if self.user_ids.size == 0:
            return lo, hi
        rank = np.searchsorted(self.user_ids, users)
        known = (rank < self.user_ids.size) & (self.user_ids[np.minimum(rank, self.user_ids.size - 1)] == users)
        top = (1 << self.bits) - 1  # > every ts - ts0 in the log
        base = rank[known].astype(np.int64) << self.bits
        rel = ts[known] - self.ts0
        since = rel - int(round(hist_days * DAY_S))
        lo[known] = np.searchsorted(self.key, base | np.clip(since, 0, top), side="left")
        hi[known] = np.searchsorted(self.key, base | np.clip(rel, 0, top), side="left")
        return lo, np.maximum(hi, lo)


@dataclass
class Ragged:
    """Per-request lists: offsets (R+1,) and named flat value arrays sharing them."""

    offsets: np.ndarray
    values: dict[str, np.ndarray]


def histories(log: BehaviourLog, lo: np.ndarray, hi: np.ndarray, req_ts: np.ndarray,
              max_hist: int) -> Ragged:
    """The last `max_hist` behaviours of each window, most recent first."""
    idx, offsets = ragged_range(hi - 1, np.minimum(hi - lo, max_hist), step=-1)
    return Ragged(offsets, _behaviour_values(log, idx, req_ts[segment_ids(offsets)]))


def subsequences(log: BehaviourLog, lo: np.ndarray, hi: np.ndarray, req_ts: np.ndarray,
                 trigger_rows: np.ndarray, trigger_categories: np.ndarray, vectors: np.ndarray,
                 edges: np.ndarray, subseq_level: int, max_subseq: int) -> tuple[Ragged, Ragged]:
    """(multimodal, category) subsequences of each window, most recent first, capped."""
    idx, offsets = ragged_range(hi - 1, hi - lo, step=-1)  # the whole window
    seg = segment_ids(offsets)
    rows = log.store_row[idx]
    in_store = rows >= 0
    sims = np.zeros(idx.size, np.float32)
    if in_store.any():
        sims[in_store] = pair_similarity_fast(vectors, trigger_rows[seg[in_store]], rows[in_store])
    mm_match = in_store & (similarity_level(sims, edges) >= subseq_level)
    cat_match = log.category[idx] == trigger_categories[seg]
    out = []
    for match in (mm_match, cat_match):
        new_offsets, keep = first_k_where(offsets, match, max_subseq)
        out.append(Ragged(new_offsets, _behaviour_values(log, idx[keep], req_ts[seg[keep]])))
    return out[0], out[1]


def _behaviour_values(log: BehaviourLog, idx: np.ndarray, req_ts: np.ndarray) -> dict[str, np.ndarray]:
    ts = log.ts[idx]
    return {"item_ids": log.item_ids[idx], "ts": ts,
            # DEI2N's interval with T_f = 60 s: floor((t - t_i) / 60), >= 0 since t_i < t.
            "dt_min": ((req_ts - ts) // 60).astype(np.int32), "action": log.action[idx]}
