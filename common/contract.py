"""The data contract: the four Parquet files every stage reads, and the validator every CLI runs.

It lives in `common`, below every stage, so that `embed-items`, `label-intents`, `train-daian` and
`tir-report` share one definition. The contract is written out for users in `docs/data.md`.

A violation raises `ContractError` (a ValueError) naming the file, the column, how many rows break
the rule and the first of them. Nothing is dropped or coerced: a column of the wrong type is an
error, not a cast.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import datetime as dt
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

TABLES = ("items", "users", "behaviors", "impressions")
FILES = {name: f"{name}.parquet" for name in TABLES}  # the file of each table in a dataset folder
# A simulated world also carries its planted truth (docs/simulator.md); only the report and the
# per-user-type metrics read it, and a dataset without it is complete.
TRUTH_DIR = "truth"
TRUTH_USERS = "users.parquet"  # user_id, user_type, intent_profile, ...
ACTIONS = ("click", "cart", "buy")
# Unix seconds beyond this (year 5138) are almost surely milliseconds or nanoseconds: refused always.
MAX_TS_SECONDS = 100_000_000_000
# A log's plausible time range: from 2000-01-01 UTC to one day after now. Seconds outside it are a
# unit slip (minutes, hours) or a broken clock; `any_ts=True` (the CLIs' --allow-any-ts) widens the
# range to [0, MAX_TS_SECONDS) for synthetic or very old logs.
MIN_PLAUSIBLE_TS = 946_684_800  # 2000-01-01 00:00:00 UTC
PLAUSIBLE_TS_SLACK = 86_400  # seconds after now that are still accepted (clock skew, time zones)
ALLOW_ANY_TS_FLAG = "--allow-any-ts"
SHOW_ROWS = 5  # how many offending rows an error names


class ContractError(ValueError):
    """An input file breaks the data contract (docs/data.md)."""


@dataclass(frozen=True)
class Column:
    """One required column: its Arrow type, whether nulls are allowed, and a row rule."""

    name: str
    type: pa.DataType
    nullable: bool = False
    # (description of the rule, function from the column to a boolean "row is bad" array)
    rule: tuple[str, Callable[[pa.ChunkedArray], pa.ChunkedArray]] | None = None


def _is_string(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def max_plausible_ts() -> int:
    """The latest plausible log time: now plus `PLAUSIBLE_TS_SLACK`."""
    return int(time.time()) + PLAUSIBLE_TS_SLACK


def _utc_day(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d")


def ts_rule(any_ts: bool = False) -> tuple[str, Callable[[pa.ChunkedArray], pa.ChunkedArray]]:
    """The rule of a `ts` column: plausible unix seconds, or any seconds in [0, 1e11) with `any_ts`."""
    if any_ts:
        return ("ts must be unix seconds in [0, 1e11) (milliseconds are refused)",
                lambda c: pc.or_(pc.less(c, 0), pc.greater_equal(c, MAX_TS_SECONDS)))
    high = max_plausible_ts()
    return (f"ts must be unix seconds between {_utc_day(MIN_PLAUSIBLE_TS)} and {_utc_day(high)} UTC "
            f"(milliseconds, minutes or a broken clock otherwise; {ALLOW_ANY_TS_FLAG} accepts any "
            "seconds in [0, 1e11))",
            lambda c: pc.or_(pc.less(c, MIN_PLAUSIBLE_TS), pc.greater(c, high)))


_TS_RULE = ("ts", None)  # marker: the ts rule depends on `any_ts` and the clock (`ts_rule`)

SCHEMAS: dict[str, tuple[Column, ...]] = {
    "items": (
        Column("item_id", pa.int64()),
        Column("title", pa.string(), nullable=True),
        Column("image", pa.string(), nullable=True,
               rule=("image must be null (no picture) or a non-empty path",
                     lambda c: pc.equal(pc.utf8_trim_whitespace(c), ""))),
        Column("category_id", pa.int64()),
        Column("top_category_id", pa.int64()),
        Column("brand_id", pa.int64()),
        Column("price", pa.float64(),
               rule=("price must be finite and >= 0",
                     lambda c: pc.invert(pc.and_(pc.is_finite(c), pc.greater_equal(c, 0.0))))),
    ),
    # every other column of users.parquet is a profile field: int64, not null (checked below)
    "users": (Column("user_id", pa.int64()),),
    "behaviors": (
        Column("user_id", pa.int64()),
        Column("item_id", pa.int64()),
        Column("ts", pa.int64(), rule=_TS_RULE),
        Column("action", pa.string(),
               rule=(f"action must be one of {list(ACTIONS)}",
                     lambda c: pc.invert(pc.is_in(c, value_set=pa.array(ACTIONS))))),
    ),
    "impressions": (
        Column("request_id", pa.int64()),
        Column("user_id", pa.int64()),
        Column("ts", pa.int64(), rule=_TS_RULE),
        Column("trigger_item_id", pa.int64()),
        Column("page", pa.int32(), rule=("page must be >= 1 (pages are 1-based)",
                                         lambda c: pc.less(c, 1))),
        Column("position", pa.int32(), rule=("position must be >= 0", lambda c: pc.less(c, 0))),
        Column("item_id", pa.int64()),
        Column("clicked", pa.int8(), rule=("clicked must be 0 or 1",
                                           lambda c: pc.invert(pc.is_in(c, value_set=pa.array([0, 1], pa.int8()))))),
    ),
}
UNIQUE_KEYS = {"items": "item_id", "users": "user_id"}
PROFILE_TYPE = pa.int64()


def _label(source: str | Path | None, name: str) -> str:
    return str(source) if source is not None else f"{name}.parquet"


def _rows_text(rows: np.ndarray, offset: int) -> str:
    shown = (rows[:SHOW_ROWS] + offset).tolist()
    return f"first row(s) {shown}" if rows.size else ""


def _fail(label: str, column: str, what: str, rows: np.ndarray, offset: int,
          values: list | None = None) -> None:
    msg = f"{label}: column '{column}': {rows.size} row(s) {what}; {_rows_text(rows, offset)}"
    if values is not None:
        msg += f" (values {values[:SHOW_ROWS]})"
    raise ContractError(msg)


def _bad_rows(mask: pa.ChunkedArray | pa.Array) -> np.ndarray:
    arr = mask.to_numpy(zero_copy_only=False) if hasattr(mask, "to_numpy") else np.asarray(mask)
    return np.flatnonzero(np.asarray(arr, dtype=bool))


def _check_type(label: str, col: Column, actual: pa.DataType) -> None:
    ok = _is_string(actual) if _is_string(col.type) else actual == col.type
    if not ok:
        raise ContractError(
            f"{label}: column '{col.name}' has type {actual}, the contract requires {col.type} "
            f"(cast it explicitly when writing the file; nothing is coerced on read)")


def profile_columns(schema: pa.Schema) -> list[str]:
    """The users table's profile columns: every column besides user_id, in file order (each int64,
    not null: `validate_table` refuses any other type)."""
    return [f.name for f in schema if f.name != "user_id"]


def _check_profiles(label: str, table: pa.Table, row_offset: int) -> None:
    for column in profile_columns(table.schema):
        data = table.column(column)
        if data.type != PROFILE_TYPE:
            raise ContractError(
                f"{label}: profile column '{column}' has type {data.type}, the contract requires "
                f"{PROFILE_TYPE} codes (every column of users.parquet besides user_id is a profile "
                "field; encode it as int64 codes or drop the column)")
        if data.null_count:
            _fail(label, column, "are null (a profile code is required; give unknowns a code of "
                  "their own)", _bad_rows(pc.is_null(data)), row_offset)


def validate_table(table: pa.Table | pa.RecordBatch | str | Path, name: str,
                   source: str | Path | None = None, row_offset: int = 0,
                   any_ts: bool = False) -> pa.Table:
    """Check a table (or a Parquet file) against the contract for `name`; return it unchanged.

    `source` names the file in errors; `row_offset` makes row numbers absolute when a caller checks
    a file batch by batch; `any_ts` accepts any unix seconds in [0, 1e11) instead of the plausible
    range (`ts_rule`).
    """
    if name not in SCHEMAS:
        raise ValueError(f"unknown table {name!r}; expected one of {list(TABLES)}")
    if isinstance(table, (str, Path)):
        return read_table(table, name, any_ts=any_ts)
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    label = _label(source, name)
    missing = [c.name for c in SCHEMAS[name] if c.name not in table.column_names]
    if missing:
        raise ContractError(f"{label}: missing required column(s) {missing}; "
                            f"found {table.column_names}")
    for col in SCHEMAS[name]:
        data = table.column(col.name)
        _check_type(label, col, data.type)
        if not col.nullable and data.null_count:
            _fail(label, col.name, "are null", _bad_rows(pc.is_null(data)), row_offset)
        if col.rule is not None:
            what, bad = ts_rule(any_ts) if col.rule is _TS_RULE else col.rule
            mask = pc.fill_null(bad(data), False)
            rows = _bad_rows(mask)
            if rows.size:
                values = pc.take(data, pa.array(rows[:SHOW_ROWS])).to_pylist()
                _fail(label, col.name, f"break the rule: {what}", rows, row_offset, values)
    if name == "items":
        title_empty = pc.fill_null(pc.equal(pc.utf8_trim_whitespace(table.column("title")), ""), True)
        no_picture = pc.is_null(table.column("image"))
        rows = _bad_rows(pc.and_(title_empty, no_picture))
        if rows.size:
            _fail(label, "title", "have neither a title nor a picture", rows, row_offset,
                  pc.take(table.column("item_id"), pa.array(rows[:SHOW_ROWS])).to_pylist())
    if name == "users":
        _check_profiles(label, table, row_offset)
    if name in UNIQUE_KEYS:
        _check_unique(label, table.column(UNIQUE_KEYS[name]), UNIQUE_KEYS[name], row_offset)
    return table


def _check_unique(label: str, data: pa.ChunkedArray, column: str, row_offset: int) -> None:
    ids = data.to_numpy()
    order = np.argsort(ids, kind="stable")
    dup_sorted = np.flatnonzero(ids[order][1:] == ids[order][:-1]) + 1
    if dup_sorted.size:
        rows = np.sort(order[dup_sorted])
        _fail(label, column, "repeat an id that must be unique", rows, row_offset,
              ids[rows[:SHOW_ROWS]].tolist())


def open_parquet(path: str | Path, name: str) -> pq.ParquetFile:
    """Open a Parquet file, naming the file and the expected table when it is missing, a folder,
    empty (0 bytes) or unreadable."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file (expected the {name} table)")
    if path.is_dir():
        raise ContractError(f"{path}: is a folder, expected the {name} table as one Parquet file")
    if path.stat().st_size == 0:
        raise ContractError(f"{path}: empty file (0 bytes), expected the {name} table as Parquet")
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise ContractError(f"{path}: not a readable Parquet file ({' '.join(str(exc).split())})") from exc


