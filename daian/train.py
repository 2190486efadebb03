"""Training, checkpoints, evaluation and model comparison for DIN, DEI2N and DAIAN.

`train(config)` loads the labelled data once, then per seed builds the model, runs its stages,
checkpoints every epoch, scores the test split and writes `predictions.parquet` and `metrics.json`.
`compare(config, models, ...)` does that for several models (and ablations) and writes a table.

Stages. A `Stage` owns its optimizer over a subset of the parameters, its loss and its epoch count,
so a schedule is a list of stages (DIN and DEI2N: one CTR stage; DAIAN: three; a later model with
meta networks or auxiliary pre-training adds its own). DAIAN's schedule, our reading of the paper's
section 4.4:
  1. `uim`: the UIM alone on KL(p || p_hat), averaged over rows whose request has a click (the
     ground-truth intent p exists only there).
  2. `die`: the parameters the model lists for stage 2 (DAIAN: all but the UIM, DIE foremost) on
     the CTR loss, with the true p in place of p_hat (`intent_override`). The paper is silent about
     rows without a label; they are passed as zero rows, for which the model uses its own detached
     prediction, so "has an intent label", which itself says "this request had a click", is never
     a shortcut to the label. The true p of a labelled row is still posterior information (built
     from the request's clicks): that is the paper's pre-training by design, and stage 3, which
     sees only p_hat, decides the evaluated model.
  3. `ctr`: every parameter on the CTR loss (plus the model's auxiliary losses), no intent
     supervision, the UIM at `lr * uim_lr_factor`.
The `no-three-stage` ablation runs stage 3 only, from scratch (same learning rates).

The click label and intent reach only the losses: the model sees `features`, and at evaluation
nothing but features is read. Every step clears all gradients, so parameters a stage does not
optimise never carry gradients into a later stage.

Runs are built on `accelerate`: the same code runs on CPU, one GPU, or several processes under
`accelerate launch` (each global batch is split across processes; checkpoints and evaluation run
on the main process). Checkpoints (RUN/checkpoint/) hold config.json, model.safetensors, vocab.json
and trainer_state.pt (stage, epoch, optimizer, history) plus per-process RNG states; `resume=True`
continues after the last finished epoch and reaches the same weights as an uninterrupted run.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from daian import metrics as M
from daian.config import TrainConfig
from daian.data import DataBundle, EpochBatchSampler, TIRDataset, load_data, make_loader
from daian.models.base import FeatureSizes, ModelOutput
from daian.vocab import Vocabularies

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint"
CHECKPOINT_FORMAT = "daian-checkpoint/1"
LossFn = Callable[[nn.Module, dict, dict], tuple[torch.Tensor, dict[str, torch.Tensor]]]


# ----------------------------------------------------------------------------- losses


def _with_aux(loss: torch.Tensor, out: ModelOutput, parts: dict) -> torch.Tensor:
    for name, (aux, weight) in out.aux_losses.items():
        parts[name] = aux.detach()
        loss = loss + weight * aux
    return loss


def _ddp_anchor(model: nn.Module, out: ModelOutput) -> torch.Tensor | float:
    """Zero times every output of the forward pass, added to the loss under DDP.

    DDP (with find_unused_parameters) expects a gradient for every parameter that reaches any
    output; a stage whose loss reads only some outputs (stage 1: p_hat, not the logit) would hang
    its gradient reduction. Zero-weighted terms give those parameters zero gradients, which the
    stage's optimizer never steps. Single-process runs skip this.
    """
    if not isinstance(model, nn.parallel.DistributedDataParallel):
        return 0.0
    anchor = out.logit.sum() * 0.0
    if out.intent_pred is not None:
        anchor = anchor + out.intent_pred.sum() * 0.0
    for aux, _ in out.aux_losses.values():
        anchor = anchor + aux * 0.0
    return anchor


def ctr_loss(model: nn.Module, features: dict, targets: dict) -> tuple[torch.Tensor, dict]:
    """Binary cross-entropy of the click logit, plus the model's weighted auxiliary losses."""
    out = model(features)
    bce = F.binary_cross_entropy_with_logits(out.logit, targets["label"])
    parts = {"bce": bce.detach()}
    return _with_aux(bce, out, parts) + _ddp_anchor(model, out), parts


def intent_kl(p: torch.Tensor, p_hat: torch.Tensor, has_intent: torch.Tensor) -> torch.Tensor:
    """Mean over rows with an intent label of KL(p || p_hat) = sum_i p_i log(p_i / p_hat_i) (0 log 0 = 0)."""
    log_q = torch.log(p_hat.clamp_min(1e-12))
    terms = torch.where(p > 0, p * (torch.log(p.clamp_min(1e-12)) - log_q), torch.zeros_like(p))
    mask = has_intent.to(p.dtype)
    return (terms.sum(-1) * mask).sum() / mask.sum().clamp_min(1.0)


