"""Random bad tables thrown at the data contract and at every command that reads a dataset.

hypothesis draws one mutation of a small valid dataset (docs/data.md's rules, written out below
independently of `common.contract`): a wrong dtype, nulls, negative, huge or unit-slipped values,
duplicated keys, dangling references, a missing column, a bad profile column, an empty, 0-byte,
truncated or garbage file; or a change the contract allows (unicode and very long titles, an extra
profile code, a missing picture path beside a title). A bad table must give one line naming the
column (or the file), exit 2 from a command, never a traceback and never a silent pass; a good one
must pass with the row counts pyarrow reads.
"""
from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.contract import ContractError, validate_dataset

# docs/data.md, restated: table -> column -> (type, nullable)
SPEC = {
    "items": {"item_id": ("int64", False), "title": ("string", True), "image": ("string", True),
              "category_id": ("int64", False), "top_category_id": ("int64", False),
              "brand_id": ("int64", False), "price": ("double", False)},
    "users": {"user_id": ("int64", False)},
    "behaviors": {"user_id": ("int64", False), "item_id": ("int64", False), "ts": ("int64", False),
                  "action": ("string", False)},
    "impressions": {"request_id": ("int64", False), "user_id": ("int64", False), "ts": ("int64", False),
                    "trigger_item_id": ("int64", False), "page": ("int32", False),
                    "position": ("int32", False), "item_id": ("int64", False), "clicked": ("int8", False)},
}
# values that break a column's rule (docs/data.md), by column
OUT_OF_RULE = {
    "ts": ["negative", "milliseconds", "minutes", "huge"],
    "price": [-0.01, float("nan"), float("inf"), -float("inf")],
    "page": [0, -3],
    "position": [-1, -2**31],
    "clicked": [2, -1, 127],
    "action": ["view", "", "CLICK", "clíck", "x" * 5000],
    "image": ["", "   "],
}
REFERENCES = {"behaviors": {"user_id": "users", "item_id": "items"},
              "impressions": {"user_id": "users", "item_id": "items", "trigger_item_id": "items"}}
KEYS = {"items": "item_id", "users": "user_id"}
OTHER_TYPES = [pa.int32(), pa.int8(), pa.float64(), pa.string(), pa.bool_(), pa.int64(), pa.float32()]
EXAMPLES = 60  # per property test; the closing note of issue 21 counts them


@dataclass
class Case:
    """One mutation: where, what, and what must happen (`culprit` is None for a good table)."""

    table: str
    kind: str
    culprit: str | None  # column or file name the one-line error must name
    detail: object = None


@pytest.fixture(scope="module")
def base_dataset(tmp_path_factory, make_handmade) -> Path:
    return make_handmade(tmp_path_factory.mktemp("bad_inputs") / "logs", n_items=30, n_users=8, days=2,
                         requests_per_user_day=2, page_size=6, pictures=False, seed=3)


def _set(table: pa.Table, column: str, values, type_=None) -> pa.Table:
    idx = table.column_names.index(column)
    return table.set_column(idx, column, pa.array(values, type_ or table.schema.field(column).type))


def _cast(values: list, type_: pa.DataType) -> pa.Array:
    """`values` (one column's) as another type, without an error: strings of numbers, numbers of strings."""
    if pa.types.is_string(type_):
        return pa.array([None if v is None else str(v) for v in values], type_)
    if pa.types.is_boolean(type_):
        return pa.array([bool(v) if isinstance(v, (int, float)) else bool(v) for v in values], type_)
    nums = [len(v) if isinstance(v, str) else (0 if v is None else v) for v in values]
    if pa.types.is_integer(type_):
        bits = type_.bit_width - 1
        nums = [int(np.clip(np.nan_to_num(float(v)), -(2**bits), 2**bits - 1)) for v in nums]
        return pa.array(nums, type_)
    return pa.array(np.asarray(nums, dtype=np.float64).astype(type_.to_pandas_dtype()), type_)


