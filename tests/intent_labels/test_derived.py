"""The columns label-intents derives from the request table (leave-one-out intent, past intent),
against pandas loops over the whole labelled output. Batches of 50 rows split requests across
batches, so a per-batch count of a request's clicks would be wrong here."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd


def _levels(sims: np.ndarray, edges: np.ndarray) -> np.ndarray:
    return np.clip(np.searchsorted(edges, sims.astype(np.float64), side="right") - 1, 0, len(edges) - 2)


def _read(labels):
    df = pd.concat([pd.read_parquet(labels / f"{s}.parquet").assign(split=s) for s in ("train", "test")],
                   ignore_index=True)
    edges = np.asarray(json.loads((labels / "manifest.json").read_text())["bin_edges"])
    return df, edges


def test_leave_one_out_intent_counts_the_whole_request(synth_labels, synth_world):
    df, edges = _read(synth_labels)
    batch = pd.read_parquet(synth_world / "impressions.parquet", columns=["request_id"]).reset_index()
    straddling = (batch.assign(b=batch["index"] // 50).groupby("request_id").b.nunique() > 1).sum()
    assert straddling > 0  # some requests do span two of label-intents' batches
    n = len(edges) - 1
    df["level"] = _levels(df.trigger_target_sim.to_numpy(np.float32), edges)
    for _, g in df.groupby("request_id"):
        for i, row in g.iterrows():
            others = g[(g.index != i) & (g.clicked == 1)]
            assert bool(row.has_intent_loo) == (not others.empty)
            expected = np.bincount(others.level, minlength=n) / max(len(others), 1)
            np.testing.assert_allclose(row.intent_loo, expected, atol=1e-6)


def test_past_intent_is_the_users_earlier_train_requests(synth_labels):
    df, edges = _read(synth_labels)
    n = len(edges) - 1
    req = df.groupby("request_id").first()
    pool = req[(req.split == "train") & req.has_intent]
    checked = 0
    for rid, row in req.iterrows():
        earlier = pool[(pool.user_id == row.user_id) & (pool.ts < row.ts)]
        assert row.past_count == len(earlier)
        expected = np.mean(np.stack(earlier.intent.to_list()), axis=0) if len(earlier) else np.zeros(n)
        np.testing.assert_allclose(row.past_intent, expected, atol=1e-6)
        checked += len(earlier) > 0
    assert checked > 10
    # every row of a request carries its request's value
    assert (df.groupby("request_id").past_count.nunique() == 1).all()
