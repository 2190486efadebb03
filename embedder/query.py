"""One `search-items` query: a store item, or a text and/or a picture embedded like the store's items.

The store's manifest records its backend, model and settings; `ItemEmbedder.from_manifest` rebuilds
that embedder (the model's weights hash must match) and the query vector goes to
`retrieval.search.search_store`, which knows no model. An item-id query loads no model.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retrieval.search import Hit, check_k, search_store
from retrieval.store import EmbeddingStore

from .encoder import ItemEmbedder
from .items import Item


@dataclass
class SearchConfig:
    """One search-items query."""

    store: str | Path  # store folder
    item_id: int | None = None  # query by a store item (left out of its own results)
    text: str | None = None  # query by text (with image: one picture + text query)
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
        check_k(self.k, self.min_score)
        if self.items is not None and not Path(self.items).is_file():  # before any model loads
            raise FileNotFoundError(f"items file not found: {self.items}")


def query_vector(cfg: SearchConfig, store: EmbeddingStore) -> np.ndarray:
    """(1, d) float32 query vector: a store row, or the text/picture embedded like the store."""
    if cfg.item_id is not None:
        return np.asarray(store.vectors[store.rows_for([cfg.item_id])], dtype=np.float32)
    embedder = ItemEmbedder.from_manifest(store.manifest, model=cfg.model, device=cfg.device)
    if cfg.image is not None and not embedder.backend.uses_pictures:
        raise ValueError(f"store {store.path} was built with the {store.manifest.get('backend')} backend, "
                         "which cannot embed a picture query")
    item = Item(text=cfg.text, picture=Path(cfg.image) if cfg.image is not None else None, item_id=None)
    return embedder.encode([item], show_progress_bar=False)


def search_items(cfg: SearchConfig) -> list[Hit]:
    """Run one query against a store; hits best first."""
    store = EmbeddingStore.load(cfg.store)
    exclude = None if cfg.item_id is None else np.array([cfg.item_id])
    return search_store(store, query_vector(cfg, store), cfg.k, cfg.min_score, exclude_ids=exclude,
                        items_path=cfg.items, index_factory=cfg.index_factory)
