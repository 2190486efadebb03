"""The inner loops: one epoch of a stage, scoring a split, the test metrics.

Every step clears all gradients, so parameters a stage does not optimise never carry gradients
into a later stage. At evaluation nothing but features reaches the model.
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from daian import metrics as M
from daian.data import TIRDataset
from daian.training.schedule import Stage

EVAL_COLUMNS = ("label", "has_intent", "intent")  # the columns `evaluate` reads


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def epoch_steps(loader, max_steps: int = 0) -> int:
    """Steps one epoch trains: the loader's length, cut at `max_steps` when that is set."""
    return min(len(loader), max_steps) if max_steps else len(loader)


def run_epoch(model: nn.Module, stage: Stage, optimizer, loader, accelerator, *, desc: str,
              progress: bool, scheduler=None, start_step: int = 0, partial: dict | None = None,
              checkpoint_steps: int = 0, on_checkpoint=None, max_steps: int = 0) -> dict:
    """One pass over `loader`; returns the mean loss (and its parts) over the epoch's rows.

    A resumed epoch starts at `start_step` (the loader skips the batches before it) with the loss
    sums of the steps already done (`partial`). With `checkpoint_steps`, `on_checkpoint(steps done,
    partial sums)` is called every that many steps, so a run can resume mid-epoch. With `max_steps`
    the epoch ends after that many steps (smoke runs, memory benchmarks).
    """
    model.train()
    steps = epoch_steps(loader, max_steps)
    partial = partial or {}
    totals: dict[str, torch.Tensor] = {k: torch.as_tensor(v) for k, v in (partial.get("totals") or {}).items()}
    rows = int(partial.get("rows", 0))
    start = time.perf_counter()
    bar = tqdm(loader, desc=desc, disable=not (progress and accelerator.is_local_main_process),
               leave=False, unit="batch", initial=start_step, total=steps)
    for step, (features, targets) in enumerate(bar if start_step < steps else (), start=start_step):
        features = to_device(features, accelerator.device)
        targets = to_device(targets, accelerator.device)
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
        if checkpoint_steps and on_checkpoint is not None and (step + 1) % checkpoint_steps == 0 \
                and step + 1 < steps:
            on_checkpoint(step + 1, {"totals": {k: torch.as_tensor(v).detach().cpu() for k, v in totals.items()},
                                     "rows": rows})
        if step + 1 >= steps:  # max_steps: stop before the loader reads a batch it will not train on
            break
    bar.close()
    return _epoch_means(totals, rows, time.perf_counter() - start, accelerator)


def _epoch_means(totals: dict, rows: int, seconds: float, accelerator) -> dict:
    """Sums over every process (one collective per epoch), so the history describes the whole epoch."""
    names = list(totals)
    device = accelerator.device
    sums = torch.stack([torch.as_tensor(totals[n], dtype=torch.float64, device=device) for n in names]
                       + [torch.tensor(float(rows), dtype=torch.float64, device=device)])
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
        out = model(to_device(features, torch.device(device)))
        scores.append(torch.sigmoid(out.logit.float()).cpu())
        if out.intent_pred is not None:
            intents.append(out.intent_pred.float().cpu())
    score = torch.cat(scores).numpy() if scores else np.zeros(0, np.float32)
    intent = torch.cat(intents).numpy() if intents else None
    return score, intent


def predict_windows(model: nn.Module, windows, *, batch_size: int = 16384, device="cpu",
                    progress: bool = False) -> tuple[TIRDataset, np.ndarray, np.ndarray | None]:
    """Score a split given as tensorised windows in order (the in-memory path: one window).

    Returns the split as far as evaluation reads it (label, has_intent, intent and meta, the
    windows joined), the scores and the predicted intent.
    """
    kept, scores, intents = [], [], []
    template = None
    for ds in windows:
        s, i = predict(model, ds, batch_size=batch_size, device=device, progress=progress)
        scores.append(s)
        intents.append(i)
        # only what evaluation reads is kept: the feature columns of a window are dropped here,
        # so scoring a split holds one window's features, not the whole split's
        kept.append(({k: ds.columns[k] for k in EVAL_COLUMNS}, ds.meta))
        template = ds
    if template is None:
        raise ValueError("the test split has no rows to score")
    cols = {k: torch.cat([c[k] for c, _ in kept]) for k in EVAL_COLUMNS}
    meta = {k: np.concatenate([m[k] for _, m in kept]) for k in kept[0][1]}
    joined = TIRDataset(cols, template.item_fields, template.user_fields, template.item_vec, meta)
    intent = None if intents[0] is None else np.concatenate(intents)
    return joined, np.concatenate(scores), intent


def evaluate(dataset: TIRDataset, scores: np.ndarray, intent: np.ndarray | None) -> dict:
    """Test metrics from scores (and the targets the dataset carries, read here only)."""
    labels = dataset.columns["label"].numpy().astype(np.float64)
    user_type = dataset.meta.get("user_type")
    out = {"ctr": M.ctr_metrics(labels, scores.astype(np.float64), dataset.meta["user_id"], user_type)}
    if intent is not None:
        out["intent"] = M.intent_metrics(dataset.meta["request_id"], dataset.columns["has_intent"].numpy(),
                                         dataset.columns["intent"].numpy(), intent, user_type)
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
