"""The embedding store: one L2-normalised vector per item, written by `embed-items`.

A store is a folder holding
    embeddings.npy   (N, d) float32 or float16, rows L2-normalised
    item_ids.npy     (N,) int64, unique
    manifest.json    how the vectors were made (backend, model, dim, pooling, dtype, count, ...)
    index.faiss      optional FAISS index over the rows (see `retrieval.index`)
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

EMBEDDINGS_FILE = "embeddings.npy"
ITEM_IDS_FILE = "item_ids.npy"
MANIFEST_FILE = "manifest.json"


@dataclass
class EmbeddingStore:
    """Vectors and ids of one store, with an id-to-row lookup."""

    vectors: np.ndarray  # (N, d) float32/float16, memory-mapped when loaded from disk
    item_ids: np.ndarray  # (N,) int64
    manifest: dict = field(default_factory=dict)
    path: Path | None = None

    def __post_init__(self) -> None:
        if self.vectors.ndim != 2:
            raise ValueError(f"vectors must be 2-D (N, d), got shape {self.vectors.shape}")
        if self.item_ids.shape != (self.vectors.shape[0],):
            raise ValueError(
                f"item_ids has shape {self.item_ids.shape}, expected ({self.vectors.shape[0]},)"
            )
        self.item_ids = np.asarray(self.item_ids, dtype=np.int64)
        order = np.argsort(self.item_ids, kind="stable")
        sorted_ids = self.item_ids[order]
        dup = sorted_ids[1:] == sorted_ids[:-1]
        if dup.any():
            raise ValueError(f"duplicate item ids in store: {sorted_ids[1:][dup][:5].tolist()}")
        self._order = order
        self._sorted_ids = sorted_ids

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    @classmethod
    def load(cls, path: str | Path, mmap: bool = True) -> "EmbeddingStore":
        """Load a store folder; vectors are memory-mapped unless `mmap=False`."""
        path = Path(path)
        for name in (EMBEDDINGS_FILE, ITEM_IDS_FILE, MANIFEST_FILE):
            if not (path / name).is_file():
                raise FileNotFoundError(f"{path}: not an embedding store (missing {name})")
        vectors = np.load(path / EMBEDDINGS_FILE, mmap_mode="r" if mmap else None)
        item_ids = np.load(path / ITEM_IDS_FILE)
        manifest = json.loads((path / MANIFEST_FILE).read_text())
        return cls(vectors=vectors, item_ids=item_ids, manifest=manifest, path=path)

    def contains(self, ids: np.ndarray) -> np.ndarray:
        """Boolean mask: which of `ids` have a row in the store."""
        ids = np.asarray(ids, dtype=np.int64)
        pos = np.searchsorted(self._sorted_ids, ids)
        pos = np.minimum(pos, len(self._sorted_ids) - 1)
        return self._sorted_ids[pos] == ids if len(self._sorted_ids) else np.zeros(ids.shape, bool)

    def rows_for(self, ids: np.ndarray) -> np.ndarray:
        """Row index of each id; raises KeyError naming the first ids absent from the store."""
        ids = np.asarray(ids, dtype=np.int64)
        found = self.contains(ids)
        if not found.all():
            missing = np.unique(ids[~found])
            raise KeyError(
                f"{missing.size} item id(s) not in the store"
                f"{' ' + str(self.path) if self.path else ''}: first {missing[:10].tolist()}"
            )
        return self._order[np.searchsorted(self._sorted_ids, ids)]
