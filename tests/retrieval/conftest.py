"""Session fixtures for the retrieval tests: synthetic stores (retrieval knows no model)."""
import numpy as np
import pytest


def unit_rows(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="session")
def random_store(tmp_path_factory):
    """2,000 random unit vectors of dim 32 with shuffled, non-contiguous ids."""
    from retrieval.store import write_store

    rng = np.random.default_rng(0)
    vectors = unit_rows(rng.standard_normal((2000, 32)))
    ids = rng.permutation(np.arange(2000, dtype=np.int64) * 3 + 11)
    return write_store(tmp_path_factory.mktemp("random_store"), vectors, ids, {"backend": "synthetic"})


@pytest.fixture(scope="session")
def clustered():
    """8,000 unit vectors of dim 32 around 80 overlapping clusters (a catalogue-like structure) + 100 queries."""
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((80, 32))
    data = unit_rows(centres[rng.integers(0, 80, 8000)] + 1.0 * rng.standard_normal((8000, 32)))
    queries = unit_rows(centres[rng.integers(0, 80, 100)] + 1.0 * rng.standard_normal((100, 32)))
    return data, queries
