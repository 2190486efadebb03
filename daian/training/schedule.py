"""Training stages: which parameters learn, at which rates, on which loss, for how long.

A schedule is a list of `Stage`s. A model's registry entry may bring its own schedule (DAIAN's
three stages, `daian.models.daian_stages`); the default is one CTR stage over every parameter.
Each stage owns its optimizer over its parameter groups, so a later model with meta networks or
auxiliary pre-training adds its own stages without touching the trainer.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

from daian.training.losses import LossFn, ctr_loss

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
            # makes the first step move every parameter by about lr (0.05) and DIN's loss jump
            # (docs/training.md, "Where our reading fills a gap, measured").
            return torch.optim.Adagrad(groups, initial_accumulator_value=ADAGRAD_INITIAL_ACCUMULATOR)
        return torch.optim.Adam(groups)


def unique_parameters(params) -> list[nn.Parameter]:
    """Trainable parameters in order, each once."""
    seen, out = set(), []
    for p in params:
        if p.requires_grad and id(p) not in seen:
            seen.add(id(p))
            out.append(p)
    return out


def ctr_stage(config, model: nn.Module) -> Stage:
    """The CTR stage over every parameter at `config.lr` for `config.epochs`."""
    everything = unique_parameters(model.parameters())
    return Stage("ctr", config.epochs, [{"params": everything, "lr": config.lr, "name": "all"}], ctr_loss)


def build_stages(config, model: nn.Module) -> list[Stage]:
    """The schedule of `config.model`: its registry entry's, else one CTR stage."""
    from daian.models import registry

    build = registry.get(config.model).stages
    return build(config, model) if build is not None else [ctr_stage(config, model)]


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
def frozen_outside(model: nn.Module, stage: Stage, enabled: bool = True):
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
