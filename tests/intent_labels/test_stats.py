"""The stats report: coverage numbers recomputed from the raw files, histogram pictures written."""
from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
from PIL import Image


def check_stats(out, world, store):
    cov = json.loads((out / "stats" / "coverage.json").read_text())
    imp = pq.read_table(world / "impressions.parquet").to_pandas()
    beh = pq.read_table(world / "behaviors.parquet").to_pandas()
    ids = set(np.load(store / "item_ids.npy").tolist())
    assert cov["requests"] == imp.request_id.nunique()
    assert cov["requests_labelled"] == imp[imp.clicked == 1].request_id.nunique()
    assert cov["behaviours"] == len(beh)
    assert cov["behaviours_missing_from_store"] == int((~beh.item_id.isin(ids)).sum())
    first = imp.groupby("request_id").first()
    no_before = [not ((beh.user_id == r.user_id) & (beh.ts < r.ts)).any() for r in first.itertuples()]
    assert cov["requests_without_behaviour_before"] == sum(no_before)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["coverage"] == cov
    for name in ("intent_overall.png", "intent_by_user_type.png"):
        with Image.open(out / "stats" / name) as img:
            assert img.size[0] > 100 and img.size[1] > 100
    assert "requests_labelled" in (out / "stats" / "coverage.md").read_text()


def test_stats_on_the_synthetic_world(synth_labels, synth_world, synth_store):
    check_stats(synth_labels, synth_world, synth_store)


def test_stats_on_the_tiny_world(tiny_labels, tiny_world, tiny_text_store):
    check_stats(tiny_labels, tiny_world, tiny_text_store)
