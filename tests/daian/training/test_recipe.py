"""Recipes, warnings of a run that did not learn, resume refusals and Ctrl-C (issue 21)."""
from __future__ import annotations

import json
import math
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from daian.cli import build_parser, config_from_args, main
from daian.training import trainer as T
from daian.training.config import TrainConfig
from daian.training.recipe import resolve_recipe

ROOT = Path(__file__).resolve().parents[3]
DIN_SETS = ["model.mlp_hidden=32,16", "model.attention_hidden=16", "max_hist=10", "max_subseq=4",
            "cpu_threads=1"]


def _config(**changes) -> TrainConfig:
    return TrainConfig(data=".", store=".", run=".", **changes)


def _small_batch(rows: int) -> int:
    """Independently: the largest power of two <= 512 with >= 100 steps per epoch, at least 32."""
    candidates = [b for b in (512, 256, 128, 64, 32) if math.ceil(rows / b) >= 100]
    return candidates[0] if candidates else 32


# ----------------------------------------------------------------------------- choosing a recipe


@pytest.mark.parametrize("rows", [6_349, 9_011, 359_108])
def test_auto_picks_small_on_small_logs(rows):
    config, record = resolve_recipe(_config(), rows)
    batch = _small_batch(rows)
    epochs = max(1, math.ceil(500 / math.ceil(rows / batch)))
    assert record["asked"] == "auto" and record["used"] == "small"
    assert f"{math.ceil(rows / 4096)} steps per epoch at batch 4096 < 2,000" in record["reason"]
    assert (config.optimizer, config.lr, config.uim_lr, config.die_lr) == ("adam", 1e-3, 1e-3, 1e-3)
    assert (config.batch_size, config.epochs, config.uim_epochs, config.die_epochs) == (batch, epochs, epochs, epochs)
    assert record["settings"]["batch_size"] == batch and record["overridden"] == []


def test_auto_picks_paper_on_a_pretend_large_log():
    rows = 2_000 * 4096  # exactly 2,000 steps per epoch at batch 4096
    config, record = resolve_recipe(_config(), rows)
    assert record["used"] == "paper" and "2,000 steps per epoch at batch 4096 >= 2,000" in record["reason"]
    assert (config.optimizer, config.lr, config.batch_size, config.epochs) == ("adagrad", 0.05, 4096, 1)
    assert config.uim_lr == config.die_lr == 0.05
    assert resolve_recipe(_config(), rows - 4096)[1]["used"] == "small"  # 1,999 steps


def test_explicit_settings_win_over_the_recipe():
    argv = ["--data", ".", "--store", ".", "--run", ".", "--model", "din", "--lr", "0.02",
            "--batch-size", "128", "--set", "epochs=3"]
    config, record = resolve_recipe(config_from_args(build_parser().parse_args(argv)), 6_349)
    assert (config.optimizer, config.lr, config.uim_lr, config.die_lr) == ("adam", 0.02, 0.02, 0.02)
    assert (config.batch_size, config.epochs) == (128, 3)
    assert record["overridden"] == ["batch_size", "die_lr", "epochs", "lr", "uim_lr"]
    config, record = resolve_recipe(config_from_args(build_parser().parse_args(
        argv + ["--optimizer", "adagrad", "--set", "uim_lr=0.3"])), 10**8)
    assert record["used"] == "paper" and (config.optimizer, config.lr, config.uim_lr, config.die_lr) == (
        "adagrad", 0.02, 0.3, 0.02)
    config, record = resolve_recipe(_config(recipe="small"), 10**8)  # asked by hand, whatever the size
    assert record["used"] == "small" and record["reason"] == "asked for small" and config.batch_size == 512
    paper = _config(recipe="paper", batch_size=512)  # needs no data: filled in at once
    assert paper.resolved and (paper.optimizer, paper.lr, paper.batch_size) == ("adagrad", 0.05, 512)


