"""The first hour on your own logs (issue 21): `label-intents` on the hand-made dataset and its
mistakes. Nothing passes silently: a split that is empty or tiny, a store of another catalogue,
times in minutes, an existing output, a 0-byte file, a contract error, a Ctrl-C; each is one line
on stderr and exit 2 (130 for Ctrl-C), naming the file, column, flag or hash."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from common.contract import ContractError
from intent_labels import label_intents
from intent_labels.cli import build_parser, main
from intent_labels.config import LabelConfig

from .conftest import HANDMADE_TRAIN_DAYS

ROOT = Path(__file__).resolve().parents[2]
DAY = 86_400
PROG = "label-intents"


def args(data, store, out, *more) -> list[str]:
    return ["--data", str(data), "--store", str(store), "--out", str(out), "--no-progress", *more]


def file_sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def copy(handmade: Path, dst: Path) -> Path:
    return Path(shutil.copytree(handmade, dst))


def with_column(table: pa.Table, name: str, values, type_=None) -> pa.Table:
    i = table.schema.get_field_index(name)
    t = type_ or table.schema.field(i).type
    return table.set_column(i, pa.field(name, t), pa.array(values, t))


def request_days(data: Path) -> np.ndarray:
    """Each request's UTC day number, from the raw impressions (pandas, not the labelling's code)."""
    imp = pq.read_table(data / "impressions.parquet", columns=["request_id", "ts"]).to_pandas()
    return (imp.groupby("request_id").ts.first() // DAY).to_numpy()


def date(day: int) -> str:
    return dt.datetime.fromtimestamp(int(day) * DAY, dt.timezone.utc).strftime("%Y-%m-%d")


# ---------------------------------------------------------------------------------------------
# 1. The split: empty or tiny is an error saying what works; --train-fraction
# ---------------------------------------------------------------------------------------------

def test_default_split_of_five_days_is_one_line_naming_days_counts_and_what_works(
        tmp_path, handmade, handmade_store, user_error):
    days = request_days(handmade)
    first, last = int(days.min()), int(days.max())
    span = last - first + 1
    ok = [d for d in range(1, span) if min((days < first + d).sum(), (days >= first + d).sum()) >= 100]
    out = tmp_path / "labels"
    assert main(args(handmade, handmade_store, out)) == 2
    line = user_error(PROG)
    assert f"span {span} UTC days ({date(first)} to {date(last)})" in line
    assert f"train_days=7 puts {days.size} requests in train and 0 in test" in line
    assert f"--train-days {ok[0]} to {ok[-1]} would work" in line
    fraction = float(re.search(r"--train-fraction ([0-9.]+)", line).group(1))
    assert int(np.floor(fraction * span + 0.5)) in ok  # the suggested fraction works too
    assert not (out / "manifest.json").exists()


def test_a_tiny_split_is_an_error_and_the_minimum_is_a_flag(tmp_path, handmade, handmade_store, user_error):
    days = request_days(handmade)
    n_test = int((days >= days.min() + 4).sum())
    assert main(args(handmade, handmade_store, tmp_path / "a", *HANDMADE_TRAIN_DAYS,
                     "--min-split-requests", str(n_test + 1))) == 2
    line = user_error(PROG)
    assert f"puts {days.size - n_test} requests in train and {n_test} in test" in line
    assert f"each split needs {n_test + 1}" in line
    assert main(args(handmade, handmade_store, tmp_path / "b", *HANDMADE_TRAIN_DAYS,
                     "--min-split-requests", str(n_test))) == 0


def test_train_fraction_picks_the_first_days_and_the_manifest_says_so(tmp_path, handmade, handmade_store):
    out = tmp_path / "labels"
    assert main(args(handmade, handmade_store, out, "--train-fraction", "0.6")) == 0
    split = json.loads((out / "manifest.json").read_text())["split"]
    days = request_days(handmade)
    span = int(days.max() - days.min() + 1)
    chosen = int(np.floor(0.6 * span + 0.5))  # 3 of 5 days
    assert split["train_days"] == chosen and split["train_fraction"] == 0.6 and split["days_spanned"] == span
    assert (split["first_day"], split["last_day"]) == (date(days.min()), date(days.max()))
    ts = pq.read_table(handmade / "impressions.parquet", columns=["ts"]).column("ts").to_numpy()
    boundary = (int(ts.min()) // DAY + chosen) * DAY
    assert pq.read_metadata(out / "train.parquet").num_rows == int((ts < boundary).sum())
    assert pq.read_metadata(out / "test.parquet").num_rows == int((ts >= boundary).sum())


def test_train_days_and_train_fraction_exclude_each_other(tmp_path, handmade, handmade_store, user_error):
    with pytest.raises(SystemExit) as exit_:  # argparse's own one-line error for a bad flag
        main(args(handmade, handmade_store, tmp_path / "o", "--train-days", "3", "--train-fraction", "0.5"))
    assert exit_.value.code == 2
    assert "--train-fraction: not allowed with argument --train-days" in user_error(PROG)
    with pytest.raises(ValueError, match="not both"):
        LabelConfig(data="d", store="s", out="o", train_days=3, train_fraction=0.5)
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="train_fraction must be in"):
            LabelConfig(data="d", store="s", out="o", train_fraction=bad)


def test_the_default_split_is_seven_days_where_it_works(handmade_labels, tiny_labels, tiny_world):
    """The tiny world's 8 days: the default still trains on the first 7 UTC days (unchanged)."""
    split = json.loads((tiny_labels / "manifest.json").read_text())["split"]
    ts = pq.read_table(tiny_world / "impressions.parquet", columns=["ts"]).column("ts").to_numpy()
    boundary = (int(ts.min()) // DAY + 7) * DAY
    assert split["train_days"] == 7 and split["train_fraction"] is None and split["boundary_ts"] == boundary
    assert pq.read_metadata(tiny_labels / "test.parquet").num_rows == int((ts >= boundary).sum())
    assert json.loads((handmade_labels / "manifest.json").read_text())["split"]["train_days"] == 4


# ---------------------------------------------------------------------------------------------
# 2. The store's items hash against DATA/items.parquet
# ---------------------------------------------------------------------------------------------

def test_a_store_of_another_catalogue_is_refused_naming_both_hashes_and_paths(
        tmp_path, handmade, handmade_store, user_error, caplog):
    data = copy(handmade, tmp_path / "logs")
    items = pq.read_table(data / "items.parquet")
    titles = items.column("title").to_pylist()
    shuffled = [titles[i] for i in np.random.default_rng(0).permutation(len(titles))]
    pq.write_table(with_column(items, "title", shuffled), data / "items.parquet")  # same ids
    ours, theirs = file_sha(data / "items.parquet"), file_sha(handmade / "items.parquet")
    assert ours != theirs
    assert main(args(data, handmade_store, tmp_path / "a", *HANDMADE_TRAIN_DAYS)) == 2
    line = user_error(PROG)
    assert ours[:12] in line and theirs[:12] in line and "--allow-store-mismatch" in line
    assert str(data / "items.parquet") in line and str((handmade / "items.parquet").resolve()) in line
    assert not (tmp_path / "a").exists()

    with caplog.at_level(logging.WARNING):
        assert main(args(data, handmade_store, tmp_path / "b", *HANDMADE_TRAIN_DAYS,
                         "--allow-store-mismatch")) == 0
    assert any(ours[:12] in r.getMessage() and theirs[:12] in r.getMessage() for r in caplog.records)
    check = json.loads((tmp_path / "b" / "manifest.json").read_text())["store"]["items_check"]
    assert check["result"] == "mismatch_allowed"
    assert (check["store_items_sha256"], check["data_items_sha256"]) == (theirs, ours)


def test_the_matching_store_is_recorded_as_checked(handmade_labels, handmade):
    check = json.loads((handmade_labels / "manifest.json").read_text())["store"]["items_check"]
    assert check["result"] == "match"
    assert check["store_items_sha256"] == check["data_items_sha256"] == file_sha(handmade / "items.parquet")


def test_a_store_built_from_an_in_memory_table_is_accepted_with_a_note(tmp_path, handmade):
    from embedder import build_store

    store = build_store(pq.read_table(handmade / "items.parquet"), tmp_path / "store", images_root=handmade,
                        show_progress_bar=False)
    out = label_intents(handmade, store, tmp_path / "labels", train_days=4, show_progress_bar=False)
    check = json.loads((out / "manifest.json").read_text())["store"]["items_check"]
    assert check["result"] == "not_recorded" and "in-memory table" in check["note"]
    assert check["data_items_sha256"] == file_sha(handmade / "items.parquet")


# ---------------------------------------------------------------------------------------------
# 3. Timestamps: the plausible range unless --allow-any-ts, in every contract check
# ---------------------------------------------------------------------------------------------

def _rewrite_ts(data: Path, name: str, fn) -> None:
    table = pq.read_table(data / f"{name}.parquet")
    pq.write_table(with_column(table, "ts", fn(table.column("ts").to_numpy())), data / f"{name}.parquet")


@pytest.mark.parametrize("files", [("behaviors", "impressions"), ("impressions",)])
def test_times_in_minutes_fail_naming_the_file_and_column(tmp_path, handmade, handmade_store, user_error, files):
    data = copy(handmade, tmp_path / "logs")
    for name in files:
        _rewrite_ts(data, name, lambda ts: ts // 60)
    assert main(args(data, handmade_store, tmp_path / "o", *HANDMADE_TRAIN_DAYS)) == 2
    line = user_error(PROG)
    assert line.startswith(f"{PROG}: error: {data / (files[0] + '.parquet')}: column 'ts': ")
    assert "--allow-any-ts" in line


def test_allow_any_ts_accepts_old_logs_in_every_check(tmp_path, handmade, handmade_store, handmade_labels,
                                                      user_error):
    shift = 10_000 * DAY  # whole days: 2026 -> 1998, before the plausible range
    data = copy(handmade, tmp_path / "logs")
    for name in ("behaviors", "impressions"):
        _rewrite_ts(data, name, lambda ts: ts - shift)
    assert main(args(data, handmade_store, tmp_path / "refused", *HANDMADE_TRAIN_DAYS)) == 2
    assert "behaviors.parquet: column 'ts'" in user_error(PROG)
    out = tmp_path / "labels"
    assert main(args(data, handmade_store, out, *HANDMADE_TRAIN_DAYS, "--allow-any-ts")) == 0
    old, new = (json.loads((p / "manifest.json").read_text()) for p in (handmade_labels, out))
    assert new["contract"] == {"any_ts": True} and old["contract"] == {"any_ts": False}
    assert new["split"]["boundary_ts"] == old["split"]["boundary_ts"] - shift
    for split in ("train", "test"):
        assert new["counts"][split] == old["counts"][split]


def test_the_ray_engine_scan_passes_any_ts(handmade, handmade_store):
    """The Ray engine's batch function (called directly: no Ray needed) applies the same rule."""
    from intent_labels.ray_engine import _scan_fn

    batch = pq.read_table(handmade / "impressions.parquet").slice(0, 64)
    old = with_column(batch, "ts", batch.column("ts").to_numpy() - 10_000 * DAY)
    with pytest.raises(ContractError, match="column 'ts'"):
        _scan_fn(old, str(handmade_store), keep_rejects=False, any_ts=False)
    assert _scan_fn(old, str(handmade_store), keep_rejects=False, any_ts=True).num_rows == 1


# ---------------------------------------------------------------------------------------------
# 4. Outputs are never overwritten without --overwrite
# ---------------------------------------------------------------------------------------------

def test_an_existing_output_is_refused_unless_overwrite(tmp_path, handmade, handmade_store, user_error):
    out = tmp_path / "labels"
    assert main(args(handmade, handmade_store, out, *HANDMADE_TRAIN_DAYS)) == 0
    before = {p.name: p.read_bytes() for p in (out / "manifest.json", out / "train.parquet")}
    assert main(args(handmade, handmade_store, out, *HANDMADE_TRAIN_DAYS)) == 2
    line = user_error(PROG)
    assert str(out) in line and "--overwrite" in line
    assert {p: (out / p).read_bytes() for p in before} == before  # nothing lost
    with pytest.raises(FileExistsError, match="--overwrite"):
        label_intents(handmade, handmade_store, out, train_days=4, show_progress_bar=False)

    pq.write_table(pa.table({"x": [1]}), out / "rejects.parquet")  # a stale output of a drop run
    assert main(args(handmade, handmade_store, out, *HANDMADE_TRAIN_DAYS, "--overwrite")) == 0
    assert not (out / "rejects.parquet").exists()
    assert (out / "train.parquet").read_bytes() == before["train.parquet"]


# ---------------------------------------------------------------------------------------------
# 5. 0-byte files: one line naming the file, for every input and impression part
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["impressions.parquet", "impressions part", "items.parquet",
                                  "behaviors.parquet", "users.parquet"])
def test_a_zero_byte_file_is_one_line_naming_it(tmp_path, handmade, handmade_store, user_error, name):
    data = copy(handmade, tmp_path / "logs")
    if name == "impressions part":  # DATA/impressions.parquet/ as a folder of parts, one of them empty
        table = pq.read_table(data / "impressions.parquet")
        (data / "impressions.parquet").unlink()
        (data / "impressions.parquet").mkdir()
        pq.write_table(table, data / "impressions.parquet" / "part-0.parquet")
        empty = data / "impressions.parquet" / "part-1.parquet"
    else:
        empty = data / name
    empty.write_bytes(b"")
    assert main(args(data, handmade_store, tmp_path / "o", *HANDMADE_TRAIN_DAYS)) == 2
    assert user_error(PROG) == f"{PROG}: error: {empty}: empty file (0 bytes), expected the " \
                               f"{name.split('.')[0].split()[0]} table as Parquet"


def test_impression_readers_name_a_zero_byte_file(tmp_path):
    from intent_labels.pipeline import count_rows, iter_impression_batches

    empty = tmp_path / "impressions.parquet"
    empty.write_bytes(b"")
    for call in (lambda: count_rows([empty]), lambda: next(iter_impression_batches([empty], 10))):
        with pytest.raises(ContractError, match=re.escape(f"{empty}: empty file (0 bytes)")):
            call()


# ---------------------------------------------------------------------------------------------
# 6. Ctrl-C: one line saying the folder is incomplete and how to go on
# ---------------------------------------------------------------------------------------------

def test_ctrl_c_is_one_line_and_leaves_no_manifest(tmp_path, handmade, handmade_store, monkeypatch, capsys):
    import intent_labels.pipeline as pipeline

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "label_batch", interrupted)  # midway: the split files are open
    out = tmp_path / "labels"
    assert main(args(handmade, handmade_store, out, *HANDMADE_TRAIN_DAYS)) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"{PROG}: interrupted; {out} is incomplete (no manifest.json written); rerun the same "
                   "command with --overwrite to label again from the start"]
    assert any(out.iterdir()) and not (out / "manifest.json").exists()
    monkeypatch.undo()
    assert main(args(handmade, handmade_store, out, *HANDMADE_TRAIN_DAYS)) == 2  # as the line says:
    assert main(args(handmade, handmade_store, out, *HANDMADE_TRAIN_DAYS, "--overwrite")) == 0
    assert (out / "manifest.json").is_file()