def uim_loss(model: nn.Module, features: dict, targets: dict) -> tuple[torch.Tensor, dict]:
    """DAIAN stage 1: KL(p || p_hat) on rows whose request had a click.

    p_hat comes from the model's `predict_intent` (the UIM alone) when it has one and is not
    wrapped for distributed training (a wrapped model must be called through its wrapper), else
    from a full forward pass.
    """
    anchor: torch.Tensor | float = 0.0
    if hasattr(model, "predict_intent"):
        p_hat = model.predict_intent(features)
    else:
        out = model(features)
        if out.intent_pred is None:
            raise ValueError(f"{type(getattr(model, 'module', model)).__name__} predicts no intent; "
                             "it has no UIM stage")
        p_hat, anchor = out.intent_pred, _ddp_anchor(model, out)
    kl = intent_kl(targets["intent"], p_hat, targets["has_intent"])
    return kl + anchor, {"kl": kl.detach()}


def die_loss(model: nn.Module, features: dict, targets: dict) -> tuple[torch.Tensor, dict]:
    """DAIAN stage 2: CTR loss with the true intent in place of p_hat.

    The true intent is the leave-one-out one (`daian.data.leave_one_out_intent`: the request's
    clicks other than the row's own), so the override never carries the row's label. Rows without
    one are passed as zeros, which by the `intent_override` convention means "no label here: use
    your own (detached) prediction"; a zero row never reaches the network.
    """
    loo = targets["intent_loo"]
    override = loo * targets["has_intent_loo"][:, None].to(loo.dtype)
    out = model(features, intent_override=override)
    bce = F.binary_cross_entropy_with_logits(out.logit, targets["label"])
    parts = {"bce": bce.detach()}
    return _with_aux(bce, out, parts) + _ddp_anchor(model, out), parts


# ----------------------------------------------------------------------------- stages


ADAGRAD_INITIAL_ACCUMULATOR = 0.1  # TensorFlow's default, which the papers' implementations used


@dataclass
class Stage:
    """One phase of a schedule: which parameters learn, at which rates, on which loss, how long."""

    name: str
    epochs: int
    param_groups: list[dict]  # torch optimizer groups: {"params": [...], "lr": float, "name": str}
    loss: LossFn

    def make_optimizer(self, kind: str) -> torch.optim.Optimizer:
        groups = [g for g in self.param_groups if g["params"]]
        if not groups:
            raise ValueError(f"stage {self.name!r} has no parameters to train")
        if kind == "adagrad":
            # The papers' TensorFlow Adagrad starts its accumulator at 0.1. PyTorch's default of 0
            # makes the first step move every parameter by about lr (0.05): measured on the demo
            # world, DIN's loss jumped from 0.67 to 6.3 on step 2; with 0.1 it descends smoothly.
            return torch.optim.Adagrad(groups, initial_accumulator_value=ADAGRAD_INITIAL_ACCUMULATOR)
        return torch.optim.Adam(groups)


def _unique(params) -> list[nn.Parameter]:
    seen, out = set(), []
    for p in params:
        if p.requires_grad and id(p) not in seen:
            seen.add(id(p))
            out.append(p)
    return out


def build_stages(config: TrainConfig, model: nn.Module) -> list[Stage]:
    """The training schedule of `config.model` (see the module docstring).

    A model with several stages says which parameters each trains through `stage_parameters(k)`
    (group name -> parameters; group "uim" is the intent module); the trainer sets the rates.
    """
    everything = _unique(model.parameters())
    if config.model != "daian":
        return [Stage("ctr", config.epochs, [{"params": everything, "lr": config.lr, "name": "all"}], ctr_loss)]
    if not hasattr(model, "stage_parameters"):
        raise ValueError(f"{type(model).__name__} lists no stage_parameters(stage) for its three stages")

    def groups(stage: int, rates: dict[str, float]) -> list[dict]:
        return [{"params": _unique(params), "lr": rates[name], "name": name}
                for name, params in model.stage_parameters(stage).items()]

    has_uim = bool(model.stage_parameters(1))
    stages = []
    if config.ablation != "no-three-stage" and has_uim:
        if config.uim_epochs:
            stages.append(Stage("uim", config.uim_epochs, groups(1, {"uim": config.uim_lr}), uim_loss))
        if config.die_epochs:
            stages.append(Stage("die", config.die_epochs,
                                groups(2, {"ctr": config.die_lr, "uim": config.die_lr}), die_loss))
    stages.append(Stage("ctr", config.epochs,
                        groups(3, {"ctr": config.lr, "uim": config.lr * config.uim_lr_factor}), ctr_loss))
    return stages


# ----------------------------------------------------------------------------- checkpoints


