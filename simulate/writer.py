"""Output files: Arrow schemas, a buffered Parquet writer with fixed row groups, JSON and npy helpers.

Determinism: tables are built directly in Arrow (no pandas metadata), the writer options are fixed,
row groups have exactly `row_group_rows` rows (the last one fewer) whatever the block sizes were,
and JSON is written with sorted keys.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ITEMS_SCHEMA = pa.schema([
    ("item_id", pa.int64()), ("title", pa.string()), ("image", pa.string()), ("category_id", pa.int64()),
    ("top_category_id", pa.int64()), ("brand_id", pa.int64()), ("price", pa.float64()),
    ("category_name", pa.string()), ("top_category_name", pa.string()), ("brand_name", pa.string()),
    ("colour", pa.string()), ("material", pa.string()), ("style", pa.string()), ("size", pa.string()),
])
USERS_SCHEMA = pa.schema([("user_id", pa.int64()), ("gender", pa.int64()), ("age_level", pa.int64()),
                          ("city_id", pa.int64())])
BEHAVIORS_SCHEMA = pa.schema([("user_id", pa.int64()), ("item_id", pa.int64()), ("ts", pa.int64()),
                              ("action", pa.string())])
IMPRESSIONS_SCHEMA = pa.schema([
    ("request_id", pa.int64()), ("user_id", pa.int64()), ("ts", pa.int64()), ("trigger_item_id", pa.int64()),
    ("page", pa.int32()), ("position", pa.int32()), ("item_id", pa.int64()), ("clicked", pa.int8()),
])
TRUTH_USERS_SCHEMA = pa.schema([("user_id", pa.int64()), ("user_type", pa.string()),
                                ("intent_profile", pa.list_(pa.float32())),
                                ("interest_category_ids", pa.list_(pa.int64())),
                                ("taste", pa.list_(pa.float32())), ("click_bias", pa.float32())])
TRUTH_REQUESTS_SCHEMA = pa.schema([("request_id", pa.int64()), ("planted_intent", pa.list_(pa.float32())),
                                   ("request_effect", pa.float32())])
TRUTH_IMPRESSIONS_SCHEMA = pa.schema([("request_id", pa.int64()), ("position", pa.int32()),
                                      ("level", pa.int8()), ("click_prob", pa.float32())])
TRUTH_ITEMS_SCHEMA = pa.schema([("item_id", pa.int64()), ("quality", pa.float32()),
                                ("popularity", pa.float64())])

_WRITER_OPTIONS = dict(compression="zstd", compression_level=3, use_dictionary=True, write_statistics=True,
                       version="2.6")


def list_column(matrix: np.ndarray, value_type: pa.DataType) -> pa.Array:
    """(R, n) numpy matrix -> Arrow list<value_type> column of R lists of length n."""
    r, n = matrix.shape
    offsets = pa.array(np.arange(0, (r + 1) * n, n, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(matrix.ravel(), type=value_type))


def ragged_list_column(values: np.ndarray, lengths: np.ndarray, value_type: pa.DataType) -> pa.Array:
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, type=value_type))


class RowGroupWriter:
    """Parquet writer fed table by table, writing row groups of exactly `row_group_rows` rows."""

    def __init__(self, path: Path, schema: pa.Schema, row_group_rows: int) -> None:
        self.schema = schema
        self.row_group_rows = row_group_rows
        self._writer = pq.ParquetWriter(str(path), schema, **_WRITER_OPTIONS)
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        table = table.cast(self.schema) if table.schema != self.schema else table
        self._pending.append(table)
        self._pending_rows += table.num_rows
        self.rows += table.num_rows
        while self._pending_rows >= self.row_group_rows:
            merged = pa.concat_tables(self._pending)
            self._writer.write_table(merged.slice(0, self.row_group_rows), row_group_size=self.row_group_rows)
            rest = merged.slice(self.row_group_rows)
            self._pending, self._pending_rows = [rest], rest.num_rows

    def close(self) -> None:
        if self._pending_rows:
            self._writer.write_table(pa.concat_tables(self._pending), row_group_size=self.row_group_rows)
        self._writer.close()


def write_table(table: pa.Table, path: Path, row_group_rows: int) -> None:
    """Write one in-memory table with the fixed options."""
    writer = RowGroupWriter(path, table.schema, row_group_rows)
    writer.write(table)
    writer.close()


def write_json(obj: dict, path: Path) -> None:
    path.write_text(json.dumps(obj, sort_keys=True, indent=2) + "\n")


def write_npy(array: np.ndarray, path: Path) -> None:
    np.save(path, np.ascontiguousarray(array), allow_pickle=False)