def _read_all(pf: pq.ParquetFile, path: Path) -> pa.Table:
    try:
        return pf.read()
    except (pa.ArrowException, OSError) as exc:  # a corrupt page or column chunk past the footer
        raise ContractError(f"{path}: unreadable Parquet data ({' '.join(str(exc).split())})") from exc


def read_table(path: str | Path, name: str, columns: list[str] | None = None,
               any_ts: bool = False) -> pa.Table:
    """Read a Parquet file and validate it against the contract for `name`.

    `columns` restricts what is returned (the required columns are always checked).
    """
    path = Path(path)
    table = _read_all(open_parquet(path, name), path)
    validate_table(table, name, source=path, any_ts=any_ts)
    return table.select(columns) if columns is not None else table


def iter_validated_batches(path: str | Path, name: str, batch_size: int = 1 << 20,
                           columns: list[str] | None = None,
                           any_ts: bool = False) -> Iterator[pa.RecordBatch]:
    """Stream a large Parquet file in record batches, validating each with absolute row numbers.

    Uniqueness of item/user ids is not checked across batches here; those tables are small enough
    for `read_table`.
    """
    for offset, batch in iter_parquet_batches(path, name, batch_size):
        validate_table(batch, name, source=path, row_offset=offset, any_ts=any_ts)
        yield batch.select(columns) if columns is not None else batch


