"""Fixtures: a small synthetic dataset following the data contract, and stores of random vectors.

The simulator's tiny world, its MiniLM store and its labels are the suite-wide `tiny_world`,
`tiny_text_store` and `tiny_labels` (tests/conftest.py).

The synthetic world is made to hit the edge cases of the labelling: behaviours at exactly the
request time (excluded), exactly 14 days before (included), ties in time, users without any
behaviour, requests without a click, requests on several pages, rows of one request split across
record batches, and a store missing one item when asked.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

DAY = 86_400
T0 = 1_767_225_600  # 2026-01-01 00:00 UTC
N_ITEMS = 60
N_USERS = 8
# 70 requests over 9 days: a test split of about 15, below label-intents' default minimum of 100
SYNTH_SPLIT = {"min_split_requests": 5}

IMPRESSION_SCHEMA = pa.schema([
    ("request_id", pa.int64()), ("user_id", pa.int64()), ("ts", pa.int64()),
    ("trigger_item_id", pa.int64()), ("page", pa.int32()), ("position", pa.int32()),
    ("item_id", pa.int64()), ("clicked", pa.int8())])


def item_ids() -> np.ndarray:
    return 1000 + 7 * np.arange(N_ITEMS, dtype=np.int64)  # not 0..N-1, to catch id/row mix-ups


def make_items() -> pa.Table:
    ids = item_ids()
    leaf = np.arange(N_ITEMS) % 9
    return pa.table({"item_id": ids, "title": [f"item {i}" for i in ids], "image": [None] * N_ITEMS,
                     "category_id": (100 + leaf).astype(np.int64), "top_category_id": (leaf // 3).astype(np.int64),
                     "brand_id": (np.arange(N_ITEMS) % 4).astype(np.int64),
                     "price": np.linspace(1, 50, N_ITEMS)},
                    schema=pa.schema([("item_id", pa.int64()), ("title", pa.string()), ("image", pa.string()),
                                      ("category_id", pa.int64()), ("top_category_id", pa.int64()),
                                      ("brand_id", pa.int64()), ("price", pa.float64())]))


def make_world(folder: Path, seed: int = 0) -> Path:
    """Write items, users, behaviors and impressions Parquet files (and a small truth/)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    ids = item_ids()
    users = np.arange(1, N_USERS + 1, dtype=np.int64) * 11
    pq.write_table(make_items(), folder / "items.parquet")
    pq.write_table(pa.table({"user_id": users, "gender": users % 2, "age_level": users % 5}),
                   folder / "users.parquet")

    # Requests: days 20..28 after T0 (history starts at T0), user 88 never behaves.
    n_req = 70
    req_user = rng.choice(users, n_req)
    req_ts = T0 + 20 * DAY + np.sort(rng.integers(0, 9 * DAY, n_req))
    req_trig = rng.choice(ids, n_req)

    # Behaviours: random, plus planted edge cases around some requests.
    n_beh = 500
    b_user = rng.choice(users[:-1], n_beh)
    b_ts = T0 + rng.integers(0, 29 * DAY, n_beh)
    b_item = rng.choice(ids, n_beh)
    extra_user, extra_ts, extra_item = [], [], []
    for k in range(0, n_req, 5):
        u, t = req_user[k], req_ts[k]
        if u == users[-1]:
            continue
        extra_user += [u] * 5
        extra_ts += [t, t - 14 * DAY, t - 14 * DAY - 1, t - 1, t - 1]  # at t, on the edge, just out, a tie
        extra_item += list(rng.choice(ids, 5))
    b_user = np.r_[b_user, extra_user].astype(np.int64)
    b_ts = np.r_[b_ts, extra_ts].astype(np.int64)
    b_item = np.r_[b_item, extra_item].astype(np.int64)
    # Same-category items near triggers, so category subsequences are not all empty.
    action = rng.choice(np.array(["click", "cart", "buy"]), b_user.size, p=[0.7, 0.2, 0.1])
    perm = rng.permutation(b_user.size)  # file order is not time order
    pq.write_table(pa.table({"user_id": b_user[perm], "item_id": b_item[perm], "ts": b_ts[perm],
                             "action": action[perm]}), folder / "behaviors.parquet")

    rows = []
    for r in range(n_req):
        n_targets = rng.integers(3, 9)
        targets = rng.choice(ids[ids != req_trig[r]], n_targets, replace=False)
        ctr = 0.0 if r % 6 == 0 else 0.35
        clicked = (rng.random(n_targets) < ctr).astype(np.int8)
        page = 1 + r % 3
        for p, (t, c) in enumerate(zip(targets, clicked)):
            rows.append((5000 + r, req_user[r], req_ts[r], req_trig[r], page, p, t, c))
    cols = list(zip(*rows))
    table = pa.table({f.name: pa.array(c, f.type) for f, c in zip(IMPRESSION_SCHEMA, cols)},
                     schema=IMPRESSION_SCHEMA)
    pq.write_table(table, folder / "impressions.parquet", row_group_size=97)

    truth = folder / "truth"
    truth.mkdir(exist_ok=True)
    pq.write_table(pa.table({"user_id": users, "user_type": np.where(users % 3 == 0, "broad", "specific")}),
                   truth / "users.parquet")
    return folder


