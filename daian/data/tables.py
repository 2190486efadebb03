"""Lookup tables: the fitted vocabularies, the item and user tables, the frozen store vectors.

Items are stored as rows of a small item table (catalogue row -> ITEM_FIELDS indices), users as
rows of a user table (-> [user, profile...]), so a batch's (B, L, F) history is one gather. Side
information comes from the catalogue and the users table for every item and user, seen in the
train split or not: a cold item keeps its category even though its id maps to "unknown". The
frozen store vectors are indexed separately (item table row -> store row), so every catalogue
item brings its own vector to the model.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch

from common.contract import profile_columns
from daian.data.columns import _combined
from daian.data.vocab import PAD, UNKNOWN, Vocab, Vocabularies
from daian.models.base import ITEM_FIELDS
from retrieval.store import EmbeddingStore


DENSE_LIMIT = 1 << 24  # ids below this (or 8x the table) are looked up through a dense array (<= 64 MB)


@dataclass
class LookupTable:
    """Raw id -> table row -> per-field indices; row 0 is padding, row 1 an id absent from the table."""

    raw_ids: np.ndarray  # (R,) sorted int64: the raw id of rows 2..
    fields: np.ndarray  # (R + 2, F) int64 field indices (row 0 zeros, row 1 unknown everywhere)

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """Raw ids -> int32 table rows; ids not in the table -> 1.

        Ids that are small non-negative integers (the usual case) go through a dense id -> row
        array, one gather per value; others through a binary search over the sorted ids.
        """
        ids = np.asarray(ids, dtype=np.int64)
        dense = self._dense()
        if dense is None:
            return Vocab(self.raw_ids).lookup(ids).astype(np.int32)
        inside = (ids >= 0) & (ids < dense.size)
        if inside.all():
            return dense[ids]
        return np.where(inside, dense[np.where(inside, ids, 0)], UNKNOWN).astype(np.int32)

    def _dense(self) -> np.ndarray | None:
        cached = self.__dict__.get("_dense_rows", False)
        if cached is not False:
            return cached
        dense = None
        raw = self.raw_ids
        if raw.size and raw[0] >= 0 and raw[-1] < max(DENSE_LIMIT, 8 * raw.size):
            dense = np.full(int(raw[-1]) + 1, UNKNOWN, np.int32)
            dense[raw] = np.arange(2, raw.size + 2, dtype=np.int32)
        self.__dict__["_dense_rows"] = dense
        return dense


def _table(raw: np.ndarray, cols: list[np.ndarray]) -> LookupTable:
    """Rows 2.. from per-field index columns, behind the padding and unknown rows."""
    body = np.stack(cols, axis=1)
    head = np.array([[PAD] * len(cols), [UNKNOWN] * len(cols)], dtype=np.int64)
    return LookupTable(raw, np.concatenate([head, body]).astype(np.int64))


def build_item_table(items: pa.Table, vocabs: Vocabularies) -> LookupTable:
    """Catalogue -> ITEM_FIELDS indices per item, for every catalogue item (seen in train or not)."""
    item_ids = items.column("item_id").to_numpy()
    order = np.argsort(item_ids, kind="stable")
    raw = item_ids[order]
    cols = {
        "item": vocabs.item.lookup(raw),
        "category": vocabs.category.lookup(items.column("category_id").to_numpy()[order]),
        "top_category": vocabs.top_category.lookup(items.column("top_category_id").to_numpy()[order]),
        "brand": vocabs.brand.lookup(items.column("brand_id").to_numpy()[order]),
        "price_bucket": vocabs.price_bucket(items.column("price").to_numpy()[order]),
    }
    return _table(raw, [cols[f] for f in ITEM_FIELDS])


def build_user_table(users: pa.Table, vocabs: Vocabularies) -> LookupTable:
    """Users table -> [user index, profile indices...] per user (seen in train or not)."""
    user_ids = users.column("user_id").to_numpy()
    order = np.argsort(user_ids, kind="stable")
    raw = user_ids[order]
    cols = [vocabs.user.lookup(raw)]
    cols += [vocab.lookup(users.column(name).to_numpy()[order]) for name, vocab in vocabs.profile.items()]
    return _table(raw, cols)


def train_ids(train: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """(item ids, user ids) a train table shows: targets, triggers and history items; its users."""
    hist = _combined(train.column("hist_item_ids")).values.to_numpy(zero_copy_only=False)
    items = np.unique(np.concatenate([
        train.column("item_id").to_numpy(), train.column("trigger_item_id").to_numpy(), hist]))
    return items, np.unique(train.column("user_id").to_numpy())


def fit_vocabularies(train: pa.Table, items: pa.Table, users: pa.Table, price_buckets: int) -> Vocabularies:
    """Fit every vocabulary on the train split (ids, and the side information of the train items)."""
    seen_items, seen_users = train_ids(train)
    return vocabularies_for(seen_items, seen_users, items, users, price_buckets)


def vocabularies_for(seen_items: np.ndarray, seen_users: np.ndarray, items: pa.Table, users: pa.Table,
                     price_buckets: int) -> Vocabularies:
    """The vocabularies of the ids the train split showed (the streaming path collects them batch
    by batch): ids, and the side information of those items and users."""
    item_ids = items.column("item_id").to_numpy()
    in_train = np.isin(item_ids, seen_items)
    user_rows = np.isin(users.column("user_id").to_numpy(), seen_users)
    prices = items.column("price").to_numpy()[in_train]
    prices = prices[~np.isnan(prices)]
    qs = np.linspace(0.0, 1.0, price_buckets + 1)[1:-1]
    edges = np.unique(np.quantile(prices, qs)) if prices.size and qs.size else np.zeros(0)
    return Vocabularies(
        item=Vocab.fit(seen_items),
        user=Vocab.fit(seen_users),
        category=Vocab.fit(items.column("category_id").to_numpy()[in_train]),
        top_category=Vocab.fit(items.column("top_category_id").to_numpy()[in_train]),
        brand=Vocab.fit(items.column("brand_id").to_numpy()[in_train]),
        price_edges=np.asarray(edges, np.float64),
        profile={name: Vocab.fit(users.column(name).to_numpy()[user_rows])
                 for name in profile_columns(users.schema)},
    )


def frozen_item_vectors(store: EmbeddingStore) -> torch.Tensor:
    """(store rows + 2, d) float32: the store's vectors behind two zero rows (0 pad, 1 not in the store).

    Indexed by `store_rows` below, not by the item vocabulary: an item the training split never
    showed shares the "unknown" id embedding but keeps its own frozen vector, which is what lets
    the multimodal branch speak for cold items.
    """
    vectors = np.asarray(store.vectors, dtype=np.float32)
    out = np.zeros((vectors.shape[0] + 2, store.dim), dtype=np.float32)
    out[2:] = vectors
    return torch.from_numpy(out)


def store_rows(store: EmbeddingStore, item_table: LookupTable) -> tuple[np.ndarray, int]:
    """Item table row -> row of `frozen_item_vectors(store)` (0 pad, 1 catalogue item absent from the store).

    Returns the (R + 2,) int64 map and the number of catalogue items absent from the store.
    """
    out = np.zeros(item_table.fields.shape[0], dtype=np.int64)
    out[1] = 1
    found = store.contains(item_table.raw_ids)
    out[2:] = 1
    if found.any():
        out[2 + np.flatnonzero(found)] = store.rows_for(item_table.raw_ids[found]) + 2
    return out, int((~found).sum())