def iter_parquet_batches(path: str | Path, name: str, batch_size: int = 1 << 20,
                         columns: list[str] | None = None) -> Iterator[tuple[int, pa.RecordBatch]]:
    """(row offset, record batch) of a Parquet file, streamed; a file missing, empty, not Parquet
    or corrupt past its footer is a ContractError naming it (and the row it broke after)."""
    path = Path(path)
    offset = 0
    batches = open_parquet(path, name).iter_batches(batch_size=batch_size, columns=columns)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (pa.ArrowException, OSError) as exc:
            raise ContractError(f"{path}: unreadable Parquet data after row {offset} "
                                f"({' '.join(str(exc).split())})") from exc
        yield offset, batch
        offset += batch.num_rows


def check_references(ids: np.ndarray, known: np.ndarray, label: str, column: str,
                     target: str, row_offset: int = 0) -> None:
    """Raise if some `ids` (a column of `label`) are absent from `known` (the ids of `target`)."""
    ids = np.asarray(ids)
    known = np.sort(np.asarray(known))
    pos = np.minimum(np.searchsorted(known, ids), max(known.size - 1, 0))
    bad = known[pos] != ids if known.size else np.ones(ids.shape, bool)
    rows = np.flatnonzero(bad)
    if rows.size:
        _fail(label, column, f"refer to ids absent from {target}", rows, row_offset,
              ids[rows[:SHOW_ROWS]].tolist())


