"""Benchmark of `label-intents`, every figure measured against a reference taken in the same run.

1. Memory bandwidth of this machine: numpy copy of a 512 MiB array (bytes read + written per second)
   and a BLAS matrix-vector product over a 512 MiB matrix (bytes read per second); the higher one
   is the bound. The similarity step reads two d-dimensional float32 rows per pair, so its bound is
   bandwidth / (2 * d * 4) pairs per second.
2. The similarity step (`intent_labels.similarity.pair_similarity_fast`, FAISS inside) on the
   world's own trigger-target pairs and on uniformly random pairs, in pairs/s and as a share of
   the bound; `retrieval.similarity.pair_similarity_rows` (numpy gather + einsum) beside it.
3. End to end: the `label-intents` CLI on the whole world in a child process: impressions/s and the
   child's peak resident memory.
4. A straightforward pandas implementation (a Python loop over requests, pandas filters per user,
   as one would first write it) against `label_intents` on the same data: the world's first
   requests drawn evenly over its days and their users' behaviours, with the same bin edges; the outputs are checked equal
   before the speed-up is printed. Both times include reading the files.

The store is random unit vectors of dimension 384 (MiniLM's) for every item: the speed of the
labelling does not depend on the vectors' values, and a text store of the large catalogue would
take longer to build than the benchmark itself.

    python scripts/bench_labels.py --preset large --root out/bench
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from intent_labels import label_intents  # noqa: E402
from intent_labels.similarity import pair_similarity_fast  # noqa: E402
from retrieval.similarity import pair_similarity_rows  # noqa: E402

DAY = 86_400


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def memory_bandwidth() -> dict:
    """Copy and streaming-read bandwidth in bytes/s (best of 3, arrays pre-faulted)."""
    src = np.ones(128 * 2**20, np.float32)  # 512 MiB
    dst = np.zeros_like(src)
    copy_s = best_of(lambda: np.copyto(dst, src))
    mat = src.reshape(-1, 1024)
    vec = np.ones(1024, np.float32)
    gemv_s = best_of(lambda: mat @ vec)
    return {"copy_bytes_per_s": 2 * src.nbytes / copy_s, "gemv_read_bytes_per_s": src.nbytes / gemv_s}


def ensure_world(preset: str, root: Path) -> Path:
    world = root / preset
    if not (world / "impressions.parquet").is_file():
        from simulate import simulate_world

        print(f"simulating the {preset} world into {world} (no pictures) ...", flush=True)
        simulate_world(preset, world, seed=0, overrides={"write_images": False}, overwrite=True)
    return world


def ensure_store(world: Path, root: Path, dim: int = 384) -> Path:
    store = root / f"{world.name}_random_store"
    if not (store / "embeddings.npy").is_file():
        ids = pq.read_table(world / "items.parquet", columns=["item_id"]).column("item_id").to_numpy()
        rng = np.random.default_rng(0)
        v = rng.standard_normal((ids.size, dim), dtype=np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        store.mkdir(parents=True, exist_ok=True)
        np.save(store / "embeddings.npy", v)
        np.save(store / "item_ids.npy", ids.astype(np.int64))
        (store / "manifest.json").write_text(json.dumps({"backend": "random", "dim": dim, "count": int(ids.size),
                                                         "dtype": "float32"}))
    return store


def similarity_step(world: Path, store: Path, n_pairs: int, bound_pairs_per_s: float) -> dict:
    from retrieval.store import EmbeddingStore

    s = EmbeddingStore.load(store, mmap=False)
    pf = pq.ParquetFile(world / "impressions.parquet")
    imp = next(pf.iter_batches(batch_size=n_pairs, columns=["trigger_item_id", "item_id"]))
    a, b = s.rows_for(imp.column(0).to_numpy()), s.rows_for(imp.column(1).to_numpy())
    rng = np.random.default_rng(0)
    ra, rb = rng.integers(0, len(s), a.size), rng.integers(0, len(s), a.size)
    out = {"pairs": int(a.size), "dim": s.dim, "catalogue_rows": len(s),
           "catalogue_mib": s.vectors.nbytes / 2**20}
    for name, (x, y) in (("world_pairs", (a, b)), ("random_pairs", (ra, rb))):
        fast = a.size / best_of(lambda: pair_similarity_fast(s.vectors, x, y))
        numpy_ = a.size / best_of(lambda: pair_similarity_rows(s.vectors, x, y))
        out[name] = {"faiss_pairs_per_s": fast, "numpy_pairs_per_s": numpy_,
                     "faiss_share_of_bound": fast / bound_pairs_per_s,
                     "numpy_share_of_bound": numpy_ / bound_pairs_per_s}
    return out


def end_to_end(world: Path, store: Path, out: Path) -> dict:
    cmd = [sys.executable, "-m", "intent_labels.cli", "--data", str(world), "--store", str(store),
           "--out", str(out), "--no-progress"]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # Linux: KiB
    manifest = json.loads((out / "manifest.json").read_text())
    rows = manifest["counts"]["rows_in"]
    behaviours = pq.ParquetFile(world / "behaviors.parquet").metadata.num_rows
    return {"impressions": rows, "behaviours": behaviours, "wall_s": seconds,
            "impressions_per_s": rows / seconds, "peak_rss_mib": peak_kib / 1024,
            "bin_edges": manifest["bin_edges"], "subseq_level": manifest["threshold"]["subseq_level"]}


# ---------------------------------------------------------------------------------------------
# The straightforward pandas implementation
# ---------------------------------------------------------------------------------------------

def pandas_labels(world: Path, store: Path, edges: np.ndarray, subseq_level: int, max_hist: int = 50,
                  hist_days: float = 14, max_subseq: int = 20):
    """Intent, history and subsequences per impression, one request at a time."""
    import pandas as pd

    n = len(edges) - 1
    imp = pd.read_parquet(world / "impressions.parquet")
    beh = pd.read_parquet(world / "behaviors.parquet")
    items = pd.read_parquet(world / "items.parquet", columns=["item_id", "category_id"])
    ids, vecs = np.load(store / "item_ids.npy"), np.load(store / "embeddings.npy")
    row_of = pd.Series(np.arange(ids.size), index=ids)
    cat_of = items.set_index("item_id").category_id

    def level(sims):
        return np.clip(np.searchsorted(edges, sims, side="right") - 1, 0, n - 1)

    imp["trigger_target_sim"] = np.einsum("ij,ij->i", vecs[row_of[imp.trigger_item_id].to_numpy()],
                                          vecs[row_of[imp.item_id].to_numpy()])
    imp["sim_level"] = level(imp.trigger_target_sim.to_numpy())
    counts = (imp[imp.clicked == 1].groupby(["request_id", "sim_level"]).size()
              .unstack(fill_value=0).reindex(columns=range(n), fill_value=0))
    intent = counts.div(counts.sum(axis=1), axis=0)

    beh = beh.sort_values(["user_id", "ts"], kind="stable")
    beh["category_id"] = cat_of.reindex(beh.item_id).to_numpy()
    by_user = dict(tuple(beh.groupby("user_id")))
    empty = beh.iloc[:0]
    per_request = []
    for rid, g in imp.groupby("request_id", sort=False):
        u, t, trig = g.user_id.iloc[0], g.ts.iloc[0], g.trigger_item_id.iloc[0]
        b = by_user.get(u, empty)
        w = b[(b.ts < t) & (b.ts >= t - hist_days * DAY)].iloc[::-1]
        sims = vecs[row_of[w.item_id].to_numpy()] @ vecs[row_of[trig]]
        hist = w.head(max_hist)
        mm = w[level(sims) >= subseq_level].head(max_subseq)
        cat = w[w.category_id == cat_of[trig]].head(max_subseq)
        per_request.append({"request_id": rid, "hist_item_ids": hist.item_id.tolist(),
                            "hist_dt_min": ((t - hist.ts) // 60).tolist(),
                            "mm_subseq_item_ids": mm.item_id.tolist(),
                            "cat_subseq_item_ids": cat.item_id.tolist(),
                            "intent": intent.loc[rid].tolist() if rid in intent.index else [0.0] * n})
    return imp.merge(pd.DataFrame(per_request), on="request_id", how="left")


def subset_world(world: Path, root: Path, n_requests: int) -> Path:
    """`n_requests` requests drawn evenly over the world's days (seed 0; so both splits hold some)
    and their users' behaviours (items, users linked)."""
    sub = root / f"{world.name}_{n_requests}_requests"
    sub.mkdir(parents=True, exist_ok=True)
    for name in ("items.parquet", "users.parquet"):
        if not (sub / name).exists():
            (sub / name).symlink_to((world / name).resolve())
    all_ids = np.unique(pq.read_table(world / "impressions.parquet", columns=["request_id"])
                        .column("request_id").to_numpy())
    chosen = pa.array(np.sort(np.random.default_rng(0).choice(all_ids, min(n_requests, all_ids.size),
                                                              replace=False)))
    kept = [batch.filter(pc.is_in(batch.column("request_id"), value_set=chosen))
            for batch in pq.ParquetFile(world / "impressions.parquet").iter_batches(batch_size=1 << 18)]
    imp = pa.Table.from_batches(kept)
    pq.write_table(imp, sub / "impressions.parquet")
    users = pa.array(np.unique(imp.column("user_id").to_numpy()))
    beh = pq.read_table(world / "behaviors.parquet", filters=[("user_id", "in", users)])
    pq.write_table(beh, sub / "behaviors.parquet")
    return sub


