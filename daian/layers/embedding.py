"""Item, user and page embeddings: one table per field, index 0 a zero padding row.

Shapes: B batch, L sequence length, F item fields, D embedding width.
"""
from __future__ import annotations

import math

import torch
from torch import nn


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