@st.composite
def cases(draw, tables=tuple(SPEC)) -> Case:
    table = draw(st.sampled_from(tables))
    kinds = ["dtype", "null", "missing_column", "file", "good"]
    if any(c in OUT_OF_RULE for c in SPEC[table]):
        kinds.append("rule")
    if table in KEYS:
        kinds.append("duplicate")
    if table in REFERENCES:
        kinds.append("dangling")
    if table == "users":
        kinds.append("profile")
    if table == "items":
        kinds.append("no_title_no_picture")
    kind = draw(st.sampled_from(kinds))
    column = draw(st.sampled_from(sorted(SPEC[table])))
    if kind == "dtype":
        wrong = draw(st.sampled_from([t for t in OTHER_TYPES if str(t) != SPEC[table][column][0]
                                      and not (SPEC[table][column][0] == "string" and pa.types.is_string(t))]))
        return Case(table, kind, column, wrong)
    if kind == "null":
        column = draw(st.sampled_from([c for c, (_, nullable) in SPEC[table].items() if not nullable]))
        return Case(table, kind, column, draw(st.lists(st.integers(0, 7), min_size=1, max_size=4, unique=True)))
    if kind == "missing_column":
        return Case(table, kind, column)
    if kind == "rule":
        column = draw(st.sampled_from([c for c in SPEC[table] if c in OUT_OF_RULE]))
        return Case(table, kind, column, (draw(st.sampled_from(OUT_OF_RULE[column])), draw(st.integers(0, 7))))
    if kind == "duplicate":
        return Case(table, kind, KEYS[table], draw(st.integers(0, 7)))
    if kind == "dangling":
        column = draw(st.sampled_from(sorted(REFERENCES[table])))
        return Case(table, kind, column, draw(st.integers(0, 7)))
    if kind == "profile":
        bad = draw(st.sampled_from(["string", "int32", "float64", "null"]))
        return Case(table, kind, "city_id", bad)
    if kind == "no_title_no_picture":
        return Case(table, kind, "title", draw(st.integers(0, 7)))
    if kind == "file":
        how = draw(st.sampled_from(["zero_bytes", "garbage", "truncated", "deleted", "folder"]))
        return Case(table, kind, f"{table}.parquet", (how, draw(st.binary(min_size=1, max_size=64))))
    good = {"items": ["unicode_titles", "no_image", "reordered_columns"],
            "users": ["extra_profile", "reordered_columns"]}.get(table, ["reordered_columns"])
    which = draw(st.sampled_from(good))
    text = draw(st.text(min_size=1, max_size=40)) if which == "unicode_titles" else None
    return Case(table, "good", None, (which, text))


