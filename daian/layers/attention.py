"""Attention layers: DIN's target attention, multi-head target attention, multi-head self-attention.

Every layer takes a boolean mask (True at real positions) and never lets a padded position reach
its output. Shapes: B batch, L sequence length, D feature width, H heads.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from daian.layers.masking import masked_softmax
from daian.layers.mlp import MLP, apply_activation, make_activation


class TargetAttention(nn.Module):
    """DIN's activation unit: an MLP on [q, k, q - k, q * k (, c)] scores each position, then pools.

    forward(query (B, D), keys (B, L, D), mask (B, L), values=None, context=None) -> (B, Dv), where
    values default to keys and context (B, L, Dc) is an optional per-position feature (DEI2N's time
    interval embedding) fed to the scoring MLP beside the four DIN terms.

    The first linear layer is applied in parts, W [q, k, q-k, q*k] = (Wq + Wd) q + (Wk - Wd) k +
    Wp (q * k): the query terms once per row, and only one (N, D) product materialised, instead
    of a (B, L, 4D) concatenation; N counts the real positions, the only ones scored.
    `softmax=False` keeps DIN's unnormalised weights (masked to 0).
    """

    def __init__(self, dim: int, hidden: tuple[int, ...] = (128,), activation: str = "dice",
                 softmax: bool = False, context_dim: int = 0, dropout: float = 0.0) -> None:
        super().__init__()
        if not hidden:
            raise ValueError("TargetAttention needs at least one hidden layer")
        self.dim = dim
        self.context_dim = context_dim
        self.first = nn.Linear(4 * dim + context_dim, hidden[0])
        self.first_act = make_activation(activation, hidden[0])
        # A score bias cancels in a softmax: leave it out there (it would get no gradient).
        self.rest = MLP(hidden[0], tuple(hidden[1:]), activation, dropout, out_dim=1,
                        out_bias=not softmax)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.softmax = softmax

    def scores(self, query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor,
               context: torch.Tensor | None = None) -> torch.Tensor:
        """Attention weights (B, L): raw MLP scores masked to 0, or a masked softmax of them.

        The scoring MLP runs on the real positions only, packed as (N, D): padding costs nothing
        and Dice's statistics are those of the real positions.
        """
        if self.context_dim and context is None:
            raise ValueError("this attention was built with a context input; pass context")
        d = self.dim
        w = self.first.weight  # (H, 4D + Dc)
        w_q, w_k, w_d, w_p = w[:, :d], w[:, d:2 * d], w[:, 2 * d:3 * d], w[:, 3 * d:4 * d]
        rows, cols = mask.nonzero(as_tuple=True)  # N real positions
        k = keys[rows, cols]  # (N, D)
        q_part = F.linear(query, w_q + w_d, self.first.bias)  # (B, H), once per row
        h = torch.addmm(q_part[rows], k, (w_k - w_d).t())
        h = torch.addmm(h, query[rows] * k, w_p.t())  # (N, H)
        if self.context_dim:
            h = torch.addmm(h, context[rows, cols], w[:, 4 * d:].t())
        h = self.dropout(apply_activation(self.first_act, h, None))
        s = self.rest(h).squeeze(-1)  # (N,)
        scores = s.new_zeros(mask.shape).index_put((rows, cols), s)
        if self.softmax:
            return masked_softmax(scores, mask)
        return scores

    def forward(self, query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor,
                values: torch.Tensor | None = None,
                context: torch.Tensor | None = None) -> torch.Tensor:
        weights = self.scores(query, keys, mask, context)
        values = keys if values is None else values
        return torch.bmm(weights.unsqueeze(1), values).squeeze(1)


class MultiHeadTargetAttention(nn.Module):
    """Multi-head attention of one query vector over a key sequence (Vaswani et al.) -> (B, A).

    head_h = softmax(q Wq_h (K Wk_h)^T / sqrt(d_h)) K Wv_h (masked), output = concat(heads) Wo.
    Computed without projecting the keys: the query is folded into the key projection
    (u_h = Wk_h (q Wq_h), score = K u_h) and the values are pooled before their projection
    (sum_l a_l K_l Wv_h = (sum_l a_l K_l) Wv_h), so the per-position cost is D * H instead of D * A.
    The key and value projections carry no bias (a key bias cancels in the softmax).
    """

    def __init__(self, query_dim: int, key_dim: int, att_dim: int = 128, heads: int = 4,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if att_dim % heads:
            raise ValueError(f"attention dim {att_dim} is not divisible by {heads} heads")
        self.heads, self.head_dim, self.key_dim = heads, att_dim // heads, key_dim
        self.q_proj = nn.Linear(query_dim, att_dim)
        self.k_proj = nn.Linear(key_dim, att_dim, bias=False)
        self.v_proj = nn.Linear(key_dim, att_dim, bias=False)
        self.o_proj = nn.Linear(att_dim, att_dim)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.out_dim = att_dim

    def weights(self, query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Per-head attention weights (B, H, L)."""
        b, h, dh = query.shape[0], self.heads, self.head_dim
        q = self.q_proj(query).view(b, h, dh) / math.sqrt(dh)
        w_k = self.k_proj.weight.view(h, dh, self.key_dim)
        u = torch.einsum("bhe,hed->bdh", q, w_k)  # (B, D, H): query folded into Wk
        scores = torch.bmm(keys, u).transpose(1, 2)  # (B, H, L)
        return masked_softmax(scores, mask.unsqueeze(1))

    def forward(self, query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, h, dh = query.shape[0], self.heads, self.head_dim
        a = self.dropout(self.weights(query, keys, mask))
        pooled = torch.bmm(a, keys)  # (B, H, D)
        w_v = self.v_proj.weight.view(h, dh, self.key_dim)
        heads = torch.einsum("bhd,hed->bhe", pooled, w_v).reshape(b, h * dh)
        return self.o_proj(heads)


SELF_ATTENTION_NORMS = ("post", "pre")  # where MultiHeadSelfAttention places its LayerNorm


class MultiHeadSelfAttention(nn.Module):
    """Transformer self-attention block over a padded sequence: MHSA, dropout, residual, LayerNorm.

    norm "post" (Vaswani et al.): y = LN(x + MHSA(x)); "pre" (Xiong et al. 2020):
    y = x + MHSA(LN(x)), which keeps the residual path at the input's scale instead of rescaling
    every output to unit variance (small-init embeddings stay small).
    forward(x (B, L, D), mask (B, L)) -> (B, L, D), zeros at padded positions. Padded keys get no
    attention; a row with no real position attends uniformly to its padding (so the kernel sees no
    empty row) and is zeroed afterwards.
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0, norm: str = "post") -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"self-attention dim {dim} is not divisible by {heads} heads")
        if norm not in SELF_ATTENTION_NORMS:
            raise ValueError(f"self-attention norm must be one of {list(SELF_ATTENTION_NORMS)}, got {norm!r}")
        self.heads, self.dim, self.norm_position = heads, dim, norm
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.p_drop = dropout
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, l, d = x.shape
        mask = mask.to(torch.bool)
        pre = self.norm_position == "pre"
        h = self.norm(x) if pre else x
        q, k, v = self.qkv(h).view(b, l, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        keep = mask | ~mask.any(dim=1, keepdim=True)  # empty rows: attend to all, zeroed below
        att = F.scaled_dot_product_attention(
            q, k, v, attn_mask=keep[:, None, None, :],
            dropout_p=self.p_drop if self.training else 0.0)  # (B, H, L, dh)
        att = self.out(att.transpose(1, 2).reshape(b, l, d))
        y = x + self.dropout(att)
        if not pre:
            y = self.norm(y)
        return y * mask.unsqueeze(-1).to(y.dtype)
