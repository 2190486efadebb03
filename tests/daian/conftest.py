"""A tiny synthetic labelled TIR world for the data, training and CLI tests.

It follows the `label-intents` output schema exactly (train/test Parquet + manifest.json), with a
dataset folder (items, users, truth/users.parquet) and an embedding store of unit vectors. Clicks
depend on the trigger-target similarity (strongly for "specific" users, weakly for "broad" ones)
and on a per-user bias, so a model can learn something; the test split holds items and users the
train split never shows. Intent labels are computed from the clicks the honest way (equal-width
levels fitted on the train split's similarities, p_i = c_i / C).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

LEVELS = 6
DAY = 86_400


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def write_synthetic(root: Path, seed: int = 0, n_train: int = 360, n_test: int = 120,
                    per_request: int = 8) -> dict[str, Path]:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    dataset, store, labelled = root / "dataset", root / "store", root / "labelled"
    for d in (dataset / "truth", store, labelled):
        d.mkdir(parents=True, exist_ok=True)

    # catalogue: 80 items, the last 10 ("cold") only ever appear as test targets
    n_items, n_cold = 80, 10
    item_ids = 1000 + 7 * np.arange(n_items, dtype=np.int64)
    category = rng.integers(0, 10, n_items).astype(np.int64) + 100
    price = np.round(rng.lognormal(3.0, 1.0, n_items), 2)
    pq.write_table(pa.table({
        "item_id": item_ids, "title": [f"item {i}" for i in range(n_items)],
        "image": pa.nulls(n_items, pa.string()), "category_id": category,
        "top_category_id": (category // 4).astype(np.int64), "brand_id": rng.integers(0, 12, n_items).astype(np.int64),
        "price": price.astype(np.float64)}), dataset / "items.parquet")
    centres = _unit(rng.normal(size=(10, 16)))
    vectors = _unit(centres[category - 100] + 0.6 * rng.normal(size=(n_items, 16))).astype(np.float32)
    np.save(store / "embeddings.npy", vectors)
    np.save(store / "item_ids.npy", item_ids)
    (store / "manifest.json").write_text(json.dumps({"backend": "random", "dim": 16, "count": n_items}))
    vec_of = dict(zip(item_ids.tolist(), vectors))
    cat_of = dict(zip(item_ids.tolist(), category.tolist()))

    # users: 40, the last 4 only in the test split; 60% specific-intent
    n_users = 40
    user_ids = 500 + 3 * np.arange(n_users, dtype=np.int64)
    pq.write_table(pa.table({"user_id": user_ids, "gender": rng.integers(0, 2, n_users).astype(np.int64),
                             "age_level": rng.integers(0, 6, n_users).astype(np.int64),
                             "city_id": rng.integers(0, 9, n_users).astype(np.int64)}), dataset / "users.parquet")
    user_type = np.where(rng.random(n_users) < 0.6, "specific", "broad")
    pq.write_table(pa.table({"user_id": user_ids, "user_type": user_type}), dataset / "truth" / "users.parquet")
    bias = rng.normal(0, 0.7, n_users)
    pools = [rng.choice(item_ids[:n_items - n_cold], 12, replace=False) for _ in range(n_users)]

    rows = []
    t0 = 1_700_000_000
    warm = item_ids[:n_items - n_cold]
    for r in range(n_train + n_test):
        test = r >= n_train
        u = int(rng.integers(n_users if test else n_users - 4))
        ts = t0 + (8 * DAY if test else int(rng.integers(0, 7 * DAY)))
        ts += int(rng.integers(0, DAY // 2)) if test else 0
        trigger = int(rng.choice(warm))
        page = int(rng.integers(1, 4))
        targets = rng.choice(item_ids if test else warm, per_request, replace=False)
        n_hist = int(rng.integers(0, 13))
        hist = [int(x) for x in rng.permutation(pools[u])[:n_hist]]
        dts = np.sort(rng.integers(1, 60 * 24 * 20, n_hist)).astype(np.int32)
        trig_v = vec_of[trigger]
        mm = [h for h in hist if float(vec_of[h] @ trig_v) >= 0.3]
        cat = [h for h in hist if cat_of[h] == cat_of[trigger]]
        for pos, ta in enumerate(targets):
            sim = float(vec_of[int(ta)] @ trig_v)
            slope = 4.0 if user_type[u] == "specific" else 0.6
            logit = -2.2 + bias[u] + slope * sim - 0.2 * page
            rows.append(dict(request_id=10_000 + r, user_id=int(user_ids[u]), ts=ts, trigger_item_id=trigger,
                             page=page, position=pos, item_id=int(ta),
                             clicked=int(rng.random() < 1 / (1 + np.exp(-logit))),
                             hist_item_ids=hist, hist_ts=[ts - 60 * int(d) for d in dts],
                             hist_dt_min=[int(d) for d in dts], mm_subseq_item_ids=mm,
                             cat_subseq_item_ids=cat, trigger_target_sim=sim, test=test))

    sims_train = np.array([x["trigger_target_sim"] for x in rows if not x["test"]], dtype=np.float32)
    edges = np.linspace(sims_train.min(), sims_train.max(), LEVELS + 1)
    by_request: dict[int, list[dict]] = {}
    for x in rows:
        by_request.setdefault(x["request_id"], []).append(x)
    for group in by_request.values():
        counts = np.zeros(LEVELS)
        for x in group:
            if x["clicked"]:
                level = int(np.clip(np.searchsorted(edges, x["trigger_target_sim"], side="right") - 1, 0, LEVELS - 1))
                counts[level] += 1
        intent = counts / counts.sum() if counts.sum() else counts
        for x in group:
            x["intent"] = intent.astype(np.float32).tolist()
            x["has_intent"] = bool(counts.sum() > 0)

    schema = pa.schema([
        ("request_id", pa.int64()), ("user_id", pa.int64()), ("ts", pa.int64()), ("trigger_item_id", pa.int64()),
        ("page", pa.int32()), ("position", pa.int32()), ("item_id", pa.int64()), ("clicked", pa.int8()),
        ("intent", pa.list_(pa.float32())), ("has_intent", pa.bool_()), ("hist_item_ids", pa.list_(pa.int64())),
        ("hist_ts", pa.list_(pa.int64())), ("hist_dt_min", pa.list_(pa.int32())),
        ("mm_subseq_item_ids", pa.list_(pa.int64())), ("cat_subseq_item_ids", pa.list_(pa.int64())),
        ("trigger_target_sim", pa.float32())])
    for split, is_test in (("train", False), ("test", True)):
        part = [x for x in rows if x["test"] == is_test]
        pq.write_table(pa.Table.from_pylist([{k: x[k] for k in schema.names} for x in part], schema=schema),
                       labelled / f"{split}.parquet")
    (labelled / "manifest.json").write_text(json.dumps({
        "levels": LEVELS, "bin_edges": edges.tolist(), "dataset": str(dataset),
        "store": {"path": str(store)}}))
    return {"root": root, "dataset": dataset, "store": store, "labelled": labelled}


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory) -> dict[str, Path]:
    """The synthetic world's folders: dataset, store, labelled."""
    return write_synthetic(tmp_path_factory.mktemp("daian-synthetic"))


@pytest.fixture(scope="session")
def bundle(synthetic):
    """The synthetic world loaded by `daian.data.load_data` (small caps so truncation is exercised)."""
    from daian.data import load_data

    return load_data(synthetic["labelled"], synthetic["store"], max_hist=10, max_subseq=4, max_page=2,
                     max_dt=60 * 24 * 7, price_buckets=4)


@pytest.fixture(scope="session")
def tiny_labelled(tiny_labels, tiny_text_store, tiny_world) -> tuple[Path, Path, Path]:
    """The shared tiny simulated world, its MiniLM text store and its labels (tests/conftest.py):
    (labelled, store, dataset)."""
    return Path(tiny_labels), Path(tiny_text_store), Path(tiny_world)


@pytest.fixture(scope="session")
def small_groups(tmp_path_factory, tiny_world, tiny_text_store):
    """The tiny world labelled in row groups of 500 rows and parts of 4,000 (train: a folder of
    parts): what the streaming path reads."""
    from intent_labels import label_intents

    return label_intents(tiny_world, tiny_text_store, tmp_path_factory.mktemp("stream") / "labels",
                         batch_rows=4096, row_group_rows=500, part_rows=4000, show_progress_bar=False)
