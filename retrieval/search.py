"""Nearest-neighbour search over an embedding store, in item ids.

`StoreSearcher` pairs an `EmbeddingStore` with a `SearchIndex` (the store's saved `index.faiss`, or an
exact Flat index built on the fly) and answers top-k and range queries by query vectors or by item ids
of the store itself (the item is left out of its own neighbours).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .index import SearchIndex, build_index, load_index
from .store import EmbeddingStore


@dataclass
class Neighbours:
    """Top-k result: (Q, k) item ids (-1 where fewer than k exist) and scores (cosine), best first."""

    item_ids: np.ndarray
    scores: np.ndarray


class StoreSearcher:
    """Top-k and range search over one store, returning item ids."""

    def __init__(self, store: EmbeddingStore, index: SearchIndex):
        if index.dim != store.dim:
            raise ValueError(f"index dimension {index.dim} does not match the store's {store.dim}"
                             f"{' (' + str(store.path) + ')' if store.path else ''}")
        if index.ntotal != len(store):
            raise ValueError(f"index holds {index.ntotal} vectors but the store has {len(store)} rows"
                             f"{' (' + str(store.path) + ')' if store.path else ''}; rebuild the index")
        self.store = store
        self.index = index

    @classmethod
    def open(cls, store: EmbeddingStore | str | Path, *, index_path: str | Path | None = None,
             factory: str | None = None, use_gpu: bool | None = None) -> "StoreSearcher":
        """Searcher over `store` using `index_path`, else the store's own index.faiss, else a new
        index from `factory` (default exact "Flat")."""
        if not isinstance(store, EmbeddingStore):
            store = EmbeddingStore.load(store)
        path = Path(index_path) if index_path is not None else store.index_path
        if factory is None and path is not None:
            cpu = load_index(path)
        else:
            cpu = build_index(store.vectors, factory or "Flat")
        return cls(store, SearchIndex.wrap(cpu, use_gpu=use_gpu))

    def _to_ids(self, rows: np.ndarray) -> np.ndarray:
        if rows.min(initial=0) >= 0:  # the common case: k neighbours exist
            return self.store.item_ids[rows]
        return np.where(rows >= 0, self.store.item_ids[np.maximum(rows, 0)], -1)

    def search(self, queries: np.ndarray, k: int = 10,
               exclude_ids: np.ndarray | None = None) -> Neighbours:
        """Top-k neighbours of query vectors (Q, d); `exclude_ids[i]` is dropped from query i's list."""
        if exclude_ids is None:
            scores, rows = self.index.search(queries, k)
            return Neighbours(self._to_ids(rows), scores)
        exclude_ids = np.asarray(exclude_ids, dtype=np.int64).reshape(-1, 1)
        scores, rows = self.index.search(queries, k + 1)
        ids = self._to_ids(rows)
        hit = ids == exclude_ids  # ids are unique, so at most one hit per row
        # Drop the excluded entry, or the (k+1)-th when the excluded item is not among the first k+1.
        drop = np.where(hit.any(axis=1), hit.argmax(axis=1), k)
        keep = np.ones(ids.shape, dtype=bool)
        keep[np.arange(ids.shape[0]), drop] = False
        return Neighbours(ids[keep].reshape(-1, k), scores[keep].reshape(-1, k))

    def search_ids(self, item_ids: np.ndarray, k: int = 10, exclude_self: bool = True) -> Neighbours:
        """Top-k neighbours of store items; raises KeyError naming ids not in the store."""
        item_ids = np.atleast_1d(np.asarray(item_ids, dtype=np.int64))
        queries = np.asarray(self.store.vectors[self.store.rows_for(item_ids)], dtype=np.float32)
        return self.search(queries, k, exclude_ids=item_ids if exclude_self else None)

    def range(self, queries: np.ndarray, min_score: float,
              exclude_ids: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per query: (item ids, scores) of all items with cosine >= min_score, best first."""
        out = []
        for i, (rows, scores) in enumerate(self.index.range_search(queries, min_score)):
            ids = self.store.item_ids[rows]
            if exclude_ids is not None:
                keep = ids != np.asarray(exclude_ids, dtype=np.int64).reshape(-1)[i]
                ids, scores = ids[keep], scores[keep]
            out.append((ids, scores))
        return out
