"""Nearest-neighbour search over an embedding store, in item ids.

`StoreSearcher` pairs an `EmbeddingStore` with a `SearchIndex` (the store's saved `index.faiss`, or an
exact Flat index built on the fly) and answers top-k and range queries by query vectors or by item ids
of the store itself (the item is left out of its own neighbours). `search_store` is one query of
`search-items`: a vector in, ranked hits with their titles out (the query is embedded by the caller;
this package knows no model).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .index import SearchIndex, build_index, load_index
from .store import EmbeddingStore

TITLE_COLUMNS = ["item_id", "title"]  # what the titles lookup reads of an items.parquet


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


@dataclass
class Hit:
    """One neighbour of a query: its rank (1 = best), item id, cosine score and title."""

    rank: int
    item_id: int
    score: float
    title: str | None


def read_titles(path: str | Path | None, ids: np.ndarray) -> dict[int, str]:
    """Titles of `ids` from an items.parquet (only the two columns are read); {} without a file."""
    if path is None or not Path(path).is_file():
        return {}
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=TITLE_COLUMNS)
    wanted = pa.array(np.asarray(ids, dtype=np.int64))
    table = table.filter(pc.is_in(table.column("item_id"), value_set=wanted))
    return dict(zip(table.column("item_id").to_pylist(), table.column("title").to_pylist()))


def check_k(k: int, min_score: float | None) -> None:
    """k neighbours: positive, or 0 together with a min_score (every item at or above it)."""
    if k < 0 or (k == 0 and min_score is None):
        raise ValueError(f"k must be positive (or 0 together with min_score), got {k}")


def search_store(store: EmbeddingStore, query: np.ndarray, k: int = 10, min_score: float | None = None,
                 exclude_ids: np.ndarray | None = None, items_path: str | Path | None = None,
                 index_factory: str | None = None) -> list[Hit]:
    """Neighbours of one (1, d) query vector, best first, with titles.

    k > 0: the top k (those with cosine >= `min_score` when given); k = 0: every item with cosine >=
    `min_score`. `exclude_ids` (one id) is left out, e.g. the query item itself. Titles come from
    `items_path` (which must exist), else from the items file the store records, else none.
    `index_factory` searches a fresh index of that faiss factory instead of the store's own.
    """
    check_k(k, min_score)
    if items_path is not None and not Path(items_path).is_file():
        raise FileNotFoundError(f"items file not found: {items_path}")
    searcher = StoreSearcher.open(store, factory=index_factory)
    if k == 0:
        ids, scores = searcher.range(query, min_score, exclude_ids=exclude_ids)[0]
    else:
        found = searcher.search(query, k, exclude_ids=exclude_ids)
        ids, scores = found.item_ids[0], found.scores[0]
        keep = ids >= 0
        if min_score is not None:
            keep &= scores >= min_score
        ids, scores = ids[keep], scores[keep]
    titles = read_titles(items_path if items_path is not None else store.items_path, ids)
    return [Hit(r + 1, int(i), float(s), titles.get(int(i))) for r, (i, s) in enumerate(zip(ids, scores))]