def test_run_without_recipe_flags_records_the_recipe(synthetic, tmp_path, capsys):
    run = tmp_path / "din"
    sets = [x for s in DIN_SETS for x in ("--set", s)]
    assert main(["--data", str(synthetic["labelled"]), "--store", str(synthetic["store"]), "--model", "din",
                 "--run", str(run), "--no-progress", *sets]) == 0
    rows = len(pd.read_parquet(synthetic["labelled"] / "train.parquet", columns=["clicked"]))
    batch = _small_batch(rows)
    epochs = max(1, math.ceil(500 / math.ceil(rows / batch)))
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["recipe"]["asked"] == "auto" and metrics["recipe"]["used"] == "small"
    assert metrics["recipe"]["settings"]["batch_size"] == batch
    stored = json.loads((run / "checkpoint" / "config.json").read_text())["train"]
    assert (stored["optimizer"], stored["lr"], stored["batch_size"], stored["epochs"]) == ("adam", 1e-3, batch, epochs)
    assert len(metrics["train"]["history"]) == epochs
    err = capsys.readouterr().err
    assert f"recipe small ({metrics['recipe']['reason']}): adam lr 0.001, batch {batch}" in err
    # the warnings, recomputed independently from the predictions
    preds = pd.read_parquet(run / "predictions.parquet")
    n_pos, n_neg = int(preds.clicked.sum()), int((preds.clicked == 0).sum())
    se = np.sqrt((n_pos + n_neg + 1) / (12 * n_pos * n_neg))
    noisy = abs(roc_auc_score(preds.clicked, preds.score) - 0.5) < 2 * se
    assert any("within noise of 0.5" in w for w in metrics["warnings"]) == noisy
    assert isinstance(metrics["warnings"], list)


# ----------------------------------------------------------------------------- warnings


def test_constant_scores_end_with_warnings(synthetic, bundle, tmp_path, monkeypatch, caplog):
    def constant(model, dataset, **kwargs):
        return np.full(len(dataset), 0.127, np.float32), None

    import daian.training.loop as L

    monkeypatch.setattr(L, "predict", constant)  # what predict_windows calls
    config = TrainConfig(data=synthetic["labelled"], store=synthetic["store"], run=tmp_path / "run", model="din",
                         recipe="paper", batch_size=512, progress=False, max_hist=10, max_subseq=4,
                         model_settings={"mlp_hidden": (8,), "attention_hidden": (8,)})
    with caplog.at_level("WARNING", logger="daian"):
        result = T.train(config, bundle)
    metrics = json.loads((config.run / "metrics.json").read_text())
    assert metrics["warnings"] == result["warnings"] and len(metrics["warnings"]) == 2
    assert "test scores are constant (p = 0.127" in metrics["warnings"][0]
    clicked = bundle.test.meta["clicked"]
    n_pos, n_neg = int((clicked == 1).sum()), int((clicked == 0).sum())
    se = np.sqrt((n_pos + n_neg + 1) / (12 * n_pos * n_neg))
    assert roc_auc_score(clicked, np.full(len(clicked), 0.127)) == 0.5
    assert f"within noise of 0.5 (|AUC - 0.5| < 2 x {se:.4f}" in metrics["warnings"][1]
    logged = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(logged) == 2 and all(m.startswith("warning: din seed 1: ") for m in logged)


# ----------------------------------------------------------------------------- resume


def _din_argv(synthetic, run, *extra):
    sets = [x for s in DIN_SETS for x in ("--set", s)]
    return ["--data", str(synthetic["labelled"]), "--store", str(synthetic["store"]), "--model", "din",
            "--run", str(run), "--no-progress", *sets, *extra]


