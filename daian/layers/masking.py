"""Masked softmax and pooling over padded sequences.

A mask is boolean, True at real positions. Rows with no real position get zero weights and zero
pools (not NaN), so a model built from these is invariant to whatever sits at padded positions.
Shapes: B batch, L sequence length, D feature width.
"""
from __future__ import annotations

import torch


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Softmax of `scores` over `dim` where `mask` is True; zero weights elsewhere.

    A row with no True entry gets all-zero weights (not NaN, which `masked_fill(-inf)` would give):
    padded scores are pushed to the dtype's lowest value, so such a row softmaxes to a uniform
    vector that the final multiplication by the mask turns into zeros.
    """
    mask = mask.to(torch.bool)
    filled = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    return torch.softmax(filled, dim=dim) * mask.to(scores.dtype)


def masked_sum(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum over the sequence axis of x (B, L, D) at real positions of mask (B, L) -> (B, D)."""
    return torch.bmm(mask.to(x.dtype).unsqueeze(1), x).squeeze(1)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over real positions -> (B, D); all-padding rows give zeros."""
    count = mask.sum(dim=1, keepdim=True).clamp_min(1).to(x.dtype)
    return masked_sum(x, mask) / count
