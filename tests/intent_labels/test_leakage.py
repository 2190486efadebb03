"""No leakage: histories hold only earlier behaviours, and the test split uses the training edges."""
from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from intent_labels import label_intents

from .conftest import SYNTH_SPLIT, reference_edges

DAY = 86_400


def read(out, split):
    path = out / f"{split}.parquet"
    return pq.read_table(path if path.exists() else out / split).to_pandas()


def check_no_leakage(out, world):
    beh = pq.read_table(world / "behaviors.parquet").to_pandas()
    triples = set(zip(beh.user_id, beh.item_id, beh.ts))
    checked = 0
    for split in ("train", "test"):
        for row in read(out, split).itertuples(index=False):
            for prefix in ("hist", "mm_subseq", "cat_subseq"):
                ts = np.asarray(getattr(row, f"{prefix}_ts"))
                items = np.asarray(getattr(row, f"{prefix}_item_ids"))
                assert (ts < row.ts).all() and (ts >= row.ts - 14 * DAY).all()
                assert np.all(np.diff(ts) <= 0)  # most recent first
                assert all((row.user_id, i, t) in triples for i, t in zip(items, ts))
                checked += ts.size
    assert checked > 0


def check_test_uses_train_edges(out):
    manifest = json.loads((out / "manifest.json").read_text())
    edges = np.asarray(manifest["bin_edges"])
    train, test = read(out, "train"), read(out, "test")
    assert len(test) > 0
    refit = reference_edges(train.trigger_target_sim.to_numpy().astype(np.float64), edges.size - 1,
                            manifest["edge_quantile"])
    np.testing.assert_allclose(edges, refit, rtol=0, atol=1e-9)
    assert not np.allclose(edges, reference_edges(test.trigger_target_sim.to_numpy().astype(np.float64),
                                                  edges.size - 1, manifest["edge_quantile"]))
    test_sims = test.trigger_target_sim.to_numpy().astype(np.float64)
    levels = np.clip(np.digitize(test_sims, edges) - 1, 0, edges.size - 2)
    np.testing.assert_array_equal(test.sim_level.to_numpy(), levels)
    for rid, g in test.groupby("request_id"):
        counts = np.bincount(levels[g.index][g.clicked.to_numpy() == 1], minlength=edges.size - 1)
        expected = counts / counts.sum() if counts.sum() else np.zeros(edges.size - 1)
        np.testing.assert_allclose(g.intent.iloc[0], expected, atol=1e-6)


def test_synthetic_world_has_no_leakage(synth_labels, synth_world):
    check_no_leakage(synth_labels, synth_world)


def test_synthetic_test_split_uses_training_edges(synth_labels):
    check_test_uses_train_edges(synth_labels)


def test_given_edges_are_used_unchanged(tmp_path, synth_labels, synth_world, synth_store, reference):
    edges = [-0.9, -0.1, 0.2, 0.8]
    (tmp_path / "edges.json").write_text(json.dumps(edges))
    out = label_intents(synth_world, synth_store, tmp_path / "out", levels=3, bin_edges=tmp_path / "edges.json",
                        show_progress_bar=False, **SYNTH_SPLIT)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["bin_edges"] == edges and manifest["bin_edges_source"] == "given"
    ref = reference(synth_world, synth_store, levels=3, edges=edges)
    train = read(out, "train")
    expected = ref["impressions"][ref["impressions"].ts < ref["boundary"]]
    np.testing.assert_array_equal(train.sim_level.to_numpy(), expected.level.to_numpy())
    # Reusing a manifest as the edges file reproduces the run.
    again = label_intents(synth_world, synth_store, tmp_path / "again", bin_edges=synth_labels / "manifest.json",
                          show_progress_bar=False, **SYNTH_SPLIT)
    assert read(again, "test").equals(read(synth_labels, "test"))
    with pytest.raises(ValueError, match="define 3 levels but levels=6"):
        label_intents(synth_world, synth_store, tmp_path / "bad", bin_edges=edges, show_progress_bar=False)


@pytest.mark.slow
def test_tiny_world_has_no_leakage(tiny_labels, tiny_world):
    check_no_leakage(tiny_labels, tiny_world)
    check_test_uses_train_edges(tiny_labels)
