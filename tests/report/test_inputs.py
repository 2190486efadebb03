"""Run discovery, bad inputs, the settings and the helpers' arithmetic."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy.stats import entropy as scipy_entropy

from daian.run_folder import collect_runs, discover_runs, read_predictions
from intent_labels.labelled import LabelledFolder, similarity_level
from report import ReportConfig, build_report
from report import analysis as A
from report.config import parse_sweep
from report.data import align

from .conftest import EDGES, RUNS, SEEDS


# ----------------------------------------------------------------------------- layouts


def test_discovers_the_three_layouts(world):
    cmp = discover_runs(world["cmp"])
    assert [r.name for r in cmp] == list(RUNS)
    abl = next(r for r in cmp if r.name == "daian-no-uim")
    assert (abl.model, abl.ablation, sorted(abl.seeds)) == ("daian", "no-uim", list(SEEDS))
    multi = discover_runs(world["cmp"] / "din")  # one model, seed-S/ sub-runs
    assert [(r.name, sorted(r.seeds)) for r in multi] == [("din", list(SEEDS))]
    single = discover_runs(world["n3"])  # one seed, files at the top
    assert [(r.name, r.model, list(r.seeds)) for r in single] == [("daian", "daian", [1])]


def test_a_run_name_given_twice_is_an_error(world):
    with pytest.raises(ValueError, match="run name 'din' appears in both"):
        collect_runs([world["cmp"], world["cmp"] / "din"])


def test_a_folder_without_runs_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no predictions.parquet"):
        discover_runs(tmp_path / "empty")


# ----------------------------------------------------------------------------- bad inputs


def _copy_run(world, tmp_path, name="din"):
    dst = tmp_path / name
    shutil.copytree(world["cmp"] / name, dst)
    return dst


def test_missing_prediction_column_names_file_and_column(world, tmp_path):
    run = _copy_run(world, tmp_path)
    path = run / "seed-1" / "predictions.parquet"
    pq.write_table(pq.read_table(path).drop_columns(["score"]), path)
    with pytest.raises(ValueError, match=r"seed-1/predictions.parquet: missing column\(s\) \['score'\]"):
        read_predictions(run / "seed-1")


def _set_value(path, column: str, row: int, value) -> None:
    """Rewrite one cell of a Parquet file (the column keeps its type)."""
    table = pq.read_table(path)
    values = table.column(column).to_numpy().copy()
    values[row] = value
    pq.write_table(table.set_column(table.column_names.index(column), column, pa.array(values)), path)


def test_score_outside_unit_interval_is_refused(world, tmp_path):
    run = _copy_run(world, tmp_path)
    _set_value(run / "seed-2" / "predictions.parquet", "score", 3, 1.5)
    with pytest.raises(ValueError, match=r"column 'score': 1 value\(s\) outside \[0, 1\]; first row\(s\) \[3\]"):
        read_predictions(run / "seed-2")


def test_predictions_of_other_data_are_refused(world, tmp_path):
    run = _copy_run(world, tmp_path)
    _set_value(run / "seed-1" / "predictions.parquet", "item_id", 0, 99_999)
    config = ReportConfig(runs=(run,), out=tmp_path / "out", data=world["labelled"], dataset=world["dataset"],
                          progress=False)
    with pytest.raises(ValueError, match="1 row\\(s\\) have no matching labelled test row; first at row 0 "
                                         "\\(request_id \\d+, item_id 99999\\)"):
        build_report(config)


def test_runs_scoring_different_rows_are_refused(world, tmp_path):
    a, b = _copy_run(world, tmp_path, "din"), _copy_run(world, tmp_path, "dei2n")
    path = b / "seed-1" / "predictions.parquet"
    table = pq.read_table(path)
    pq.write_table(table.slice(0, table.num_rows - 3), path)
    config = ReportConfig(runs=(a, b), out=tmp_path / "out", data=world["labelled"], dataset=world["dataset"],
                          progress=False)
    with pytest.raises(ValueError, match="must score the same test split"):
        build_report(config)


def test_bad_settings_raise_value_errors(tmp_path):
    with pytest.raises(ValueError, match="runs must name at least one"):
        ReportConfig(runs=(), out=tmp_path)
    with pytest.raises(ValueError, match="diversity must be one of"):
        ReportConfig(runs=(tmp_path,), out=tmp_path, diversity="entropy")
    with pytest.raises(ValueError, match="sweep names a level twice"):
        ReportConfig(runs=(tmp_path,), out=tmp_path, sweep=((4, tmp_path), (4, tmp_path)))
    assert parse_sweep(["n=4:runs/a", "n=8:/x/b"]) == ((4, Path("runs/a")), (8, Path("/x/b")))
    for bad in ("4:runs/a", "n=four:runs/a", "n=4"):
        with pytest.raises(ValueError, match="--sweep"):
            parse_sweep([bad])


def test_sweep_level_must_match_the_runs_intent_width(world, tmp_path):
    config = ReportConfig(runs=(world["cmp"],), out=tmp_path / "out", data=world["labelled"],
                          dataset=world["dataset"], sweep=((5, world["n3"]),), progress=False, examples=0)
    with pytest.raises(ValueError, match="--sweep says n=5 but intent_pred has 3 levels"):
        build_report(config)


# ----------------------------------------------------------------------------- helpers


def test_similarity_level_and_align_against_pandas():
    sims = np.array([-0.5, -0.2, 0.0999, 0.1, 0.69, 0.7, 1.0, 1.3])
    expected = pd.cut(np.clip(sims, EDGES[0], np.nextafter(EDGES[-1], 0)), bins=EDGES, right=False, labels=False)
    np.testing.assert_array_equal(similarity_level(sims, np.array(EDGES)), expected)
    rng = np.random.default_rng(0)
    ref_req, ref_item = np.repeat(np.arange(5), 4), np.tile([9, 3, 7, 1], 5)
    order = rng.permutation(20)
    idx = align(ref_req[order], ref_item[order], ref_req, ref_item, "x")
    np.testing.assert_array_equal(idx, order)


def test_user_buckets_are_ordered_quantiles():
    values = np.r_[np.zeros(40), np.linspace(0.1, 1.0, 60)]
    bucket = A.user_buckets(values, 4)
    assert bucket.max() <= 3
    for b in range(bucket.max()):  # every value of a bucket lies below every value of the next
        assert values[bucket == b].max() < values[bucket == b + 1].min()
    assert (bucket[:40] == 0).all()  # equal values share one bucket
    counts = np.bincount(A.user_buckets(np.array([2, 0, 1, 1, 2]), 5))
    np.testing.assert_array_equal(counts, [1, 2, 2])  # few distinct values: one bucket each


def test_entropy_and_diversity_against_scipy(world):
    p = np.array([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0], [2.0, 2.0, 0.0]])
    np.testing.assert_allclose(A.entropy(p), [scipy_entropy(r) for r in p])
    train = pd.read_parquet(world["labelled"] / "train.parquet")
    clicked = train[train["clicked"] == 1]
    cat = (clicked["item_id"] % 7) != (clicked["trigger_item_id"] % 7)
    expected = clicked[cat].groupby("user_id")["item_id"].apply(lambda s: (s % 7).nunique())
    users, counts = A.diversity_from_categories(train["user_id"].to_numpy(), train["clicked"].to_numpy(),
                                                train["item_id"].to_numpy() % 7,
                                                train["trigger_item_id"].to_numpy() % 7)
    got = pd.Series(counts, index=users)
    assert got.reindex(expected.index).tolist() == expected.tolist()
    assert (got.drop(expected.index) == 0).all()


def test_labelled_manifest_must_hold_increasing_edges(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"levels": 2, "bin_edges": [0.0, 0.5, 0.4]}))
    with pytest.raises(ValueError, match="'bin_edges' must be at least 3 finite, strictly increasing numbers"):
        LabelledFolder.open(tmp_path)
