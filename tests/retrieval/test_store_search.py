"""EmbeddingStore, pair_similarity, StoreSearcher and search_store against numpy."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from retrieval.index import SearchIndex, build_index, save_index
from retrieval.search import StoreSearcher, search_store
from retrieval.similarity import pair_similarity
from retrieval.store import EmbeddingStore, MissingItemsError, write_store


def test_load_is_memory_mapped_and_looks_up_ids(random_store):
    store = EmbeddingStore.load(random_store)
    assert isinstance(store.vectors, np.memmap) and store.dim == 32 and len(store) == 2000
    ids = store.item_ids[[5, 17, 1999]]
    np.testing.assert_array_equal(store.rows_for(ids), [5, 17, 1999])
    np.testing.assert_array_equal(store.contains(np.array([ids[0], 12])), [True, False])  # ids are 11 + 3i
    with pytest.raises(KeyError, match=r"2 item id\(s\) not in the store .*first \[12, 13\]"):
        store.rows_for(np.array([ids[0], 13, 12]))
    assert store.manifest["dim"] == 32 and store.manifest["count"] == 2000


def test_pair_similarity_equals_numpy(random_store, tmp_path):
    store = EmbeddingStore.load(random_store)
    rng = np.random.default_rng(2)
    a, b = rng.choice(store.item_ids, 500), rng.choice(store.item_ids, 500)
    vecs = np.load(random_store / "embeddings.npy")
    row = {int(i): r for r, i in enumerate(np.load(random_store / "item_ids.npy"))}
    ref = np.array([vecs[row[int(x)]] @ vecs[row[int(y)]] for x, y in zip(a, b)])
    np.testing.assert_allclose(pair_similarity(store, a, b), ref, atol=1e-6)
    half = EmbeddingStore.load(write_store(tmp_path / "f16", vecs.astype(np.float16), store.item_ids, {}))
    np.testing.assert_allclose(pair_similarity(half, a, b), ref, atol=2e-3)


def test_write_store_refuses_bad_input(tmp_path):
    v = np.eye(3, dtype=np.float32)
    with pytest.raises(ValueError, match="duplicate item ids in store: \\[4\\]"):
        write_store(tmp_path / "a", v, np.array([4, 4, 5]), {})
    with pytest.raises(ValueError, match="L2-normalised: 1 rows"):
        write_store(tmp_path / "b", v * np.array([[1], [2], [1]], dtype=np.float32), np.array([1, 2, 3]), {})
    with pytest.raises(ValueError, match="dtype float64"):
        write_store(tmp_path / "c", v.astype(np.float64), np.array([1, 2, 3]), {})
    path = write_store(tmp_path / "d", v, np.array([1, 2, 3]), {})
    manifest = json.loads((path / "manifest.json").read_text())
    (path / "manifest.json").write_text(json.dumps(dict(manifest, dim=4)))
    with pytest.raises(ValueError, match="manifest says dim=4 but embeddings.npy has 3"):
        EmbeddingStore.load(path)
    with pytest.raises(FileNotFoundError, match="not an embedding store"):
        EmbeddingStore.load(tmp_path / "nothing")


def test_load_refuses_a_damaged_store_naming_the_file_row_and_item(tmp_path):
    v = np.eye(4, dtype=np.float32)
    path = write_store(tmp_path / "s", v, np.array([10, 11, 12, 13]), {})
    np.save(path / "embeddings.npy", np.where(np.arange(4)[:, None] == 2, np.nan, v).astype(np.float32))
    with pytest.raises(ValueError, match=r"embeddings.npy: row 2 \(item 12\) holds a NaN or infinite value"):
        EmbeddingStore.load(path)
    (path / "embeddings.npy").write_bytes(np.eye(4, dtype=np.float32).tobytes()[:10])
    with pytest.raises(ValueError, match=r"embeddings.npy: not a readable .npy array"):
        EmbeddingStore.load(path)
    np.save(path / "embeddings.npy", v)
    np.save(path / "item_ids.npy", np.array([10, 11, 12], np.int64))
    with pytest.raises(ValueError, match=r"s: item_ids has shape \(3,\), expected \(4,\)"):
        EmbeddingStore.load(path)


def test_searcher_by_ids_excludes_self_and_equals_brute_force(random_store):
    store = EmbeddingStore.load(random_store)
    searcher = StoreSearcher.open(store)
    query_ids = store.item_ids[::97]
    found = searcher.search_ids(query_ids, k=5)
    vecs = np.asarray(store.vectors)
    sims = vecs[store.rows_for(query_ids)] @ vecs.T
    sims[np.arange(len(query_ids)), store.rows_for(query_ids)] = -np.inf  # the item itself
    ref_rows = np.argsort(-sims, axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(found.item_ids, store.item_ids[ref_rows])
    np.testing.assert_allclose(found.scores, np.take_along_axis(sims, ref_rows, 1), atol=1e-5)
    assert not (found.item_ids == query_ids[:, None]).any()
    q = vecs[store.rows_for(query_ids)]
    plain = searcher.search(q, 5)
    absent = searcher.search(q, 5, exclude_ids=np.full(len(query_ids), -5))  # not among the neighbours
    np.testing.assert_array_equal(absent.item_ids, plain.item_ids)
    np.testing.assert_array_equal(plain.item_ids[:, 1:], found.item_ids[:, :4])
    with pytest.raises(KeyError, match="not in the store"):
        searcher.search_ids([1])


def test_searcher_range_and_saved_index(random_store, tmp_path):
    store = EmbeddingStore.load(random_store)
    q = np.asarray(store.vectors[:3], dtype=np.float32)
    searcher = StoreSearcher.open(store, factory="Flat")
    for (ids, scores), qv in zip(searcher.range(q, 0.5, exclude_ids=store.item_ids[:3]), q):
        sims = np.asarray(store.vectors) @ qv
        expected = set(store.item_ids[sims >= 0.5].tolist()) - set(store.item_ids[:3].tolist())
        assert set(ids.tolist()) == expected
    other = save_index(build_index(np.eye(16, dtype=np.float32), "Flat"), tmp_path / "other.faiss")
    with pytest.raises(ValueError, match="index dimension 16 does not match the store's 32"):
        StoreSearcher.open(store, index_path=other)
    fewer = save_index(build_index(np.asarray(store.vectors[:10]), "Flat"), tmp_path / "fewer.faiss")
    with pytest.raises(ValueError, match="index holds 10 vectors but the store has 2000"):
        StoreSearcher.open(store, index_path=fewer)
    wrapped = SearchIndex.wrap(build_index(np.asarray(store.vectors), "Flat"), use_gpu=False)
    assert StoreSearcher(store, wrapped).search(q, 1).item_ids[:, 0].tolist() == store.item_ids[:3].tolist()


def test_library_does_not_import_embedder():
    """embedder -> retrieval, never the reverse (search-items embeds its query in the embedder)."""
    code = ("import sys, retrieval, retrieval.store, retrieval.index, retrieval.search, retrieval.similarity; "
            "print(any(m == 'embedder' or m.startswith('embedder.') for m in sys.modules))")
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert out.stdout.strip() == "False"


def test_search_store_equals_brute_force_with_titles(random_store, tmp_path):
    """One search-items query from a vector: top k or all above min_score, the query item left out,
    titles from the given items file, or from the one the manifest records."""
    store = EmbeddingStore.load(random_store)
    vecs = np.asarray(store.vectors, dtype=np.float32)
    query_id = int(store.item_ids[10])
    q = vecs[10:11]
    sims = vecs @ q[0]
    order = [r for r in np.argsort(-sims, kind="stable") if store.item_ids[r] != query_id]
    titles = tmp_path / "items.parquet"
    pq.write_table(pa.table({"item_id": store.item_ids, "title": [f"t{i}" for i in store.item_ids]}), titles)
    hits = search_store(store, q, 6, exclude_ids=np.array([query_id]), items_path=titles)
    assert [h.item_id for h in hits] == store.item_ids[order[:6]].tolist()
    assert [h.rank for h in hits] == list(range(1, 7))
    np.testing.assert_allclose([h.score for h in hits], sims[order[:6]], atol=1e-5)
    assert [h.title for h in hits] == [f"t{i}" for i in store.item_ids[order[:6]]]
    threshold = float(sims[order[3]]) - 1e-6  # the 4 best besides the query item
    hits = search_store(store, q, 0, min_score=threshold, exclude_ids=np.array([query_id]))
    assert sorted(h.item_id for h in hits) == sorted(store.item_ids[order[:4]].tolist())
    assert all(h.title is None for h in hits)  # no items file recorded, none given
    assert [h.item_id for h in search_store(store, q, 50, min_score=threshold)] == \
        [query_id] + store.item_ids[order[:4]].tolist()
    recorded = EmbeddingStore(store.vectors, store.item_ids, dict(store.manifest, input={"path": str(titles)}))
    assert [h.title for h in search_store(recorded, q, 2)] == [f"t{query_id}", f"t{store.item_ids[order[0]]}"]
    with pytest.raises(ValueError, match="k must be positive"):
        search_store(store, q, 0)
    with pytest.raises(FileNotFoundError, match="items file not found"):
        search_store(store, q, 3, items_path=tmp_path / "none.parquet")


def test_unknown_ids_are_a_key_error_and_a_value_error(random_store):
    store = EmbeddingStore.load(random_store)
    with pytest.raises(MissingItemsError) as err:
        store.rows_for([12])
    assert isinstance(err.value, KeyError) and isinstance(err.value, ValueError)
