"""`label-intents` end to end: flags reach the config, outputs land where it says."""
from __future__ import annotations

import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from common.contract import ContractError
from intent_labels.cli import build_parser, main


def test_cli_smoke(tmp_path, synth_world, synth_store, capsys):
    out = tmp_path / "labels"
    code = main(["--data", str(synth_world), "--store", str(synth_store), "--out", str(out), "--levels", "5",
                 "--train-days", "6", "--subseq-level", "4", "--max-subseq", "3", "--on-missing", "drop",
                 "--min-split-requests", "5", "--no-progress"])
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


def test_every_flag_has_help(every_flag_has_help):
    every_flag_has_help(build_parser())


def test_contract_violation_exits_2_with_one_line(tmp_path, synth_world, synth_store, user_error):
    """impressions.parquet with a null user_id: one line naming the file, column and row; --debug raises."""
    world = tmp_path / "world"
    shutil.copytree(synth_world, world)
    imp = pq.read_table(world / "impressions.parquet")
    users = imp.column("user_id").to_pylist()
    users[3] = None
    i = imp.schema.get_field_index("user_id")
    bad = imp.set_column(i, imp.schema.field(i), pa.array(users, pa.int64()))
    pq.write_table(bad, world / "impressions.parquet")
    args = ["--data", str(world), "--store", str(synth_store), "--out", str(tmp_path / "labels"), "--no-progress"]
    assert main(args) == 2
    assert user_error("label-intents").startswith(
        f"label-intents: error: {world / 'impressions.parquet'}: column 'user_id': 1 row(s) are null; "
        "first row(s) [3]")
    with pytest.raises(ContractError, match="'user_id': 1 row"):
        main(args + ["--debug"])
