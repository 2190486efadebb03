"""`train-daian` end to end: single runs, --compare, errors, and the tiny simulated world."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import roc_auc_score

from daian.cli import main

DIN_SETS = ["model.mlp_hidden=32,16", "model.attention_hidden=16", "max_hist=10", "max_subseq=4"]
SMALL_SETS = DIN_SETS + ["model.attention_dim=16", "model.heads=2", "model.uim_hidden=16", "model.i2e_hidden=16",
                         "model.shift_hidden=16", "model.sim_dim=8", "model.mm_dim=8"]


def _args(synthetic, run, *extra, sets=SMALL_SETS):
    sets = [x for s in sets for x in ("--set", s)]
    return ["--data", str(synthetic["labelled"]), "--store", str(synthetic["store"]), "--run", str(run),
            "--recipe", "paper", "--batch-size", "512", "--no-progress", *sets, *extra]


def test_single_run(synthetic, tmp_path, capsys):
    run = tmp_path / "din"
    assert main(_args(synthetic, run, "--model", "din", "--epochs", "1", "--lr", "0.1",
                      "--set", "optimizer=adam", sets=DIN_SETS)) == 0
    out = capsys.readouterr().out
    metrics = json.loads((run / "metrics.json").read_text())
    assert f'"auc": {round(metrics["ctr"]["auc"], 4)}' in out and str(run) in out
    cfg = json.loads((run / "checkpoint" / "config.json").read_text())
    assert cfg["train"]["lr"] == 0.1 and cfg["train"]["optimizer"] == "adam"
    assert cfg["train"]["dataset"] is None  # taken from the labelled manifest
    assert cfg["model"]["name"] == "din" and cfg["model"]["mlp_hidden"] == [32, 16]
    assert "heads" not in cfg["model"]  # DIN's config holds DIN's fields only
    preds = pd.read_parquet(run / "predictions.parquet")
    assert metrics["ctr"]["auc"] == pytest.approx(roc_auc_score(preds.clicked, preds.score))
    assert "intent_pred" not in preds.columns


def test_compare_table(synthetic, tmp_path, capsys):
    run = tmp_path / "cmp"
    assert main(_args(synthetic, run, "--compare", "din,daian", "--seeds", "1,2", "--epochs", "1",
                      "--set", "uim_epochs=1", "--set", "die_epochs=1")) == 0
    out = capsys.readouterr().out
    table = (run / "compare.md").read_text()
    assert table.strip() in out
    rows = {r["run"]: r for r in json.loads((run / "compare.json").read_text())["rows"]}
    assert set(rows) == {"din", "daian"}
    auc = {(m, s): json.loads((run / m / f"seed-{s}" / "metrics.json").read_text())["ctr"]["auc"]
           for m in ("din", "daian") for s in (1, 2)}
    assert rows["daian"]["auc"]["mean"] == pytest.approx(np.mean([auc["daian", 1], auc["daian", 2]]))
    assert rows["daian"]["auc"]["std"] == pytest.approx(np.std([auc["daian", 1], auc["daian", 2]], ddof=1))
    impr = [((auc["daian", s] - 0.5) / (auc["din", s] - 0.5) - 1) * 100 for s in (1, 2)]
    assert rows["daian"]["rela_impr"]["mean"] == pytest.approx(np.mean(impr))
    assert rows["din"]["rela_impr"]["mean"] == 0.0
    assert "js" in rows["daian"] and "js" not in rows["din"]


def test_compare_with_one_models_ablations(synthetic, tmp_path, capsys):
    run = tmp_path / "cmp"
    assert main(_args(synthetic, run, "--compare", "din,daian", "--ablations", "daian", "--epochs", "1",
                      "--optimizer", "adam", "--lr", "0.01")) == 0
    rows = [r["run"] for r in json.loads((run / "compare.json").read_text())["rows"]]
    assert rows == ["din", "daian", "daian-no-uim", "daian-no-die", "daian-no-sein", "daian-no-three-stage"]
    cfg = json.loads((run / "daian" / "checkpoint" / "config.json").read_text())
    assert cfg["train"]["optimizer"] == "adam"
    assert cfg["train"]["lr"] == cfg["train"]["uim_lr"] == cfg["train"]["die_lr"] == 0.01
    # the data decides the levels and the similarity buckets' range (outer intent bin edges)
    edges = json.loads((synthetic["labelled"] / "manifest.json").read_text())["bin_edges"]
    assert cfg["model"]["levels"] == 6
    assert cfg["model"]["sim_range"] == pytest.approx([edges[0], edges[-1]])


@pytest.mark.parametrize("extra, message", [
    (["--compare", "din", "--ablations", "daian"], "not among the compared models"),
    (["--model", "din", "--set", "bogus=1"], "unknown training setting 'bogus'"),
    (["--model", "din", "--set", "model.bogus=1"], "unknown din setting"),
    (["--model", "din", "--set", "model.uim_hidden=16"], "unknown din setting"),
    (["--model", "daian", "--ablation", "no-such"], "unknown ablation"),
    (["--model", "daian", "--set", "model.levels=4"], "model.levels=4 differs from the labelled data's 6 levels"),
    (["--model", "din", "--compare", "din,daian"], "exactly one of --model and --compare"),
    (["--compare", "din,xyz"], "unknown model"),
    (["--model", "din", "--set", "batch_size=many"], "batch_size"),
])
def test_errors(synthetic, tmp_path, capsys, extra, message):
    assert _exit_code(_args(synthetic, tmp_path / "bad", *extra, sets=DIN_SETS)) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def _exit_code(argv) -> int:
    """main's return value, or the code of the SystemExit argparse raises for a bad flag."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def test_contract_violation_is_one_line(synthetic, tmp_path, capsys):
    """A users.parquet that breaks the data contract, or a labelled manifest that breaks its format,
    exits 2 with one line naming the file; --debug shows the traceback instead."""
    dataset = tmp_path / "dataset"
    shutil.copytree(synthetic["dataset"], dataset)
    users = pq.read_table(dataset / "users.parquet")
    pq.write_table(users.set_column(0, "user_id", pc.cast(users.column("user_id"), pa.string())),
                   dataset / "users.parquet")
    argv = _args(synthetic, tmp_path / "run", "--model", "din", "--dataset", str(dataset), sets=DIN_SETS)
    assert _exit_code(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("train-daian: error: ")
    assert "users.parquet" in err[0] and "user_id" in err[0]
    with pytest.raises(ValueError, match="user_id"):
        main(argv + ["--debug"])
    labelled = tmp_path / "labelled"
    shutil.copytree(synthetic["labelled"], labelled)
    manifest = json.loads((labelled / "manifest.json").read_text())
    (labelled / "manifest.json").write_text(json.dumps({**manifest, "bin_edges": [0.3, 0.2, 0.9]}))
    argv = ["--data", str(labelled), "--store", str(synthetic["store"]), "--model", "din",
            "--run", str(tmp_path / "run2")]
    assert _exit_code(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "manifest.json" in err[0] and "bin_edges" in err[0]


def test_module_help_runs():
    done = subprocess.run([sys.executable, "-m", "daian.cli", "--help"], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2], timeout=120)
    assert done.returncode == 0 and "--resume" in done.stdout and "--compare" in done.stdout


@pytest.mark.slow
def test_tiny_world_end_to_end(tiny_labelled, tmp_path, capsys):
    """simulate-tir tiny -> MiniLM store -> label-intents -> train-daian daian, checked independently."""
    data, store, dataset = tiny_labelled
    run = tmp_path / "daian"
    sets = [x for s in SMALL_SETS for x in ("--set", s)]
    # no --dataset: found through the store's items.parquet, whose sha256 the labels recorded
    assert main(["--data", str(data), "--store", str(store), "--model", "daian", "--recipe", "paper",
                 "--epochs", "1", "--batch-size", "1024", "--run", str(run), "--no-progress", *sets]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert json.loads((run / "checkpoint" / "config.json").read_text())["train"]["dataset"] is None
    preds = pd.read_parquet(run / "predictions.parquet")
    test = pd.read_parquet(data / "test.parquet", columns=["request_id", "item_id", "clicked", "has_intent"])
    assert len(preds) == len(test) and (preds.item_id.to_numpy() == test.item_id.to_numpy()).all()
    assert metrics["ctr"]["auc"] == pytest.approx(roc_auc_score(preds.clicked, preds.score))
    assert metrics["intent"]["requests"] == test[test.has_intent].request_id.nunique()
    users = pd.read_parquet(dataset / "truth" / "users.parquet")
    assert set(metrics["intent"]["by_user_type"]) <= set(users.user_type)
    assert np.isfinite(preds.score).all()


def test_compare_in_two_processes_matches_one(synthetic, tmp_path):
    """--jobs 2 trains the same runs as a sequential comparison (up to float rounding)."""
    tables = {}
    for jobs in (1, 2):
        run = tmp_path / f"jobs{jobs}"
        assert main(_args(synthetic, run, "--compare", "din,daian", "--seeds", "1,2", "--epochs", "1",
                          "--set", "cpu_threads=1", "--jobs", str(jobs))) == 0
        tables[jobs] = {r["run"]: r for r in json.loads((run / "compare.json").read_text())["rows"]}
        for m in ("din", "daian"):
            for s in (1, 2):
                preds = pd.read_parquet(run / m / f"seed-{s}" / "predictions.parquet")
                metrics = json.loads((run / m / f"seed-{s}" / "metrics.json").read_text())
                assert metrics["ctr"]["auc"] == pytest.approx(roc_auc_score(preds.clicked, preds.score))
    for name in ("din", "daian"):
        for key in ("auc", "gauc", "logloss"):
            assert tables[2][name][key]["mean"] == pytest.approx(tables[1][name][key]["mean"], abs=1e-5)
