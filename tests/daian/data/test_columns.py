"""Arrow list columns -> padded numpy matrices."""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from daian.data import ragged_to_padded


def test_ragged_to_padded_matches_python_reference():
    rng = np.random.default_rng(0)
    lists = [None if rng.random() < 0.1 else rng.integers(0, 100, rng.integers(0, 9)).tolist()
             for _ in range(200)]
    arr = pa.chunked_array([pa.array(lists[:70], pa.list_(pa.int64())),
                            pa.array(lists[70:], pa.list_(pa.int64())).slice(0)])
    sliced = pa.array(lists, pa.list_(pa.int64())).slice(30, 120)
    for column, rows in ((arr, lists), (sliced, lists[30:150])):
        out, full = ragged_to_padded(column, 5, lambda x: x + 1000, np.int64)
        for i, row in enumerate(rows):
            row = row or []
            expected = [x + 1000 for x in row[:5]] + [0] * (5 - min(len(row), 5))
            assert out[i].tolist() == expected
            assert full[i] == len(row)
