"""The embedding store: one L2-normalised vector per item, written by `embed-items`.

A store is a folder holding
    embeddings.npy   (N, d) float32 or float16, rows L2-normalised
    item_ids.npy     (N,) int64, unique
    manifest.json    how the vectors were made (backend, model, dim, pooling, dtype, count, ...)
    index.faiss      optional FAISS index over the rows (see `retrieval.index`)

`write_store` writes such a folder (each file atomically, the manifest last, so a folder with a
manifest is complete); `EmbeddingStore.load` reads it back with the vectors memory-mapped.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

EMBEDDINGS_FILE = "embeddings.npy"
ITEM_IDS_FILE = "item_ids.npy"
MANIFEST_FILE = "manifest.json"
INDEX_FILE = "index.faiss"
VECTOR_DTYPES = ("float32", "float16")
# The manifest entry naming the items file the store was embedded from ({"path": ..., ...}); the
# `embed-items` writes it, search reads the titles from it.
INPUT_KEY = "input"
# The manifest entry saying which items were embedded without a picture (`embed-items` writes it,
# for every backend): {"no_picture_given": int, "bad_picture_count": int, "bad_picture_text_only":
# [ids], "bad_picture_missing": [ids], "bad_picture_unreadable": [ids]}; see docs/embedding.md.
PICTURES_KEY = "items_without_picture"


FINITE_CHECK_ROWS = 1 << 16  # rows per chunk of the load-time NaN/inf scan (bounded memory)


def _load_array(path: Path, mmap_mode: str | None) -> np.ndarray:
    """np.load of one store file without pickles, naming the file when it is truncated or not .npy."""
    try:
        return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"{path}: not a readable .npy array ({' '.join(str(exc).split())})") from exc


def _check_finite(vectors: np.ndarray, item_ids: np.ndarray, path: Path) -> None:
    """Refuse a store with a NaN or infinite component (it would poison every similarity), naming
    the first row and its item; one streaming pass over the (memory-mapped) vectors."""
    for start in range(0, vectors.shape[0], FINITE_CHECK_ROWS):
        block = np.asarray(vectors[start:start + FINITE_CHECK_ROWS])
        bad = np.flatnonzero(~np.isfinite(block).all(axis=1))
        if bad.size:
            row = start + int(bad[0])
            item = int(item_ids[row]) if row < item_ids.shape[0] else None
            raise ValueError(f"{path}: row {row} (item {item}) holds a NaN or infinite value; rebuild "
                             "the store with embed-items")


class MissingItemsError(KeyError, ValueError):
    """Item ids absent from a store: a KeyError for a lookup, and a ValueError (a user error) for a
    command line given an unknown id."""


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
        vectors = _load_array(path / EMBEDDINGS_FILE, "r" if mmap else None)
        item_ids = _load_array(path / ITEM_IDS_FILE, None)
        try:
            manifest = json.loads((path / MANIFEST_FILE).read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path / MANIFEST_FILE}: not valid JSON ({exc})") from exc
        if not isinstance(manifest, dict):
            raise ValueError(f"{path / MANIFEST_FILE}: expected a JSON object, got {type(manifest).__name__}")
        if vectors.dtype.name not in VECTOR_DTYPES:
            raise ValueError(f"{path / EMBEDDINGS_FILE}: dtype {vectors.dtype}, expected one of {VECTOR_DTYPES}")
        if item_ids.dtype != np.int64:
            raise ValueError(f"{path / ITEM_IDS_FILE}: dtype {item_ids.dtype}, expected int64")
        for key, actual in (("dim", vectors.shape[1] if vectors.ndim == 2 else None),
                            ("count", vectors.shape[0])):
            if key in manifest and manifest[key] != actual:
                raise ValueError(f"{path}: manifest says {key}={manifest[key]} but {EMBEDDINGS_FILE} has {actual}")
        if vectors.ndim == 2:
            _check_finite(vectors, item_ids, path / EMBEDDINGS_FILE)
        try:
            return cls(vectors=vectors, item_ids=item_ids, manifest=manifest, path=path)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from exc

    @property
    def recorded_items(self) -> tuple[str | None, str | None]:
        """(path, sha256) of the items file the manifest's `input` entry records; None for what it
        lacks (a store built from an in-memory table records no path, and its hash is not a file's)."""
        source = self.manifest.get(INPUT_KEY)
        if not isinstance(source, dict):
            return None, None
        path, digest = source.get("path"), source.get("sha256")
        path = path if isinstance(path, str) and path else None
        digest = digest if isinstance(digest, str) and digest and path is not None else None
        return path, digest

    @property
    def items_path(self) -> Path | None:
        """The items file recorded in the manifest, when it is still there."""
        path, _ = self.recorded_items
        return Path(path) if path is not None and Path(path).is_file() else None

    @property
    def index_path(self) -> Path | None:
        """The store's saved FAISS index file, if it has one."""
        if self.path is None or not (self.path / INDEX_FILE).is_file():
            return None
        return self.path / INDEX_FILE

    def contains(self, ids: np.ndarray) -> np.ndarray:
        """Boolean mask: which of `ids` have a row in the store."""
        ids = np.asarray(ids, dtype=np.int64)
        pos = np.searchsorted(self._sorted_ids, ids)
        pos = np.minimum(pos, len(self._sorted_ids) - 1)
        return self._sorted_ids[pos] == ids if len(self._sorted_ids) else np.zeros(ids.shape, bool)

    def rows_for(self, ids: np.ndarray) -> np.ndarray:
        """Row index of each id; raises MissingItemsError (a KeyError) naming the first absent ids."""
        ids = np.asarray(ids, dtype=np.int64)
        pos = np.searchsorted(self._sorted_ids, ids)
        if len(self._sorted_ids):
            np.minimum(pos, len(self._sorted_ids) - 1, out=pos)
            found = self._sorted_ids[pos] == ids
        else:
            found = np.zeros(ids.shape, dtype=bool)
        if not found.all():
            missing = np.unique(ids[~found])
            raise MissingItemsError(
                f"{missing.size} item id(s) not in the store"
                f"{' ' + str(self.path) if self.path else ''}: first {missing[:10].tolist()}"
            )
        return self._order[pos]


def _atomic_save_npy(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp.npy")
    np.save(tmp, array)
    tmp.replace(path)


def write_manifest(path: str | Path, manifest: dict) -> Path:
    """Write `manifest.json` into store folder `path` atomically (sorted keys, stable bytes)."""
    target = Path(path) / MANIFEST_FILE
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    tmp.replace(target)
    return target


def write_store(path: str | Path, vectors: np.ndarray, item_ids: np.ndarray, manifest: dict) -> Path:
    """Write a store folder from in-memory arrays; `dim`, `count` and `dtype` are set in the manifest.

    Rows must already be L2-normalised (checked to 1e-3); the manifest is written last.
    """
    path = Path(path)
    vectors = np.asarray(vectors)
    if vectors.dtype.name not in VECTOR_DTYPES:
        raise ValueError(f"vectors dtype {vectors.dtype}, expected one of {VECTOR_DTYPES}")
    store = EmbeddingStore(vectors=vectors, item_ids=np.asarray(item_ids, dtype=np.int64))  # validates
    norms = np.linalg.norm(vectors.astype(np.float32), axis=1)
    bad = np.flatnonzero(np.abs(norms - 1.0) > 1e-3)
    if bad.size:
        raise ValueError(f"store rows must be L2-normalised: {bad.size} rows are not, first item ids "
                         f"{store.item_ids[bad[:5]].tolist()} (norms {norms[bad[:5]].tolist()})")
    path.mkdir(parents=True, exist_ok=True)
    _atomic_save_npy(path / EMBEDDINGS_FILE, vectors)
    _atomic_save_npy(path / ITEM_IDS_FILE, store.item_ids)
    manifest = dict(manifest, dim=store.dim, count=len(store), dtype=vectors.dtype.name)
    write_manifest(path, manifest)
    return path