def _rng_state() -> dict:
    np_state = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()),
             "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                       "has_gauss": int(np_state[3]), "cached": float(np_state[4])}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(run_dir: Path, *, model: nn.Module, config: TrainConfig, seed: int, model_config,
                    sizes: FeatureSizes, vocabs: Vocabularies, store_dim: int, trainer_state: dict,
                    accelerator) -> Path:
    """Write RUN/checkpoint atomically (a temporary folder renamed into place)."""
    final = run_dir / CHECKPOINT
    tmp = run_dir / f"{CHECKPOINT}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        state = {k: v.detach().cpu().contiguous().clone() for k, v in accelerator.unwrap_model(model).state_dict().items()}
        save_file(state, str(tmp / "model.safetensors"))
        (tmp / "config.json").write_text(json.dumps({
            "format": CHECKPOINT_FORMAT, "seed": seed, "train": config.to_dict(),
            "model": model_config.to_dict(), "sizes": dataclasses.asdict(sizes), "store_dim": store_dim,
            "progress": {k: trainer_state[k] for k in ("stage", "stage_index", "epoch", "finished")},
        }, indent=2) + "\n")
        vocabs.save(tmp / "vocab.json")
        torch.save(trainer_state, tmp / "trainer_state.pt")
    accelerator.wait_for_everyone()
    torch.save(_rng_state(), tmp / f"rng_state_{accelerator.process_index}.pt")  # every process its own
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        old = run_dir / f"{CHECKPOINT}.old"
        shutil.rmtree(old, ignore_errors=True)
        if final.exists():
            final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def find_checkpoint(run_dir: Path) -> Path | None:
    for name in (CHECKPOINT, f"{CHECKPOINT}.old"):
        path = Path(run_dir) / name
        if (path / "trainer_state.pt").is_file() and (path / "model.safetensors").is_file():
            return path
    return None


def load_checkpoint(path: str | Path, store: str | Path | None = None, device: str = "cpu"):
    """A checkpoint folder -> (model in eval mode, Vocabularies, config.json dict).

    The frozen store vectors are read from the embedding store (`store`, default the one the run
    trained with); features index them by store row (the `*_vec` features).
    """
    from daian.data import frozen_item_vectors
    from daian.models import build_model
    from daian.models.config import ModelConfig
    from retrieval.store import EmbeddingStore

    path = Path(path)
    meta = json.loads((path / "config.json").read_text())
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}/config.json: format {meta.get('format')!r}, expected {CHECKPOINT_FORMAT!r}")
    vocabs = Vocabularies.load(path / "vocab.json")
    sizes = FeatureSizes(**meta["sizes"])
    emb_store = EmbeddingStore.load(store if store is not None else meta["train"]["store"])
    if emb_store.dim != int(meta["store_dim"]):
        raise ValueError(f"store {emb_store.path} has dim {emb_store.dim}, the checkpoint {meta['store_dim']}")
    frozen = frozen_item_vectors(emb_store)
    model = build_model(ModelConfig.from_dict(meta["model"]), sizes, frozen)
    model.load_state_dict(load_file(str(path / "model.safetensors"), device="cpu"))
    return model.to(device).eval(), vocabs, meta


# ----------------------------------------------------------------------------- loops


def _to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def make_scheduler(optimizer, decay: str, total_steps: int):
    """None for a constant rate; "linear": every group's rate falls linearly from its own value
    to 0 over the stage's `total_steps` optimizer steps (one per batch)."""
    if decay == "none":
        return None
    if decay == "linear":
        steps = max(int(total_steps), 1)
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: max(0.0, 1.0 - k / steps))
    raise ValueError(f"lr_decay must be 'none' or 'linear', got {decay!r}")


@contextlib.contextmanager
def _frozen_outside(model: nn.Module, stage: Stage, enabled: bool = True):
    """Within the block, parameters the stage does not train compute no gradient (DAIAN's stage 2
    leaves the embedding tables alone, so their backward pass is skipped). Off under DDP, whose
    gradient hooks are fixed when the model is wrapped."""
    if not enabled:
        yield
        return
    trained = {id(p) for g in stage.param_groups for p in g["params"]}
    frozen = [p for p in model.parameters() if p.requires_grad and id(p) not in trained]
    for p in frozen:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in frozen:
            p.requires_grad_(True)


def run_epoch(model: nn.Module, stage: Stage, optimizer, loader, accelerator, *, desc: str,
              progress: bool, scheduler=None) -> dict:
    """One pass over `loader`; returns the mean loss (and its parts) over the epoch's rows."""
    model.train()
    totals: dict[str, torch.Tensor] = {}
    rows = 0
    start = time.perf_counter()
    bar = tqdm(loader, desc=desc, disable=not (progress and accelerator.is_local_main_process),
               leave=False, unit="batch")
    for step, (features, targets) in enumerate(bar):
        features = _to_device(features, accelerator.device)
        targets = _to_device(targets, accelerator.device)
        loss, parts = stage.loss(model, features, targets)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{desc}: loss is {loss.item()} at batch {step}")
        model.zero_grad(set_to_none=True)  # parameters outside this stage carry no gradient forward
        accelerator.backward(loss)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        b = targets["label"].shape[0]
        rows += b
        for name, value in {"loss": loss.detach(), **parts}.items():
            totals[name] = totals.get(name, 0.0) + value * b
    seconds = time.perf_counter() - start
    names = list(totals)
    # sums over every process (one collective per epoch), so the history describes the whole epoch
    sums = torch.stack([torch.as_tensor(totals[n], dtype=torch.float64, device=accelerator.device) for n in names]
                       + [torch.tensor(float(rows), dtype=torch.float64, device=accelerator.device)])
    sums = accelerator.reduce(sums, reduction="sum").cpu()
    rows = int(sums[-1])
    out = {name: float(sums[i]) / max(rows, 1) for i, name in enumerate(names)}
    out.update(rows=rows, seconds=round(seconds, 3), samples_per_s=round(rows / max(seconds, 1e-9), 1))
    return out


