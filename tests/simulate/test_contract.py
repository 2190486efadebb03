"""The four data files follow the shared contract, and the files reference each other correctly."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

REQUIRED = {
    "items.parquet": {"item_id": pa.int64(), "title": pa.string(), "image": pa.string(),
                      "category_id": pa.int64(), "top_category_id": pa.int64(), "brand_id": pa.int64(),
                      "price": pa.float64()},
    "users.parquet": {"user_id": pa.int64(), "gender": pa.int64(), "age_level": pa.int64(), "city_id": pa.int64()},
    "behaviors.parquet": {"user_id": pa.int64(), "item_id": pa.int64(), "ts": pa.int64(), "action": pa.string()},
    "impressions.parquet": {"request_id": pa.int64(), "user_id": pa.int64(), "ts": pa.int64(),
                            "trigger_item_id": pa.int64(), "page": pa.int32(), "position": pa.int32(),
                            "item_id": pa.int64(), "clicked": pa.int8()},
}


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_required_columns_and_dtypes(tiny_world, name):
    schema = pq.read_schema(tiny_world.path / name)
    for column, dtype in REQUIRED[name].items():
        assert schema.field(column).type == dtype, (name, column, schema.field(column).type)


def test_values_and_keys(tiny_world):
    items = tiny_world.table("items.parquet")
    users = tiny_world.table("users.parquet")
    beh = tiny_world.table("behaviors.parquet")
    imp = tiny_world.table("impressions.parquet")
    assert items.item_id.is_unique and users.user_id.is_unique
    assert len(items) == 500 and len(users) == 200
    assert set(beh.action.unique()) == {"click", "cart", "buy"}
    assert (beh.action == "click").mean() > 0.8 and (beh.action == "buy").sum() < (beh.action == "cart").sum()
    assert set(imp.clicked.unique()) <= {0, 1} and imp.page.min() == 1 and imp.position.min() == 1
    assert (items.price > 0).all() and items.title.str.len().gt(10).all()
    # One row per (request, position) and per (request, item); the trigger is never its own target.
    assert not imp.duplicated(["request_id", "position"]).any()
    assert not imp.duplicated(["request_id", "item_id"]).any()
    assert (imp.item_id != imp.trigger_item_id).all()
    # A request has one user, trigger, page and ts; positions are 1..k.
    per_req = imp.groupby("request_id").agg(users=("user_id", "nunique"), trig=("trigger_item_id", "nunique"),
                                            pages=("page", "nunique"), ts=("ts", "nunique"),
                                            n=("position", "size"), top=("position", "max"))
    assert (per_req[["users", "trig", "pages", "ts"]] == 1).all().all()
    assert (per_req.n == per_req.top).all() and per_req.n.max() <= 10


def test_references_between_files(tiny_world):
    items = tiny_world.table("items.parquet")
    users = tiny_world.table("users.parquet")
    beh = tiny_world.table("behaviors.parquet")
    imp = tiny_world.table("impressions.parquet")
    ids = set(items.item_id)
    assert set(imp.item_id) <= ids and set(imp.trigger_item_id) <= ids and set(beh.item_id) <= ids
    assert set(imp.user_id) <= set(users.user_id) and set(beh.user_id) <= set(users.user_id)
    for rel in items.image:
        assert (tiny_world.path / rel).is_file()
    assert len(list((tiny_world.path / "images").glob("*.png"))) == len(items)
    # Every clicked impression is a click behaviour at the request's ts.
    clicks = imp[imp.clicked == 1][["user_id", "item_id", "ts"]]
    beh_clicks = beh[beh.action == "click"][["user_id", "item_id", "ts"]].drop_duplicates()
    assert len(clicks.merge(beh_clicks, on=["user_id", "item_id", "ts"])) == len(clicks.drop_duplicates())
    # The trigger is a click the user made shortly before the session started.
    first = imp[imp.page == 1].drop_duplicates("request_id")
    trig = first.merge(beh[beh.action == "click"], left_on=["user_id", "trigger_item_id"],
                       right_on=["user_id", "item_id"], suffixes=("", "_b"))
    trig = trig[(trig.ts_b <= trig.ts) & (trig.ts - trig.ts_b <= 60)]
    assert trig.request_id.nunique() == len(first)


def test_time_span(tiny_world):
    world = tiny_world.json("world.json")
    beh = tiny_world.table("behaviors.parquet")
    imp = tiny_world.table("impressions.parquet")
    start, req_start, req_end = world["history_start_ts"], world["request_start_ts"], world["request_end_ts"]
    assert req_start - start >= 14 * 86_400 and req_end - req_start == 8 * 86_400
    assert imp.ts.min() >= req_start and imp.ts.max() < req_end
    assert set(((imp.ts - req_start) // 86_400).unique()) == set(range(8))
    assert beh.ts.min() >= start and beh.ts.min() < start + 86_400
    history = beh[beh.ts < req_start]
    assert history.user_id.nunique() >= 0.9 * beh.user_id.nunique()
    # Each file is sorted: behaviours by (user, ts), impressions by (request, position).
    assert (np.diff(beh.user_id) >= 0).all()
    assert (beh.groupby("user_id").ts.apply(lambda s: s.is_monotonic_increasing)).all()
    order = imp.sort_values(["request_id", "position"]).index
    assert (order == imp.index).all()


def test_truth_files(tiny_world):
    items = tiny_world.table("items.parquet")
    ids = np.load(tiny_world.path / "truth" / "item_ids.npy")
    latent = np.load(tiny_world.path / "truth" / "item_latent.npy")
    assert ids.dtype == np.int64 and (ids == np.sort(items.item_id.to_numpy())).all()
    assert latent.dtype == np.float32 and latent.shape[0] == len(ids)
    np.testing.assert_allclose(np.linalg.norm(latent, axis=1), 1.0, atol=1e-5)
    users = tiny_world.table("truth/users.parquet")
    assert set(users.user_type) == {"specific", "broad"}
    assert 0.2 <= (users.user_type == "broad").mean() <= 0.5
    profiles = np.stack(users.intent_profile.to_numpy())
    assert profiles.shape == (200, 6)
    np.testing.assert_allclose(profiles.sum(axis=1), 1.0, atol=1e-5)
    requests = tiny_world.table("truth/requests.parquet")
    imp = tiny_world.table("impressions.parquet")
    assert set(requests.request_id) == set(imp.request_id)
    levels = tiny_world.json("truth/levels.json")
    assert levels["n_levels"] == 6 and len(levels["edges"]) == 7
    model = tiny_world.json("truth/click_model.json")
    assert "formula" in model and model["parameters"]["n_levels"] == 6
    world = tiny_world.json("world.json")
    assert world["preset"] == "tiny" and world["config"]["seed"] == 0  # as tests/conftest.py builds it
    assert list(world["config"]) == sorted(world["config"])