def apply(case: Case, folder: Path) -> None:
    """Write the mutation into the dataset copy `folder`."""
    path = folder / f"{case.table}.parquet"
    if case.kind == "file":
        how, noise = case.detail
        data = path.read_bytes()
        path.unlink()
        if how == "zero_bytes":
            path.write_bytes(b"")
        elif how == "garbage":
            path.write_bytes(noise * 4)
        elif how == "truncated":
            path.write_bytes(data[: max(1, len(data) // 2)])
        elif how == "folder":
            path.mkdir()
        return
    table = pq.read_table(path)
    n = table.num_rows
    col = case.culprit
    if case.kind == "dtype":
        table = _set(table, col, _cast(table.column(col).to_pylist(), case.detail), case.detail)
    elif case.kind == "null":
        values = table.column(col).to_pylist()
        for r in case.detail:
            values[r % n] = None
        table = _set(table, col, values)
    elif case.kind == "missing_column":
        table = table.drop_columns([col])
    elif case.kind == "rule":
        value, row = case.detail
        values = table.column(col).to_pylist()
        if value == "milliseconds":
            values = [v * 1000 for v in values]
        elif value == "minutes":
            values = [v // 60 for v in values]
        else:
            values[row % n] = {"negative": -1, "huge": 2**62}.get(value, value)
        table = _set(table, col, values)
    elif case.kind == "duplicate":
        table = pa.concat_tables([table, table.slice(case.detail % n, 1)])
    elif case.kind == "dangling":
        values = table.column(col).to_pylist()
        values[case.detail % n] = 10**12 + 7
        table = _set(table, col, values)
    elif case.kind == "profile":
        ids = table.column("user_id").to_pylist()
        values = {"string": pa.array([f"c{i}" for i in ids]), "int32": pa.array(ids, pa.int32()),
                  "float64": pa.array([float(i) for i in ids]),
                  "null": pa.array([None] + ids[1:], pa.int64())}[case.detail]
        table = table.append_column("city_id", values)
    elif case.kind == "no_title_no_picture":
        r = case.detail % n
        for c in ("title", "image"):
            values = table.column(c).to_pylist()
            values[r] = None
            table = _set(table, c, values)
    elif case.kind == "good":
        which, text = case.detail
        if which == "unicode_titles":
            table = _set(table, "title", [f"{text} {'é漢🙂' * (i % 3)} {'long ' * (2000 if i == 0 else 1)}"
                                          for i in range(n)])
        elif which == "extra_profile":
            table = table.append_column("city_id", pa.array(np.arange(n), pa.int64()))
        elif which == "no_image":
            table = _set(table, "image", [None] * n)
        else:
            table = table.select(table.column_names[::-1])
    pq.write_table(table, path)


def rows_of(folder: Path) -> dict[str, int]:
    return {t: pq.ParquetFile(folder / f"{t}.parquet").metadata.num_rows for t in SPEC}


@contextlib.contextmanager
def mutated(base: Path, case: Case):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "logs"
        shutil.copytree(base, folder)
        apply(case, folder)
        yield folder


def check_one_line(text: str, case: Case, prefix: str = "") -> None:
    """The error is one line, names the culprit, carries no traceback."""
    lines = text.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in text, (case, text)
    assert lines[0].startswith(prefix), (case, text)
    assert case.culprit in lines[0], (case, text)


@settings(max_examples=EXAMPLES * 4, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=cases())
def test_validate_dataset_refuses_every_bad_table_in_one_line(base_dataset, case):
    with mutated(base_dataset, case) as folder:
        if case.culprit is None:
            assert validate_dataset(folder) == rows_of(folder)
            return
        with pytest.raises((ContractError, FileNotFoundError)) as err:
            validate_dataset(folder)
        check_one_line(str(err.value), case)


def test_the_generator_reaches_every_kind_of_mutation():
    """The strategy can draw each kind on each table it applies to (no kind silently unreachable)."""
    from hypothesis import find

    for table in SPEC:
        kinds = {"dtype", "null", "missing_column", "file", "good"}
        kinds |= {"duplicate"} if table in KEYS else set()
        kinds |= {"dangling"} if table in REFERENCES else set()
        for kind in kinds:
            found = find(cases(tables=(table,)), lambda c, k=kind: c.kind == k)
            assert found.table == table


# ---------------------------------------------------------------------------------------------
# The commands: each gets the tables it reads
# ---------------------------------------------------------------------------------------------

def run_main(main, argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    return code, err.getvalue()


@pytest.fixture(scope="module")
def base_store(base_dataset, tmp_path_factory) -> Path:
    from embedder import build_store

    return build_store(base_dataset / "items.parquet", tmp_path_factory.mktemp("bad_store") / "store",
                       show_progress_bar=False)


@pytest.fixture(scope="module")
def base_labels(base_dataset, base_store, tmp_path_factory) -> Path:
    from intent_labels import label_intents

    return label_intents(base_dataset, base_store, tmp_path_factory.mktemp("bad_labels") / "labels",
                         train_days=1, min_split_requests=5, show_progress_bar=False)


def _expect(case: Case, code: int, err: str, prog: str) -> None:
    if case.culprit is None:
        assert code == 0, (case, err)
        return
    assert code == 2, (case, err)
    check_one_line(err, case, f"{prog}: error: ")


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=cases(tables=("items", "users", "behaviors", "impressions")))
def test_label_intents_refuses_every_bad_table_in_one_line(base_dataset, base_store, case):
    from intent_labels.cli import main

    with mutated(base_dataset, case) as folder:
        code, err = run_main(main, ["--data", str(folder), "--store", str(base_store), "--out",
                                    str(folder / "labels"), "--train-days", "1", "--no-progress",
                                    "--min-split-requests", "5", "--allow-store-mismatch"])
        _expect(case, code, err, "label-intents")


@settings(max_examples=EXAMPLES // 2, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=cases(tables=("items",)).filter(lambda c: c.kind != "good"))
def test_embed_items_refuses_every_bad_items_table_in_one_line(base_dataset, case):
    from embedder.cli import main

    with mutated(base_dataset, case) as folder:
        code, err = run_main(main, ["--items", str(folder / "items.parquet"), "--out",
                                    str(folder / "store"), "--backend", "text", "--no-progress"])
        _expect(case, code, err, "embed-items")


@settings(max_examples=EXAMPLES // 2, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=cases(tables=("items", "users")).filter(lambda c: c.kind != "good"))
def test_train_daian_refuses_every_bad_items_or_users_table_in_one_line(base_dataset, base_store,
                                                                        base_labels, case):
    from daian.cli import main

    with mutated(base_dataset, case) as folder:
        code, err = run_main(main, ["--data", str(base_labels), "--store", str(base_store), "--dataset",
                                    str(folder), "--model", "din", "--run", str(folder / "run"),
                                    "--no-progress", "--epochs", "1", "--set", "cpu_threads=1"])
        _expect(case, code, err, "train-daian")


@pytest.fixture(scope="module")
def base_run(base_labels, base_store, tmp_path_factory) -> Path:
    from daian.training.config import TrainConfig
    from daian.training.trainer import train

    run = tmp_path_factory.mktemp("bad_run") / "din"
    train(TrainConfig(data=base_labels, store=base_store, run=run, model="din", progress=False,
                      cpu_threads=1))
    return run


@settings(max_examples=EXAMPLES // 3, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=cases(tables=("items",)).filter(lambda c: c.kind != "good"))
def test_tir_report_refuses_every_bad_items_table_in_one_line(base_dataset, base_labels, base_run, case):
    from report.cli import main

    with mutated(base_dataset, case) as folder:
        code, err = run_main(main, [str(base_run), "--data", str(base_labels), "--dataset", str(folder),
                                    "--out", str(folder / "report"), "--no-progress"])
        _expect(case, code, err, "tir-report")
