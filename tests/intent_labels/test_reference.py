"""End to end against the brute-force reference (conftest.reference_labels): edges, similarities,
levels, intents, histories and both subsequences, row by row, on the synthetic and the tiny world."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from .conftest import SYNTH_SPLIT

LIST_FIELDS = {"hist": ("hist_item_ids", "hist_ts", "hist_dt_min", "hist_action"),
               "mm": ("mm_subseq_item_ids", "mm_subseq_ts", "mm_subseq_dt_min", None),
               "cat": ("cat_subseq_item_ids", "cat_subseq_ts", "cat_subseq_dt_min", None)}


def read_split(out: Path, split: str) -> pa.Table:
    path = out / f"{split}.parquet" if (out / f"{split}.parquet").exists() else out / split
    return pq.read_table(path)


def assert_matches_reference(out: Path, ref: dict) -> None:
    manifest = json.loads((out / "manifest.json").read_text())
    assert ref["near_edge"] == [], "fixture has similarities on a bin edge; change its seed"
    np.testing.assert_allclose(manifest["bin_edges"], ref["edges"], rtol=0, atol=1e-6)
    assert manifest["split"]["boundary_ts"] == ref["boundary"]

    train, test = read_split(out, "train").to_pandas(), read_split(out, "test").to_pandas()
    imp = ref["impressions"]
    assert len(train) + len(test) == len(imp)
    assert (train.ts < ref["boundary"]).all() and (test.ts >= ref["boundary"]).all()
    # Input order is kept within each split.
    for part, mask in ((train, imp.ts < ref["boundary"]), (test, imp.ts >= ref["boundary"])):
        expected = imp[mask]
        np.testing.assert_array_equal(part.request_id.to_numpy(), expected.request_id.to_numpy())
        np.testing.assert_array_equal(part.item_id.to_numpy(), expected.item_id.to_numpy())
        np.testing.assert_allclose(part.trigger_target_sim.to_numpy(), expected.sim.to_numpy(), atol=1e-5)
        np.testing.assert_array_equal(part.sim_level.to_numpy(), expected.level.to_numpy())

    for part in (train, test):
        for row in part.itertuples(index=False):
            r = ref["requests"][row.request_id]
            np.testing.assert_allclose(np.asarray(row.intent), r["intent"], atol=1e-6)
            assert row.has_intent == r["has_intent"]
            for key, names in LIST_FIELDS.items():
                for k, name in enumerate(names):
                    if name is not None:
                        assert list(getattr(row, name)) == [e[k] for e in r[key]], (name, row.request_id)


def test_synthetic_world_matches_reference(synth_labels, synth_world, synth_store, reference):
    assert_matches_reference(synth_labels, reference(synth_world, synth_store))


def test_synthetic_world_exercises_the_edge_cases(synth_labels, reference, synth_world, synth_store):
    ref = reference(synth_world, synth_store)
    reqs = ref["requests"].values()
    assert any(not r["has_intent"] for r in reqs) and any(r["has_intent"] for r in reqs)
    assert any(len(r["hist"]) == 0 for r in reqs) and any(len(r["cat"]) > 0 for r in reqs)
    assert any(0 < len(r["mm"]) < len(r["hist"]) for r in reqs)
    assert any(e[2] == 0 for r in reqs for e in r["hist"])  # a behaviour 1 s before the request
    assert any(e[2] == 14 * 24 * 60 for r in reqs for e in r["hist"])  # one exactly 14 days before


def test_small_caps_and_other_levels_match_reference(tmp_path, synth_world, synth_store, reference):
    from intent_labels import label_intents

    out = label_intents(synth_world, synth_store, tmp_path / "out", levels=4, subseq_level=1, max_hist=5,
                        max_subseq=3, hist_days=3, train_days=5, batch_rows=13, show_progress_bar=False,
                        **SYNTH_SPLIT)
    assert_matches_reference(out, reference(synth_world, synth_store, levels=4, subseq_level=1, max_hist=5,
                                            max_subseq=3, hist_days=3, train_days=5))


@pytest.mark.slow
def test_tiny_world_matches_reference(tiny_labels, tiny_world, tiny_text_store, reference):
    assert_matches_reference(tiny_labels, reference(tiny_world, tiny_text_store))
