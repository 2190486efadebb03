"""DAIAN's three modules, small parts first: UIM, DIE (I2E + explicit intent), SEIN (HSE + IA2N).

`daian.models.daian` composes them on a DIN base; its docstring maps the paper's equations to
these classes and says where our reading fills a gap. Shapes: B batch, L history length, T
subsequence length, D item width, A attention width, n intent levels.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from daian.layers import (MLP, GateNU, ItemEmbedding, MultiHeadSelfAttention, MultiHeadTargetAttention,
                          UserEmbedding, init_embedding, masked_mean)
from daian.models.base import ITEM_FIELDS, FeatureSizes
from intent_labels.labelled import similarity_level


def norm_ratio_fusion(collab: torch.Tensor, semantic: torch.Tensor,
                      eps: float = 1e-12) -> torch.Tensor:
    """a collab + (1 - a) semantic, a = |collab| / (|collab| + |semantic|), norms detached."""
    c = collab.detach().norm(dim=-1, keepdim=True)
    s = semantic.detach().norm(dim=-1, keepdim=True)
    a = c / (c + s + eps)
    return a * collab + (1.0 - a) * semantic


class BiasFreeMLP(nn.Module):
    """Linear (no bias) -> ReLU -> Linear (no bias): P(c x) = c P(x) for c > 0."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden, bias=False)
        self.fc2 = nn.Linear(hidden, out_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


def similarity_bucket(sim: torch.Tensor, lo: float, hi: float, bins: int) -> torch.Tensor:
    """Equal-width bucket of a cosine over [lo, hi] for the HSE's similarity embedding (a
    finer, fixed grid than the intent levels), values outside clipped to the end buckets."""
    return torch.floor((sim.float() - lo) / (hi - lo) * bins).long().clamp(0, bins - 1)


def history_spread(frozen: torch.Tensor, trigger_vec: torch.Tensor, hist_vec: torch.Tensor,
                   hist_mask: torch.Tensor, edges: np.ndarray) -> torch.Tensor:
    """(B, n + 1): the share of the history in each similarity level around the trigger (the
    labels' level rule and edges), and the concentration |mean of the history's store vectors|
    (1 when every item is the same, near 0 for a scattered history). Padding and items without a
    store vector (rows 0 and 1) are left out; a history with none gives zeros."""
    levels = len(edges) - 1
    v_tr = frozen[trigger_vec]  # (B, D)
    v_h = frozen[hist_vec]  # (B, L, D)
    mask = (hist_mask & (hist_vec > 1)).to(v_h.dtype)  # (B, L)
    level = similarity_level(torch.einsum("bld,bd->bl", v_h, v_tr), edges)
    count = mask.sum(1, keepdim=True).clamp_min(1.0)
    share = torch.zeros(level.shape[0], levels, dtype=v_h.dtype, device=v_h.device)
    share.scatter_add_(1, level, mask)
    mean = (v_h * mask[..., None]).sum(1) / count
    return torch.cat([share / count, mean.norm(dim=-1, keepdim=True)], dim=-1)


class UserIntentModel(nn.Module):
    """UIM: predicted intent distribution over n similarity levels, with its own embeddings."""

    def __init__(self, config, sizes: FeatureSizes, edges: np.ndarray) -> None:
        super().__init__()
        self.config = config
        self.edges = edges
        # Without ids the item fields start after the id (ITEM_FIELDS[0] is "item").
        self.first_field = 0 if config.uim_ids else 1
        self.items = ItemEmbedding(ITEM_FIELDS[self.first_field:], sizes.item_fields,
                                   config.item_dims, config.embedding_std)
        self.users = UserEmbedding(sizes.users, list(sizes.profile_fields.values()),
                                   config.user_dim if config.uim_ids else 0, config.profile_dim,
                                   config.embedding_std)
        d = self.items.dim
        spread = config.levels + 1 if config.uim_spread else 0
        past = config.levels + 1 if config.uim_past else 0
        self.mlp = MLP(self.users.dim + 3 * d + 2 + spread + past, config.uim_hidden, "relu", config.dropout,
                       out_dim=config.levels)

    def forward(self, features: dict[str, torch.Tensor],
                frozen: torch.Tensor | None = None) -> torch.Tensor:
        first = self.first_field
        trigger, hist = self.items.embed_many(features["trigger"][..., first:],
                                              features["hist"][..., first:])
        hist_mask, mm_mask = features["hist_mask"], features["mm_mask"]
        pooled = masked_mean(hist, hist_mask)
        # How many past items sit near the trigger, and how many there are at all (counts, not
        # fractions: batches are padded to different widths).
        counts = torch.stack([mm_mask.sum(1), hist_mask.sum(1)], dim=-1).to(pooled.dtype)
        parts = [self.users(features["user"], features["user_profile"]), pooled, trigger,
                 pooled * trigger, torch.log1p(counts)]
        if self.config.uim_spread:
            if frozen is None:
                raise ValueError("UIM with uim_spread needs the store's frozen item vectors")
            spread = history_spread(frozen, features["trigger_vec"], features["hist_vec"],
                                    features["hist_mask"], self.edges)
            parts.append(spread.to(pooled.dtype))
        if self.config.uim_past:
            parts += [features["past_intent"].to(pooled.dtype),
                      torch.log1p(features["past_count"].to(pooled.dtype))[:, None]]
        return torch.softmax(self.mlp(torch.cat(parts, dim=-1)), dim=-1)  # (B, n)


class DiverseIntentExtraction(nn.Module):
    """DIE: the implicit intent (I2E: an intent-based query attending over the history) and the
    explicit intent (self-attention over the multimodal subsequence, queried by the target)."""

    def __init__(self, config, item_dim: int, intent_dim: int, store_dim: int | None) -> None:
        super().__init__()
        drop, att, heads = config.dropout, config.attention_dim, config.heads
        self.i2e = MLP(item_dim + intent_dim, config.i2e_hidden, "relu", drop)  # f(e_tr, p)
        self.implicit = MultiHeadTargetAttention(self.i2e.out_dim, item_dim, att, heads, drop)
        # The frozen store vectors enter the multimodal items as a learned projection.
        self.mm_proj = nn.Linear(store_dim, config.mm_dim, bias=False) if store_dim else None
        dm = item_dim + (config.mm_dim if store_dim else 0)
        if dm % heads:
            raise ValueError(f"the explicit-intent self-attention runs at the item width "
                             f"{dm} (item_dims + mm_dim), which {heads} heads must divide")
        self.explicit_mhsa = MultiHeadSelfAttention(dm, heads, drop, norm=config.mhsa_norm)
        self.explicit = MultiHeadTargetAttention(dm, dm, att, heads, drop)
        self.query_dim = self.i2e.out_dim  # width of e_int
        self.out_dim = att  # width of e_imp and of e_exp

    def forward(self, features: dict[str, torch.Tensor], frozen: torch.Tensor | None,
                trigger: torch.Tensor, target: torch.Tensor, hist: torch.Tensor,
                mm_items: torch.Tensor, p: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        """(e_int (B, Q), e_imp (B, A), e_exp (B, A)); p (B, n) is the intent, None without UIM."""
        e_int = self.i2e(trigger if p is None else torch.cat([trigger, p], dim=-1))
        e_imp = self.implicit(e_int, hist, features["hist_mask"])
        mm_mask, target_mm = features["mm_mask"], target
        if self.mm_proj is not None:
            ids = torch.cat([features["target_vec"][:, None], features["mm_vec"]], dim=1)
            v = self._project_frozen(frozen, ids)  # (B, 1 + T, mm_dim)
            target_mm = torch.cat([target, v[:, 0]], dim=-1)
            mm_items = torch.cat([mm_items, v[:, 1:]], dim=-1)
        keys = self.explicit_mhsa(mm_items, mm_mask)
        return e_int, e_imp, self.explicit(target_mm, keys, mm_mask)

    def _project_frozen(self, frozen: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """mm_proj(v[ids]): gather then project, or project the table then gather when that is
        less work (a batch asking for more rows than the table holds); the results are equal."""
        if ids.numel() > frozen.shape[0]:
            return self.mm_proj(frozen)[ids]
        return self.mm_proj(frozen[ids])


class HybridSimilarityEnhancer(nn.Module):
    """HSE: the binned semantic similarity fused with the collaborative one by their norm ratio."""

    def __init__(self, config, id_dim: int) -> None:
        super().__init__()
        self.sim_range, self.bins = config.sim_range, config.sim_bins
        self.sim_embedding = nn.Embedding(config.sim_bins, config.sim_dim)
        init_embedding(self.sim_embedding, config.embedding_std)
        self.collab_proj = BiasFreeMLP(id_dim, config.sim_dim, config.sim_dim)
        self.id_dim = id_dim

    def forward(self, tt_sim: torch.Tensor, trigger: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        e_sem = self.sim_embedding(similarity_bucket(tt_sim, *self.sim_range, self.bins))  # (B, S)
        k = self.id_dim
        e_col = self.collab_proj(trigger[:, :k]) * self.collab_proj(target[:, :k])  # (B, S)
        return norm_ratio_fusion(e_col, e_sem)


class IntentAwareShift(nn.Module):
    """IA2N's shifting unit: w = gamma sigmoid(MLP(GateNU(x) x)), x = [e_hyb, sg(e_int), sg(q)];
    e_exp' = w_exp e_exp, e_imp' = w_imp e_imp."""

    def __init__(self, config, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.gamma = config.gate_gamma
        self.shift_gate = GateNU(in_dim, in_dim, gamma=config.gate_gamma)
        self.shift_mlp = MLP(in_dim, config.shift_hidden, "relu", config.dropout, out_dim=2 * out_dim)

    def forward(self, x: torch.Tensor, e_exp: torch.Tensor, e_imp: torch.Tensor) -> tuple[torch.Tensor, ...]:
        w = self.gamma * torch.sigmoid(self.shift_mlp(self.shift_gate(x) * x))
        w_exp, w_imp = w.chunk(2, dim=-1)
        return w_exp * e_exp, w_imp * e_imp


class SimilarityEnhancedIntentNetwork(nn.Module):
    """SEIN = HSE + IA2N (the shift only when DIE is there to be shifted), and the intent at the
    pair's similarity level, q = log(n p[level(tt_sim)]), for the shift and/or the head."""

    def __init__(self, config, id_dim: int, die: DiverseIntentExtraction | None,
                 edges: np.ndarray, level_in: tuple[bool, bool]) -> None:
        super().__init__()
        self.edges, (self.level_in_shift, self.level_in_head) = edges, level_in
        self.hse = HybridSimilarityEnhancer(config, id_dim)
        self.ia2n = None
        if die is not None:
            shift_in = config.sim_dim + die.query_dim + int(self.level_in_shift)
            self.ia2n = IntentAwareShift(config, shift_in, die.out_dim)
        self.out_dim = config.sim_dim + int(self.level_in_head)  # what it adds to the head

    def forward(self, tt_sim: torch.Tensor, trigger: torch.Tensor, target: torch.Tensor,
                p: torch.Tensor | None, die_out: tuple[torch.Tensor, ...] | None) -> tuple:
        """([e_hyb (+ q)] for the head, (e_exp', e_imp') or None without DIE)."""
        e_hyb = self.hse(tt_sim, trigger, target)
        at_level = None
        if self.level_in_shift or self.level_in_head:
            level = similarity_level(tt_sim, self.edges)
            at_level = torch.log((len(self.edges) - 1) * p.gather(1, level[:, None]).clamp_min(1e-4))  # (B, 1)
        shifted = None
        if self.ia2n is not None:
            e_int, e_imp, e_exp = die_out
            x = [e_hyb, e_int.detach()] + ([at_level.detach()] if self.level_in_shift else [])
            shifted = self.ia2n(torch.cat(x, dim=-1), e_exp, e_imp)
        return [e_hyb] + ([at_level] if self.level_in_head else []), shifted
