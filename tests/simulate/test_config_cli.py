"""Config resolution, bad inputs, and one end-to-end CLI run."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from simulate import PRESETS, simulate_world
from simulate.cli import main
from simulate.config import WorldConfig, parse_set_args, resolve_config

REPO = Path(__file__).resolve().parents[2]
SMALL = ["--set", "n_users=40", "--set", "n_items=200", "--set", "n_top_categories=4"]


def test_presets_and_sizes():
    assert set(PRESETS) == {"tiny", "demo", "large"}
    assert PRESETS["demo"].n_items == 20_000 and PRESETS["demo"].n_users == 10_000
    assert PRESETS["tiny"].n_items <= 500 and PRESETS["large"].n_users > PRESETS["demo"].n_users


def test_set_values_are_converted_to_field_types():
    cfg = resolve_config("tiny", 3, parse_set_args(["n_users=1_000", "click_bias=-4", "write_images=false",
                                                    "target_mix=0.4,0.1,0.2,0.3"]))
    assert cfg.seed == 3 and cfg.n_users == 1000 and cfg.click_bias == -4.0 and cfg.write_images is False
    assert cfg.target_mix == (0.4, 0.1, 0.2, 0.3)


@pytest.mark.parametrize("overrides, message", [
    ({"n_userz": "3"}, "unknown config key 'n_userz'"),
    ({"n_users": "many"}, "bad value for config key 'n_users'"),
    ({"n_users": "2.5"}, "bad value for config key 'n_users'"),
    ({"write_images": "maybe"}, "bad value for config key 'write_images'"),
    ({"session_prob": "1.5"}, "session_prob must be in [0, 1]"),
    ({"specific_template": "0.5,0.5"}, "specific_template must hold n_levels=6"),
])
def test_bad_overrides_name_the_key(overrides, message, tmp_path):
    with pytest.raises(ValueError) as err:
        simulate_world("tiny", tmp_path / "w", overrides=overrides)
    assert message in str(err.value)
    assert not (tmp_path / "w").exists()


def test_unknown_preset_lists_presets(tmp_path):
    with pytest.raises(ValueError, match=r"unknown preset 'huge'; choose one of demo, large, tiny"):
        simulate_world("huge", tmp_path / "w")


def test_dataclass_validates_directly():
    with pytest.raises(ValueError, match="level_min"):
        WorldConfig(level_min=1.0, level_max=0.5)
    with pytest.raises(ValueError, match="n_items=20 is too small"):
        WorldConfig(n_items=20)


def test_non_empty_out_needs_overwrite(tmp_path):
    out = tmp_path / "w"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="is not empty"):
        simulate_world("tiny", out, overrides={"n_users": 20, "n_items": 200, "n_top_categories": 4})
    simulate_world("tiny", out, overrides={"n_users": 20, "n_items": 200, "n_top_categories": 4},
                   overwrite=True, show_progress_bar=False)
    assert (out / "notes.txt").read_text() == "keep me" and (out / "impressions.parquet").is_file()


def test_cli_errors_exit_2_with_message(tmp_path, capsys):
    assert main(["--preset", "nope", "--out", str(tmp_path / "a")]) == 2
    assert "unknown preset 'nope'" in capsys.readouterr().err
    assert main(["--preset", "tiny", "--set", "n_users", "--out", str(tmp_path / "a")]) == 2
    assert "expected key=value" in capsys.readouterr().err


@pytest.mark.parametrize("flags, message", [
    (["--set", "n_users=many"], "bad value for config key 'n_users'"),
    (["--set", "n_userz=3"], "unknown config key 'n_userz'"),
    (["--preset", "huge"], "unknown preset 'huge'"),  # the last --preset wins
])
def test_cli_user_error_is_one_line_and_debug_raises(flags, message, tmp_path, capsys):
    out = tmp_path / "bad"
    argv = ["--preset", "tiny", *flags, "--out", str(out), "--no-progress"]
    assert main(argv) == 2
    printed = capsys.readouterr()
    assert printed.out == "" and "Traceback" not in printed.err
    (line,) = printed.err.splitlines()
    assert line.startswith("simulate-tir: error: ") and message in line
    assert not out.exists()
    with pytest.raises(ValueError, match=message):
        main([*argv, "--debug"])


def test_cli_end_to_end(tmp_path):
    out = tmp_path / "cli"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "simulate.cli", "--preset", "tiny", "--seed", "5", *SMALL,
           "--out", str(out), "--no-progress"]
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    assert run.returncode == 0, run.stderr
    assert str(out) in run.stdout and "impressions=" in run.stdout
    names = {p.name for p in out.iterdir()}
    assert names == {"items.parquet", "users.parquet", "behaviors.parquet", "impressions.parquet", "images",
                     "truth", "world.json"}
    world = json.loads((out / "world.json").read_text())
    assert world["config"] == resolve_config("tiny", 5, {"n_users": 40, "n_items": 200,
                                                         "n_top_categories": 4}).to_dict()
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    assert again.returncode == 2 and "--overwrite" in again.stderr