def write_store(folder: Path, ids: np.ndarray, dim: int = 16, seed: int = 0,
                dtype=np.float32) -> Path:
    """A store folder of random unit vectors for `ids`."""
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(ids.size, dim)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "embeddings.npy", v.astype(dtype))
    np.save(folder / "item_ids.npy", np.asarray(ids, dtype=np.int64))
    (folder / "manifest.json").write_text(json.dumps(
        {"backend": "random", "model": None, "dim": dim, "dtype": np.dtype(dtype).name, "count": int(ids.size)}))
    return folder


@pytest.fixture(scope="session")
def synth_world(tmp_path_factory) -> Path:
    return make_world(tmp_path_factory.mktemp("synth") / "world")


@pytest.fixture(scope="session")
def synth_store(tmp_path_factory) -> Path:
    # Shuffled rows so that store row != item order.
    ids = item_ids()[np.random.default_rng(1).permutation(N_ITEMS)]
    return write_store(tmp_path_factory.mktemp("synth_store") / "store", ids)


@pytest.fixture(scope="session")
def synth_labels(tmp_path_factory, synth_world, synth_store) -> Path:
    from intent_labels import label_intents

    return label_intents(synth_world, synth_store, tmp_path_factory.mktemp("synth_out") / "labels",
                         batch_rows=50, show_progress_bar=False, **SYNTH_SPLIT)


# ---------------------------------------------------------------------------------------------
# Brute-force reference: pandas + Python loops over requests and behaviours, float64 cosines.
# ---------------------------------------------------------------------------------------------

def reference_edges(train_sims: np.ndarray, levels: int, quantile: float) -> list[float]:
    """Equal-width edges over [min, max], narrowed to the bins of a 4096-bin histogram of [-1, 1]
    that hold the quantile and 1 - quantile points (np.histogram and a Python scan)."""
    lo, hi = float(np.min(train_sims)), float(np.max(train_sims))
    if quantile > 0:
        counts, grid = np.histogram(train_sims, bins=4096, range=(-1.0, 1.0))
        cum = np.cumsum(counts)
        k_lo = next(k for k in range(4096) if cum[k] > quantile * cum[-1])
        k_hi = next(k for k in range(4096) if cum[k] >= (1 - quantile) * cum[-1])
        lo = max(lo, grid[k_lo]) if k_lo > 0 else lo  # the end bins reach min and max
        hi = min(hi, grid[k_hi + 1]) if k_hi < 4095 else hi
    return [lo + (hi - lo) * k / levels for k in range(levels + 1)]