def validate_dataset(folder: str | Path, any_ts: bool = False) -> dict[str, int]:
    """Validate the four files of a dataset folder and the references between them.

    Returns the row count of each table.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such dataset folder")
    items = read_table(folder / FILES["items"], "items", columns=["item_id"])
    users = read_table(folder / FILES["users"], "users", columns=["user_id"])
    item_ids = items.column("item_id").to_numpy()
    user_ids = users.column("user_id").to_numpy()
    counts = {"items": items.num_rows, "users": users.num_rows}
    refs = {"behaviors": (("user_id", user_ids, FILES["users"]), ("item_id", item_ids, FILES["items"])),
            "impressions": (("user_id", user_ids, FILES["users"]), ("item_id", item_ids, FILES["items"]),
                            ("trigger_item_id", item_ids, FILES["items"]))}
    for name, checks in refs.items():
        path = folder / FILES[name]
        offset = 0
        for batch in iter_validated_batches(path, name, any_ts=any_ts):
            for column, known, target in checks:
                check_references(batch.column(column).to_numpy(), known, str(path), column,
                                 target, offset)
            offset += batch.num_rows
        counts[name] = offset
    return counts


def read_truth_users(folder: str | Path) -> pa.Table | None:
    """`truth/users.parquet` of a dataset folder (a simulated world's planted users), or None when
    the dataset carries no truth; a file without a `user_id` column is an error."""
    path = Path(folder) / TRUTH_DIR / TRUTH_USERS
    if not path.is_file():
        return None
    table = _read_all(open_parquet(path, "truth users"), path)
    if "user_id" not in table.column_names:
        raise ContractError(f"{path}: no 'user_id' column")
    return table


def read_user_types(folder: str | Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(sorted user ids, their planted `user_type` as objects) from `truth/users.parquet`, or None
    when the dataset carries no truth or the truth no types."""
    table = read_truth_users(folder)
    if table is None or "user_type" not in table.column_names:
        return None
    ids = table.column("user_id").to_numpy()
    types = np.asarray(table.column("user_type").to_pylist(), dtype=object)
    order = np.argsort(ids, kind="stable")
    return ids[order], types[order]


def lookup_user_types(user_types: tuple[np.ndarray, np.ndarray], user_ids: np.ndarray) -> np.ndarray:
    """Each user's planted type (object array), None for a user the truth does not know."""
    ids, types = user_types
    user_ids = np.asarray(user_ids)
    pos = np.minimum(np.searchsorted(ids, user_ids), max(ids.size - 1, 0))
    found = ids[pos] == user_ids if ids.size else np.zeros(user_ids.shape, bool)
    return np.where(found, types[pos] if ids.size else None, None).astype(object)
