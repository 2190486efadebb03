"""The `tir-report` command: a report from the runs' recorded paths, and one-line user errors."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from report.cli import main

REPO = Path(__file__).resolve().parents[2]


def test_cli_builds_the_report_from_recorded_paths(world, tmp_path, capsys):
    # no --data / --dataset: the runs' checkpoint/config.json name them
    out = tmp_path / "cli"
    code = main([str(world["cmp"]), "--out", str(out), "--examples", "1", "--diversity", "profile",
                 "--ctr-split", "test", "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert f"report written to {out / 'report.html'}" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["diversity"]["measure"] == "profile"
    assert report["ctr_page_level"]["split"] == "test"
    assert sum(sum(r) for r in report["ctr_page_level"]["impressions"]) == pq.read_metadata(
        world["labelled"] / "test.parquet").num_rows
    assert len(report["examples"]) == 1
    assert "levels_sweep" not in report  # one value of n only: the figure is explained, not drawn
    assert "Not drawn: it needs runs at two or more values of n" in (out / "report.md").read_text()


def test_cli_reports_errors_without_a_traceback(world, tmp_path, capsys):
    assert main([str(tmp_path), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    assert "tir-report: error:" in capsys.readouterr().err


def _bad_manifest(world, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the labelled folder whose bin edges decrease; the din run unchanged."""
    labelled = tmp_path / "labelled"
    shutil.copytree(world["labelled"], labelled)
    manifest = json.loads((labelled / "manifest.json").read_text())
    manifest["bin_edges"] = [0.0, 0.5, 0.4, 0.7, 1.0]
    (labelled / "manifest.json").write_text(json.dumps(manifest))
    return world["cmp"] / "din", labelled


def _no_score_column(world, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the din run whose first seed's predictions.parquet lacks the score column."""
    run = tmp_path / "din"
    shutil.copytree(world["cmp"] / "din", run)
    path = run / "seed-1" / "predictions.parquet"
    pq.write_table(pq.read_table(path).drop_columns(["score"]), path)
    return run, world["labelled"]


@pytest.mark.parametrize("breaks, message", [
    (_bad_manifest, "labelled/manifest.json: 'bin_edges' must be at least 3 finite, strictly increasing"),
    (_no_score_column, "seed-1/predictions.parquet: missing column(s) ['score']"),
])
def test_a_broken_input_exits_2_with_one_line_and_debug_raises(world, tmp_path, breaks, message):
    run, labelled = breaks(world, tmp_path)
    out = tmp_path / "out"
    argv = [str(run), "--data", str(labelled), "--dataset", str(world["dataset"]), "--out", str(out),
            "--no-progress"]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-m", "report.cli", *argv], capture_output=True, text=True,
                          env=env, cwd=REPO)
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tir-report: error: ") and message in lines[0]
    assert "Traceback" not in done.stderr and not out.exists()
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        main([*argv, "--debug"])