def reference_labels(world: Path, store: Path, levels: int = 6, train_days: int = 7,
                     subseq_level: int | None = None, max_hist: int = 50, hist_days: float = 14,
                     max_subseq: int = 20, edges: list[float] | None = None, edge_quantile: float = 0.01) -> dict:
    """Recompute edges, per-row similarities, intents, histories and subsequences from raw files."""
    subseq_level = levels // 2 if subseq_level is None else subseq_level
    items = pq.read_table(world / "items.parquet").to_pandas()
    beh = pq.read_table(world / "behaviors.parquet").to_pandas()
    imp = pq.read_table(world / "impressions.parquet").to_pandas()
    ids = np.load(store / "item_ids.npy")
    vecs = np.load(store / "embeddings.npy").astype(np.float64)
    vec = {int(i): vecs[k] for k, i in enumerate(ids)}
    cat = dict(zip(items.item_id.tolist(), items.category_id.tolist()))

    def cos(a: int, b: int) -> float:
        return float(np.dot(vec[a], vec[b]))

    imp["sim"] = [cos(t, i) for t, i in zip(imp.trigger_item_id.tolist(), imp.item_id.tolist())]
    boundary = (int(imp.ts.min()) // DAY + train_days) * DAY
    if edges is None:
        edges = reference_edges(imp[imp.ts < boundary].sim.to_numpy(), levels, edge_quantile)

    near_edge = []  # similarities so close to an inner edge that float32 vs float64 could flip them

    def level(s: float) -> int:
        if min(abs(s - e) for e in edges[1:-1]) < 1e-6:
            near_edge.append(s)
        out = 0
        for k in range(1, levels):
            if s >= edges[k]:
                out = k
        return out

    imp["level"] = [level(s) for s in imp.sim]
    beh["row"] = np.arange(len(beh))
    by_user = {u: g.sort_values(["ts", "row"], ascending=False) for u, g in beh.groupby("user_id")}
    action_code = {"click": 0, "cart": 1, "buy": 2}
    requests = {}
    for rid, g in imp.groupby("request_id", sort=False):
        u, t, trig = int(g.user_id.iloc[0]), int(g.ts.iloc[0]), int(g.trigger_item_id.iloc[0])
        counts = [0] * levels
        for lv, c in zip(g.level, g.clicked):
            if c == 1:
                counts[lv] += 1
        total = sum(counts)
        hist, mm, catseq = [], [], []
        if u in by_user:
            for item, ts, action in zip(by_user[u].item_id, by_user[u].ts, by_user[u].action):
                if not (t - hist_days * DAY <= ts < t):
                    continue
                entry = (int(item), int(ts), (t - int(ts)) // 60, action_code[action])
                if len(hist) < max_hist:
                    hist.append(entry)
                if len(mm) < max_subseq and int(item) in vec and level(cos(trig, int(item))) >= subseq_level:
                    mm.append(entry)
                if len(catseq) < max_subseq and cat.get(int(item), -1) == cat.get(trig, -2):
                    catseq.append(entry)
        requests[int(rid)] = {
            "intent": [c / total for c in counts] if total else [0.0] * levels,
            "has_intent": total > 0, "hist": hist, "mm": mm, "cat": catseq, "ts": t,
        }
    return {"edges": edges, "boundary": boundary, "impressions": imp, "requests": requests,
            "near_edge": near_edge}


@pytest.fixture(scope="session")
def reference():
    return reference_labels


# ---------------------------------------------------------------------------------------------
# The hand-made dataset (tests/conftest.py) and its MiniLM store, for the first-hour checks
# ---------------------------------------------------------------------------------------------

HANDMADE_TRAIN_DAYS = ["--train-days", "4"]  # its 5 request days: 4 train, 1 test (200 requests)


@pytest.fixture(scope="session")
def handmade_store(tmp_path_factory, handmade) -> Path:
    """The hand-made dataset's items.parquet embedded by the offline MiniLM (about 10 s, once)."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach a hub from tests
    from embedder import build_store

    return build_store(handmade / "items.parquet", tmp_path_factory.mktemp("handmade_store") / "store",
                       show_progress_bar=False)


@pytest.fixture(scope="session")
def handmade_labels(tmp_path_factory, handmade, handmade_store) -> Path:
    """label-intents over the hand-made dataset with 4 train days (its 5th day is the test split)."""
    from intent_labels import label_intents

    return label_intents(handmade, handmade_store, tmp_path_factory.mktemp("handmade_labels") / "labels",
                         train_days=4, show_progress_bar=False)
