"""The Ray Data engine: the same pure batch functions, run as `read_parquet -> map_batches -> write`.

Pass 1 maps `scan_batch` over the impression shards; each batch returns its small summaries as one
row of Arrow IPC blobs, gathered on the driver. Pass 2 maps `label_batch` once per split and writes
OUT/train.parquet/ and OUT/test.parquet/ as folders of Parquet parts (`intent_labels.labelled`).
The label context (edges, request table, sorted behaviour log) goes to the object store once;
workers open the embedding store from its path (memory-mapped), so the store and the data must sit
on storage every node can read.

Ray is an optional dependency (`pip install "daian-toolkit[ray]"`). Ray Data starts a local Ray
when none is running, or joins the cluster named by RAY_ADDRESS (see docs/labels.md).
"""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from common.cli import MissingDependency
from common.contract import open_parquet
from retrieval.store import EmbeddingStore

from .batch import LabelContext, label_batch, merge_scans, output_schema, parquet_options, scan_batch
from .labelled import REJECTS, SPLITS, split_file

_STORES: dict[str, EmbeddingStore] = {}  # per worker process: the store opened once per path


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise MissingDependency("engine='ray' needs Ray Data: pip install 'ray[data]' "
                          "(or the project's extra: pip install '.[ray]')") from exc
    return ray


def _store(path: str) -> EmbeddingStore:
    if path not in _STORES:
        _STORES[path] = EmbeddingStore.load(path)
    return _STORES[path]


def _to_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _from_bytes(blob: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(blob)).read_all()


def _scan_fn(batch: pa.Table, store_path: str, keep_rejects: bool, any_ts: bool) -> pa.Table:
    part = scan_batch(batch, _store(store_path), source="impressions (a Ray batch; row numbers count "
                      "from the batch's start)", keep_rejects=keep_rejects, any_ts=any_ts)
    return pa.table({name: pa.array([_to_bytes(t)], pa.large_binary()) for name, t in part.items()})


def _label_fn(batch: pa.Table, ctx_ref: list, store_path: str, split: str) -> pa.Table:
    ray = _ray()
    ctx = dataclasses.replace(ray.get(ctx_ref[0]), store=_store(store_path))
    return label_batch(batch, ctx, split=split)


def _dataset(files: list[Path], show_progress_bar: bool):
    ray = _ray()
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = show_progress_bar
    return ray.data.read_parquet([str(f) for f in files])


def scan(config, inputs) -> dict[str, pa.Table]:
    """Pass 1 over Ray Data; writes OUT/rejects.parquet in "drop" mode."""
    keep = config.on_missing == "drop"
    rows = _dataset(inputs.impression_files, config.show_progress_bar).map_batches(
        _scan_fn, batch_format="pyarrow", batch_size=config.batch_rows,
        fn_kwargs={"store_path": str(config.store), "keep_rejects": keep,
                   "any_ts": config.allow_any_ts}).take_all()
    parts = [{name: _from_bytes(row[name]) for name in row} for row in rows]
    merged = merge_scans(parts)
    if keep and merged and merged["rejects"].num_rows:
        pq.write_table(merged["rejects"], config.out / REJECTS)
    return merged


def label(config, inputs, ctx: LabelContext) -> dict[str, dict]:
    """Pass 2 over Ray Data, once per split, each written as a folder of Parquet parts."""
    ray = _ray()
    ctx_ref = ray.put(dataclasses.replace(ctx, store=None))
    schema = output_schema(open_parquet(inputs.impression_files[0], "impressions").schema_arrow)
    outputs = {}
    for split in SPLITS:
        folder = config.out / split_file(split)
        shutil.rmtree(folder, ignore_errors=True)
        _dataset(inputs.impression_files, config.show_progress_bar).map_batches(
            _label_fn, batch_format="pyarrow", batch_size=config.batch_rows,
            fn_kwargs={"ctx_ref": [ctx_ref], "store_path": str(config.store), "split": split},
        ).write_parquet(str(folder), **parquet_options(schema))
        parts = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
        if not parts:  # an empty split still gets a readable folder with the schema
            folder.mkdir(parents=True, exist_ok=True)
            pq.write_table(schema.empty_table(), folder / "empty.parquet")
        n = int(np.sum([open_parquet(p, f"{split} split part").metadata.num_rows for p in parts])) if parts else 0
        outputs[split] = {"path": f"{folder.name}/", "rows": n, "parts": max(len(parts), 1)}
    return outputs
