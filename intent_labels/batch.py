"""The two pure functions over Arrow record batches that both engines (in-process, Ray) run.

`scan_batch` (pass 1) checks one batch of impressions and returns small summaries: the request runs
(to build the request table and check that a request keeps one user, time and trigger), per-day
min/max of the trigger-target similarity (to fit the bin edges on the training days), the clicked
targets' similarities (to build the intent distributions) and the rows whose item or trigger is
absent from the store.

`label_batch` (pass 2) turns one batch into labelled samples given a `LabelContext` (bin edges,
request intents, the sorted behaviour log, the store). Histories depend only on (user, ts), so they
are computed once per request in the batch and broadcast to its impressions.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from common.contract import FILES, validate_table
from retrieval.store import EmbeddingStore

from .binning import SKETCH_BINS, similarity_sketch
from .derived import leave_one_out
from .history import (DAY_S, NO_CATEGORY_TRIGGER, BehaviourLog, ItemCatalog, histories,
                      store_rows, subsequences)
from .labelled import LABEL_FIELDS, label_fields, similarity_level
from .ragged import take_segments
from .similarity import pair_similarity_fast

REASONS = ("item_not_in_store", "trigger_not_in_store", "item_and_trigger_not_in_store")
SHOW_IDS = 10  # how many ids an error names


def _np(table: pa.Table | pa.RecordBatch, name: str) -> np.ndarray:
    return table.column(name).to_numpy()


def _as_table(batch: pa.Table | pa.RecordBatch) -> pa.Table:
    return pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch


# ---------------------------------------------------------------------------------------------
# Pass 1: scan
# ---------------------------------------------------------------------------------------------

RUNS_SCHEMA = pa.schema([("request_id", pa.int64()), ("user_id", pa.int64()), ("ts", pa.int64()),
                         ("trigger_item_id", pa.int64()), ("first_row", pa.int64()),
                         ("n_rows", pa.int64())])
DAYS_SCHEMA = pa.schema([("day", pa.int64()), ("sim_min", pa.float32()), ("sim_max", pa.float32()),
                         ("n_rows", pa.int64()), ("sketch", pa.list_(pa.int64()))])
CLICKS_SCHEMA = pa.schema([("request_id", pa.int64()), ("sim", pa.float32())])


def scan_batch(batch: pa.Table | pa.RecordBatch, store: EmbeddingStore, *, source: str = FILES["impressions"],
               row_offset: int = 0, keep_rejects: bool = True, any_ts: bool = False) -> dict[str, pa.Table]:
    """Validate one batch of impressions and summarise it (see the module docstring).

    Returns tables "runs", "days", "clicks", "rejects" (the rejected rows with a `reason`; only the
    first SHOW_IDS of them unless `keep_rejects`) and "reject_counts" (reason, n_rows).
    `row_offset` is the batch's first row in the file, so that errors name absolute rows; `any_ts`
    is the contract's (any unix seconds in [0, 1e11), not only the plausible range).
    """
    table = _as_table(batch)
    validate_table(table, "impressions", source=source, row_offset=row_offset, any_ts=any_ts)
    rid, user, ts = _np(table, "request_id"), _np(table, "user_id"), _np(table, "ts")
    trig, item, clicked = _np(table, "trigger_item_id"), _np(table, "item_id"), _np(table, "clicked")
    runs = _request_runs(rid, user, ts, trig, source, row_offset)
    _check_duplicates_in_batch(rid, item, source, row_offset)

    item_rows, trig_rows = store_rows(store, item), store_rows(store, trig)
    item_ok, trig_ok = item_rows >= 0, trig_rows >= 0
    valid = item_ok & trig_ok
    reason = np.where(~item_ok & ~trig_ok, 2, np.where(~trig_ok, 1, 0))
    bad = np.flatnonzero(~valid)
    counts = np.bincount(reason[bad], minlength=len(REASONS))
    shown = bad if keep_rejects else bad[:SHOW_IDS]
    rejects = table.take(pa.array(shown, pa.int64())).append_column(
        "reason", pa.array(np.asarray(REASONS, dtype=object)[reason[shown]], pa.string()))
    sims = np.zeros(table.num_rows, np.float32)
    if valid.any():
        sims[valid] = pair_similarity_fast(store.vectors, trig_rows[valid], item_rows[valid])
    return {
        "runs": runs,
        "days": _day_ranges(ts[valid] // DAY_S, sims[valid]),
        "clicks": pa.table({"request_id": rid[valid & (clicked == 1)],
                            "sim": sims[valid & (clicked == 1)]}, schema=CLICKS_SCHEMA),
        "rejects": rejects,
        "reject_counts": pa.table({"reason": list(REASONS), "n_rows": counts.astype(np.int64)}),
    }


def _request_runs(rid, user, ts, trig, source: str, row_offset: int) -> pa.Table:
    """One row per run of equal request_id; a request must keep its user, time and trigger."""
    starts = np.flatnonzero(np.r_[True, rid[1:] != rid[:-1]]) if rid.size else np.zeros(0, np.int64)
    run_of_row = np.cumsum(np.r_[False, rid[1:] != rid[:-1]]) if rid.size else np.zeros(0, np.int64)
    for name, col in (("user_id", user), ("ts", ts), ("trigger_item_id", trig)):
        differs = np.flatnonzero(col != col[starts][run_of_row])
        if differs.size:
            r = differs[0]
            first = starts[run_of_row[r]]
            raise ValueError(
                f"{source}: column '{name}': request_id {rid[r]} has rows with different values "
                f"({col[first]} at row {first + row_offset}, {col[r]} at row {r + row_offset}); "
                f"{differs.size} row(s) disagree with their request's first row")
    n_rows = np.diff(np.r_[starts, rid.size])
    return pa.table({"request_id": rid[starts], "user_id": user[starts], "ts": ts[starts],
                     "trigger_item_id": trig[starts], "first_row": starts + row_offset,
                     "n_rows": n_rows.astype(np.int64)}, schema=RUNS_SCHEMA)


def _check_duplicates_in_batch(rid: np.ndarray, item: np.ndarray, source: str, row_offset: int) -> None:
    order = np.lexsort((item, rid))
    same = (rid[order][1:] == rid[order][:-1]) & (item[order][1:] == item[order][:-1])
    if same.any():
        dup_rows = np.sort(order[1:][same])
        r = dup_rows[0]
        raise ValueError(
            f"{source}: {dup_rows.size} duplicate (request_id, item_id) row(s); first at row "
            f"{r + row_offset} (request_id {rid[r]}, item_id {item[r]})")


def _day_ranges(day: np.ndarray, sims: np.ndarray) -> pa.Table:
    """Per UTC day: min, max, count and histogram sketch of the trigger-target similarities."""
    days, inv = np.unique(day, return_inverse=True)
    lo = np.full(days.size, np.inf, np.float32)
    hi = np.full(days.size, -np.inf, np.float32)
    np.minimum.at(lo, inv, sims)
    np.maximum.at(hi, inv, sims)
    sketch = np.zeros((days.size, SKETCH_BINS), np.int64)
    for k in range(days.size):  # a loop over days, not rows
        sketch[k] = similarity_sketch(sims[inv == k])
    return _days_table(days, lo, hi, np.bincount(inv, minlength=days.size), sketch)


def _days_table(days, lo, hi, n_rows, sketch) -> pa.Table:
    flat = pa.array(sketch.ravel(), pa.int64())
    offsets = pa.array(np.arange(days.size + 1, dtype=np.int32) * SKETCH_BINS)
    return pa.table({"day": days.astype(np.int64), "sim_min": lo.astype(np.float32),
                     "sim_max": hi.astype(np.float32), "n_rows": np.asarray(n_rows, np.int64),
                     "sketch": pa.ListArray.from_arrays(offsets, flat)}, schema=DAYS_SCHEMA)


def merge_days(days: pa.Table) -> pa.Table:
    """One row per day: min of minima, max of maxima, summed counts and sketches."""
    day = days.column("day").to_numpy()
    uniq, inv = np.unique(day, return_inverse=True)
    lo = np.full(uniq.size, np.inf, np.float32)
    hi = np.full(uniq.size, -np.inf, np.float32)
    np.minimum.at(lo, inv, days.column("sim_min").to_numpy())
    np.maximum.at(hi, inv, days.column("sim_max").to_numpy())
    sketch = np.zeros((uniq.size, SKETCH_BINS), np.int64)
    np.add.at(sketch, inv, days.column("sketch").combine_chunks().flatten().to_numpy().reshape(-1, SKETCH_BINS))
    return _days_table(uniq, lo, hi, np.bincount(inv, weights=days.column("n_rows").to_numpy(),
                                                 minlength=uniq.size), sketch)


def merge_scans(parts: list[dict[str, pa.Table]]) -> dict[str, pa.Table]:
    """Concatenate the per-batch summaries of `scan_batch` (the per-day rows merged by day)."""
    names = ("runs", "days", "clicks", "rejects", "reject_counts")
    if not parts:
        return {}
    merged = {n: pa.concat_tables([p[n] for p in parts]) for n in names}
    merged["days"] = merge_days(merged["days"])
    return merged


# ---------------------------------------------------------------------------------------------
# Pass 2: label
# ---------------------------------------------------------------------------------------------

@dataclass
class LabelContext:
    """What `label_batch` needs besides the batch; built once by the engine."""

    store: EmbeddingStore
    log: BehaviourLog
    catalog: ItemCatalog
    edges: np.ndarray  # (n+1,) float64
    request_ids: np.ndarray  # (R,) int64 sorted
    intent: np.ndarray  # (R, n) float32
    has_intent: np.ndarray  # (R,) bool
    boundary_ts: int  # requests with ts < boundary_ts are training
    subseq_level: int
    max_hist: int
    hist_days: float
    max_subseq: int
    n_clicks: np.ndarray | None = None  # (R,) clicks per request (C of the leave-one-out intent); None: 0
    past_intent: np.ndarray | None = None  # (R, n) float32 mean p of the user's earlier train requests
    past_count: np.ndarray | None = None  # (R,) float32 how many such requests

    @property
    def levels(self) -> int:
        return int(self.edges.size - 1)


_TYPES = dict(LABEL_FIELDS)
# (output column, ragged source, value name, Arrow value type from the labelled folder's schema)
LIST_COLUMNS = tuple((name, source, value, _TYPES[name].value_type) for name, source, value in (
    ("hist_item_ids", "hist", "item_ids"), ("hist_ts", "hist", "ts"), ("hist_dt_min", "hist", "dt_min"),
    ("hist_action", "hist", "action"),
    ("mm_subseq_item_ids", "mm", "item_ids"), ("mm_subseq_ts", "mm", "ts"), ("mm_subseq_dt_min", "mm", "dt_min"),
    ("cat_subseq_item_ids", "cat", "item_ids"), ("cat_subseq_ts", "cat", "ts"),
    ("cat_subseq_dt_min", "cat", "dt_min"),
))


def output_schema(impressions: pa.Schema) -> pa.Schema:
    return pa.schema(list(impressions) + label_fields())


def parquet_options(schema: pa.Schema) -> dict:
    """Writer settings: LZ4, dictionaries and statistics for the scalar columns only.

    The list columns hold most of the bytes; dictionary-encoding them and keeping their min/max
    statistics doubles the write time for nothing a reader uses.
    """
    scalars = [f.name for f in schema if not pa.types.is_list(f.type)]
    return {"compression": "lz4", "use_dictionary": scalars, "write_statistics": scalars}


def _fixed_lists(values: np.ndarray) -> pa.ListArray:
    """(N, n) -> a list<float32> column of N lists of n values."""
    n, width = values.shape
    return pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32) * width),
                                    pa.array(values.astype(np.float32).ravel(), pa.float32()))


def _derived_columns(table: pa.Table, ctx: LabelContext, ridx: np.ndarray, sims: np.ndarray) -> dict:
    """The leave-one-out intent and the past intent of each row (`intent_labels.derived`), from the
    request table: a request's clicks are counted over the whole request, wherever its rows are."""
    n, levels = table.num_rows, ctx.levels
    total = ctx.n_clicks[ridx] if ctx.n_clicks is not None else np.zeros(n, np.int64)
    loo, has_loo = leave_one_out(total, _np(table, "clicked"), ctx.intent[ridx], ctx.has_intent[ridx],
                                 sims, ctx.edges)
    past = ctx.past_intent[ridx] if ctx.past_intent is not None else np.zeros((n, levels), np.float32)
    count = ctx.past_count[ridx] if ctx.past_count is not None else np.zeros(n, np.float32)
    return {"intent_loo": _fixed_lists(loo), "has_intent_loo": pa.array(has_loo, pa.bool_()),
            "past_intent": _fixed_lists(past), "past_count": pa.array(count, pa.float32())}


