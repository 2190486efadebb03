"""The streaming data path against the in-memory one: every row once per epoch, the same features
for the same rows, shards that do not depend on the process count, file:// URIs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from daian.data import load_data
from daian.data.stream_loading import load_streaming, split_source
from daian.data.streaming import deal, plan_epoch, split_sizes


@pytest.fixture(scope="module")
def both(small_groups, tiny_text_store, tiny_world):
    kwargs = dict(max_hist=20, max_subseq=8)
    return (load_data(small_groups, tiny_text_store, tiny_world, **kwargs),
            load_streaming(small_groups, tiny_text_store, tiny_world, **kwargs))


def test_plan_deals_every_group_once_and_sizes_cover_every_row():
    from daian.data.streaming import RowGroup

    groups = [RowGroup(0, i, r) for i, r in enumerate([500, 500, 130, 500, 499, 7, 500])]
    dealt = deal(groups, 3)
    assert sorted(g.index for d in dealt for g in d) == list(range(7))
    loads = [sum(g.rows for g in d) for d in dealt]
    assert max(loads) - min(loads) <= 500
    sizes = split_sizes(1001, 4)
    assert sizes.tolist() == [251, 250, 250, 250]
    plan = plan_epoch(groups, seed=3, epoch=1, shards=3, batch_size=256, buffer_rows=900)
    assert plan.steps == -(-sum(g.rows for g in groups) // 256)
    assert plan.sizes.sum(axis=1).tolist() == [sum(g.rows for g in d) for d in plan.shard_groups]
    assert (plan.sizes >= 1).all() and plan.sizes.sum(axis=0).max() <= 256 + 3


def test_same_catalogue_vocabularies_and_summary(both):
    mem, stream = both
    assert mem.vocabs.to_json() == stream.vocabs.to_json()
    assert stream.train_rows == len(mem.train) and stream.base_rate == pytest.approx(mem.base_rate)
    for key in ("rows", "test_unknown_target_share", "test_unknown_user_share"):
        assert stream.summary[key] == pytest.approx(mem.summary[key])
    assert len(stream.sources["train"].files) == 3 and len(stream.sources["train"].groups) >= 18


def test_every_row_once_per_epoch_with_the_in_memory_features(both):
    mem, stream = both
    loader = stream.train_loader(batch_size=256, seed=5, rank=0, world_size=1, buffer_rows=1200)
    seen = []
    for epoch in (0, 1):
        loader.set_epoch(epoch)
        rows_of_epoch = []
        for rows, (features, targets) in loader.batches():
            rows_of_epoch.append(rows)
            ref_f, ref_t = mem.train[rows]
            for key in ref_f:
                torch.testing.assert_close(features[key], ref_f[key], rtol=0, atol=0, msg=key)
            for key in ref_t:
                torch.testing.assert_close(targets[key], ref_t[key], rtol=0, atol=0, msg=key)
        order = torch.cat(rows_of_epoch)
        assert sorted(order.tolist()) == list(range(len(mem.train)))  # nothing lost, nothing twice
        assert len(rows_of_epoch) == len(loader)
        seen.append(order)
    assert not torch.equal(seen[0], seen[1])  # a new order each epoch
    # shuffled beyond a window: the first batch draws from the whole first window of row groups
    assert seen[0][:256].max() - seen[0][:256].min() > 500


def test_two_processes_see_the_global_batches_of_one(both):
    _, stream = both
    kwargs = dict(batch_size=300, seed=2, shards=2, buffer_rows=1000)
    one = stream.train_loader(rank=0, world_size=1, **kwargs)
    ranks = [stream.train_loader(rank=r, world_size=2, **kwargs) for r in (0, 1)]
    for loader in (one, *ranks):
        loader.set_epoch(3)
    global_batches = [rows for rows, _ in one.batches()]
    per_rank = [[rows for rows, _ in r.batches()] for r in ranks]
    assert len(per_rank[0]) == len(per_rank[1]) == len(global_batches)
    for k, rows in enumerate(global_batches):
        assert torch.equal(torch.cat([per_rank[0][k], per_rank[1][k]]), rows)
        assert len(per_rank[0][k]) and len(per_rank[1][k])
    with pytest.raises(ValueError, match="multiple of the process count"):
        stream.train_loader(rank=0, world_size=2, batch_size=300, seed=2, shards=3)


def test_resume_at_a_step_continues_the_same_order(both):
    _, stream = both
    loader = stream.train_loader(batch_size=256, seed=1, rank=0, world_size=1, buffer_rows=1200)
    loader.set_epoch(2)
    full = [rows for rows, _ in loader.batches()]
    loader.set_epoch(2, start_step=13)
    assert all(torch.equal(a, b) for a, b in zip(full[13:], [rows for rows, _ in loader.batches()], strict=True))


def test_file_uri_reads_the_same_folder(small_groups, tiny_text_store, tiny_world, both):
    mem, stream = both
    uri = small_groups.resolve().as_uri()
    assert uri.startswith("file://")
    via_uri = load_streaming(uri, tiny_text_store, tiny_world, max_hist=20, max_subseq=8)
    assert via_uri.train_rows == stream.train_rows and via_uri.vocabs.to_json() == stream.vocabs.to_json()
    test = next(via_uri.test_windows())
    ref = mem.test.columns
    n = len(test)
    for key in ("label", "intent_loo", "past_intent", "target_row"):
        torch.testing.assert_close(test.columns[key], ref[key][:n], rtol=0, atol=0)
    mem_uri = load_data(uri, tiny_text_store, tiny_world, max_hist=20, max_subseq=8)
    assert len(mem_uri.train) == len(mem.train)


def test_a_folder_without_the_derived_columns_is_refused_naming_them(small_groups, tmp_path):
    import shutil

    import pyarrow.parquet as pq

    from intent_labels.labelled import LabelledFolder

    old = tmp_path / "old"
    shutil.copytree(small_groups, old)
    table = pq.read_table(old / "test.parquet").drop_columns(["past_intent"])
    pq.write_table(table, old / "test.parquet")
    with pytest.raises(ValueError, match=r"test.parquet: missing column\(s\) \['past_intent'\].*label again"):
        split_source(LabelledFolder.open(old), "test")
    assert np.all(np.isin(["past_count"], table.column_names))
