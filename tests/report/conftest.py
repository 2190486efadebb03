"""A tiny fake world with finished runs in `train-daian`'s real layout, and the report built on it.

- dataset/: items.parquet (some items without a picture), images/*.png, truth/users.parquet with
  planted user types and intent profiles;
- labelled/: manifest.json (n = 4 levels, bin edges), train.parquet and test.parquet with the
  impression columns plus intent (computed from the clicks, p_i = c_i / C), has_intent and
  trigger_target_sim;
- runs/cmp/: a comparison (compare.json) of din, dei2n, daian and daian-no-uim, two seeds each
  (seed-S/ with predictions.parquet, metrics.json, checkpoint/config.json);
- runs/n3/: a single-seed DAIAN run (predictions.parquet at the top) on a labelling with n = 3, for
  the sweep figure.
Scores carry some signal about the click, more for DAIAN than for DIN, and noise per seed.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

LEVELS = 4
EDGES = [-0.2, 0.1, 0.4, 0.7, 1.0]
SEEDS = (1, 2)
RUNS = {"din": ("din", None, 0.6), "dei2n": ("dei2n", None, 0.9), "daian": ("daian", None, 1.3),
        "daian-no-uim": ("daian", "no-uim", 1.0)}
N_ITEMS = 30
N_USERS = 16


def _intent_column(matrix: np.ndarray) -> pa.Array:
    r, n = matrix.shape
    return pa.ListArray.from_arrays(pa.array(np.arange(r + 1, dtype=np.int32) * n),
                                    pa.array(matrix.astype(np.float32).ravel(), pa.float32()))


def _labelled_split(rng, n_requests: int, first_request: int, users: np.ndarray, items: np.ndarray,
                    user_type: dict, edges: list[float], ts0: int) -> pa.Table:
    rows = {k: [] for k in ("request_id", "user_id", "ts", "trigger_item_id", "page", "position", "item_id",
                            "clicked", "trigger_target_sim")}
    for r in range(n_requests):
        rid = first_request + r
        u = int(rng.choice(users))
        trigger = int(rng.choice(items))
        page = int(rng.integers(1, 5))
        targets = rng.choice(items[items != trigger], size=int(rng.integers(5, 9)), replace=False)
        sims = rng.uniform(edges[0], edges[-1], targets.size)
        lean = 3.0 if user_type[u] == "specific" else 0.5
        prob = 1 / (1 + np.exp(-(-2.2 + lean * sims - 0.25 * (page - 1))))
        clicked = (rng.random(targets.size) < prob).astype(np.int8)
        for pos, (t, s, c) in enumerate(zip(targets, sims, clicked)):
            for key, value in (("request_id", rid), ("user_id", u), ("ts", ts0 + 60 * r), ("trigger_item_id", trigger),
                               ("page", page), ("position", pos), ("item_id", int(t)), ("clicked", int(c)),
                               ("trigger_target_sim", float(s))):
                rows[key].append(value)
    rid = np.array(rows["request_id"])
    sims = np.array(rows["trigger_target_sim"])
    clicked = np.array(rows["clicked"])
    level = np.clip(np.searchsorted(np.array(edges), sims, side="right") - 1, 0, len(edges) - 2)
    intent = np.zeros((rid.size, len(edges) - 1))
    for r in np.unique(rid):
        sel = rid == r
        counts = np.bincount(level[sel][clicked[sel] == 1], minlength=len(edges) - 1)
        if counts.sum():
            intent[sel] = counts / counts.sum()
    return pa.table({
        "request_id": pa.array(rid, pa.int64()), "user_id": pa.array(rows["user_id"], pa.int64()),
        "ts": pa.array(rows["ts"], pa.int64()), "trigger_item_id": pa.array(rows["trigger_item_id"], pa.int64()),
        "page": pa.array(rows["page"], pa.int32()), "position": pa.array(rows["position"], pa.int32()),
        "item_id": pa.array(rows["item_id"], pa.int64()), "clicked": pa.array(clicked, pa.int8()),
        "intent": _intent_column(intent), "has_intent": pa.array(intent.sum(1) > 0, pa.bool_()),
        "trigger_target_sim": pa.array(sims, pa.float32()), "sim_level": pa.array(level, pa.int8()),
    })


def _write_dataset(root: Path, rng) -> tuple[Path, np.ndarray, np.ndarray, dict]:
    dataset = root / "dataset"
    (dataset / "images").mkdir(parents=True)
    (dataset / "truth").mkdir()
    items = 100 + 3 * np.arange(N_ITEMS, dtype=np.int64)
    images = []
    for k, item in enumerate(items):
        if k % 5 == 4:  # every fifth item has no picture
            images.append(None)
            continue
        colour = tuple(int(v) for v in rng.integers(30, 230, 3))
        Image.new("RGB", (24, 24), colour).save(dataset / "images" / f"{item}.png")
        images.append(f"images/{item}.png")
    pq.write_table(pa.table({
        "item_id": items, "title": [f"Fake item {i} in colour {k % 4}" for k, i in enumerate(items)],
        "image": pa.array(images, pa.string()), "category_id": (items % 7).astype(np.int64),
        "top_category_id": (items % 3).astype(np.int64), "brand_id": (items % 5).astype(np.int64),
        "price": np.linspace(1.0, 90.0, N_ITEMS)}), dataset / "items.parquet")
    users = 500 + np.arange(N_USERS, dtype=np.int64)
    pq.write_table(pa.table({"user_id": users, "gender": users % 2}), dataset / "users.parquet")
    types = ["specific" if k % 3 else "broad" for k in range(N_USERS)]
    profiles = np.array([[0.1, 0.2, 0.3, 0.4] if t == "specific" else [0.3, 0.3, 0.2, 0.2] for t in types])
    profiles = profiles + rng.uniform(0, 0.05, profiles.shape)
    profiles /= profiles.sum(1, keepdims=True)
    pq.write_table(pa.table({"user_id": users, "user_type": types, "intent_profile": _intent_column(profiles)}),
                   dataset / "truth" / "users.parquet")
    return dataset, users, items, dict(zip(users.tolist(), types))


def _write_labelled(folder: Path, rng, users, items, user_type, edges) -> Path:
    folder.mkdir(parents=True)
    train = _labelled_split(rng, 90, 10_000, users[:-2], items, user_type, edges, 1_767_225_600)  # 2 cold users
    test = _labelled_split(rng, 40, 20_000, users, items, user_type, edges, 1_767_225_600 + 7 * 86_400)
    pq.write_table(train, folder / "train.parquet")
    pq.write_table(test, folder / "test.parquet")
    (folder / "manifest.json").write_text(json.dumps({"version": 1, "levels": len(edges) - 1, "bin_edges": edges}))
    return folder


def _scores(rng, clicked: np.ndarray, strength: float) -> np.ndarray:
    logit = -2.0 + strength * clicked + rng.normal(0, 1.0, clicked.size)
    return (1 / (1 + np.exp(-logit))).astype(np.float32)


def _predicted_intent(rng, test: pa.Table, levels: int) -> np.ndarray:
    """A random distribution per request, the same on all its rows (DAIAN's UIM sees no target)."""
    rid = test.column("request_id").to_numpy()
    uniq, inv = np.unique(rid, return_inverse=True)
    logits = rng.normal(0, 0.6, (uniq.size, levels)) + np.linspace(-0.5, 0.5, levels)
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return p[inv]


def _write_seed(folder: Path, test: pa.Table, score: np.ndarray, intent: np.ndarray | None, *, model: str,
                ablation: str | None, seed: int, data: Path, dataset: Path) -> None:
    folder.mkdir(parents=True)
    cols = {"request_id": test.column("request_id"), "user_id": test.column("user_id"),
            "item_id": test.column("item_id"), "clicked": test.column("clicked"),
            "score": pa.array(score, pa.float32())}
    if intent is not None:
        cols["intent_pred"] = _intent_column(intent)
    table = pa.table(cols)
    # rows in another order than the labelled file: the report must match them by key
    order = np.random.default_rng(seed).permutation(table.num_rows)
    pq.write_table(table.take(pa.array(order)), folder / "predictions.parquet")
    from sklearn.metrics import log_loss, roc_auc_score

    y = test.column("clicked").to_numpy()
    (folder / "metrics.json").write_text(json.dumps({
        "model": model, "ablation": ablation, "seed": seed,
        "ctr": {"auc": roc_auc_score(y, score), "logloss": log_loss(y, score.astype(np.float64))}}))
    (folder / "checkpoint").mkdir()
    (folder / "checkpoint" / "config.json").write_text(json.dumps({
        "format": "daian-checkpoint/1", "seed": seed,
        "train": {"data": str(data), "dataset": str(dataset), "model": model, "ablation": ablation}}))


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("report_world")
    rng = np.random.default_rng(7)
    dataset, users, items, user_type = _write_dataset(root, rng)
    labelled = _write_labelled(root / "labelled", rng, users, items, user_type, EDGES)
    labelled3 = root / "labelled3"
    labelled3.mkdir()
    test = pq.read_table(labelled / "test.parquet")
    clicked = test.column("clicked").to_numpy().astype(np.float64)
    cmp = root / "runs" / "cmp"
    for name, (model, ablation, strength) in RUNS.items():
        for seed in SEEDS:
            srng = np.random.default_rng(1000 * seed + len(name))
            intent = _predicted_intent(srng, test, LEVELS) if model == "daian" and ablation is None else None
            _write_seed(cmp / name / f"seed-{seed}", test, _scores(srng, clicked, strength), intent,
                        model=model, ablation=ablation, seed=seed, data=labelled, dataset=dataset)
        (cmp / name / "metrics.json").write_text(json.dumps({"model": model, "ablation": ablation,
                                                             "seeds": list(SEEDS)}))
    (cmp / "compare.json").write_text(json.dumps({"seeds": list(SEEDS), "runs": {n: str(cmp / n) for n in RUNS}}))
    # the sweep run: DAIAN at n = 3, one seed, files at the top of the run folder
    srng = np.random.default_rng(33)
    _write_seed(root / "runs" / "n3", test, _scores(srng, clicked, 1.1), _predicted_intent(srng, test, 3),
                model="daian", ablation=None, seed=1, data=labelled3, dataset=dataset)
    return {"root": root, "dataset": dataset, "labelled": labelled, "cmp": cmp, "n3": root / "runs" / "n3",
            "user_type": user_type}


@pytest.fixture(scope="session")
def report(world, tmp_path_factory) -> dict:
    from report import ReportConfig, build_report

    out = tmp_path_factory.mktemp("report_out")
    config = ReportConfig(runs=(world["cmp"],), out=out, data=world["labelled"], dataset=world["dataset"],
                          sweep=((3, world["n3"]),), examples=2, top_k=4, diversity_buckets=3,
                          min_cell_impressions=5, progress=False)
    paths = build_report(config)
    return {"paths": paths, "out": out, "config": config,
            "json": json.loads(paths["json"].read_text()), "html": paths["html"].read_text()}