# ---------------------------------------------------------------------------------------------
# 7. A contract error in any input: one line, exit 2
# ---------------------------------------------------------------------------------------------

def _page_int64(t):
    return with_column(t, "page", t.column("page").to_numpy().astype(np.int64), pa.int64())


def _null_item(t):
    values = t.column("item_id").to_pylist()
    values[3] = None
    return with_column(t, "item_id", values)


def _ms(t):
    return with_column(t, "ts", t.column("ts").to_numpy() * 1000)


def _profile_int32(t):
    return with_column(t, "gender", t.column("gender").to_numpy().astype(np.int32), pa.int32())


def _profile_string(t):
    return with_column(t, "age_level", [str(v) for v in t.column("age_level").to_pylist()], pa.string())


def _negative_price(t):
    return with_column(t, "price", pc.multiply(t.column("price"), -1.0).to_numpy())


@pytest.mark.parametrize("name, breaks, says", [
    ("impressions", _page_int64, "column 'page' has type int64"),
    ("behaviors", _null_item, "column 'item_id': 1 row(s) are null; first row(s) [3]"),
    ("impressions", _ms, "column 'ts': "),
    ("behaviors", _ms, "column 'ts': "),
    ("users", _profile_int32, "profile column 'gender' has type int32"),
    ("users", _profile_string, "profile column 'age_level' has type string"),
    ("items", _negative_price, "column 'price': 300 row(s) break the rule"),
])
def test_a_contract_error_in_any_input_is_one_line(tmp_path, handmade, handmade_store, user_error,
                                                   name, breaks, says):
    data = copy(handmade, tmp_path / "logs")
    path = data / f"{name}.parquet"
    pq.write_table(breaks(pq.read_table(path)), path)
    assert main(args(data, handmade_store, tmp_path / "o", *HANDMADE_TRAIN_DAYS)) == 2
    line = user_error(PROG)
    assert line.startswith(f"{PROG}: error: {path}: ") and says in line
    out = tmp_path / "o"
    assert not out.exists() or not any(out.iterdir())  # nothing written: a rerun needs no --overwrite


