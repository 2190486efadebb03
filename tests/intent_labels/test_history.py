"""History windows of the sorted behaviour log against a brute-force scan."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from intent_labels.history import BehaviourLog, ItemCatalog, histories
from retrieval.store import EmbeddingStore

DAY = 86_400


@pytest.fixture(scope="module")
def log_and_raw():
    rng = np.random.default_rng(0)
    n = 3000
    users = rng.choice(np.array([3, 17, 99, 1 << 40]), n)  # a huge id, to exercise the key's rank
    ts = 1_700_000_000 + rng.integers(0, 30 * DAY, n)
    ts[:50] = ts[50:100]  # ties
    items = rng.integers(0, 20, n)
    behaviors = pa.table({"user_id": users, "item_id": items, "ts": ts,
                          "action": rng.choice(np.array(["click", "cart", "buy"]), n)})
    catalog = ItemCatalog(np.arange(20), np.arange(20) % 4, np.arange(20) % 2)
    store = EmbeddingStore(np.eye(20, dtype=np.float32), np.arange(20))
    return BehaviourLog.build(behaviors, catalog, store), users, ts, items


def test_windows_and_histories_match_a_scan(log_and_raw):
    log, users, ts, items = log_and_raw
    rng = np.random.default_rng(1)
    q_users = rng.choice(np.array([3, 17, 99, 1 << 40, 5]), 200)  # 5 has no behaviour
    q_ts = 1_700_000_000 + rng.integers(-2 * DAY, 33 * DAY, 200)
    q_ts[:20] = ts[:20]  # requests at exactly a behaviour's time
    q_users[:20] = users[:20]
    lo, hi = log.windows(q_users, q_ts, 14)
    hist = histories(log, lo, hi, q_ts, max_hist=7)
    for k in range(200):
        sel = np.flatnonzero((users == q_users[k]) & (ts < q_ts[k]) & (ts >= q_ts[k] - 14 * DAY))
        assert hi[k] - lo[k] == sel.size
        order = sorted(sel, key=lambda i: (ts[i], i), reverse=True)[:7]  # ties: later file row first
        got = slice(hist.offsets[k], hist.offsets[k + 1])
        assert hist.values["item_ids"][got].tolist() == items[order].tolist()
        assert hist.values["ts"][got].tolist() == ts[order].tolist()
        assert hist.values["dt_min"][got].tolist() == ((q_ts[k] - ts[order]) // 60).tolist()


def test_unknown_user_and_empty_log():
    catalog = ItemCatalog(np.arange(3), np.zeros(3, np.int64), np.zeros(3, np.int64))
    store = EmbeddingStore(np.eye(3, dtype=np.float32), np.arange(3))
    empty = pa.table({"user_id": pa.array([], pa.int64()), "item_id": pa.array([], pa.int64()),
                      "ts": pa.array([], pa.int64()), "action": pa.array([], pa.string())})
    log = BehaviourLog.build(empty, catalog, store)
    lo, hi = log.windows(np.array([1, 2]), np.array([10, 20]), 14)
    assert (hi - lo).tolist() == [0, 0]


@pytest.mark.parametrize("ids", [np.array([5, 3, 9, 4, 100]),  # compact: dense table
                                 np.array([7, -3, 1 << 50, 12])])  # sparse: binary search
def test_id_index_matches_a_dict(ids):
    from intent_labels.history import IdIndex

    index = IdIndex(ids)
    assert (index.table is not None) == (ids.max() < 1000)
    queries = np.r_[ids, ids[::-1], [-(1 << 60), 0, 2, 1 << 55, 101, 6]]
    row = {int(v): k for k, v in enumerate(ids)}
    assert index.rows(queries).tolist() == [row.get(int(q), -1) for q in queries]
    assert IdIndex(np.array([], np.int64)).rows(np.array([1, 2])).tolist() == [-1, -1]