@torch.inference_mode()
def predict(model: nn.Module, dataset: TIRDataset, *, batch_size: int = 16384, device="cpu",
            progress: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Click probabilities (N,) float32 and predicted intent (N, n) or None, in dataset order.

    Reads features only: the targets the dataset carries never reach the model.
    """
    model.eval()
    scores, intents = [], []
    starts = range(0, len(dataset), batch_size)
    for s in tqdm(starts, desc="scoring", disable=not progress, leave=False, unit="batch"):
        features, _ = dataset[torch.arange(s, min(s + batch_size, len(dataset)))]
        out = model(_to_device(features, torch.device(device)))
        scores.append(torch.sigmoid(out.logit.float()).cpu())
        if out.intent_pred is not None:
            intents.append(out.intent_pred.float().cpu())
    score = torch.cat(scores).numpy() if scores else np.zeros(0, np.float32)
    intent = torch.cat(intents).numpy() if intents else None
    return score, intent


def write_predictions(path: Path, dataset: TIRDataset, scores: np.ndarray, intent: np.ndarray | None) -> Path:
    """RUN/predictions.parquet: request_id, user_id, item_id, clicked, score (+ intent_pred)."""
    meta = dataset.meta
    columns = {"request_id": pa.array(meta["request_id"], pa.int64()),
               "user_id": pa.array(meta["user_id"], pa.int64()),
               "item_id": pa.array(meta["item_id"], pa.int64()),
               "clicked": pa.array(meta["clicked"], pa.int8()),
               "score": pa.array(scores.astype(np.float32), pa.float32())}
    if intent is not None:
        n = intent.shape[1]
        flat = pa.array(intent.astype(np.float32).ravel(), pa.float32())
        columns["intent_pred"] = pa.ListArray.from_arrays(pa.array(np.arange(0, intent.size + 1, n, dtype=np.int32)),
                                                          flat)
    pq.write_table(pa.table(columns), path)
    return path


def evaluate(dataset: TIRDataset, scores: np.ndarray, intent: np.ndarray | None) -> dict:
    """Test metrics from scores (and the targets the dataset carries, read here only)."""
    labels = dataset.columns["label"].numpy().astype(np.float64)
    user_type = dataset.meta.get("user_type")
    out = {"ctr": M.ctr_metrics(labels, scores.astype(np.float64), dataset.meta["user_id"], user_type)}
    if intent is not None:
        out["intent"] = M.intent_metrics(dataset.meta["request_id"], dataset.columns["has_intent"].numpy(),
                                         dataset.columns["intent"].numpy(), intent, user_type)
    return out


# ----------------------------------------------------------------------------- one run


def data_model_defaults(bundle: DataBundle) -> dict:
    """Model settings the data decides unless the user sets them: the number of intent levels,
    and the range of DAIAN's similarity buckets (the outer intent bin edges, which label-intents
    fitted on the train split's trigger-target similarities, so the buckets cover the cosines that
    actually occur instead of all of [-1, 1])."""
    out = {"levels": bundle.sizes.levels}
    edges = bundle.manifest.get("bin_edges") or []
    if len(edges) >= 2 and float(edges[0]) < float(edges[-1]):
        out["sim_range"] = (float(edges[0]), float(edges[-1]))
    return out


def init_output_bias(model: nn.Module, rate: float) -> bool:
    """Set the bias of the model's final logit layer (`model.mlp.out`) to log(rate / (1 - rate)).

    A fresh model then predicts the base rate (a CTR of a few percent) instead of 50%, so the first
    steps are not spent moving one bias across several log-odds units while every other gradient
    points the wrong way. Returns False when the model has no such layer.
    """
    out = getattr(getattr(model, "mlp", None), "out", None)
    if not isinstance(out, nn.Linear) or out.bias is None or out.bias.numel() != 1:
        return False
    rate = min(max(rate, 1e-6), 1 - 1e-6)
    with torch.no_grad():
        out.bias.fill_(math.log(rate / (1.0 - rate)))
    return True


def _accelerator(config: TrainConfig):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from accelerate.utils import DistributedDataParallelKwargs

    if config.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch sees no CUDA device")
    cpu = config.device == "cpu"
    state = AcceleratorState._shared_state
    if state and state.get("_cpu", None) is not None and state.get("_cpu") != cpu:
        AcceleratorState._reset_state(reset_partial_state=True)
    # Stages train parameter subsets: under DDP the others have no gradient in a step.
    return Accelerator(cpu=cpu, kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])


def _prepare_run_dir(run_dir: Path, resume: bool) -> Path | None:
    """The checkpoint to resume from (None = fresh); refuses to overwrite a run without resume."""
    ckpt = find_checkpoint(run_dir)
    if ckpt is not None and not resume:
        raise FileExistsError(f"{run_dir} already holds a checkpoint; pass --resume to continue it "
                              "or choose another --run folder")
    return ckpt if resume else None


def train_seed(config: TrainConfig, seed: int, run_dir: Path, bundle: DataBundle) -> dict:
    """Train one model with one seed into `run_dir`; returns its metrics (also in metrics.json)."""
    previous = torch.are_deterministic_algorithms_enabled()
    if config.deterministic:
        # cuBLAS needs a fixed workspace for reproducible results; harmless on CPU
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(config.deterministic, warn_only=True)
    if config.cpu_threads:
        torch.set_num_threads(config.cpu_threads)
    try:
        return _train_seed(config, seed, run_dir, bundle)
    finally:
        torch.use_deterministic_algorithms(previous)


def _train_seed(config: TrainConfig, seed: int, run_dir: Path, bundle: DataBundle) -> dict:
    from accelerate.utils import set_seed

    from daian.models import build_model

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    accelerator = _accelerator(config)
    resume_from = _prepare_run_dir(run_dir, config.resume)
    accelerator.wait_for_everyone()  # every process has looked before any writes a checkpoint
    set_seed(seed)
    model_config = config.model_config(data_model_defaults(bundle))
    model = build_model(model_config, bundle.sizes, bundle.frozen_vectors)
    if config.init_bias:
        init_output_bias(model, float(bundle.train.columns["label"].float().mean()) if len(bundle.train) else 0.5)
    state = {"stage": None, "stage_index": 0, "epoch": 0, "finished": False, "history": [],
             "optimizer": None}
    if resume_from is not None:
        # fields added since the checkpoint was written take the values models had then (ModelConfig.from_dict)
        from daian.models.config import ModelConfig
        saved_model = ModelConfig.from_dict(json.loads((resume_from / "config.json").read_text())["model"]).to_dict()
        if saved_model != model_config.to_dict():
            changed = sorted(k for k in saved_model if saved_model[k] != model_config.to_dict().get(k))
            raise ValueError(f"{resume_from}: the checkpoint's model differs from this configuration in "
                             f"{changed}; resume with the settings it was trained with")
        model.load_state_dict(load_file(str(resume_from / "model.safetensors")))
        state = torch.load(resume_from / "trainer_state.pt", weights_only=True)
        rng_file = resume_from / f"rng_state_{accelerator.process_index}.pt"
        if rng_file.is_file():
            _set_rng_state(torch.load(rng_file, weights_only=True))
        log.info("resuming %s after stage %s epoch %s", run_dir, state["stage"], state["epoch"])
    model = accelerator.prepare(model)
    stages = build_stages(config, accelerator.unwrap_model(model))
    names = [s.name for s in stages]
    if state["stage"] is not None and state["stage"] not in names:
        raise ValueError(f"{resume_from}: checkpoint stage {state['stage']!r} not in this schedule {names}")
    sampler = EpochBatchSampler(len(bundle.train), config.batch_size, shuffle=True, seed=seed,
                                rank=accelerator.process_index, world_size=accelerator.num_processes)
    loader = make_loader(bundle.train, sampler, num_workers=config.num_workers,
                         pin_memory=accelerator.device.type == "cuda")
    ckpt_args = dict(model=model, config=config, seed=seed, model_config=model_config, sizes=bundle.sizes,
                     vocabs=bundle.vocabs, store_dim=int(bundle.frozen_vectors.shape[1]), accelerator=accelerator)
    epoch_offset = 0
    for index, stage in enumerate(stages):
        done = 0
        if state["stage"] is not None:
            saved = names.index(state["stage"])
            if index < saved or (index == saved and state["epoch"] >= stage.epochs):
                epoch_offset += stage.epochs
                continue
            done = state["epoch"] if index == saved else 0
        optimizer = accelerator.prepare_optimizer(stage.make_optimizer(config.optimizer))
        scheduler = make_scheduler(optimizer, config.lr_decay, stage.epochs * len(loader))
        if done and state.get("optimizer") is not None:
            optimizer.load_state_dict(state["optimizer"])
            if scheduler is not None and state.get("scheduler") is not None:
                scheduler.load_state_dict(state["scheduler"])
        for epoch in range(done, stage.epochs):
            sampler.set_epoch(epoch_offset + epoch)
            desc = f"{config.model} seed {seed} {stage.name} {epoch + 1}/{stage.epochs}"
            with _frozen_outside(model, stage, enabled=accelerator.num_processes == 1):
                stats = run_epoch(model, stage, optimizer, loader, accelerator, desc=desc,
                                  progress=config.progress, scheduler=scheduler)
            finished = index == len(stages) - 1 and epoch + 1 == stage.epochs
            state = {"stage": stage.name, "stage_index": index, "epoch": epoch + 1, "finished": finished,
                     "history": state["history"] + [{"stage": stage.name, "epoch": epoch + 1, **stats}],
                     "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict() if scheduler is not None else None}
            save_checkpoint(run_dir, trainer_state=state, **ckpt_args)
            log.info("%s: %s", desc, stats)
        epoch_offset += stage.epochs
    result = {}
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        scores, intent = predict(unwrapped, bundle.test, batch_size=config.eval_batch_size,
                                 device=accelerator.device, progress=config.progress)
        write_predictions(run_dir / "predictions.parquet", bundle.test, scores, intent)
        result = {"model": config.model, "ablation": config.ablation, "seed": seed,
                  **evaluate(bundle.test, scores, intent),
                  "train": {"history": state["history"],
                            "parameters": sum(p.numel() for p in unwrapped.parameters()),
                            "processes": accelerator.num_processes, "device": str(accelerator.device)},
                  "data": bundle.summary}
        (run_dir / "metrics.json").write_text(json.dumps(_jsonable(result), indent=2) + "\n")
    accelerator.wait_for_everyone()
    return result


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if math.isnan(x) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    return x


# ----------------------------------------------------------------------------- entry points


def _data_arguments(config: TrainConfig) -> dict:
    """`load_data`'s arguments (vocabularies aside) as `config` sets them."""
    return dict(data=config.data, store=config.store, dataset=config.dataset,
                max_hist=config.max_hist, max_subseq=config.max_subseq, max_page=config.max_page,
                max_dt=config.max_dt, price_buckets=config.price_buckets)


