"""The trainer: stage schedules, losses, checkpoints and resume, leakage, outputs."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from scipy.stats import entropy
from sklearn.metrics import roc_auc_score
from torch import nn

from daian.models import build_model, registry
from daian.models.base import ModelOutput
from daian.training import trainer as T
from daian.training.loop import predict
from daian.data import EpochBatchSampler, make_loader
from daian.training.checkpoint import load_checkpoint
from daian.training.config import TrainConfig
from daian.training.losses import ctr_loss, intent_kl

# Tiny architecture so each training run takes seconds.
SMALL = {"mlp_hidden": (32, 16), "attention_hidden": (16,), "attention_dim": 16, "heads": 2,
         "uim_hidden": (16,), "i2e_hidden": (16,), "shift_hidden": (16,), "sim_dim": 8, "mm_dim": 8,
         "dropout": 0.1}


def make_config(synthetic, run, **changes) -> TrainConfig:
    values = dict(data=synthetic["labelled"], store=synthetic["store"], run=run, model="daian", recipe="paper",
                  batch_size=512, epochs=2, uim_epochs=1, die_epochs=1, progress=False,
                  max_hist=10, max_subseq=4, max_page=2, max_dt=60 * 24 * 7, price_buckets=4,
                  model_settings=dict(SMALL))
    values.update(changes)
    known = registry.get(values["model"]).config.field_names()  # SMALL holds every model's settings
    values["model_settings"] = {k: v for k, v in values["model_settings"].items() if k in known}
    return TrainConfig(**values)


@pytest.fixture(scope="module")
def daian_run(synthetic, bundle, tmp_path_factory):
    """One uninterrupted DAIAN run (stages 1 + 2 + 2 CTR epochs) on the synthetic world."""
    config = make_config(synthetic, tmp_path_factory.mktemp("daian-run") / "run")
    result = T.train(config, bundle)
    return config, result


def _scores(run):
    return pq.read_table(run / "predictions.parquet")


# ----------------------------------------------------------------------------- schedules and losses


def test_schedules(synthetic, bundle, tmp_path):
    for name in ("din", "dei2n"):
        config = make_config(synthetic, tmp_path, model=name)
        model = build_model(config.model_config(), bundle.sizes, bundle.frozen_vectors)
        stages = T.build_stages(config, model)
        assert [s.name for s in stages] == ["ctr"] and stages[0].epochs == 2
        assert {id(p) for p in stages[0].param_groups[0]["params"]} == {id(p) for p in model.parameters()}

    config = make_config(synthetic, tmp_path, lr=0.04, uim_lr=0.03, die_lr=0.02, uim_lr_factor=0.25)
    model = build_model(config.model_config(), bundle.sizes, bundle.frozen_vectors)
    stages = T.build_stages(config, model)
    assert [s.name for s in stages] == ["uim", "die", "ctr"]
    uim = {id(p) for p in model.uim_parameters()}
    assert {id(p) for g in stages[0].param_groups for p in g["params"]} == uim
    assert stages[0].param_groups[0]["lr"] == 0.03
    stage2 = {id(p) for g in stages[1].param_groups for p in g["params"]}
    assert not stage2 & uim and {id(p) for p in model.die_parameters()} <= stage2
    lrs = {g["name"]: g["lr"] for g in stages[2].param_groups}
    assert lrs == {"ctr": 0.04, "uim": 0.04 * 0.25}
    assert {id(p) for g in stages[2].param_groups for p in g["params"]} == {id(p) for p in model.parameters()}

    for ablation, names in (("no-three-stage", ["ctr"]), ("no-uim", ["ctr"]), ("no-sein", ["uim", "die", "ctr"])):
        config = make_config(synthetic, tmp_path, ablation=ablation)
        model = build_model(config.model_config(), bundle.sizes, bundle.frozen_vectors)
        assert [s.name for s in T.build_stages(config, model)] == names, ablation


@pytest.mark.parametrize("name", ["din", "dei2n", "daian"])
def test_output_bias_starts_at_the_base_rate(synthetic, bundle, tmp_path, name):
    """A fresh model predicts the train CTR on average, not 50%."""
    config = make_config(synthetic, tmp_path / "run", model=name)
    torch.manual_seed(0)
    model = build_model(config.model_config(T.data_model_defaults(config, bundle)), bundle.sizes,
                        bundle.frozen_vectors).eval()
    rate = float(bundle.train.columns["label"].float().mean())
    assert T.init_output_bias(model, rate)
    features, _ = bundle.train[torch.arange(len(bundle.train))]
    with torch.no_grad():
        p = torch.sigmoid(model(features).logit)
    assert float(p.mean()) == pytest.approx(rate, rel=0.05)


def test_intent_kl_matches_scipy():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(6) * 0.3, 20)
    p[3] = [0, 0, 1, 0, 0, 0]
    q = rng.dirichlet(np.ones(6), 20)
    has = rng.random(20) < 0.6
    expected = np.mean([entropy(a, b) for a, b, h in zip(p, q, has) if h])
    got = intent_kl(torch.tensor(p), torch.tensor(q), torch.tensor(has))
    assert float(got) == pytest.approx(expected, rel=1e-9)
    assert float(intent_kl(torch.tensor(p), torch.tensor(q), torch.zeros(20, dtype=torch.bool))) == 0.0


def test_ctr_loss_adds_weighted_aux_losses():
    class Toy(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.tensor(0.3))

        def forward(self, features, intent_override=None):
            logit = features["x"] * self.w
            return ModelOutput(logit=logit, aux_losses={"next": (self.w ** 2, 0.5), "other": (torch.tensor(2.0), 0.1)})

    x = torch.tensor([1.0, -2.0, 0.5])
    y = torch.tensor([1.0, 0.0, 0.0])
    loss, parts = ctr_loss(Toy(), {"x": x}, {"label": y})
    bce = F.binary_cross_entropy_with_logits(x * 0.3, y)
    assert loss.item() == pytest.approx(bce.item() + 0.5 * 0.09 + 0.1 * 2.0)
    assert set(parts) == {"bce", "next", "other"}


def test_stage_one_trains_only_the_uim(synthetic, bundle, tmp_path):
    config = make_config(synthetic, tmp_path)
    torch.manual_seed(0)
    model = build_model(config.model_config(), bundle.sizes, bundle.frozen_vectors)
    stage = T.build_stages(config, model)[0]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    accelerator = T._accelerator(config)
    sampler = EpochBatchSampler(len(bundle.train), 512, shuffle=True, seed=0)
    stats = T.run_epoch(model, stage, stage.make_optimizer("adagrad"), make_loader(bundle.train, sampler),
                        accelerator, desc="uim", progress=False)
    assert stats["rows"] == len(bundle.train) and np.isfinite(stats["kl"])
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(n.startswith("uim.") for n in changed)
    assert all(p.grad is None or not p.grad.abs().sum() for n, p in model.named_parameters()
               if not n.startswith("uim."))


# ----------------------------------------------------------------------------- outputs


def test_outputs_match_independent_recomputation(daian_run, bundle):
    config, result = daian_run
    table = _scores(config.run)
    assert table.column_names == ["request_id", "user_id", "item_id", "clicked", "score", "intent_pred"]
    df = table.to_pandas()
    test = pd.read_parquet(config.data / "test.parquet")
    assert len(df) == len(test)
    assert (df.request_id.to_numpy() == test.request_id.to_numpy()).all()
    assert (df.clicked.to_numpy() == test.clicked.to_numpy()).all()
    metrics = json.loads((config.run / "metrics.json").read_text())
    assert metrics["ctr"]["auc"] == pytest.approx(roc_auc_score(df.clicked, df.score))
    num = den = 0.0
    for _, g in df.groupby("user_id"):
        if g.clicked.nunique() == 2:
            num, den = num + len(g) * roc_auc_score(g.clicked, g.score), den + len(g)
    assert metrics["ctr"]["gauc"] == pytest.approx(num / den)
    intent = np.stack(df.intent_pred.to_numpy())
    np.testing.assert_allclose(intent.sum(1), 1.0, atol=1e-5)
    assert set(metrics["intent"]["by_user_type"]) == {"specific", "broad"}
    assert [h["stage"] for h in metrics["train"]["history"]] == ["uim", "die", "ctr", "ctr"]
    # the saved checkpoint scores the test split exactly as the run did
    model, vocabs, meta = load_checkpoint(config.run / "checkpoint")
    scores, pred = predict(model, bundle.test, batch_size=config.eval_batch_size)
    np.testing.assert_allclose(scores, df.score.to_numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(pred, intent, atol=1e-6)
    # other batch sizes cut sequences to other lengths: equal up to float rounding
    scores, _ = predict(model, bundle.test, batch_size=97)
    np.testing.assert_allclose(scores, df.score.to_numpy(), rtol=1e-3)
    assert meta["progress"] == {"stage": "ctr", "stage_index": 2, "epoch": 2, "finished": True}
    assert meta["model"]["name"] == "daian" and meta["seed"] == 1


def test_refuses_to_overwrite_a_run(daian_run, bundle):
    config, _ = daian_run
    with pytest.raises(FileExistsError, match="--resume"):
        T.train(config, bundle)


# ----------------------------------------------------------------------------- resume


def _train_killed_after(config, bundle, monkeypatch, epochs: int) -> None:
    """Train `config` in a process that dies (KeyboardInterrupt) after `epochs` finished epochs."""
    real = T.run_epoch
    calls = {"n": 0}

    def dying(*args, **kwargs):
        if calls["n"] == epochs:
            raise KeyboardInterrupt
        calls["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(T, "run_epoch", dying)
    with pytest.raises(KeyboardInterrupt):
        T.train(config, bundle)
    monkeypatch.setattr(T, "run_epoch", real)


def test_resume_after_a_kill_matches_uninterrupted(daian_run, synthetic, bundle, tmp_path, monkeypatch):
    config_a, _ = daian_run
    config = make_config(synthetic, tmp_path / "run")
    _train_killed_after(config, bundle, monkeypatch, epochs=2)  # dies after stage 2
    meta = json.loads((config.run / "checkpoint" / "config.json").read_text())
    assert meta["progress"]["stage"] == "die" and not (config.run / "metrics.json").exists()
    with pytest.raises(ValueError, match="mlp_hidden"):  # resuming with another architecture
        T.train(config.replace(resume=True, model_settings={**SMALL, "mlp_hidden": (8,)}), bundle)
    T.train(config.replace(resume=True), bundle)
    a, b = _scores(config_a.run), _scores(config.run)
    np.testing.assert_array_equal(a.column("score").to_numpy(), b.column("score").to_numpy())
    np.testing.assert_array_equal(np.stack(a.column("intent_pred").to_numpy(zero_copy_only=False)),
                                  np.stack(b.column("intent_pred").to_numpy(zero_copy_only=False)))


def test_first_format_daian_checkpoint_resumes(synthetic, bundle, tmp_path, monkeypatch):
    """A DAIAN checkpoint of format 1 (one config holding every model's fields, no level_edges,
    parameters named without their module prefix) resumes: the data's settings are the ones the
    run was built with, so the user passes nothing new."""
    config = make_config(synthetic, tmp_path / "run")
    _train_killed_after(config, bundle, monkeypatch, epochs=2)  # dies after stage 2
    ckpt = config.run / "checkpoint"
    meta = json.loads((ckpt / "config.json").read_text())
    model = {k: v for k, v in meta["model"].items() if k != "level_edges"}
    meta.update(format="daian-checkpoint/1", model={**model, "time_dim": 36, "ui2m_hidden": [72, 36]})
    (ckpt / "config.json").write_text(json.dumps(meta))
    weights = load_file(str(ckpt / "model.safetensors"))
    save_file({re.sub(r"^(die|sein\.hse|sein\.ia2n)\.", "", k): v for k, v in weights.items()},
              str(ckpt / "model.safetensors"))
    result = T.train(config.replace(resume=True), bundle)
    assert [(h["stage"], h["epoch"]) for h in result["train"]["history"]] == [
        ("uim", 1), ("die", 1), ("ctr", 1), ("ctr", 2)]
    resumed = json.loads((ckpt / "config.json").read_text())
    assert resumed["format"] == "daian-checkpoint/2" and resumed["model"]["level_edges"] is None


def test_din_two_epochs_equal_one_then_resume(synthetic, bundle, tmp_path):
    full = make_config(synthetic, tmp_path / "full", model="din", epochs=2)
    T.train(full, bundle)
    part = make_config(synthetic, tmp_path / "part", model="din", epochs=1)
    T.train(part, bundle)
    T.train(part.replace(epochs=2, resume=True), bundle)
    np.testing.assert_array_equal(_scores(full.run).column("score").to_numpy(),
                                  _scores(part.run).column("score").to_numpy())
    history = json.loads((part.run / "metrics.json").read_text())["train"]["history"]
    assert [h["epoch"] for h in history] == [1, 2]


def test_linear_decay_resumes_mid_stage(synthetic, bundle, tmp_path, monkeypatch):
    """lr_decay=linear: rates fall to 0 over the stage, and a run killed between its epochs resumes
    onto the same schedule (the scheduler state is in the checkpoint)."""
    full = make_config(synthetic, tmp_path / "full", model="din", epochs=2, lr_decay="linear",
                       optimizer="adam", lr=0.01)
    T.train(full, bundle)
    part = full.replace(run=tmp_path / "part")
    _train_killed_after(part, bundle, monkeypatch, epochs=1)
    T.train(part.replace(resume=True), bundle)
    np.testing.assert_array_equal(_scores(full.run).column("score").to_numpy(),
                                  _scores(part.run).column("score").to_numpy())
    state = torch.load(full.run / "checkpoint" / "trainer_state.pt", weights_only=True)
    steps = 2 * int(np.ceil(len(bundle.train) / full.batch_size))
    assert state["scheduler"]["last_epoch"] == steps
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.0, abs=1e-12)


# ----------------------------------------------------------------------------- leakage


def test_permuting_test_targets_changes_no_prediction(daian_run, synthetic, tmp_path):
    config_a, result_a = daian_run
    data = tmp_path / "labelled"
    shutil.copytree(synthetic["labelled"], data)
    test = pq.read_table(data / "test.parquet")
    perm = np.random.default_rng(1).permutation(test.num_rows)
    for name in ("clicked", "intent", "has_intent"):
        test = test.set_column(test.schema.get_field_index(name), name, test.column(name).take(pa.array(perm)))
    pq.write_table(test, data / "test.parquet")
    config = config_a.replace(data=data, run=tmp_path / "run")
    result = T.train(config)
    a, b = _scores(config_a.run), _scores(config.run)
    np.testing.assert_array_equal(a.column("score").to_numpy(), b.column("score").to_numpy())
    np.testing.assert_array_equal(np.stack(a.column("intent_pred").to_numpy(zero_copy_only=False)),
                                  np.stack(b.column("intent_pred").to_numpy(zero_copy_only=False)))
    assert not np.array_equal(a.column("clicked").to_numpy(), b.column("clicked").to_numpy())
    assert result["ctr"]["auc"] != result_a["ctr"]["auc"]


# ----------------------------------------------------------------------------- seeds


def test_several_seeds_write_sub_runs_and_a_summary(synthetic, bundle, tmp_path):
    config = make_config(synthetic, tmp_path / "run", model="din", epochs=1, seeds=(1, 2))
    result = T.train(config, bundle)
    aucs = [json.loads((config.run / f"seed-{s}" / "metrics.json").read_text())["ctr"]["auc"] for s in (1, 2)]
    assert result["summary"]["auc"]["mean"] == pytest.approx(np.mean(aucs))
    assert result["summary"]["auc"]["std"] == pytest.approx(np.std(aucs, ddof=1))
    assert json.loads((config.run / "metrics.json").read_text())["seeds"] == [1, 2]
    s1, s2 = (_scores(config.run / f"seed-{s}").column("score").to_numpy() for s in (1, 2))
    assert not np.array_equal(s1, s2)


# ----------------------------------------------------------------------------- several processes


@pytest.mark.slow
def test_two_cpu_processes_train_and_resume(synthetic, tmp_path):
    """DDP over two CPU processes (gloo; what `accelerate launch` sets up on GPUs): all three
    DAIAN stages run on both, each process saves its RNG state, and a resume continues."""
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip(f"no torchrun beside {sys.executable}")
    # torchrun's parser would claim `--run` (a prefix of its --run-path): hand the CLI its
    # arguments through a file instead
    script = tmp_path / "launch.py"
    script.write_text("import json, sys\nfrom daian.cli import main\n"
                      "sys.exit(main(json.loads(open(sys.argv[1]).read())))\n")
    run = tmp_path / "run"
    sets = [f"model.{k}={','.join(map(str, v)) if isinstance(v, tuple) else v}" for k, v in SMALL.items()]
    base = ["--data", str(synthetic["labelled"]), "--store", str(synthetic["store"]), "--model", "daian",
            "--recipe", "paper", "--batch-size", "512", "--device", "cpu", "--no-progress", "--run", str(run),
            "--set", "cpu_threads=1", *[x for s in sets for x in ("--set", s)]]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    for epochs, extra in (("1", []), ("2", ["--resume"])):
        args = tmp_path / f"args-{epochs}.json"
        args.write_text(json.dumps(base + ["--epochs", epochs, *extra]))
        done = subprocess.run([str(torchrun), "--standalone", "--nproc-per-node", "2", str(script), str(args)],
                              env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["train"]["processes"] == 2
    assert [(h["stage"], h["epoch"]) for h in metrics["train"]["history"]] == [
        ("uim", 1), ("die", 1), ("ctr", 1), ("ctr", 2)]
    n_train = len(pd.read_parquet(synthetic["labelled"] / "train.parquet", columns=["clicked"]))
    assert all(h["rows"] == n_train for h in metrics["train"]["history"])  # summed over both processes
    assert sorted(p.name for p in (run / "checkpoint").glob("rng_state_*.pt")) == ["rng_state_0.pt",
                                                                                  "rng_state_1.pt"]
    preds = pd.read_parquet(run / "predictions.parquet")
    assert metrics["ctr"]["auc"] == pytest.approx(roc_auc_score(preds.clicked, preds.score))
