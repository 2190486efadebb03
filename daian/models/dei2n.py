"""DEI2N (Xiao et al., WSDM 2024, section 2): Deep Evolutional Instant Interest Network.

    embeddings: e_u (user profile), e_c (page), e_tr, e_ta, E_b (history), E_t (time intervals),
                E_b^h (category subsequence: history items in the trigger's category)
    UI2M   p_tr, p_ta = softmax(MLP(e_u, e_c, e_tr, sum(E_b^h)))            (eq. 1)
    USIM   E_u^s = MHSA([E_b || E_t]) with residual, dropout, LayerNorm      (eq. 2-3)
           e_ta^s = sum_j a(e_u_j^s; e_t_j; e_ta) e_u_j^s, e_tr^s likewise   (eq. 4)
    UHIM   e_ta^h = target attention over E_b^h
    fusion e_mix = p_tr e_tr^s + p_ta e_ta^s                                 (eq. 5)
    IL     e^i = MLP(e_ta, e_tr, e_tr * e_ta)                                (eq. 6)
    head   MLP 200-80 on [e_mix, e_ta^h, e^i, e_u, e_ta, e_tr, e_c] -> logit

Where our reading fills a gap (or departs from the public code):
- Time intervals: the paper embeds t_i = floor((t - t_i)/60 s), one vector per minute. Our data
  carries minutes clipped to max_dt (two weeks are ~20,000 minutes, most seen a handful of times),
  so by default they are embedded in log-spaced buckets (`dt_buckets_per_octave` per doubling);
  0 restores the paper's one embedding per minute.
- MHSA input: [E_b || E_t] is projected back to d_model by a linear layer (as the public code does)
  so that the residual connection and the attention values stay in the item space; E_u^s is then
  (B, L, d_model) as eq. 4 states.
- The attention unit a(.) is DIN's MLP on [q, k, q-k, q*k] plus the time embedding as an extra
  input (80-40 hidden units). Eq. 4 sums a(.) e_j with DIN's activation unit and says nothing of
  a normalisation, so the weights are left unnormalised as DIN's are (the public code applies a
  softmax; `attention_softmax=True` restores it): normalised weights discard how much of a user's
  history resembles the target, which the click model (and DIN) lean on (docs/training.md, "Where
  our reading fills a gap, measured"). Dropout (0.1) acts in the MHSA block and the MLPs, not
  inside the scoring units. Every sum is masked (the public code sums padded history); no
  BatchNorm in the head (the public one never leaves its initial statistics).
- The category subsequence has no timestamps in our data contract, so the hard-interest attention
  runs without time embeddings (the paper's E_t^h).
- "Remaining features" fed to the head: e_ta, e_tr and e_c beside the paper's four vectors.
- Ablations: no-ui2m fixes p_tr = p_ta = 1/2; no-tim drops E_t everywhere; no-il drops e^i;
  no-uhim drops e_ta^h; no-usim drops the soft interests and with them UI2M, whose only role is
  to fuse them.
- The frozen store vectors are not used (the paper's model is id and side-info based).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from daian.layers import (MLP, SELF_ATTENTION_NORMS, MultiHeadSelfAttention, TargetAttention,
                          feature_embeddings, init_embedding, masked_sum)
from daian.models.base import ITEM_FIELDS, FeatureSizes, ModelOutput
from daian.models.config import check_choice, check_positive, check_widths
from daian.models.din import DINConfig


@dataclass
class DEI2NConfig(DINConfig):
    """DEI2N's hyper-parameters: DIN's fields at the DEI2N paper's sizes, plus its own."""

    name = "dei2n"
    ablations = ("no-ui2m", "no-tim", "no-il", "no-uhim", "no-usim")
    before_field = {"mhsa_norm": "post"}

    mlp_hidden: tuple[int, ...] = (200, 80)  # final MLP (paper 200-80)
    attention_hidden: tuple[int, ...] = (80, 40)  # activation units of USIM and UHIM (public code)
    dropout: float = 0.1  # in the MHSA block and the MLPs (paper 0.1)
    heads: int = 2  # heads of USIM's self-attention (paper 2)
    mhsa_norm: str = "post"  # LayerNorm after the residual (paper: "with residual, dropout, LayerNorm")
    time_dim: int = 36  # d_time, the time-interval embedding width
    dt_buckets_per_octave: int = 2  # log-spaced time buckets per doubling; 0 = one per minute (paper)
    ui2m_hidden: tuple[int, ...] = (72, 36)  # user instant interest MLP (paper 72-36)
    interaction_hidden: tuple[int, ...] = (144, 72)  # interaction layer MLP (paper 144-72)

    def validate(self) -> None:
        super().validate()
        check_positive(heads=self.heads, time_dim=self.time_dim)
        check_widths(ui2m_hidden=self.ui2m_hidden, interaction_hidden=self.interaction_hidden)
        check_choice("mhsa_norm", self.mhsa_norm, SELF_ATTENTION_NORMS)
        if self.dt_buckets_per_octave < 0:
            raise ValueError(f"dt_buckets_per_octave must be >= 0, got {self.dt_buckets_per_octave}")
        if self.item_dim % self.heads:
            raise ValueError(f"DEI2N's self-attention runs at the item width sum(item_dims) = "
                             f"{self.item_dim}, which heads={self.heads} must divide")


