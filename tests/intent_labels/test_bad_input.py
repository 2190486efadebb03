"""Bad input: rows missing from the store (fail / drop with row accounting), malformed times, pages
below 1, duplicate (request, item) rows, requests that change user or time, bad settings."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from intent_labels import label_intents
from intent_labels.config import LabelConfig
from common.contract import ContractError

from .conftest import SYNTH_SPLIT, write_store


def copy_world(src, dst, impressions: pa.Table | None = None, behaviors: pa.Table | None = None,
               row_group_size: int = 64):
    shutil.copytree(src, dst)
    if impressions is not None:
        pq.write_table(impressions, dst / "impressions.parquet", row_group_size=row_group_size)
    if behaviors is not None:
        pq.write_table(behaviors, dst / "behaviors.parquet")
    return dst


def impressions(world) -> pa.Table:
    return pq.read_table(world / "impressions.parquet")


def with_column(table: pa.Table, name: str, values) -> pa.Table:
    i = table.schema.get_field_index(name)
    return table.set_column(i, table.schema.field(i), pa.array(values, table.schema.field(i).type))


@pytest.fixture(scope="module")
def holey_store(tmp_path_factory, synth_world):
    """A store lacking one target-only item and one item used as a trigger."""
    imp = impressions(synth_world)
    triggers = set(imp.column("trigger_item_id").to_pylist())
    items = pq.read_table(synth_world / "items.parquet").column("item_id").to_numpy()
    target_only = next(i for i in imp.column("item_id").to_pylist() if i not in triggers)
    trigger = imp.column("trigger_item_id")[0].as_py()
    keep = items[~np.isin(items, [target_only, trigger])]
    store = write_store(tmp_path_factory.mktemp("holey") / "store", keep)
    return store, target_only, trigger


def test_missing_items_fail_by_default_with_count_and_ids(tmp_path, synth_world, holey_store):
    store, target_only, trigger = holey_store
    imp = impressions(synth_world)
    missing = pc.or_(pc.is_in(imp.column("item_id"), pa.array([target_only, trigger])),
                     pc.equal(imp.column("trigger_item_id"), trigger))
    n_missing = pc.sum(missing).as_py()
    with pytest.raises(ValueError, match=f"^{n_missing} impression row") as err:
        label_intents(synth_world, store, tmp_path / "out", show_progress_bar=False)
    assert str(target_only) in str(err.value) and str(trigger) in str(err.value)


def test_drop_writes_rejects_and_accounts_for_every_row(tmp_path, synth_world, holey_store, reference):
    store, target_only, trigger = holey_store
    out = label_intents(synth_world, store, tmp_path / "out", on_missing="drop", batch_rows=40,
                        show_progress_bar=False, **SYNTH_SPLIT)
    imp = impressions(synth_world).to_pandas()
    item_bad = imp.item_id.isin([target_only, trigger])
    trig_bad = imp.trigger_item_id == trigger
    rejects = pq.read_table(out / "rejects.parquet").to_pandas()
    expected = imp[item_bad | trig_bad]
    assert rejects[["request_id", "item_id"]].values.tolist() == expected[["request_id", "item_id"]].values.tolist()
    reasons = np.where(item_bad & trig_bad, "item_and_trigger_not_in_store",
                       np.where(trig_bad, "trigger_not_in_store", "item_not_in_store"))[item_bad | trig_bad]
    assert rejects.reason.tolist() == reasons.tolist()

    manifest = json.loads((out / "manifest.json").read_text())
    counts = manifest["counts"]
    assert counts["rows_in"] == len(imp)
    assert counts["rows_rejected"] == len(rejects) == sum(manifest["rejects"]["by_reason"].values())
    n_train = pq.read_metadata(out / "train.parquet").num_rows
    n_test = pq.read_metadata(out / "test.parquet").num_rows
    assert counts["rows_in"] == n_train + n_test + counts["rows_rejected"]
    assert counts["train"]["rows"] == n_train and counts["test"]["rows"] == n_test

    # What was kept is labelled exactly as the kept rows alone would be.
    from .test_reference import assert_matches_reference

    kept = copy_world(synth_world, tmp_path / "kept", pa.Table.from_pandas(
        imp[~(item_bad | trig_bad)], schema=impressions(synth_world).schema, preserve_index=False))
    ref = reference(kept, store)
    ref["boundary"] = manifest["split"]["boundary_ts"]  # the split starts at the first request, rejected or not
    assert_matches_reference(out, ref)


@pytest.mark.parametrize("column, values, match", [
    ("ts", lambda t: t * 1000, "ts must be unix seconds"),
    ("ts", lambda t: -t, "ts must be unix seconds"),
    ("page", lambda p: np.where(np.arange(p.size) == 7, 0, p), "page must be >= 1"),
    ("clicked", lambda c: np.where(np.arange(c.size) == 3, 2, c), "clicked must be 0 or 1"),
])
def test_malformed_impressions_raise_contract_errors(tmp_path, synth_world, synth_store, column, values, match):
    imp = impressions(synth_world)
    bad = with_column(imp, column, values(imp.column(column).to_numpy()))
    world = copy_world(synth_world, tmp_path / "w", bad)
    with pytest.raises(ContractError, match=match) as err:
        label_intents(world, synth_store, tmp_path / "out", batch_rows=50, show_progress_bar=False)
    assert "impressions.parquet" in str(err.value) and column in str(err.value)


def test_null_time_and_wrong_type_raise(tmp_path, synth_world, synth_store):
    imp = impressions(synth_world)
    ts = imp.column("ts").to_pylist()
    ts[5] = None
    world = copy_world(synth_world, tmp_path / "nulls", with_column(imp, "ts", ts))
    with pytest.raises(ContractError, match="'ts': 1 row\\(s\\) are null; first row\\(s\\) \\[5\\]"):
        label_intents(world, synth_store, tmp_path / "o1", show_progress_bar=False)
    i = imp.schema.get_field_index("page")
    world = copy_world(synth_world, tmp_path / "types",
                       imp.set_column(i, "page", pc.cast(imp.column("page"), pa.int64())))
    with pytest.raises(ContractError, match="'page' has type int64"):
        label_intents(world, synth_store, tmp_path / "o2", show_progress_bar=False)


def test_malformed_behaviour_times_raise(tmp_path, synth_world, synth_store):
    beh = pq.read_table(synth_world / "behaviors.parquet")
    world = copy_world(synth_world, tmp_path / "w", behaviors=with_column(beh, "ts", beh.column("ts").to_numpy() * 1000))
    with pytest.raises(ContractError, match="behaviors.parquet: column 'ts'"):
        label_intents(world, synth_store, tmp_path / "out", show_progress_bar=False)


@pytest.mark.parametrize("batch_rows", [10_000, 16])
def test_duplicate_request_item_rows_raise(tmp_path, synth_world, synth_store, batch_rows):
    imp = impressions(synth_world)
    # Repeat row 2 at the end: in one batch, or (small batches) in a later, non-contiguous batch.
    dup = pa.concat_tables([imp, imp.slice(2, 1)])
    world = copy_world(synth_world, tmp_path / "w", dup)
    rid, item = imp.column("request_id")[2].as_py(), imp.column("item_id")[2].as_py()
    with pytest.raises(ValueError, match=f"duplicate \\(request_id, item_id\\).*request_id {rid}, item_id {item}"):
        label_intents(world, synth_store, tmp_path / "out", batch_rows=batch_rows, show_progress_bar=False,
                      **SYNTH_SPLIT)


@pytest.mark.parametrize("batch_rows", [10_000, 16])
def test_a_request_must_keep_its_user_time_and_trigger(tmp_path, synth_world, synth_store, batch_rows):
    imp = impressions(synth_world)
    moved = imp.slice(3, 1)
    moved = with_column(moved, "item_id", [10**9])  # no duplicate, but another user for the same request
    other = next(u for u in imp.column("user_id").to_pylist() if u != moved.column("user_id")[0].as_py())
    moved = with_column(moved, "user_id", [other])  # a known user, not the request's
    world = copy_world(synth_world, tmp_path / "w", pa.concat_tables([imp, moved]))
    with pytest.raises(ValueError, match="column 'user_id': request_id"):
        label_intents(world, synth_store, tmp_path / "out", batch_rows=batch_rows, show_progress_bar=False,
                      on_missing="drop", **SYNTH_SPLIT)


@pytest.mark.parametrize("kwargs, match", [
    ({"levels": 0}, "levels must be a positive integer"), ({"subseq_level": 6}, "subseq_level must be in"),
    ({"on_missing": "skip"}, "on_missing must be one of"), ({"engine": "spark"}, "engine must be one of"),
    ({"hist_days": 0}, "hist_days must be > 0"), ({"max_hist": 2.5}, "max_hist must be a positive integer"),
])
def test_bad_settings_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LabelConfig(data="d", store="s", out="o", **kwargs)