# ---------------------------------------------------------------------------------------------
# 8. Flags and docs say what the code does
# ---------------------------------------------------------------------------------------------

def test_every_flag_says_its_default_and_is_documented():
    docs = (ROOT / "docs" / "labels.md").read_text()
    for action in build_parser()._actions:
        if not action.option_strings or action.dest in ("help", "debug"):
            continue
        assert action.required or "default" in action.help, action.dest
        assert f"`{action.option_strings[0]}`" in docs, action.option_strings[0]


def test_docs_and_docstrings_cite_what_exists():
    docs = (ROOT / "docs" / "labels.md").read_text()
    sources = docs + "".join(p.read_text() for p in (ROOT / "intent_labels").glob("*.py"))
    for cited in set(re.findall(r"\b([A-Z][A-Z_]+\.md)\b", sources)):
        assert (ROOT / cited).is_file(), cited
    demo = (ROOT / "scripts" / "demo.py").read_text()
    written = set(re.findall(r'args\.out / "(\w+)"', demo))
    shown = set(re.findall(r"out/demo/(\w+)", docs))
    assert shown and shown <= written, shown - written


# ---------------------------------------------------------------------------------------------
# Held-back cases: references to users and items, a split without clicks, an empty behaviour log
# ---------------------------------------------------------------------------------------------

