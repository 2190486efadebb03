"""`label-intents` end to end: flags reach the config, outputs land where it says."""
from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from intent_labels.cli import build_parser, main


def test_cli_smoke(tmp_path, synth_world, synth_store, capsys):
    out = tmp_path / "labels"
    code = main(["--data", str(synth_world), "--store", str(synth_store), "--out", str(out), "--levels", "5",
                 "--train-days", "6", "--subseq-level", "4", "--max-subseq", "3", "--on-missing", "drop",
                 "--no-progress"])
    assert code == 0
    assert str(out) in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["levels"] == 5 and len(manifest["bin_edges"]) == 6
    assert manifest["threshold"]["subseq_level"] == 4 and manifest["caps"]["max_subseq"] == 3
    assert manifest["split"]["train_days"] == 6
    assert pq.read_metadata(out / "rejects.parquet").num_rows == 0  # drop mode always writes the file
    test = pq.read_table(out / "test.parquet")
    assert max(len(x) for x in test.column("mm_subseq_item_ids").to_pylist()) <= 3
    assert (out / "stats" / "coverage.md").is_file()


def test_every_flag_has_help():
    parser = build_parser()
    for action in parser._actions:
        assert action.help, action.dest
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(["--help"])
    assert exc.value.code == 0
