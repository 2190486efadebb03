"""FAISS index building, chooser, search and save/load against numpy brute force."""
import math
import re

import numpy as np
import pytest

from retrieval.index import SearchIndex, build_index, choose_index_factory, load_index, save_index


def brute_topk(data, queries, k):
    scores = queries @ data.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(scores, order, axis=1)


def recall_at(approx, exact):
    return np.mean([len(set(a) & set(e)) / len(e) for a, e in zip(approx, exact)])


def test_exact_search_equals_brute_force(random_store):
    data = np.load(random_store / "embeddings.npy")  # Gaussian directions: no near-ties in the top 10
    queries = data[::40] + 0.1 * np.random.default_rng(5).standard_normal((50, data.shape[1])).astype(np.float32)
    index = SearchIndex.wrap(build_index(data, "Flat"), use_gpu=False)
    scores, rows = index.search(queries, 10)
    ref_rows, ref_scores = brute_topk(data, queries, 10)
    np.testing.assert_array_equal(rows, ref_rows)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-5)


def test_k_larger_than_catalogue_pads(clustered):
    data, queries = clustered
    index = SearchIndex.wrap(build_index(data[:5], "Flat"), use_gpu=False)
    scores, rows = index.search(queries[:2], 8)
    assert rows.shape == (2, 8) and (rows[:, 5:] == -1).all() and np.isneginf(scores[:, 5:]).all()
    assert sorted(rows[0, :5]) == list(range(5))


def test_range_search_equals_brute_force(clustered):
    data, queries = clustered
    index = SearchIndex.wrap(build_index(data, "Flat"), use_gpu=False)
    results = index.range_search(queries[:20], 0.6)
    sims = queries[:20] @ data.T
    assert sum(len(r) for r, _ in results) > 100
    for (rows, scores), row_sims in zip(results, sims):
        expected = np.flatnonzero(row_sims >= 0.6)
        assert set(rows.tolist()) == set(expected.tolist())
        assert (np.diff(scores) <= 0).all()  # best first
        np.testing.assert_allclose(scores, row_sims[rows], atol=1e-5)


@pytest.fixture(scope="module")
def hnsw(clustered):
    return build_index(clustered[0], "HNSW32")


@pytest.mark.parametrize("factory", ["HNSW32", "IVF{k},Flat"])
def test_approximate_index_recall(clustered, hnsw, factory):
    data, queries = clustered
    if "{k}" in factory:  # the chooser's approximate pick at this size, forced with exact_up_to=0
        factory = choose_index_factory(len(data), data.shape[1], memory_budget=len(data) * (32 * 4 + 100),
                                       exact_up_to=0)
        assert re.fullmatch(r"IVF\d+,Flat", factory)
    index = SearchIndex.wrap(hnsw if factory == "HNSW32" else build_index(data, factory), use_gpu=False)
    _, rows = index.search(queries, 10)
    exact, _ = brute_topk(data, queries, 10)
    assert recall_at(rows, exact) >= 0.95


def test_chooser_rules():
    assert choose_index_factory(50_000, 384) == "Flat"
    assert choose_index_factory(5_000_000, 384) == "HNSW32"
    assert choose_index_factory(50_000, 384, exact_up_to=0) == "HNSW32"
    n, d = 5_000_000, 384
    flat = n * d * 4
    ivf = choose_index_factory(n, d, memory_budget=flat + n * 16)  # vectors fit, the HNSW graph does not
    k = int(re.fullmatch(r"IVF(\d+)_HNSW32,Flat", ivf).group(1))
    assert 4 * math.sqrt(n) <= k <= 16 * math.sqrt(n) and k & (k - 1) == 0
    pq = choose_index_factory(n, d, memory_budget=n * (32 + 8))  # 32-byte codes
    m, d_out, k2, m2 = re.fullmatch(r"OPQ(\d+)_(\d+),IVF(\d+)_HNSW32,PQ(\d+)x8", pq).groups()
    assert int(m) == int(m2) == 32 and int(d_out) % int(m) == 0 and int(d_out) <= d and int(k2) == k
    with pytest.raises(ValueError, match="too small"):
        choose_index_factory(n, d, memory_budget=n * 8)
    with pytest.raises(ValueError, match="positive"):
        choose_index_factory(0, d)


def test_ivf_lists_trainable_on_small_catalogues():
    factory = choose_index_factory(2_000, 64, memory_budget=2_000 * (64 * 4 + 50), exact_up_to=0)
    k = int(re.fullmatch(r"IVF(\d+),Flat", factory).group(1))
    assert k * 39 <= 2_000


def test_save_load_roundtrip(clustered, hnsw, tmp_path):
    data, queries = clustered
    built = hnsw
    path = save_index(built, tmp_path / "index.faiss")
    loaded = load_index(path)
    assert loaded.hnsw.efSearch == 128  # search breadth is part of the saved index
    a = SearchIndex.wrap(built, use_gpu=False).search(queries, 10)
    b = SearchIndex.wrap(loaded, use_gpu=False).search(queries, 10)
    np.testing.assert_array_equal(a[1], b[1])
    with pytest.raises(FileNotFoundError):
        load_index(tmp_path / "missing.faiss")


def test_bad_shapes_and_factories(clustered):
    data, queries = clustered
    index = SearchIndex.wrap(build_index(data[:100], "Flat"), use_gpu=False)
    with pytest.raises(ValueError, match="dimension 16, the index has 32"):
        index.search(queries[:, :16], 5)
    with pytest.raises(ValueError, match="k must be at least 1"):
        index.search(queries, 0)
    with pytest.raises(ValueError, match="invalid faiss index factory"):
        build_index(data, "NotAnIndex")
    with pytest.raises(ValueError, match="non-empty 2-D"):
        build_index(data[0], "Flat")
