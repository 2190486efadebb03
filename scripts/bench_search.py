"""Search speed and recall, each against a reference measured in the same run.

    python scripts/bench_search.py                       # synthetic 100k x 384 store
    python scripts/bench_search.py --store out/demo/store  # a real store (e.g. the demo world's)

1. Query path: `search-items`' search (`StoreSearcher`: id lookup, self exclusion, row -> item id mapping)
   against raw `faiss` `index.search` on the same index and the same query vectors, one query per call
   (as the CLI does; the first 200 queries) and in one batch. Goal: within 5% of raw FAISS.
2. Recall@10 of the chooser's approximate indexes against exact search, with store items as queries
   (each item left out of its own list): the chooser's pick without a memory limit (forced past Flat
   with exact_up_to=0), and its pick when only the raw vectors fit (an IVF index).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from retrieval.index import SearchIndex, build_index, choose_index_factory
from retrieval.search import StoreSearcher
from retrieval.store import EmbeddingStore, write_store


def synthetic_store(folder: Path, n: int, dim: int, seed: int = 0) -> Path:
    """Unit vectors around sqrt(n) overlapping clusters: catalogue-like neighbourhoods."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(1, int(np.sqrt(n))), dim)).astype(np.float32)
    x = centres[rng.integers(0, len(centres), n)] + 0.8 * rng.standard_normal((n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return write_store(folder, x, np.arange(n, dtype=np.int64) * 2 + 1, {"backend": "synthetic"})


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def bench_query_path(store: EmbeddingStore, n_queries: int, k: int, repeats: int) -> None:
    searcher = StoreSearcher.open(store)  # the store's index.faiss, or exact Flat
    raw = searcher.index.cpu if searcher.index.gpu is None else searcher.index.gpu
    rng = np.random.default_rng(1)
    ids = rng.choice(store.item_ids, size=min(n_queries, len(store)), replace=False)
    q = np.ascontiguousarray(store.vectors[store.rows_for(ids)], dtype=np.float32)
    print(f"[query path] store {store.path} ({len(store)} x {store.dim}, {store.vectors.dtype}), index "
          f"{type(raw).__name__}, {len(ids)} queries, k={k}")

    single = min(len(q), 200)

    def raw_single():
        for i in range(single):
            raw.search(q[i:i + 1], k + 1)

    def ours_single():
        for i in range(single):
            searcher.search_ids(ids[i:i + 1], k)

    def raw_batch():
        raw.search(q, k + 1)

    def ours_batch():
        searcher.search_ids(ids, k)

    for name, count, fr, fo in (("one query per call", single, raw_single, ours_single),
                                ("one batch", len(q), raw_batch, ours_batch)):
        fr(), fo()  # warm-up
        pairs = []
        for r in range(repeats):  # interleaved, alternating which goes first
            if r % 2:
                to = timed(fo)
                pairs.append((timed(fr), to))
            else:
                pairs.append((timed(fr), timed(fo)))
        tr, to = min(p[0] for p in pairs), min(p[1] for p in pairs)
        print(f"  {name:<19} raw faiss {count / tr:10.1f} q/s   search-items path {count / to:10.1f} q/s   "
              f"ratio {tr / to:.3f}  (goal >= 0.95)")


def recall_at_10(store: EmbeddingStore, factory: str, n_queries: int) -> float:
    vectors = np.asarray(store.vectors, dtype=np.float32)
    rng = np.random.default_rng(2)
    rows = rng.choice(len(store), size=min(n_queries, len(store)), replace=False)
    ids = store.item_ids[rows]
    exact = StoreSearcher(store, SearchIndex.wrap(build_index(vectors, "Flat"))).search_ids(ids, 10).item_ids
    t = time.perf_counter()
    approx_index = build_index(vectors, factory)
    built = time.perf_counter() - t
    approx = StoreSearcher(store, SearchIndex.wrap(approx_index)).search_ids(ids, 10).item_ids
    recall = float(np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)]))
    print(f"  {factory:<28} recall@10 {recall:.4f}   (built in {built:.1f} s; goal >= 0.95)")
    return recall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--store", default=None, help="store folder (default: a synthetic store)")
    p.add_argument("--n", type=int, default=100_000, help="synthetic store size")
    p.add_argument("--dim", type=int, default=384, help="synthetic store dimension")
    p.add_argument("--queries", type=int, default=1000, help="queries for both sections")
    p.add_argument("-k", type=int, default=10, help="neighbours per query")
    p.add_argument("--repeats", type=int, default=5, help="interleaved repeats (best kept)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.store) if args.store else synthetic_store(Path(tmp) / "store", args.n, args.dim)
        store = EmbeddingStore.load(path, mmap=False)
        bench_query_path(store, args.queries, args.k, args.repeats)
        n, d = len(store), store.dim
        print(f"[recall] {min(args.queries, n)} store items as queries, exact Flat as reference")
        recall_at_10(store, choose_index_factory(n, d, exact_up_to=0), args.queries)
        recall_at_10(store, choose_index_factory(n, d, memory_budget=n * (4 * d + 16), exact_up_to=0),
                     args.queries)


if __name__ == "__main__":
    main()
