"""`train-daian` end to end: single runs, --compare, errors, and the tiny simulated world."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from daian.cli import main

SMALL_SETS = ["model.mlp_hidden=32,16", "model.attention_hidden=16", "model.attention_dim=16", "model.heads=2",
              "model.uim_hidden=16", "model.i2e_hidden=16", "model.shift_hidden=16", "model.sim_dim=8",
              "model.mm_dim=8", "max_hist=10", "max_subseq=4"]


def _args(synthetic, run, *extra):
    sets = [x for s in SMALL_SETS for x in ("--set", s)]
    return ["--data", str(synthetic["labelled"]), "--store", str(synthetic["store"]), "--run", str(run),
            "--batch-size", "512", "--no-progress", *sets, *extra]


def test_single_run(synthetic, tmp_path, capsys):
    run = tmp_path / "din"
    assert main(_args(synthetic, run, "--model", "din", "--epochs", "1", "--lr", "0.1",
                      "--set", "optimizer=adam")) == 0
    out = capsys.readouterr().out
    metrics = json.loads((run / "metrics.json").read_text())
    assert f'"auc": {round(metrics["ctr"]["auc"], 4)}' in out and str(run) in out
    cfg = json.loads((run / "checkpoint" / "config.json").read_text())
    assert cfg["train"]["lr"] == 0.1 and cfg["train"]["optimizer"] == "adam"
    assert cfg["train"]["dataset"] is None  # taken from the labelled manifest
    assert cfg["model"]["mlp_hidden"] == [32, 16] and cfg["model"]["heads"] == 2
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
    (["--model", "din", "--set", "model.bogus=1"], "unknown model setting"),
    (["--model", "daian", "--ablation", "no-such"], "unknown ablation"),
    (["--model", "din", "--compare", "din,daian"], "exactly one of --model and --compare"),
    (["--compare", "din,xyz"], "unknown model"),
    (["--model", "din", "--set", "batch_size=many"], "batch_size"),
])
def test_errors(synthetic, tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit) as exc:
        main(_args(synthetic, tmp_path / "bad", *extra))
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


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
    assert main(["--data", str(data), "--store", str(store), "--model", "daian",
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
