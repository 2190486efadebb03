"""Cosine similarity of known (a, b) item pairs: a gather and a row-wise dot product, no ANN index."""
from __future__ import annotations

import numpy as np

from .store import EmbeddingStore


def pair_similarity(store: EmbeddingStore, a_ids: np.ndarray, b_ids: np.ndarray,
                    chunk: int = 1 << 16) -> np.ndarray:
    """Cosine similarity between store items a_ids[i] and b_ids[i] -> (P,) float32.

    Rows in the store are L2-normalised, so cosine is the inner product. Raises KeyError naming
    ids absent from the store and ValueError on mismatched shapes.
    """
    a_ids = np.asarray(a_ids, dtype=np.int64)
    b_ids = np.asarray(b_ids, dtype=np.int64)
    if a_ids.shape != b_ids.shape or a_ids.ndim != 1:
        raise ValueError(f"a_ids and b_ids must be 1-D of equal length, got {a_ids.shape} and {b_ids.shape}")
    return pair_similarity_rows(store.vectors, store.rows_for(a_ids), store.rows_for(b_ids), chunk)


def pair_similarity_rows(vectors: np.ndarray, a_rows: np.ndarray, b_rows: np.ndarray,
                         chunk: int = 1 << 16) -> np.ndarray:
    """Same as `pair_similarity` on row indices into `vectors` (N, d)."""
    out = np.empty(a_rows.shape[0], dtype=np.float32)
    for s in range(0, a_rows.shape[0], chunk):
        a = np.asarray(vectors[a_rows[s:s + chunk]], dtype=np.float32)
        b = np.asarray(vectors[b_rows[s:s + chunk]], dtype=np.float32)
        out[s:s + chunk] = np.einsum("pd,pd->p", a, b)
    return out
