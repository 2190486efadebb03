"""Ctrl-C ends every command in one line, whenever it comes: while the heavy modules import, or
while the command works. Real processes, real SIGINT."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_every_console_script_goes_through_the_guarded_launcher():
    from common import launch

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert set(scripts) == set(launch.COMMANDS)
    for name, target in scripts.items():
        module, func = target.split(":")
        assert module == "common.launch" and func == name.replace("-", "_")
        assert hasattr(__import__(launch.COMMANDS[name], fromlist=["main"]), "main")


def interrupt(argv: list[str], after_s: float, cwd: Path) -> tuple[int, str]:
    """Start a console script, send SIGINT after `after_s` seconds, return (exit code, stderr)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([str(BIN / argv[0]), *argv[1:]], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(after_s)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


def _one_line(code: int, err: str, prog: str) -> str:
    lines = err.strip().splitlines()
    assert "Traceback" not in err, err
    if code == 0:  # it finished before the signal came
        return ""
    assert code == 130 and len(lines) == 1 and lines[0].startswith(f"{prog}: interrupted"), err
    return lines[0]


@pytest.mark.slow
@pytest.mark.parametrize("after_s", [0.3, 1.5])
def test_ctrl_c_while_train_daian_starts_is_one_line(tiny_labels, tiny_text_store, tmp_path, after_s):
    labelled, store = tiny_labels, tiny_text_store
    code, err = interrupt(["train-daian", "--data", str(labelled), "--store", str(store), "--model", "din",
                           "--run", str(tmp_path / "run"), "--no-progress"], after_s, tmp_path)
    _one_line(code, err, "train-daian")


@pytest.mark.slow
def test_ctrl_c_while_label_intents_starts_is_one_line(tiny_world, tiny_text_store, tmp_path):
    code, err = interrupt(["label-intents", "--data", str(tiny_world), "--store", str(tiny_text_store),
                           "--out", str(tmp_path / "labels"), "--no-progress"], 0.3, tmp_path)
    _one_line(code, err, "label-intents")
