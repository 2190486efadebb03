"""Fixtures of the data-stage tests: the loading caps of `bundle`, and a rewritten labelled split."""
from __future__ import annotations

import shutil

import pyarrow.parquet as pq
import pytest

# The caps `bundle` (tests/daian/conftest.py) loads with.
CAPS = dict(max_hist=10, max_subseq=4, max_page=2, max_dt=60 * 24 * 7, price_buckets=4)


@pytest.fixture
def caps() -> dict:
    """`load_data`'s caps as the `bundle` fixture uses them."""
    return dict(CAPS)


@pytest.fixture
def rewrite(synthetic):
    """rewrite(folder, split, fn): a copy of the synthetic labelled folder at `folder`/labelled
    with `fn` applied to one split's table."""
    def _rewrite(tmp_path, split, fn):
        data = tmp_path / "labelled"
        shutil.copytree(synthetic["labelled"], data)
        df = pq.read_table(data / f"{split}.parquet")
        pq.write_table(fn(df), data / f"{split}.parquet")
        return data

    return _rewrite