def load_bundle(config: TrainConfig) -> DataBundle:
    """Read the data of `config` (reusing a checkpoint's vocabularies when resuming)."""
    vocabs = None
    if config.resume:
        for run_dir in [config.run, *[config.run / f"seed-{s}" for s in config.seeds]]:
            ckpt = find_checkpoint(run_dir)
            if ckpt is not None:
                vocabs = Vocabularies.load(ckpt / "vocab.json")
                break
    return load_data(**_data_arguments(config), vocabs=vocabs)


SUMMARY_KEYS = {"auc": ("ctr", "auc"), "gauc": ("ctr", "gauc"), "logloss": ("ctr", "logloss"),
                "js": ("intent", "js_mean"), "js_population": ("intent", "js_population")}


def _pick(result: dict, path: tuple[str, ...]):
    for key in path:
        if not isinstance(result, dict) or key not in result:
            return None
        result = result[key]
    return result


def summarise(per_seed: dict[int, dict]) -> dict:
    """Mean and (sample) std over seeds of the headline metrics, and JS per user type."""
    out = {}
    paths = dict(SUMMARY_KEYS)
    types = set()
    for r in per_seed.values():
        types |= set((_pick(r, ("intent", "by_user_type")) or {}).keys())
    for t in sorted(types):
        paths[f"js_{t}"] = ("intent", "by_user_type", t, "js_mean")
        paths[f"js_population_{t}"] = ("intent", "by_user_type", t, "js_population")
    for name, path in paths.items():
        values = [v for v in (_pick(r, path) for r in per_seed.values()) if v is not None and not math.isnan(v)]
        if values:
            out[name] = {"mean": float(np.mean(values)),
                         "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                         "values": [float(v) for v in values]}
    return out


def train(config: TrainConfig, bundle: DataBundle | None = None) -> dict:
    """Train `config.model` once per seed; returns the metrics (per seed and summarised when several).

    One seed writes into `config.run`; several write `config.run/seed-S/` each and a summary
    `config.run/metrics.json`.
    """
    config.model_config()  # fail on bad model settings before reading any data
    bundle = bundle if bundle is not None else load_bundle(config)
    if len(config.seeds) == 1:
        return train_seed(config, config.seeds[0], config.run, bundle)
    per_seed = {seed: train_seed(config, seed, run_dir, bundle) for _, seed, run_dir in _seed_tasks(config)}
    if not _is_main_process():
        return {}
    return write_seed_summary(config, per_seed)


def write_seed_summary(config: TrainConfig, per_seed: dict[int, dict]) -> dict:
    """RUN/metrics.json of a several-seed run: mean and std over seeds, and every seed's metrics."""
    result = {"model": config.model, "ablation": config.ablation, "seeds": list(config.seeds),
              "summary": summarise(per_seed), "per_seed": per_seed}
    (config.run / "metrics.json").write_text(json.dumps(_jsonable(result), indent=2) + "\n")
    return result


def _is_main_process() -> bool:
    from accelerate import PartialState

    return PartialState().is_main_process


def run_name(model: str, ablation: str | None) -> str:
    return model if ablation is None else f"{model}-{ablation}"


def compare(config: TrainConfig, models: list[str], ablations: bool | list[str] = False,
            jobs: int = 1, also: list[TrainConfig] | tuple = ()) -> dict:
    """Train several models (and their ablations) on the same data and seeds.

    `ablations`: True adds every ablation of every compared model, a list of model names adds
    those models' ablations only (e.g. ["daian"]), False none. `jobs` > 1 trains that many
    (run, seed) pairs at once in separate processes on this machine, each with
    `cpu_threads` threads (0: the machine's cores shared out); on a CPU several small
    single-threaded runs use the cores better than one run spread over them. Results equal a
    sequential comparison's up to float rounding (thread counts change reduction order).
    `also`: further runs (each a full TrainConfig with its own data, run folder and seeds) trained
    in the same pool, so that no process idles between the comparison and them; their metrics are
    returned under "also", in order, as `train` returns them.

    Writes RUN/<name>/[seed-S/] per model, RUN/compare.json and RUN/compare.md; returns the table
    rows (mean and std over seeds of AUC, GAUC, RelaImpr vs DIN, log loss, intent JS).
    """
    from daian.models.config import ABLATIONS

    for m in models:
        config.replace(model=m, ablation=None).model_config()
    bundle = load_bundle_for_compare(config, models)
    runs = [(m, None) for m in models]
    ablated = list(models) if ablations is True else list(ablations or [])
    unknown = [m for m in ablated if m not in models]
    if unknown:
        raise ValueError(f"ablations asked for {unknown}, which are not among the compared models {models}")
    runs += [(m, a) for m in models if m in ablated for a in ABLATIONS[m]]
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    results, also_results = {}, []
    if jobs == 1:
        for model, ablation in runs:
            sub = config.replace(model=model, ablation=ablation, run=config.run / run_name(model, ablation))
            res = train(sub, bundle)
            results[run_name(model, ablation)] = res if len(config.seeds) > 1 else {
                "per_seed": {config.seeds[0]: res}}
        also_results = [train(extra) for extra in also]
    else:
        results, also_results = _compare_in_processes(config, runs, bundle, jobs, list(also))
    if not _is_main_process():  # the other processes of a distributed launch hold no metrics
        return {}
    rows = comparison_rows(results, config.seeds)
    table = format_table(rows)
    out = {"seeds": list(config.seeds), "rows": rows, "runs": {k: str(config.run / k) for k in results}}
    (config.run / "compare.json").write_text(json.dumps(_jsonable(out), indent=2) + "\n")
    (config.run / "compare.md").write_text(table + "\n")
    out["table"] = table
    if also:
        out["also"] = also_results
    return out


def _seed_tasks(config: TrainConfig) -> list[tuple[TrainConfig, int, Path]]:
    """(config, seed, run folder) per seed, laid out as `train` lays them out."""
    return [(config, seed, config.run if len(config.seeds) == 1 else config.run / f"seed-{seed}")
            for seed in config.seeds]


def _compare_in_processes(config: TrainConfig, runs: list[tuple[str, str | None]], bundle: DataBundle,
                          jobs: int, also: list[TrainConfig]) -> tuple[dict[str, dict], list[dict]]:
    """Train every (run, seed) pair of a comparison, and the `also` runs, in `jobs` processes."""
    tasks = []
    for model, ablation in runs:
        sub = config.replace(model=model, ablation=ablation, run=config.run / run_name(model, ablation))
        sub.model_config()
        tasks += _seed_tasks(sub)
    n_compare = len(tasks)
    for extra in also:
        extra.model_config()
        tasks += _seed_tasks(extra)
    done = train_parallel(tasks, jobs, progress=config.progress,
                          vocabs=bundle.vocabs if config.resume else None)
    per_run: dict[str, dict[int, dict]] = {run_name(m, a): {} for m, a in runs}
    for (sub, seed, _), result in zip(tasks[:n_compare], done[:n_compare]):
        per_run[run_name(sub.model, sub.ablation)][seed] = result
    also_results, k = [], n_compare
    for extra in also:
        per_seed = {seed: done[k + i] for i, seed in enumerate(extra.seeds)}
        k += len(extra.seeds)
        also_results.append(per_seed[extra.seeds[0]] if len(extra.seeds) == 1
                            else write_seed_summary(extra, per_seed))
    results = {}
    for model, ablation in runs:
        name = run_name(model, ablation)
        per_seed = {s: per_run[name][s] for s in config.seeds}
        if len(config.seeds) > 1:
            results[name] = write_seed_summary(config.replace(model=model, ablation=ablation,
                                                              run=config.run / name), per_seed)
        else:
            results[name] = {"per_seed": per_seed}
    return results, also_results


# Rough relative cost of one run, to start the longest first (fewer idle processes at the end).
_RUN_COST = {"din": 1.0, "dei2n": 3.0, "daian": 4.0, "daian-no-uim": 2.0, "daian-no-three-stage": 2.0,
             "daian-no-die": 2.5}


def train_parallel(tasks: list[tuple[TrainConfig, int, Path]], jobs: int, *, progress: bool = True,
                   vocabs: Vocabularies | None = None) -> list[dict]:
    """Train (config, seed, run folder) tasks, `jobs` at a time in separate processes on this machine.

    Each process reads a task's data once and keeps it for the next task on the same data; it runs
    with the task's `cpu_threads`, or the machine's cores shared out among the jobs when that is 0.
    Returns each task's metrics in task order; a task's error is raised here.
    """
    import concurrent.futures as cf
    import multiprocessing as mp

    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    if _distributed():
        raise ValueError("jobs > 1 runs its own processes; it does not combine with accelerate launch")
    threads = max(1, (os.cpu_count() or 1) // jobs)
    # progress bars of several processes would interleave: one bar here counts finished runs
    tasks = [(cfg.replace(cpu_threads=cfg.cpu_threads or threads, progress=False), seed, Path(run_dir))
             for cfg, seed, run_dir in tasks]
    results: list[dict | None] = [None] * len(tasks)
    with cf.ProcessPoolExecutor(max_workers=max(1, min(jobs, len(tasks))),
                                mp_context=mp.get_context("spawn")) as pool:
        order = sorted(range(len(tasks)), key=lambda k: -_RUN_COST.get(
            run_name(tasks[k][0].model, tasks[k][0].ablation), 3.0))  # stable: ties keep their order
        futures = {pool.submit(_train_task, *tasks[k], vocabs): k for k in order}
        bar = tqdm(total=len(tasks), desc=f"runs ({jobs} at a time)", unit="run", disable=not progress)
        for future in cf.as_completed(futures):
            k = futures[future]
            results[k] = future.result()  # re-raises a worker's error here
            cfg, seed, _ = tasks[k]
            bar.set_postfix_str(f"{run_name(cfg.model, cfg.ablation)} seed {seed}: "
                                f"AUC {results[k]['ctr']['auc']:.4f}")
            bar.update()
        bar.close()
    return results


_WORKER_BUNDLE: dict = {}


def _train_task(config: TrainConfig, seed: int, run_dir: Path, vocabs: Vocabularies | None) -> dict:
    """One (run, seed) pair inside a worker process; the data is read once per process."""
    arguments = _data_arguments(config)
    key = tuple((name, str(value)) for name, value in arguments.items())
    if key not in _WORKER_BUNDLE:
        if len(_WORKER_BUNDLE) >= 3:  # a few datasets stay loaded (a comparison beside a level sweep)
            _WORKER_BUNDLE.pop(next(iter(_WORKER_BUNDLE)))
        _WORKER_BUNDLE[key] = load_data(**arguments, vocabs=vocabs)
    return train_seed(config, seed, run_dir, _WORKER_BUNDLE[key])


def _distributed() -> bool:
    from accelerate import PartialState

    return PartialState().num_processes > 1


def load_bundle_for_compare(config: TrainConfig, models: list[str]) -> DataBundle:
    """Like `load_bundle`, looking for a checkpoint's vocabularies in any of the compared runs."""
    if config.resume:
        for m in models:
            sub = config.replace(model=m, run=config.run / m)
            for run_dir in [sub.run, *[sub.run / f"seed-{s}" for s in config.seeds]]:
                if find_checkpoint(run_dir) is not None:
                    return load_bundle(sub)
    return load_bundle(config.replace(resume=False))


def comparison_rows(results: dict[str, dict], seeds: tuple[int, ...]) -> list[dict]:
    """Per run: mean/std over seeds of AUC, GAUC, log loss, JS and RelaImpr vs DIN (same seed)."""
    base = results.get("din")
    rows = []
    for name, res in results.items():
        per_seed = res["per_seed"]
        summary = summarise(per_seed)
        row = {"run": name, **{k: {"mean": v["mean"], "std": v["std"]} for k, v in summary.items()}}
        if base is not None:
            impr = [M.rela_impr(per_seed[s]["ctr"]["auc"], base["per_seed"][s]["ctr"]["auc"])
                    for s in per_seed if s in base["per_seed"]]
            if impr:
                row["rela_impr"] = {"mean": float(np.mean(impr)),
                                    "std": float(np.std(impr, ddof=1)) if len(impr) > 1 else 0.0}
        rows.append(row)
    return rows


def format_table(rows: list[dict]) -> str:
    """A Markdown table of the comparison rows (mean ± std over seeds)."""
    cols = [("auc", "AUC", 4), ("gauc", "GAUC", 4), ("rela_impr", "RelaImpr vs DIN (%)", 2),
            ("logloss", "log loss", 4), ("js", "JS (per request)", 3)]
    extra = sorted({k for r in rows for k in r if k.startswith("js_population_")})
    cols += [(k, f"JS pop. {k[len('js_population_'):]}", 3) for k in extra]
    lines = ["| run | " + " | ".join(c[1] for c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for r in rows:
        cells = []
        for key, _, digits in cols:
            v = r.get(key)
            cells.append("" if v is None else f"{v['mean']:.{digits}f} ± {v['std']:.{digits}f}")
        lines.append(f"| {r['run']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