def pandas_comparison(world: Path, store: Path, root: Path, n_requests: int, edges: list[float],
                      subseq_level: int) -> dict:
    sub = subset_world(world, root, n_requests)
    start = time.perf_counter()
    ours_out = label_intents(sub, store, root / "subset_labels", bin_edges=edges,
                             min_split_requests=1, overwrite=True, show_progress_bar=False)
    ours_s = time.perf_counter() - start
    start = time.perf_counter()
    ref = pandas_labels(sub, store, np.asarray(edges), subseq_level)
    pandas_s = time.perf_counter() - start
    ours = pa.concat_tables([pq.read_table(ours_out / f"{s}.parquet") for s in ("train", "test")]).to_pandas()
    key = ["request_id", "item_id"]
    ours, ref = ours.sort_values(key).reset_index(drop=True), ref.sort_values(key).reset_index(drop=True)
    same = len(ours) == len(ref) and all(
        ours[c].map(list).tolist() == ref[c].map(list).tolist()
        for c in ("hist_item_ids", "hist_dt_min", "mm_subseq_item_ids", "cat_subseq_item_ids"))
    same = same and np.allclose(np.stack(ours.intent), np.stack(ref.intent), atol=1e-6)
    same = same and (ours.sim_level.to_numpy() == ref.sim_level.to_numpy()).mean() > 0.9999
    return {"requests": n_requests, "impressions": len(ours), "label_intents_s": ours_s, "pandas_s": pandas_s,
            "speed_up": pandas_s / ours_s, "outputs_equal": bool(same)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="large", help="simulator preset of the world (default large)")
    p.add_argument("--world", type=Path, default=None, help="an existing dataset folder instead of a preset")
    p.add_argument("--root", type=Path, default=Path("out/bench_labels"), help="where worlds and outputs go")
    p.add_argument("--pairs", type=int, default=2_000_000, help="pairs timed in the similarity step")
    p.add_argument("--pandas-requests", type=int, default=5_000,
                   help="requests labelled by both implementations for the speed-up")
    p.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    args = p.parse_args(argv)
    args.root.mkdir(parents=True, exist_ok=True)

    world = args.world or ensure_world(args.preset, args.root)
    store = ensure_store(world, args.root)
    bw = memory_bandwidth()
    bandwidth = max(bw.values())
    bytes_per_pair = 2 * 384 * 4
    bound = bandwidth / bytes_per_pair
    sim = similarity_step(world, store, args.pairs, bound)
    e2e = end_to_end(world, store, args.root / f"{world.name}_labels")
    cmp_ = pandas_comparison(world, store, args.root, args.pandas_requests, e2e["bin_edges"], e2e["subseq_level"])

    result = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
              "world": str(world), "bandwidth": bw, "bytes_per_pair": bytes_per_pair,
              "bound_pairs_per_s": bound, "similarity": sim, "end_to_end": e2e, "pandas": cmp_}
    print(f"memory bandwidth: copy {bw['copy_bytes_per_s'] / 1e9:.2f} GB/s, "
          f"gemv read {bw['gemv_read_bytes_per_s'] / 1e9:.2f} GB/s -> bound {bound / 1e6:.2f} M pairs/s "
          f"({bytes_per_pair} B per pair)")
    for name in ("world_pairs", "random_pairs"):
        r = sim[name]
        print(f"similarity step, {name} ({sim['pairs']:,} pairs, catalogue {sim['catalogue_mib']:.0f} MiB): "
              f"FAISS {r['faiss_pairs_per_s'] / 1e6:.2f} M pairs/s = {r['faiss_share_of_bound']:.0%} of bound; "
              f"numpy gather {r['numpy_pairs_per_s'] / 1e6:.2f} M pairs/s = {r['numpy_share_of_bound']:.0%}")
    print(f"end to end: {e2e['impressions']:,} impressions, {e2e['behaviours']:,} behaviours in "
          f"{e2e['wall_s']:.1f} s = {e2e['impressions_per_s']:,.0f} impressions/s, peak RSS {e2e['peak_rss_mib']:,.0f} MiB")
    print(f"vs pandas on the first {cmp_['requests']:,} requests ({cmp_['impressions']:,} impressions): "
          f"label_intents {cmp_['label_intents_s']:.1f} s, pandas {cmp_['pandas_s']:.1f} s -> "
          f"{cmp_['speed_up']:.1f}x (outputs equal: {cmp_['outputs_equal']})")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
