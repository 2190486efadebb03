"""The main job (`make demo` = scripts/demo.py) end to end on the tiny preset, and its step reuse."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parents[2]


def _demo_module():
    spec = importlib.util.spec_from_file_location("demo_script", ROOT / "scripts" / "demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    demo = _demo_module()
    out = tmp_path_factory.mktemp("demo") / "out"
    assert demo.main(["--preset", "tiny", "--out", str(out), "--jobs", "2"]) == 0
    return demo, out


def test_every_step_leaves_its_outputs(demo_run):
    demo, out = demo_run
    for step in ("world", "store", "labels", "sweep", "runs", "report"):
        assert (out / step / ".done").is_file(), step
    rows = {r["run"] for r in json.loads((out / "runs" / "compare.json").read_text())["rows"]}
    assert rows == {"din", "dei2n", "daian", "daian-no-uim", "daian-no-die", "daian-no-sein",
                    "daian-no-three-stage"}
    for n in demo.SWEEP_LEVELS:
        assert json.loads((out / "sweep" / f"n{n}" / "labels" / "manifest.json").read_text())["levels"] == n
        preds = pd.read_parquet(out / "sweep" / f"n{n}" / "daian" / "predictions.parquet")
        assert len(preds.intent_pred.iloc[0]) == n
    # the recipe reached the runs, and the metrics match their predictions
    cfg = json.loads((out / "runs" / "daian" / "checkpoint" / "config.json").read_text())["train"]
    assert {k: cfg[k] for k in demo.DEMO_RECIPE} == demo.DEMO_RECIPE
    preds = pd.read_parquet(out / "runs" / "dei2n" / "predictions.parquet")
    metrics = json.loads((out / "runs" / "dei2n" / "metrics.json").read_text())
    assert metrics["ctr"]["auc"] == pytest.approx(roc_auc_score(preds.clicked, preds.score))
    report = json.loads((out / "report" / "report.json").read_text())
    assert (out / "report" / "report.html").stat().st_size > 10_000
    assert sorted(p["levels"] for p in report["levels_sweep"]) == sorted({6, *demo.SWEEP_LEVELS})


def test_a_rerun_reuses_finished_steps(demo_run, capsys):
    demo, out = demo_run
    stamp = (out / "runs" / "compare.json").stat().st_mtime_ns
    capsys.readouterr()
    assert demo.main(["--preset", "tiny", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for step in ("simulate", "embed", "label", "sweep labels", "train", "report"):
        assert f"[{step}] reusing" in printed, step
    assert (out / "runs" / "compare.json").stat().st_mtime_ns == stamp
