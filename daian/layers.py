"""Generic layers shared by the CTR models (DIN, DEI2N, DAIAN).

Only pieces that carry no model's own logic live here: activations (PReLU, Dice), the MLP, a masked
softmax that is safe on all-padding rows, masked pooling, item / user embeddings, the DIN activation
unit (target attention), multi-head target attention, multi-head self-attention with a key padding
mask, and PEPNet's Gate NU. Shapes: B batch, L sequence length, D feature width, H heads.

Every sequence layer takes a boolean mask (True at real positions) and never lets a padded position
reach its output, so a model built from them is invariant to whatever sits at padded positions.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = ("relu", "prelu", "dice")


# ---------------------------------------------------------------------------------------------
# Masking helpers


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


# ---------------------------------------------------------------------------------------------
# Activations and the MLP


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


def _apply(act: nn.Module, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
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
            x = self.dropout(_apply(act, linear(x), mask))
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


# ---------------------------------------------------------------------------------------------
# Embeddings


def init_embedding(table: nn.Embedding, std: float) -> None:
    """Small normal init (as FuxiCTR / DeepCTR do), padding row 0 kept at zero."""
    nn.init.normal_(table.weight, std=std)
    if table.padding_idx is not None:
        with torch.no_grad():
            table.weight[table.padding_idx].zero_()


class ItemEmbedding(nn.Module):
    """Embeds item index tensors (..., F) whose last axis follows `fields` -> (..., D).

    One table per field (index 0 = padding, a zero row that gets no gradient); the output is the
    concatenation in `fields` order, so with the id field first (as ITEM_FIELDS has it) the first
    `dims[fields[0]]` features are the id embedding.
    """

    def __init__(self, fields: tuple[str, ...], vocab: dict[str, int], dims: dict[str, int],
                 std: float = 1e-2) -> None:
        super().__init__()
        self.fields = tuple(fields)
        self.tables = nn.ModuleList()
        for name in self.fields:
            table = nn.Embedding(vocab[name], dims[name], padding_idx=0)
            init_embedding(table, std)
            self.tables.append(table)
        self.dims = tuple(dims[name] for name in self.fields)
        self.dim = sum(self.dims)
        self.id_dim = self.dims[0]

    def forward(self, index: torch.Tensor) -> torch.Tensor:
        if index.shape[-1] != len(self.fields):
            raise ValueError(f"item index tensor must end with {len(self.fields)} fields "
                             f"{self.fields}, got shape {tuple(index.shape)}")
        return torch.cat([table(index[..., i]) for i, table in enumerate(self.tables)], dim=-1)

    def embed_many(self, *indices: torch.Tensor) -> list[torch.Tensor]:
        """Embed several index tensors with one lookup per field (fewer, larger kernels)."""
        width = len(self.fields)
        shapes = [t.shape[:-1] for t in indices]
        flat = torch.cat([t.reshape(-1, width) for t in indices], dim=0)
        out = self(flat)
        counts = [math.prod(s) for s in shapes]
        return [part.reshape(*s, self.dim) for part, s in zip(out.split(counts), shapes)]


class UserEmbedding(nn.Module):
    """User id plus profile fields -> (B, user_dim + P * profile_dim); user_dim=0: no id."""

    def __init__(self, users: int, profile_vocab: list[int], user_dim: int, profile_dim: int,
                 std: float = 1e-2) -> None:
        super().__init__()
        self.user = None
        if user_dim > 0:
            self.user = nn.Embedding(users, user_dim, padding_idx=0)
            init_embedding(self.user, std)
        self.profile = nn.ModuleList()
        for size in profile_vocab:
            table = nn.Embedding(size, profile_dim, padding_idx=0)
            init_embedding(table, std)
            self.profile.append(table)
        self.dim = user_dim + profile_dim * len(profile_vocab)

    def forward(self, user: torch.Tensor, profile: torch.Tensor) -> torch.Tensor:
        if profile.shape[-1] != len(self.profile):
            raise ValueError(f"user_profile must have {len(self.profile)} fields, "
                             f"got shape {tuple(profile.shape)}")
        parts = [t(profile[:, i]) for i, t in enumerate(self.profile)]
        if self.user is not None:
            parts.insert(0, self.user(user))
        return torch.cat(parts, dim=-1)


def feature_embeddings(fields: tuple[str, ...], config, sizes) -> tuple[ItemEmbedding, UserEmbedding,
                                                                         nn.Embedding]:
    """The item-field, user and page embeddings every CTR model here starts from.

    `config` gives item_dims, user_dim, profile_dim, page_dim and embedding_std (a ModelConfig);
    `sizes` the vocabularies (a FeatureSizes). Page index 0 is padding.
    """
    items = ItemEmbedding(fields, sizes.item_fields, config.item_dims, config.embedding_std)
    users = UserEmbedding(sizes.users, list(sizes.profile_fields.values()), config.user_dim,
                          config.profile_dim, config.embedding_std)
    page = nn.Embedding(sizes.max_page + 1, config.page_dim, padding_idx=0)
    init_embedding(page, config.embedding_std)
    return items, users, page


# ---------------------------------------------------------------------------------------------
# Attention


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
        h = self.dropout(_apply(self.first_act, h, None))
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
