"""Losses the stages train on: `(model, features, targets) -> (loss, {part name: detached value})`.

The click label and the intent reach only these functions (`targets`); the model sees `features`.
A model's own losses live next to it (DAIAN's stage 1 and 2 losses in `daian.models.daian_stages`).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from daian.models.base import ModelOutput

LossFn = Callable[[nn.Module, dict, dict], tuple[torch.Tensor, dict[str, torch.Tensor]]]


def with_aux(loss: torch.Tensor, out: ModelOutput, parts: dict) -> torch.Tensor:
    """`loss` plus the model's weighted auxiliary losses, each recorded in `parts`."""
    for name, (aux, weight) in out.aux_losses.items():
        parts[name] = aux.detach()
        loss = loss + weight * aux
    return loss


def ddp_anchor(model: nn.Module, out: ModelOutput) -> torch.Tensor | float:
    """Zero times every output of the forward pass, added to the loss under DDP.

    DDP (with find_unused_parameters) expects a gradient for every parameter that reaches any
    output; a stage whose loss reads only some outputs (DAIAN's stage 1: p_hat, not the logit)
    would hang its gradient reduction. Zero-weighted terms give those parameters zero gradients,
    which the stage's optimizer never steps. Single-process runs skip this.
    """
    if not isinstance(model, nn.parallel.DistributedDataParallel):
        return 0.0
    anchor = out.logit.sum() * 0.0
    if out.intent_pred is not None:
        anchor = anchor + out.intent_pred.sum() * 0.0
    for aux, _ in out.aux_losses.values():
        anchor = anchor + aux * 0.0
    return anchor


def click_loss(model: nn.Module, out: ModelOutput, targets: dict) -> tuple[torch.Tensor, dict]:
    """Binary cross-entropy of `out`'s click logit, plus its weighted auxiliary losses."""
    bce = F.binary_cross_entropy_with_logits(out.logit, targets["label"])
    parts = {"bce": bce.detach()}
    return with_aux(bce, out, parts) + ddp_anchor(model, out), parts


def ctr_loss(model: nn.Module, features: dict, targets: dict) -> tuple[torch.Tensor, dict]:
    """The CTR stage: binary cross-entropy of the click logit, plus the model's auxiliary losses."""
    return click_loss(model, model(features), targets)


def intent_kl(p: torch.Tensor, p_hat: torch.Tensor, has_intent: torch.Tensor) -> torch.Tensor:
    """Mean over rows with an intent label of KL(p || p_hat) = sum_i p_i log(p_i / p_hat_i) (0 log 0 = 0)."""
    log_q = torch.log(p_hat.clamp_min(1e-12))
    terms = torch.where(p > 0, p * (torch.log(p.clamp_min(1e-12)) - log_q), torch.zeros_like(p))
    mask = has_intent.to(p.dtype)
    return (terms.sum(-1) * mask).sum() / mask.sum().clamp_min(1.0)
