"""Known-pair cosine similarities for the labelling, computed inside FAISS when possible.

`retrieval.similarity.pair_similarity_rows` gathers both rows of every pair into temporary arrays
and then takes a row-wise dot product: three passes over the bytes. FAISS's
`pairwise_indexed_inner_product` reads each row once, straight from the (memory-mapped) store,
with no temporaries, which is what a memory-bound step wants. It needs float32 C-contiguous
vectors; a float16 store falls back to the retrieval function (which converts chunk by chunk).
"""
from __future__ import annotations

import numpy as np

from retrieval.similarity import pair_similarity_rows


def _faiss():
    try:
        import faiss
    except ImportError:  # faiss-cpu is a dependency; this only guards odd installs
        return None
    return faiss if hasattr(faiss, "pairwise_indexed_inner_product") else None


def pair_similarity_fast(vectors: np.ndarray, a_rows: np.ndarray, b_rows: np.ndarray) -> np.ndarray:
    """Inner product of vectors[a_rows[i]] and vectors[b_rows[i]] -> (P,) float32."""
    a_rows = np.ascontiguousarray(a_rows, dtype=np.int64)
    b_rows = np.ascontiguousarray(b_rows, dtype=np.int64)
    if a_rows.shape != b_rows.shape or a_rows.ndim != 1:
        raise ValueError(f"a_rows and b_rows must be 1-D of equal length, got {a_rows.shape} and {b_rows.shape}")
    out = np.empty(a_rows.size, dtype=np.float32)
    if a_rows.size == 0:
        return out
    n = vectors.shape[0]
    for rows in (a_rows, b_rows):  # FAISS does not bound-check
        if rows.min() < 0 or rows.max() >= n:
            raise ValueError(f"row indices must lie in [0, {n}), got [{rows.min()}, {rows.max()}]")
    faiss = _faiss()
    if faiss is None or vectors.dtype != np.float32 or not vectors.flags.c_contiguous:
        return pair_similarity_rows(vectors, a_rows, b_rows, chunk=4096)
    ptr = faiss.swig_ptr(np.asarray(vectors))
    faiss.pairwise_indexed_inner_product(vectors.shape[1], a_rows.size, ptr, faiss.swig_ptr(a_rows),
                                         ptr, faiss.swig_ptr(b_rows), faiss.swig_ptr(out))
    return out
