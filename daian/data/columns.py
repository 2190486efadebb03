"""Arrow columns -> numpy arrays: null-checked flat columns and padded matrices of list columns.

Pure numpy on the Arrow buffers (no per-row Python), so a split of millions of rows converts in a
few vectorised calls.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa


def _np(column: pa.ChunkedArray | pa.Array, name: str, source: str) -> np.ndarray:
    """A column without nulls -> numpy; ValueError names the source and the column otherwise."""
    if column.null_count:
        raise ValueError(f"{source}: column '{name}' has {column.null_count} null value(s)")
    return column.to_numpy()


def _combined(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def ragged_to_padded(column: pa.ChunkedArray | pa.Array, width: int,
                     map_values=None, dtype=np.int64) -> tuple[np.ndarray, np.ndarray]:
    """A list column -> ((N, width) padded with 0, (N,) kept lengths), first `width` entries kept.

    Pure numpy on the Arrow offsets: the flat values are mapped once (`map_values`), then scattered
    into the padded matrix. Null lists count as empty.
    """
    arr = _combined(column)
    n = len(arr)
    out = np.zeros((n, width), dtype=dtype)
    if n == 0:
        return out, np.zeros(0, np.int64)
    if pa.types.is_fixed_size_list(arr.type):
        size = arr.type.list_size
        offsets = np.arange(n + 1, dtype=np.int64) * size + arr.offset * size
    else:
        offsets = arr.offsets.to_numpy().astype(np.int64)
    values = arr.values.to_numpy(zero_copy_only=False)
    full = np.diff(offsets)
    if arr.null_count:
        full = np.where(arr.is_null().to_numpy(zero_copy_only=False), 0, full)
    lengths = np.minimum(full, width)
    if values.size == 0 or width == 0:
        return out, full
    # (N, width) positions into the flat values, clipped where a row is shorter than width
    pos = offsets[:-1, None] + np.arange(width, dtype=np.int64)[None, :]
    real = np.arange(width)[None, :] < lengths[:, None]
    taken = values[np.minimum(pos, values.size - 1)]
    if map_values is not None:
        taken = map_values(taken.ravel()).reshape(taken.shape)
    np.copyto(out, taken, where=real, casting="unsafe")
    return out, full