def _rewrite(data: Path, name: str, fn) -> None:
    path = data / f"{name}.parquet"
    pq.write_table(fn(pq.read_table(path)), path)


def test_behaviours_and_requests_of_unknown_users_or_items_are_refused(tmp_path, handmade, handmade_store,
                                                                      user_error):
    for name, column, row in (("behaviors", "user_id", 3), ("behaviors", "item_id", 5), ("impressions", "user_id", 0)):
        data = copy(handmade, tmp_path / f"{name}_{column}")
        table = pq.read_table(data / f"{name}.parquet")
        values = table.column(column).to_pylist()
        values[row] = 987_654_321
        _rewrite(data, name, lambda t: with_column(t, column, values))
        assert main(args(data, handmade_store, tmp_path / f"out_{name}_{column}", "--train-days", "4")) == 2
        line = user_error(PROG)
        assert f"{name}.parquet" in line and f"column '{column}'" in line and "987654321" in line, line
        if name == "impressions":  # named by request: the request of that row
            rid = table.column("request_id").to_pylist()[row]
            assert str(rid) in line, line


@pytest.mark.parametrize("split", ["train", "test"])
def test_a_split_without_a_click_is_an_error(tmp_path, handmade, handmade_store, user_error, split):
    data = copy(handmade, tmp_path / "data")
    boundary = (int(request_days(data).min()) + 4) * DAY
    def no_clicks(t):
        ts = t.column("ts").to_numpy()
        side = ts < boundary if split == "train" else ts >= boundary
        clicked = np.where(side, 0, t.column("clicked").to_numpy()).astype(np.int8)
        return with_column(t, "clicked", clicked)
    _rewrite(data, "impressions", no_clicks)
    assert main(args(data, handmade_store, tmp_path / "out", "--train-days", "4")) == 2
    line = user_error(PROG)
    n_requests = int(((request_days(data) < request_days(data).min() + 4) == (split == "train")).sum())
    assert f"column 'clicked': the {split} split's {n_requests} requests hold no click" in line, line


def test_an_empty_behaviour_log_is_said_not_silent(tmp_path, handmade, handmade_store, caplog):
    data = copy(handmade, tmp_path / "data")
    _rewrite(data, "behaviors", lambda t: t.slice(0, 0))
    with caplog.at_level(logging.WARNING):
        out = label_intents(data, handmade_store, tmp_path / "out", train_days=4, show_progress_bar=False)
    assert any("behaviors.parquet has no rows" in r.getMessage() for r in caplog.records)
    hist = pq.read_table(out / "train.parquet", columns=["hist_item_ids"]).column("hist_item_ids")
    assert pc.sum(pc.list_value_length(hist)).as_py() == 0