def label_batch(batch: pa.Table | pa.RecordBatch, ctx: LabelContext, split: str | None = None) -> pa.Table:
    """Labelled samples for the rows of `batch` whose item and trigger are in the store.

    `split` "train" / "test" keeps only that split's rows (by the request time); None keeps all.
    """
    table = _as_table(batch)
    ts = _np(table, "ts")
    item_rows = store_rows(ctx.store, _np(table, "item_id"))
    trig_rows = store_rows(ctx.store, _np(table, "trigger_item_id"))
    keep = (item_rows >= 0) & (trig_rows >= 0)
    if split == "train":
        keep &= ts < ctx.boundary_ts
    elif split == "test":
        keep &= ts >= ctx.boundary_ts
    elif split is not None:
        raise ValueError(f"split must be 'train', 'test' or None, got {split!r}")
    if not keep.all():
        table = table.filter(pa.array(keep))
        item_rows, trig_rows = item_rows[keep], trig_rows[keep]
    n = table.num_rows
    rid, user, ts = _np(table, "request_id"), _np(table, "user_id"), _np(table, "ts")
    sims = pair_similarity_fast(ctx.store.vectors, trig_rows, item_rows)

    # Per request: intent from pass 1; history and subsequences from (user, ts, trigger).
    ridx = np.searchsorted(ctx.request_ids, rid)
    if n and (ridx.max() >= ctx.request_ids.size or (ctx.request_ids[ridx] != rid).any()):
        raise ValueError("label_batch: a request_id is absent from the request table of pass 1")
    first, inv = np.unique(rid, return_index=True, return_inverse=True)[1:]
    lo, hi = ctx.log.windows(user[first], ts[first], ctx.hist_days)
    trig_cat = ctx.catalog.category_of(_np(table, "trigger_item_id")[first], missing=NO_CATEGORY_TRIGGER)
    ragged = {"hist": histories(ctx.log, lo, hi, ts[first], ctx.max_hist)}
    ragged["mm"], ragged["cat"] = subsequences(
        ctx.log, lo, hi, ts[first], trig_rows[first], trig_cat, ctx.store.vectors, ctx.edges,
        ctx.subseq_level, ctx.max_subseq)

    columns = {"intent": _fixed_lists(ctx.intent[ridx]), "has_intent": pa.array(ctx.has_intent[ridx], pa.bool_()),
               "trigger_target_sim": pa.array(sims, pa.float32()),
               "sim_level": pa.array(similarity_level(sims, ctx.edges).astype(np.int8), pa.int8())}
    columns |= _derived_columns(table, ctx, ridx, sims)
    gathered = {key: take_segments(r.offsets, inv) for key, r in ragged.items()}
    for name, source, value, arrow_type in LIST_COLUMNS:
        offsets, index = gathered[source]
        columns[name] = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)),
                                                 pa.array(ragged[source].values[value][index], arrow_type))
    for f in label_fields():
        table = table.append_column(f, columns[f.name])
    return table
