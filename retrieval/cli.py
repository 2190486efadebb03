"""`search-items`: nearest items of a store item, a text or a picture, with scores and titles.

Text and picture queries are embedded with the store's own backend, model and settings (read from its
manifest; the model's weights hash must match). The embedder is imported here only, inside the CLI,
because the library package `retrieval` must not depend on `embedder` (embedder -> retrieval).
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .search import StoreSearcher
from .store import EmbeddingStore


@dataclass
class SearchConfig:
    """One search-items query."""

    store: str | Path  # store folder
    item_id: int | None = None  # query by a store item (left out of its own results)
    text: str | None = None  # query by text (with --image: one picture + text query)
    image: str | Path | None = None  # query by a picture (qwen-vl stores only)
    k: int = 10  # neighbours to return; 0 with min_score = every item at or above min_score
    min_score: float | None = None  # keep neighbours with cosine >= min_score
    items: str | Path | None = None  # items.parquet for titles; None = the store's recorded input, if present
    model: str | None = None  # model location override for text/picture queries (a moved folder)
    device: str = "auto"  # device for embedding the query
    index_factory: str | None = None  # build this index instead of the store's index.faiss / exact Flat

    def __post_init__(self) -> None:
        if (self.item_id is not None) == (self.text is not None or self.image is not None):
            raise ValueError("give exactly one query: an item id, or a text and/or a picture")
        if self.k < 0 or (self.k == 0 and self.min_score is None):
            raise ValueError(f"k must be positive (or 0 together with min_score), got {self.k}")


@dataclass
class Hit:
    rank: int
    item_id: int
    score: float
    title: str | None


def query_vector(cfg: SearchConfig, store: EmbeddingStore) -> np.ndarray:
    """(1, d) float32 query vector: a store row, or the text/picture embedded like the store."""
    if cfg.item_id is not None:
        return np.asarray(store.vectors[store.rows_for([cfg.item_id])], dtype=np.float32)
    from embedder.encoder import ItemEmbedder  # lazy: retrieval must not import embedder at module level
    from embedder.items import Item

    embedder = ItemEmbedder.from_manifest(store.manifest, model=cfg.model, device=cfg.device)
    if cfg.image is not None and not embedder.backend.uses_pictures:
        raise ValueError(f"store {store.path} was built with the {store.manifest.get('backend')} backend, "
                         "which cannot embed a picture query")
    item = Item(text=cfg.text, picture=Path(cfg.image) if cfg.image is not None else None, item_id=None)
    return embedder.encode([item], show_progress_bar=False)


def read_titles(path: str | Path | None, ids: np.ndarray) -> dict[int, str]:
    """Titles of `ids` from an items.parquet (only the two columns are read)."""
    if path is None or not Path(path).is_file():
        return {}
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["item_id", "title"])
    wanted = pa.array(np.asarray(ids, dtype=np.int64))
    table = table.filter(pc.is_in(table.column("item_id"), value_set=wanted))
    return dict(zip(table.column("item_id").to_pylist(), table.column("title").to_pylist()))


def search_items(cfg: SearchConfig) -> list[Hit]:
    """Run one query against a store; hits best first."""
    if cfg.items is not None and not Path(cfg.items).is_file():
        raise FileNotFoundError(f"items file not found: {cfg.items}")
    store = EmbeddingStore.load(cfg.store)
    searcher = StoreSearcher.open(store, factory=cfg.index_factory)
    query = query_vector(cfg, store)
    exclude = None if cfg.item_id is None else np.array([cfg.item_id])
    if cfg.k == 0:
        ids, scores = searcher.range(query, cfg.min_score, exclude_ids=exclude)[0]
    else:
        found = searcher.search(query, cfg.k, exclude_ids=exclude)
        ids, scores = found.item_ids[0], found.scores[0]
        keep = ids >= 0
        if cfg.min_score is not None:
            keep &= scores >= cfg.min_score
        ids, scores = ids[keep], scores[keep]
    items_path = cfg.items if cfg.items is not None else (store.manifest.get("input") or {}).get("path")
    titles = read_titles(items_path, ids)
    return [Hit(r + 1, int(i), float(s), titles.get(int(i))) for r, (i, s) in enumerate(zip(ids, scores))]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="search-items", description=__doc__.split("\n")[0])
    p.add_argument("--store", required=True, help="embedding store folder written by embed-items")
    p.add_argument("--item-id", type=int, default=None, help="query: an item of the store (left out of the results)")
    p.add_argument("--text", default=None, help="query: a text, embedded with the store's model")
    p.add_argument("--image", default=None, help="query: a picture file (qwen-vl stores; may be combined with --text)")
    p.add_argument("-k", type=int, default=10, help="number of neighbours (0 with --min-score: all above it)")
    p.add_argument("--min-score", type=float, default=None, help="only neighbours with cosine >= this")
    p.add_argument("--items", default=None,
                   help="items.parquet for titles (default: the items file recorded in the manifest, if present)")
    p.add_argument("--model", default=None, help="where the store's model is now, if it moved (hash-checked)")
    p.add_argument("--device", default="auto", help="device for embedding a text/picture query")
    p.add_argument("--index-factory", default=None,
                   help="search with a fresh faiss index of this factory (e.g. HNSW32) instead of the "
                        "store's index.faiss or an exact Flat index")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg = SearchConfig(store=args.store, item_id=args.item_id, text=args.text, image=args.image, k=args.k,
                           min_score=args.min_score, items=args.items, model=args.model, device=args.device,
                           index_factory=args.index_factory)
        hits = search_items(cfg)
    except (ValueError, KeyError, FileNotFoundError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"search-items: error: {msg}", file=sys.stderr)
        return 2
    print(f"{'rank':>4}  {'item_id':>10}  {'score':>7}  title")
    for h in hits:
        print(f"{h.rank:>4}  {h.item_id:>10}  {h.score:7.4f}  {h.title if h.title is not None else ''}")
    if not hits:
        print("(no neighbours)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
