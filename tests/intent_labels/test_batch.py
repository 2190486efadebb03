"""The per-batch functions on their own: empty batches, a batch filtered to nothing, bad split names."""
from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from intent_labels.batch import LabelContext, label_batch, scan_batch
from intent_labels.labelled import label_fields
from intent_labels.history import BehaviourLog, ItemCatalog
from retrieval.store import EmbeddingStore


@pytest.fixture(scope="module")
def ctx(synth_world, synth_store):
    store = EmbeddingStore.load(synth_store)
    catalog = ItemCatalog.from_table(pq.read_table(synth_world / "items.parquet"))
    log = BehaviourLog.build(pq.read_table(synth_world / "behaviors.parquet"), catalog, store)
    rids = np.unique(pq.read_table(synth_world / "impressions.parquet").column("request_id").to_numpy())
    return LabelContext(store=store, log=log, catalog=catalog, edges=np.linspace(-1, 1, 7), request_ids=rids,
                        intent=np.zeros((rids.size, 6), np.float32), has_intent=np.zeros(rids.size, bool),
                        boundary_ts=0, subseq_level=3, max_hist=50, hist_days=14, max_subseq=20)


def test_empty_and_fully_filtered_batches_keep_the_schema(ctx, synth_world):
    imp = pq.read_table(synth_world / "impressions.parquet")
    expected = pa.schema(list(imp.schema) + label_fields())
    for batch, split in ((imp.slice(0, 0), None), (imp.slice(0, 20), "train")):  # boundary 0: no train rows
        out = label_batch(batch, ctx, split=split)
        assert out.num_rows == 0 and out.schema == expected
    full = label_batch(imp.slice(0, 20), ctx, split="test")
    assert full.num_rows == 20 and full.schema == expected
    with pytest.raises(ValueError, match="split must be"):
        label_batch(imp.slice(0, 5), ctx, split="valid")


def test_rows_missing_from_the_store_are_left_out(ctx, synth_world):
    imp = pq.read_table(synth_world / "impressions.parquet").slice(0, 30)
    gone = imp.column("item_id")[4].as_py()
    keep = ctx.store.item_ids != gone
    store = EmbeddingStore(np.asarray(ctx.store.vectors)[keep], ctx.store.item_ids[keep])
    log = BehaviourLog.build(pq.read_table(synth_world / "behaviors.parquet"), ctx.catalog, store)
    out = label_batch(imp, dataclasses.replace(ctx, store=store, log=log))  # the log's rows follow its store
    assert out.num_rows == 30 - imp.column("item_id").to_pylist().count(gone)
    assert gone not in out.column("item_id").to_pylist()
    scan = scan_batch(imp, store)
    assert scan["rejects"].column("item_id").to_pylist() == [gone] * (30 - out.num_rows)
    assert scan["reject_counts"].column("n_rows").to_pylist()[0] == 30 - out.num_rows


def test_scan_of_an_empty_batch(synth_world, synth_store):
    imp = pq.read_table(synth_world / "impressions.parquet").slice(0, 0)
    scan = scan_batch(imp, EmbeddingStore.load(synth_store))
    assert all(t.num_rows == 0 for k, t in scan.items() if k != "reject_counts")
