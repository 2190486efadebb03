"""Ragged gathers against Python list comprehensions."""
from __future__ import annotations

import numpy as np

from intent_labels.ragged import first_k_where, offsets_from_lengths, ragged_range, take_segments


def test_ragged_range_forward_and_backward():
    starts = np.array([5, 0, 9, 3])
    lengths = np.array([3, 0, 2, 1])
    for step in (1, -1):
        idx, offsets = ragged_range(starts, lengths, step)
        expected = [s + step * j for s, n in zip(starts, lengths) for j in range(n)]
        assert idx.tolist() == expected
        assert offsets.tolist() == [0, 3, 3, 5, 6]


def test_take_segments_in_any_order_with_repeats():
    values = np.arange(100, 110)
    offsets = offsets_from_lengths(np.array([2, 0, 5, 3]))
    which = np.array([2, 0, 2, 1, 3])
    new_offsets, index = take_segments(offsets, which)
    segs = [values[offsets[k]:offsets[k + 1]].tolist() for k in range(4)]
    assert values[index].tolist() == [v for k in which for v in segs[k]]
    assert np.diff(new_offsets).tolist() == [len(segs[k]) for k in which]


def test_first_k_where_keeps_the_first_matches_of_each_segment():
    rng = np.random.default_rng(0)
    lengths = rng.integers(0, 12, 40)
    offsets = offsets_from_lengths(lengths)
    mask = rng.random(offsets[-1]) < 0.4
    for k in (1, 3, 100):
        new_offsets, keep = first_k_where(offsets, mask, k)
        expected = [np.flatnonzero(mask[offsets[s]:offsets[s + 1]])[:k] + offsets[s] for s in range(40)]
        assert np.flatnonzero(keep).tolist() == np.concatenate(expected).tolist()
        assert np.diff(new_offsets).tolist() == [len(e) for e in expected]
