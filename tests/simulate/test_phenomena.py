"""The planted phenomena, measured from the public files (+ truth/users.parquet for the user type).

Relation of a target to the trigger, from items.parquet and truth/categories.json:
0 = same leaf category, 1 = complementary leaf, 2 = same top category, 3 = anything else.
"""
from __future__ import annotations

import numpy as np


def _ctr(df, by):
    return df.groupby(by).clicked.mean()


def test_overall_ctr_is_a_few_percent(mid_world, tiny_world):
    for world in (mid_world, tiny_world):
        ctr = world.table("impressions.parquet").clicked.mean()
        assert 0.025 <= ctr <= 0.065, ctr


def test_ctr_falls_with_distance_for_specific_users_and_is_flatter_for_broad(mid_world):
    imp = mid_world.impressions_with_relation()
    spec = _ctr(imp[imp.user_type == "specific"], "relation")
    broad = _ctr(imp[imp.user_type == "broad"], "relation")
    assert list(spec.index) == [0, 1, 2, 3]
    assert (np.diff(spec.to_numpy()) < 0).all(), spec  # strictly falling: leaf > related > top > far
    spec_ratio = spec[0] / spec[3]
    broad_ratio = broad[0] / broad[3]
    assert spec_ratio > 4.0 and broad_ratio < spec_ratio / 2.5, (spec, broad)
    # Broad users click far targets more, and same-leaf targets less, than specific users.
    assert broad[3] > spec[3] and broad[0] < spec[0]


def test_near_far_gap_shrinks_as_the_page_grows(mid_world):
    imp = mid_world.impressions_with_relation()
    imp["page_group"] = np.minimum(imp.page, 3)  # 1, 2, 3+
    ctr = imp.groupby(["page_group", "relation"]).clicked.mean().unstack()
    ratio = (ctr[0] / ctr[3]).to_numpy()
    assert ratio[0] > ratio[1] > ratio[2], ctr
    assert ratio[0] > 1.6 * ratio[2]


def test_clicks_favour_trigger_category_more_on_page_one(mid_world, tiny_world):
    for world in (mid_world, tiny_world):
        imp = world.impressions_with_relation()
        same = imp.relation == 0
        clicked = imp[imp.clicked == 1]
        share_p1 = (clicked.relation == 0)[clicked.page == 1].mean()
        share_later = (clicked.relation == 0)[clicked.page > 1].mean()
        assert share_p1 > share_later, (share_p1, share_later)
        p1, later = imp.page == 1, imp.page > 1
        lift_p1 = imp.clicked[p1 & same].mean() / imp.clicked[p1 & ~same].mean()
        lift_later = imp.clicked[later & same].mean() / imp.clicked[later & ~same].mean()
        assert lift_p1 > lift_later > 1.0, (lift_p1, lift_later)


def test_many_items_are_cold_in_the_first_seven_days(mid_world, tiny_world):
    for world in (mid_world, tiny_world):
        imp = world.impressions_with_relation()
        items = world.table("items.parquet")
        counts = imp[imp.day < 7].item_id.value_counts().reindex(items.item_id, fill_value=0)
        assert (counts <= 2).mean() >= 0.30
        # ... while a popular head takes a large share of exposures (the long tail).
        top = np.sort(counts.to_numpy())[::-1]
        assert top[: len(top) // 20].sum() > 0.3 * top.sum()


def test_history_spans_fourteen_days_and_reflects_interests(mid_world):
    beh = mid_world.table("behaviors.parquet")
    world = mid_world.json("world.json")
    items = mid_world.table("items.parquet").set_index("item_id")
    users = mid_world.table("truth/users.parquet").set_index("user_id")
    hist = beh[(beh.ts < world["request_start_ts"]) & (beh.action == "click")]
    assert (hist.ts.max() - hist.ts.min()) > 13.9 * 86_400
    assert hist.groupby("user_id").size().median() >= 15
    interest = users.interest_category_ids.reindex(hist.user_id).to_numpy()
    leaf = items.category_id.reindex(hist.item_id).to_numpy()
    in_interest = np.array([c in set(i) for c, i in zip(leaf.tolist(), interest)])
    assert in_interest.mean() > 0.6  # most history clicks come from long-term interests


def test_pages_continue_with_decreasing_odds(mid_world):
    imp = mid_world.table("impressions.parquet")
    reqs = imp.drop_duplicates("request_id")
    per_page = reqs.page.value_counts().sort_index()
    cont = (per_page.shift(-1) / per_page).dropna().to_numpy()[:4]
    assert (per_page.diff().dropna() <= 0).all()
    assert cont[0] > cont[2] and 0.45 < cont[0] < 0.75