def test_resume_refuses_a_changed_setting(synthetic, tmp_path, capsys, user_error):
    run = tmp_path / "run"
    assert main(_din_argv(synthetic, run, "--lr", "0.01", "--epochs", "1")) == 0
    capsys.readouterr()
    assert main(_din_argv(synthetic, run, "--lr", "0.02", "--epochs", "1", "--resume")) == 2
    line = user_error("train-daian")
    assert "setting 'lr' was 0.01" in line and "now 0.02" in line and "checkpoint" in line
    assert main(_din_argv(synthetic, run, "--lr", "0.01", "--set", "max_hist=12", "--resume")) == 2
    assert "setting 'max_hist' was 10" in user_error("train-daian")
    assert main(_din_argv(synthetic, run, "--recipe", "paper", "--resume")) == 2
    assert "setting 'recipe' was 'auto' when the run was trained, now 'paper'" in user_error("train-daian")
    assert main(_din_argv(synthetic, run, "--set", "model.mlp_hidden=16", "--resume")) == 2
    assert "mlp_hidden" in user_error("train-daian")
    # unchanged (unset settings take the checkpoint's), or execution only: accepted
    assert main(_din_argv(synthetic, run, "--resume", "--set", "cpu_threads=2")) == 0
    assert json.loads((run / "checkpoint" / "config.json").read_text())["train"]["lr"] == 0.01


def test_run_from_before_recipes_resumes_with_its_settings(synthetic, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(_din_argv(synthetic, run, "--recipe", "paper", "--batch-size", "512", "--epochs", "1")) == 0
    path = run / "checkpoint" / "config.json"
    meta = json.loads(path.read_text())
    del meta["recipe"], meta["train"]["recipe"]  # what a checkpoint written before recipes holds
    path.write_text(json.dumps(meta))
    assert main(_din_argv(synthetic, run, "--resume")) == 0  # auto would pick small: the stored ones win
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["recipe"]["used"] == "checkpoint"
    settings = metrics["recipe"]["settings"]
    assert (settings["optimizer"], settings["lr"], settings["batch_size"], settings["epochs"]) == (
        "adagrad", 0.05, 512, 1)


# ----------------------------------------------------------------------------- Ctrl-C


def test_ctrl_c_says_what_was_kept_and_how_to_resume(synthetic, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    real, calls = T.run_epoch, {"n": 0}

    def dying(*args, **kwargs):
        if calls["n"] == 1:
            raise KeyboardInterrupt
        calls["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(T, "run_epoch", dying)
    argv = _din_argv(synthetic, run, "--epochs", "2")
    assert main(argv) == 130
    err = capsys.readouterr().err.strip().splitlines()
    line = [x for x in err if "interrupted" in x]
    assert len(line) == 1 and line[0] == err[-1] and "Traceback" not in "\n".join(err)
    assert line[0].startswith(f"train-daian: interrupted; kept 1 checkpoint(s) of the last finished epoch under {run}")
    tail = line[0].split("resume with: train-daian ", 1)[1]
    assert shlex.split(tail) == argv + ["--resume"]
    monkeypatch.setattr(T, "run_epoch", real)
    assert main(shlex.split(tail)) == 0
    assert [h["epoch"] for h in json.loads((run / "metrics.json").read_text())["train"]["history"]] == [1, 2]


@pytest.mark.slow
def test_ctrl_c_of_a_comparison_in_processes_is_one_line(synthetic, tmp_path):
    run = tmp_path / "cmp"
    sets = [x for s in DIN_SETS for x in ("--set", s)]
    argv = [sys.executable, "-m", "daian.cli", "--data", str(synthetic["labelled"]), "--store",
            str(synthetic["store"]), "--compare", "din,dei2n", "--seeds", "1,2", "--jobs", "2", "--epochs", "30",
            "--batch-size", "64", "--run", str(run), "--no-progress", *sets]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    deadline = time.time() + 240
    while not list(run.glob("**/checkpoint/config.json")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole process group
    out, err = proc.communicate(timeout=120)
    lines = [x for x in err.strip().splitlines() if x.strip()]
    assert proc.returncode == 130, err[-3000:]
    assert len(lines) == 1 and lines[0].startswith("train-daian: interrupted; kept "), err[-3000:]
    assert lines[0].endswith("--resume")
