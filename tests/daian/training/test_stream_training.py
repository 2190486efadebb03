"""Training on the streaming path: a run killed mid-epoch resumes to the predictions of an
uninterrupted one; auto picks the path by the memory budget and records it; two processes under
torchrun see the global batches of one."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from daian.training import checkpoint as C
from daian.training import trainer as T
from daian.training.config import TrainConfig

SMALL = {"mlp_hidden": (8,), "attention_hidden": (8,)}


def _config(small_groups, tiny_text_store, tiny_world, run, **kw):
    values = dict(data=small_groups, store=tiny_text_store, dataset=tiny_world, run=run, model="din",
                  recipe="small", batch_size=256, epochs=2, progress=False, max_hist=20, max_subseq=8,
                  model_settings=SMALL, stream="on", stream_buffer_rows=1500, cpu_threads=1)
    return TrainConfig(**{**values, **kw})


class Killed(Exception):
    pass


@pytest.mark.parametrize("stream", ["on", "off"])
def test_killed_mid_epoch_resumes_to_the_same_predictions(small_groups, tiny_text_store, tiny_world,
                                                          tmp_path, monkeypatch, stream):
    whole = _config(small_groups, tiny_text_store, tiny_world, tmp_path / "whole", stream=stream)
    T.train(whole)
    original = C.save_checkpoint

    def dies_after_step_20(run_dir, **kw):
        original(run_dir, **kw)
        state = kw["trainer_state"]
        if state["epoch"] == 1 and state["step"] == 20:  # inside the second epoch
            raise Killed

    monkeypatch.setattr(C, "save_checkpoint", dies_after_step_20)
    cut = _config(small_groups, tiny_text_store, tiny_world, tmp_path / "cut", stream=stream, checkpoint_steps=10)
    with pytest.raises(Killed):
        T.train(cut)
    saved = json.loads((tmp_path / "cut" / "checkpoint" / "config.json").read_text())
    assert saved["progress"]["epoch"] == 1 and not saved["progress"]["finished"]
    monkeypatch.setattr(C, "save_checkpoint", original)
    T.train(cut.replace(resume=True))
    a = pd.read_parquet(tmp_path / "whole" / "predictions.parquet")
    b = pd.read_parquet(tmp_path / "cut" / "predictions.parquet")
    np.testing.assert_array_equal(a.score.to_numpy(), b.score.to_numpy())
    ha = json.loads((tmp_path / "whole" / "metrics.json").read_text())["train"]["history"]
    hb = json.loads((tmp_path / "cut" / "metrics.json").read_text())["train"]["history"]
    assert [h["loss"] for h in ha] == pytest.approx([h["loss"] for h in hb], rel=1e-6)
    assert [h["rows"] for h in ha] == [h["rows"] for h in hb]


def test_auto_streams_past_the_budget_and_records_the_path(small_groups, tiny_text_store, tiny_world, tmp_path):
    from daian.data.stream_loading import in_memory_bytes

    need = in_memory_bytes(small_groups, 20, 8)
    low = _config(small_groups, tiny_text_store, tiny_world, tmp_path / "low", stream="auto", epochs=1,
                  memory_budget_gb=need / 2 / 2 ** 30)
    high = low.replace(run=tmp_path / "high", memory_budget_gb=need * 2 / 2 ** 30)
    assert T.choose_stream(low).stream == "on" and T.choose_stream(high).stream == "off"
    T.train(low)
    metrics = json.loads((tmp_path / "low" / "metrics.json").read_text())
    assert metrics["data"]["streaming"] is True
    saved = json.loads((tmp_path / "low" / "checkpoint" / "config.json").read_text())
    assert saved["train"]["stream"] == "on"
    # resumed with auto and a budget that would not stream: the run keeps its path
    assert T.choose_stream(high.replace(run=tmp_path / "low", resume=True)).stream == "on"


WORKER = r"""
import json, os, sys
import torch.distributed as dist
from daian.data.stream_loading import load_streaming
rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
if world > 1:
    dist.init_process_group("gloo")
data, store, dataset, out = sys.argv[1:5]
bundle = load_streaming(data, store, dataset, max_hist=20, max_subseq=8)
loader = bundle.train_loader(batch_size=300, seed=4, rank=rank, world_size=world, shards=2, buffer_rows=1000)
loader.set_epoch(1)
rows = [r.tolist() for r, _ in loader.batches()]
with open(f"{out}.{rank}.json", "w") as fh:
    json.dump(rows, fh)
if world > 1:
    dist.barrier()
    dist.destroy_process_group()
"""


def test_two_processes_under_torchrun_see_the_batches_of_one(small_groups, tiny_text_store, tiny_world, tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    args = [str(small_groups), str(tiny_text_store), str(tiny_world)]
    subprocess.run([sys.executable, str(script), *args, str(tmp_path / "one")], check=True, env=env, cwd=root)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
                "127.0.0.1", "--master_port", "29517"]
    subprocess.run([*torchrun, str(script), *args, str(tmp_path / "two")], check=True, env=env, cwd=root,
                   timeout=300)
    one = json.loads((tmp_path / "one.0.json").read_text())
    two = [json.loads((tmp_path / f"two.{r}.json").read_text()) for r in (0, 1)]
    assert len(one) == len(two[0]) == len(two[1]) > 10
    for k, rows in enumerate(one):
        assert two[0][k] + two[1][k] == rows and two[0][k] and two[1][k]
    assert not set(sum(two[0], [])) & set(sum(two[1], []))  # each process its own shard


@pytest.mark.parametrize("stream", ["on", "off"])
def test_max_steps_ends_every_epoch_there_and_scores_the_whole_test_split(small_groups, tiny_text_store,
                                                                         tiny_world, tmp_path, stream):
    import pyarrow.parquet as pq

    from intent_labels.labelled import LabelledFolder

    cfg = _config(small_groups, tiny_text_store, tiny_world, tmp_path / "run", stream=stream, max_steps=3)
    T.train(cfg)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    history = metrics["train"]["history"]
    folder = LabelledFolder.open(small_groups)
    train_rows, test_rows = (pq.ParquetDataset(str(folder.split_path(s))).read(columns=["item_id"]).num_rows
                             for s in ("train", "test"))
    if stream == "on":  # the stream's T = ceil(N / 256) steps differ by at most one row, larger first
        steps = -(-train_rows // 256)
        base, extra = divmod(train_rows, steps)
        expected = sum(base + (i < extra) for i in range(3))
    else:
        expected = 3 * 256
    assert len(history) == 2  # both epochs ran, each cut at 3 steps
    assert [h["rows"] for h in history] == [expected, expected]
    assert len(pd.read_parquet(tmp_path / "run" / "predictions.parquet")) == test_rows
