"""Activations (PReLU, Dice), the MLP and PEPNet's Gate NU.

Dice and PReLU take an optional mask (True at real positions) so that Dice's batch statistics
skip padded positions of a sequence.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = ("relu", "prelu", "dice")


class PReLU(nn.Module):
    """Per-feature PReLU on the last axis (torch's PReLU puts channels on axis 1, not the last)."""

    def __init__(self, dim: int, init: float = 0.25) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.full((dim,), init))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() == 2:
            return F.prelu(x, self.alpha)  # channels on axis 1 = the last axis here
        return torch.where(x >= 0, x, self.alpha * x)


class Dice(nn.Module):
    """DIN's data-adaptive activation: p(x) x + (1 - p(x)) alpha x, p = sigmoid(standardised x).

    The statistics are per feature (last axis) over every other axis, computed from the batch in
    training (and followed by running averages for evaluation), as batch norm does. With a mask only
    real positions enter them, so padded positions of a sequence cannot move the activations of the
    real ones (DeepCTR's Dice includes them).
    """

    def __init__(self, dim: int, eps: float = 1e-8, momentum: float = 0.1) -> None:
        super().__init__()
        self.eps = eps
        self.momentum = momentum
        self.alpha = nn.Parameter(torch.zeros(dim))
        self.register_buffer("running_mean", torch.zeros(dim))
        self.register_buffer("running_var", torch.ones(dim))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Statistics and the gate in the parameters' dtype (float32), also under autocast, as
        batch norm does; the output in the input's dtype."""
        with torch.autocast(device_type=x.device.type, enabled=False):
            return self._forward(x.to(self.alpha.dtype), mask).to(x.dtype)

    def _forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if mask is None:
            # Fused batch norm (no affine) gives the standardisation and its running averages;
            # fewer than two values (a batch of one, no real position) carry no statistics.
            flat = x.reshape(-1, x.shape[-1])
            z = F.batch_norm(flat, self.running_mean, self.running_var,
                             training=self.training and flat.shape[0] > 1,
                             momentum=self.momentum, eps=self.eps).view_as(x)
        else:
            if self.training:
                flat = x.reshape(-1, x.shape[-1])  # (N, D)
                weight = mask.reshape(-1).to(x.dtype)  # (N,)
                count = weight.sum().clamp_min(1.0)
                mean = (weight @ flat) / count
                var = ((weight @ (flat * flat)) / count - mean * mean).clamp_min(0.0)
                with torch.no_grad():
                    self.running_mean.lerp_(mean.detach(), self.momentum)
                    unbiased = var.detach() * count / (count - 1).clamp_min(1.0)
                    self.running_var.lerp_(unbiased, self.momentum)
            else:
                mean, var = self.running_mean, self.running_var
            z = (x - mean) * torch.rsqrt(var + self.eps)
        # p x + (1 - p) alpha x = x * lerp(alpha, 1, p)
        return x * torch.lerp(self.alpha, torch.ones_like(self.alpha), torch.sigmoid(z))


def make_activation(name: str, dim: int) -> nn.Module:
    """One of ACTIVATIONS for a layer of width `dim`."""
    if name == "relu":
        return nn.ReLU()
    if name == "prelu":
        return PReLU(dim)
    if name == "dice":
        return Dice(dim)
    raise ValueError(f"unknown activation {name!r}; valid: {list(ACTIVATIONS)}")


def apply_activation(act: nn.Module, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return act(x, mask) if isinstance(act, (Dice, PReLU)) else act(x)


class MLP(nn.Module):
    """Linear -> activation -> dropout per hidden width, then an optional linear output layer.

    forward(x (..., in_dim), mask=None) -> (..., out_dim or hidden[-1]); the mask (x's shape without
    the last axis) only matters to Dice, whose statistics then skip padded positions.
    """

    def __init__(self, in_dim: int, hidden: tuple[int, ...], activation: str = "relu",
                 dropout: float = 0.0, out_dim: int | None = None, out_bias: bool = True) -> None:
        super().__init__()
        self.linears = nn.ModuleList()
        self.acts = nn.ModuleList()
        width = in_dim
        for h in hidden:
            self.linears.append(nn.Linear(width, h))
            self.acts.append(make_activation(activation, h))
            width = h
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.out = nn.Linear(width, out_dim, bias=out_bias) if out_dim is not None else None
        self.out_dim = out_dim if out_dim is not None else width

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        for linear, act in zip(self.linears, self.acts):
            x = self.dropout(apply_activation(act, linear(x), mask))
        return self.out(x) if self.out is not None else x


class GateNU(nn.Module):
    """PEPNet's Gate NU: gamma * sigmoid(W2 relu(W1 x + b1) + b2), values in (0, gamma).

    With gamma = 2 a fresh gate sits near 1, so a gated representation starts unchanged.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: int | None = None,
                 gamma: float = 2.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden or in_dim)
        self.fc2 = nn.Linear(hidden or in_dim, out_dim)
        self.gamma = gamma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gamma * torch.sigmoid(self.fc2(torch.relu(self.fc1(x))))
