"""Intent derived from the labels: the leave-one-out intent and the past intent, against pandas."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch

from daian.data import leave_one_out_intent, load_data


def test_leave_one_out_intent_matches_pandas(synthetic):
    """Stage 2's intent: the request's clicks per level other than the row's own."""
    df = pd.read_parquet(synthetic["labelled"] / "train.parquet")
    edges = np.asarray(json.loads((synthetic["labelled"] / "manifest.json").read_text())["bin_edges"])
    intent = np.stack([np.asarray(x, np.float32) if h else np.zeros(6, np.float32)
                       for x, h in zip(df.intent, df.has_intent)])
    loo, has = leave_one_out_intent(df.request_id.to_numpy(), df.clicked.to_numpy().astype(np.int64), intent,
                                    df.has_intent.to_numpy(), df.trigger_target_sim.to_numpy(np.float32), edges)
    # level i where edges[i] <= s < edges[i+1], the outer levels open-ended
    sims = df.trigger_target_sim.to_numpy(np.float32).astype(np.float64)
    df["level"] = np.clip(np.searchsorted(edges, sims, side="right") - 1, 0, 5)
    checked = 0
    for _, g in df.groupby("request_id"):
        for i, row in g.iterrows():
            others = g[(g.index != i) & (g.clicked == 1)]
            if others.empty:
                assert not has[i] and (loo[i] == 0).all()
                continue
            expected = np.bincount(others.level, minlength=6) / len(others)
            assert has[i]
            np.testing.assert_allclose(loo[i], expected, atol=1e-6)
            checked += 1
    assert checked > 20
    # the row's own label never shows: for a clicked row, its level's share falls by one click
    clicked = df.clicked.to_numpy() == 1
    assert (loo[clicked & has].sum(axis=1) == pytest.approx(1.0))


def test_past_intent_matches_pandas(bundle, synthetic):
    """UIM's view of the user's earlier requests: the mean intent of the same user's labelled
    *training* requests that started strictly before the row's request, and their number."""
    train = pd.read_parquet(synthetic["labelled"] / "train.parquet")
    pool = train[train.has_intent].drop_duplicates("request_id")
    checked = 0
    for split, ds in (("train", bundle.train), ("test", bundle.test)):
        df = pd.read_parquet(synthetic["labelled"] / f"{split}.parquet")
        mean, count = ds.columns["past_intent"].numpy(), ds.columns["past_count"].numpy()
        for i, row in df.iterrows():
            earlier = pool[(pool.user_id == row.user_id) & (pool.ts < row.ts)]
            assert count[i] == len(earlier)
            expected = np.stack(earlier.intent.to_numpy()).mean(0) if len(earlier) else np.zeros(6)
            np.testing.assert_allclose(mean[i], expected, atol=1e-6)
            checked += len(earlier) > 0
    assert checked > 100
    # the batch hands them over as features
    features, _ = bundle.test[torch.arange(5)]
    assert torch.equal(features["past_intent"], bundle.test.columns["past_intent"][:5])


def test_past_intent_ignores_the_evaluated_split_and_needs_ts(synthetic, tmp_path, caplog, caps, rewrite):
    """Test rows pool train requests only: scrambling the test split's clicks and intents leaves
    them unchanged. Without a ts column they stay zero, with a warning."""
    def scramble(t):
        perm = pa.array(np.random.default_rng(3).permutation(t.num_rows))
        for name in ("clicked", "intent", "has_intent"):
            t = t.set_column(t.schema.get_field_index(name), name, t.column(name).take(perm))
        return t

    base = load_data(synthetic["labelled"], synthetic["store"], synthetic["dataset"], **caps)
    data = rewrite(tmp_path / "a", "test", scramble)
    other = load_data(data, synthetic["store"], synthetic["dataset"], **caps)
    for key in ("past_intent", "past_count"):
        assert torch.equal(base.test.columns[key], other.test.columns[key])
    assert base.test.columns["past_count"].max() > 0
    data = rewrite(tmp_path / "b", "train", lambda t: t.drop_columns(["ts"]))
    with caplog.at_level("WARNING", logger="daian.data"):
        bare = load_data(data, synthetic["store"], synthetic["dataset"], **caps)
    assert "past_intent" in caplog.text and not bare.summary["past_intent"]
    assert (bare.train.columns["past_count"] == 0).all() and (bare.test.columns["past_intent"] == 0).all()


def test_label_intents_columns_equal_the_trainers_own(tiny_labelled, tmp_path):
    """The derived columns label-intents writes give the features the trainer computes itself
    from the whole splits of a folder that lacks them (a folder from before those columns)."""
    import shutil

    import pyarrow.parquet as pq

    from daian.data.dataset import DERIVED_COLUMNS

    labelled, store, dataset = tiny_labelled
    old = tmp_path / "old"
    shutil.copytree(labelled, old)
    for split in ("train", "test"):
        table = pq.read_table(old / f"{split}.parquet")
        assert set(DERIVED_COLUMNS) <= set(table.column_names)
        pq.write_table(table.drop_columns(list(DERIVED_COLUMNS)), old / f"{split}.parquet")
    new_b = load_data(labelled, store, dataset)
    old_b = load_data(old, store, dataset)
    for split in ("train", "test"):
        a, b = getattr(new_b, split).columns, getattr(old_b, split).columns
        for key in DERIVED_COLUMNS:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=f"{split} {key}")
        assert a["past_count"].sum() > 0 and a["has_intent_loo"].sum() > 0
