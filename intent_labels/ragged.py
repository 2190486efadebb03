"""Ragged (offsets + values) helpers in numpy: the gathers behind every list column.

A ragged array is `offsets` (K+1,) int64 with offsets[0] = 0 and the flat `values`; segment k is
values[offsets[k]:offsets[k+1]]. Everything here is vectorised; nothing loops over segments.
"""
from __future__ import annotations

import numpy as np


def offsets_from_lengths(lengths: np.ndarray) -> np.ndarray:
    """(K,) lengths -> (K+1,) int64 offsets."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


def segment_ids(offsets: np.ndarray) -> np.ndarray:
    """Segment number of each flat element -> (offsets[-1],) int64."""
    lengths = np.diff(offsets)
    return np.repeat(np.arange(lengths.size, dtype=np.int64), lengths)


def ragged_range(starts: np.ndarray, lengths: np.ndarray, step: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices starts[k] + step * j for j < lengths[k] (segment by segment), and the offsets."""
    lengths = np.asarray(lengths, dtype=np.int64)
    offsets = offsets_from_lengths(lengths)
    seg = segment_ids(offsets)
    within = np.arange(offsets[-1], dtype=np.int64) - offsets[:-1][seg]
    return np.asarray(starts, dtype=np.int64)[seg] + step * within, offsets


def take_segments(offsets: np.ndarray, which: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Segments `which` (M,) of a ragged array, in that order -> (new offsets (M+1,), flat index).

    The flat index selects the new values from the flat values, so several value arrays that share
    the offsets are gathered with one index.
    """
    starts = offsets[:-1][which]
    lengths = offsets[1:][which] - starts
    index, new_offsets = ragged_range(starts, lengths)
    return new_offsets, index


def first_k_where(offsets: np.ndarray, mask: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Keep, in each segment, the first `k` elements where `mask` holds.

    Returns (new offsets, boolean keep mask over the flat values).
    """
    mask = np.asarray(mask, dtype=bool)
    seg = segment_ids(offsets)
    csum = np.cumsum(mask, dtype=np.int64)
    before = np.concatenate(([0], csum))[offsets[:-1]]  # selected elements before each segment
    rank = csum - before[seg]  # 1-based rank of a selected element within its segment
    keep = mask & (rank <= k)
    lengths = np.bincount(seg[keep], minlength=offsets.size - 1)
    return offsets_from_lengths(lengths), keep