def time_buckets(max_dt: int, per_octave: int) -> int:
    """Size of the time-interval table for hist_dt values 0 (pad) .. max_dt + 1."""
    if per_octave == 0:
        return max_dt + 2
    return 2 + math.floor(per_octave * math.log2(max_dt + 1))


def bucketise_dt(dt: torch.Tensor, per_octave: int, size: int) -> torch.Tensor:
    """hist_dt (minutes + 1, 0 = pad) -> bucket index: 0 for pad, else 1 + floor(k log2 dt)."""
    if per_octave == 0:
        return dt.clamp(0, size - 1)
    level = torch.floor(per_octave * torch.log2(dt.clamp_min(1).to(torch.float32))).long() + 1
    return torch.where(dt > 0, level.clamp(1, size - 1), torch.zeros_like(level))


class DEI2N(nn.Module):
    """DEI2N with masked pooling everywhere; see the module docstring for our readings."""

    def __init__(self, config: DEI2NConfig, sizes: FeatureSizes,
                 frozen_vectors: torch.Tensor | None = None) -> None:
        super().__init__()
        self.config = config
        ab = config.ablation
        self.use_tim = ab != "no-tim"
        self.use_usim = ab != "no-usim"
        self.use_ui2m = ab not in ("no-ui2m", "no-usim")
        self.use_uhim = ab != "no-uhim"
        self.use_il = ab != "no-il"
        drop, act = config.dropout, config.attention_activation

        self.items, self.users, self.page = feature_embeddings(ITEM_FIELDS, config, sizes)
        d, dt = self.items.dim, config.time_dim
        width = self.users.dim + config.page_dim + 2 * d  # e_u, e_c, e_ta, e_tr

        if self.use_usim:
            ctx = 0
            if self.use_tim:
                self.time_size = time_buckets(sizes.max_dt, config.dt_buckets_per_octave)
                self.time = nn.Embedding(self.time_size, dt, padding_idx=0)
                init_embedding(self.time, config.embedding_std)
                self.mix = nn.Linear(d + dt, d)  # [E_b || E_t] -> d_model
                ctx = dt
            self.mhsa = MultiHeadSelfAttention(d, config.heads, drop, norm=config.mhsa_norm)
            self.target_attention = TargetAttention(d, config.attention_hidden, act,
                                                    config.attention_softmax, ctx)
            self.trigger_attention = TargetAttention(d, config.attention_hidden, act,
                                                     config.attention_softmax, ctx)
            width += d
        if self.use_ui2m:
            self.ui2m = MLP(self.users.dim + config.page_dim + 2 * d, config.ui2m_hidden,
                            config.mlp_activation, drop, out_dim=2)
        if self.use_uhim:
            self.hard_attention = TargetAttention(d, config.attention_hidden, act,
                                                  config.attention_softmax, 0)
            width += d
        if self.use_il:
            self.interaction = MLP(3 * d, config.interaction_hidden, config.mlp_activation, drop)
            width += self.interaction.out_dim
        self.mlp = MLP(width, config.mlp_hidden, config.mlp_activation, drop, out_dim=1)

    def forward(self, features: dict[str, torch.Tensor],
                intent_override: torch.Tensor | None = None) -> ModelOutput:
        """Click logit (B,); DEI2N has no intent distribution, `intent_override` is ignored."""
        target, trigger, hist, hard = self.items.embed_many(
            features["target"], features["trigger"], features["hist"], features["cat_seq"])
        user = self.users(features["user"], features["user_profile"])
        page = self.page(features["page"])
        parts = [user, page, target, trigger]

        if self.use_usim:
            mask = features["hist_mask"]
            time = None
            if self.use_tim:
                dt = bucketise_dt(features["hist_dt"], self.config.dt_buckets_per_octave,
                                  self.time_size)
                time = self.time(dt)  # (B, L, d_time)
                seq = self.mix(torch.cat([hist, time], dim=-1))
            else:
                seq = hist
            seq = self.mhsa(seq, mask)  # E_u^s (B, L, D)
            soft_ta = self.target_attention(target, seq, mask, context=time)
            soft_tr = self.trigger_attention(trigger, seq, mask, context=time)
            if self.use_ui2m:
                hard_sum = masked_sum(hard, features["cat_mask"])
                p = torch.softmax(self.ui2m(torch.cat([user, page, trigger, hard_sum], -1)), -1)
                mix = p[:, :1] * soft_tr + p[:, 1:] * soft_ta
            else:
                mix = 0.5 * (soft_tr + soft_ta)
            parts.append(mix)
        if self.use_uhim:
            parts.append(self.hard_attention(target, hard, features["cat_mask"]))
        if self.use_il:
            parts.append(self.interaction(torch.cat([target, trigger, trigger * target], -1)))
        return ModelOutput(logit=self.mlp(torch.cat(parts, dim=-1)).squeeze(-1))
