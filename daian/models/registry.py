"""The model registry: how the trainer finds a model, its config class, its schedule and its cost.

A model is one file (its `nn.Module` and its config class) plus one `register` line in
`daian/models/__init__.py`; the trainer, the comparison and `train-daian` know models only through
this registry, never by name. `forward(features, intent_override=None) -> ModelOutput` is the
model's whole interface to training (`daian.models.base`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from torch import nn

from daian.models.config import ModelConfig


@dataclass(frozen=True)
class ModelSpec:
    """What the trainer needs to know of one model."""

    model: type[nn.Module]  # built as model(config, sizes, frozen_vectors)
    config: type[ModelConfig]  # its config class; `config.name` is the registry name
    # (TrainConfig, model) -> list of training stages; None = one CTR stage over every parameter
    stages: Callable | None = None
    # relative cost of one run, by ablation (None = the full model), so the longest start first
    cost: dict[str | None, float] = field(default_factory=lambda: {None: 1.0})

    @property
    def name(self) -> str:
        return self.config.name

    def cost_of(self, ablation: str | None) -> float:
        return self.cost.get(ablation, self.cost[None])


_MODELS: dict[str, ModelSpec] = {}


def register(model: type[nn.Module], config: type[ModelConfig], *, stages: Callable | None = None,
             cost: dict[str | None, float] | float = 1.0) -> ModelSpec:
    """Add a model under `config.name`; registering a name twice is an error."""
    if not config.name:
        raise ValueError(f"{config.__name__} sets no `name`")
    if config.name in _MODELS:
        raise ValueError(f"a model named {config.name!r} is already registered")
    costs = {None: 1.0, **cost} if isinstance(cost, dict) else {None: float(cost)}
    spec = ModelSpec(model, config, stages, costs)
    _MODELS[config.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a model (tests that register a toy model clean up with it)."""
    _MODELS.pop(name, None)


def get(name: str) -> ModelSpec:
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; registered: {names()}")
    return _MODELS[name]


def names() -> list[str]:
    """The registered model names, in registration order."""
    return list(_MODELS)


def config_from_dict(data: dict, *, drop_unknown: bool = False) -> ModelConfig:
    """A saved config (with its `name`) -> the registered model's config."""
    if "name" not in data:
        raise ValueError("a saved model config names no model ('name' key)")
    return get(data["name"]).config.from_dict(data, drop_unknown=drop_unknown)
