"""DAIAN (section 4): Deep Adaptive Intent-Aware Network, on a DIN base.

    DIN base   e_u, e_tr, e_ta, e_page, DIN target attention over E_b, sum(E_b)
    UIM        p_hat = softmax(MLP(e_u', pool(E_b'), e_tr', ...)), own embeddings (')  (eq. 2-5)
    DIE  I2E   e_int = f(e_tr, p_hat); e_imp = MHTA(query e_int, keys E_b)             (eq. 6-8)
         exp.  e_exp = MHTA(query e_ta, keys MHSA(E_mm)), E_mm the multimodal subseq.  (eq. 9-10)
    SEIN HSE   e_sem = Emb(bucket(cos(v_tr, v_ta))); e_col = P(e_id_tr) * P(e_id_ta);
               e_hyb = a e_col + (1 - a) e_sem, a = |e_col| / (|e_col| + |e_sem|), norms
               under stop-gradient                                                     (eq. 11-14)
         IA2N  w = shift([e_hyb, sg(e_int), sg(q)]); e_exp' = w_exp e_exp, e_imp' = w_imp e_imp
               q = log(n p[level(cos(v_tr, v_ta))]), the intent at the pair's level    (eq. 15-18)
    head       MLP 512-256-128 on [DIN base, e_hyb, q, e_exp', e_imp'] -> logit

The paper's equations were lost in extraction; where our reading fills a gap:
- UIM input: user profile, the masked mean of the history, the trigger, their product, two
  sequence statistics, log(1 + length) of the multimodal subsequence and of the history (how much
  of the user's past sits near the trigger), and the history's spread around the trigger read from
  the frozen store vectors (`uim_spread`, `history_spread`): the share of the history in each of
  the n similarity levels to the trigger, and the norm of the mean history vector (a focused
  history is near 1, a scattered one lower). The paper says UIM reads the behaviour sequence but
  not how; the id and side-info tables alone left UIM's prediction nearly blind to the user (on the
  demo world's test requests, its expected level told broad- from specific-intent users with AUC
  0.53; with the spread 0.61, and DAIAN's seed-1 AUC / GAUC rose from 0.6956 / 0.6422 to
  0.7029 / 0.6540). It also reads the user's own earlier requests (`uim_past`): the mean
  ground-truth intent of the user's labelled *training* requests that started before this one,
  and log(1 + their number) (`daian.data.attach_past_intent`; a test request sees only training
  requests, so no evaluated click reaches it). The paper's UIM predicts the user's intent from
  the user's profile; the intent the user showed before is the most direct part of that profile.
  On the demo world it raised GAUC on each of eight seeds (mean 0.6467 -> 0.6509) and AUC on
  average (0.7011 -> 0.7040: up on five seeds, level on one, down by at most 0.003 on two).
  UIM's tables are its own: the paper says the intent and CTR networks share no parameters.
  The paper also lists the user id and item ids among UIM's inputs; by default we leave them out
  (`uim_ids=False`, True restores them): labels exist only for requests with a click, all
  impressions of a request share one, and id embeddings memorise them. On the demo world (about
  12k labelled training requests) UIM with ids predicted the test requests' intent worse than a
  constant (mean per-request JS 0.34 vs 0.31 on specific-intent users) and without ids better
  (0.29).
- f in I2E is an MLP on [e_tr, p_hat]; MHTA is standard multi-head attention with a masked
  softmax (128 units, 4 heads, as the paper's implementation details).
- Explicit intent: the subsequence items and the target are embedded as id || side info || a
  learned projection of their frozen store vector (the "multimodal parts" are where the store
  vectors enter); the subsequence goes through one transformer self-attention block at that item
  width, then the 128-unit multi-head target attention. The block normalises before attending
  (pre-LN, `mhsa_norm="pre"`; the paper does not say): a LayerNorm after the residual rescales the
  items' small-init id parts to unit variance, and in stage 2, where the ids keep their initial
  values, that is amplified noise. On the demo world's seed 1 post-LN scored AUC 0.6921 / GAUC
  0.6405 and pre-LN 0.6978 / 0.6400.
- Hybrid enhancer: the semantic similarity is the data's tt_sim (the cosine of the two store
  vectors), cut into `sim_bins` equal-width buckets over `sim_range` and embedded. The
  collaborative part projects the trigger's and the target's id embeddings (those of the CTR
  network) with a bias-free MLP P and multiplies them elementwise: P is positively homogeneous,
  so |e_col| grows with the id embeddings' norms and cold (rarely updated, small) ids lean on
  e_sem, warm ones on e_col. The norms in the ratio are detached, so the fusion weight never
  pushes the id embeddings.
- IA2N ("Gate NU and multi-layer MLP"): z = GateNU(x) * x re-weights the input as PEPNet's gates
  do, then w = gamma * sigmoid(MLP(z)) has one weight per feature of e_exp and e_imp, starting near
  1 (a neutral shift). The intent embedding enters as sg(e_int), the I2E intent-based embedding.
- The intent at the pair's similarity level (`intent_level`, default "both"). The paper defines
  the intent as the user's click probability at each of the n similarity levels to the trigger,
  and IA2N as the unit that re-weights by "the correlation between the intent and the
  similarity"; it does not say how the two meet. We read off the intent at the level the
  trigger-target cosine falls in (the labels' own equal-width levels over `sim_range`) as
  q = log(n p[level]), 0 for a uniform intent, and feed it to the shift (stop-gradient, as e_int)
  and to the head ("shift", "head", "both", "none"; checkpoints saved before the field are
  "none"). Through e_int alone the shift has to learn that product from a 128-d embedding and
  a bucket embedding; without it DAIAN leaned on the trigger for broad-intent users almost as much
  as for specific ones (within a request, the score's correlation with the cosine was 0.58-0.69
  for broad users against a true 0.16) and lost to DEI2N on their GAUC on two of three worlds.
  With it (seeds 1-3, docs/training.md) AUC rose on all three demo-preset worlds measured
  (0.7140 -> 0.7145, 0.7164 -> 0.7186, 0.7049 -> 0.7076) and GAUC fell on two and rose on one
  (0.6608 -> 0.6559, 0.6724 -> 0.6711, 0.6419 -> 0.6501); broad users' GAUC is above DEI2N's
  on worlds 0 and 7 (before: world 0 alone). The head copy carries most of it (world 0: head
  alone 0.7144 / 0.6552, shift alone 0.7116 / 0.6484).
- `intent_override` (stage 2): a (B, n) ground-truth intent replaces p_hat in DIE; rows of zeros
  (requests without a click, hence without a label) fall back to p_hat, detached, so no zero row
  can act as a "no click" signal and UIM gets no gradient from a stage that does not train it.
  `intent_pred` is always UIM's own prediction.
- Ablations: no-uim drops UIM (f sees the trigger only, intent_pred is None); no-die drops I2E,
  the explicit branch and the IA2N shift (nothing is left to shift; UIM's prediction then has no
  path to the logit, as p_hat enters through DIE only); no-sein drops the enhancer and IA2N
  (e_exp, e_imp enter unshifted); no-three-stage is the full model (it changes training only).

Three-stage training (section 4.4), as `stage_parameters(stage)` lists it:
  1. UIM only, on KL(p || p_hat) over requests with a label (rows with has_intent).
  2. Every parameter except UIM and the CTR network's embedding tables (item fields, user, page),
     on the CTR loss, with intent_override = p. Eq. 20 names the DIE parameters as the ones being
     pre-trained; the CTR loss needs a head and the networks around DIE to learn along, so they
     train too. The embedding tables wait for stage 3: a second pass over the same ids overfits
     them (on the demo world, DIN's test AUC falls from 0.671 after one epoch to 0.663 after two;
     `stage2_embeddings=True` trains them here as well). UIM is not in the graph (override) and
     stays as stage 1 left it. The trainer passes the leave-one-out intent of each row (the
     request's other clicks, `daian.data.leave_one_out_intent`): the request's full p is zero at
     the target's level exactly when that target was not clicked, a shortcut to the label.
  3. Every parameter on the CTR loss only, no intent supervision, UIM with a smaller learning rate.
"""
from __future__ import annotations

import torch
from torch import nn

from daian.layers import (MLP, GateNU, ItemEmbedding, MultiHeadSelfAttention,
                          MultiHeadTargetAttention, TargetAttention, UserEmbedding,
                          feature_embeddings, init_embedding, masked_mean, masked_sum)
from daian.models.base import ITEM_FIELDS, FeatureSizes, ModelOutput
from daian.models.config import ModelConfig


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
    """Equal-width bucket of a cosine over [lo, hi], values outside clipped to the end buckets."""
    return torch.floor((sim.float() - lo) / (hi - lo) * bins).long().clamp(0, bins - 1)


def history_spread(frozen: torch.Tensor, trigger_vec: torch.Tensor, hist_vec: torch.Tensor,
                   hist_mask: torch.Tensor, sim_range: tuple[float, float], levels: int) -> torch.Tensor:
    """(B, levels + 1): the share of the history in each similarity level around the trigger, and
    the concentration |mean of the history's store vectors| (1 when every item is the same, near 0
    for a scattered history). The levels cut sim_range into equal parts; train-daian sets
    sim_range to the labels' outer bin edges, so with label-intents' equal-width edges they are
    the intent levels. Padding and items without a store vector (rows 0 and 1) are left out; a
    history with none gives zeros."""
    v_tr = frozen[trigger_vec]  # (B, D)
    v_h = frozen[hist_vec]  # (B, L, D)
    mask = (hist_mask & (hist_vec > 1)).to(v_h.dtype)  # (B, L)
    level = similarity_bucket(torch.einsum("bld,bd->bl", v_h, v_tr), *sim_range, levels)
    count = mask.sum(1, keepdim=True).clamp_min(1.0)
    share = torch.zeros(level.shape[0], levels, dtype=v_h.dtype, device=v_h.device)
    share.scatter_add_(1, level, mask)
    mean = (v_h * mask[..., None]).sum(1) / count
    return torch.cat([share / count, mean.norm(dim=-1, keepdim=True)], dim=-1)


class UserIntentModel(nn.Module):
    """UIM: predicted intent distribution over n similarity levels, with its own embeddings."""

    def __init__(self, config: ModelConfig, sizes: FeatureSizes) -> None:
        super().__init__()
        self.config = config
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
                                    features["hist_mask"], self.config.sim_range, self.config.levels)
            parts.append(spread.to(pooled.dtype))
        if self.config.uim_past:
            parts += [features["past_intent"].to(pooled.dtype),
                      torch.log1p(features["past_count"].to(pooled.dtype))[:, None]]
        return torch.softmax(self.mlp(torch.cat(parts, dim=-1)), dim=-1)  # (B, n)


class DAIAN(nn.Module):
    """DAIAN; see the module docstring for the structure and our readings."""

    def __init__(self, config: ModelConfig, sizes: FeatureSizes,
                 frozen_vectors: torch.Tensor | None = None) -> None:
        super().__init__()
        self.config = config
        ab = config.ablation
        self.use_uim = ab != "no-uim"
        self.use_die = ab != "no-die"
        self.use_sein = ab != "no-sein"
        drop, att, heads = config.dropout, config.attention_dim, config.heads

        # DIN base
        self.items, self.users, self.page = feature_embeddings(ITEM_FIELDS, config, sizes)
        d = self.items.dim
        self.attention = TargetAttention(d, config.attention_hidden, config.attention_activation,
                                         softmax=config.attention_softmax)
        width = self.users.dim + 4 * d + config.page_dim

        # The frozen store vectors feed the explicit-intent branch (mm_dim > 0) and UIM's view of
        # how the history spreads around the trigger (uim_spread).
        self.use_mm = self.use_die and config.mm_dim > 0
        needs_store = self.use_mm or (self.use_uim and config.uim_spread)
        if needs_store and frozen_vectors is None:
            raise ValueError("DAIAN needs the store's frozen item vectors for its explicit-intent "
                             "branch and its UIM (or set mm_dim=0 and uim_spread=False)")
        kept = frozen_vectors.detach().float().clone() if needs_store else None
        self.register_buffer("frozen_vectors", kept, persistent=False)

        if self.use_uim:
            self.uim = UserIntentModel(config, sizes)

        if self.use_die:
            # I2E: intent-based query and multi-head target attention over the history
            self.i2e = MLP(d + (config.levels if self.use_uim else 0), config.i2e_hidden,
                           "relu", drop)
            self.implicit = MultiHeadTargetAttention(self.i2e.out_dim, d, att, heads, drop)
            # Explicit intent: frozen store vectors enter the multimodal items as a projection
            if self.use_mm:
                self.mm_proj = nn.Linear(frozen_vectors.shape[1], config.mm_dim, bias=False)
            dm = d + (config.mm_dim if self.use_mm else 0)
            if dm % heads:
                raise ValueError(f"the explicit-intent self-attention runs at the item width "
                                 f"{dm} (item_dims + mm_dim), which {heads} heads must divide")
            self.explicit_mhsa = MultiHeadSelfAttention(dm, heads, drop, norm=config.mhsa_norm)
            self.explicit = MultiHeadTargetAttention(dm, dm, att, heads, drop)
            width += 2 * att

        if self.use_sein:
            self.sim_embedding = nn.Embedding(config.sim_bins, config.sim_dim)
            init_embedding(self.sim_embedding, config.embedding_std)
            self.collab_proj = BiasFreeMLP(self.items.id_dim, config.sim_dim, config.sim_dim)
            width += config.sim_dim + (1 if self._level_in("head") else 0)
            if self.use_die:
                shift_in = config.sim_dim + self.i2e.out_dim + (1 if self._level_in("shift") else 0)
                self.shift_gate = GateNU(shift_in, shift_in, gamma=config.gate_gamma)
                self.shift_mlp = MLP(shift_in, config.shift_hidden, "relu", drop, out_dim=2 * att)

        self.mlp = MLP(width, config.mlp_hidden, config.mlp_activation, drop, out_dim=1)

    def _level_in(self, where: str) -> bool:
        """Whether the intent at the pair's similarity level enters `where` ("shift" or "head")."""
        return (self.use_uim and self.use_sein and self.use_die
                and self.config.intent_level in (where, "both"))

    # ----- parameter groups for the three-stage schedule -------------------------------------

    def uim_parameters(self) -> list[nn.Parameter]:
        """UIM's parameters (its own embeddings and MLP); empty under no-uim."""
        return list(self.uim.parameters()) if self.use_uim else []

    def die_parameters(self) -> list[nn.Parameter]:
        """Diverse Intent Extraction: I2E (f and its attention) and the explicit-intent branch."""
        if not self.use_die:
            return []
        modules = [self.i2e, self.implicit, self.explicit_mhsa, self.explicit]
        if self.use_mm:
            modules.append(self.mm_proj)
        return [p for m in modules for p in m.parameters()]

    def stage_parameters(self, stage: int) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters of a training stage, by group ("uim", "ctr"); see the docstring."""
        uim_ids = {id(p) for p in self.uim_parameters()}
        rest = [p for p in self.parameters() if id(p) not in uim_ids]
        if stage == 1:
            return {"uim": self.uim_parameters()} if self.use_uim else {}
        if stage == 2:
            if self.config.stage2_embeddings:
                return {"ctr": rest}
            tables = {id(p) for m in (self.items, self.users, self.page) for p in m.parameters()}
            return {"ctr": [p for p in rest if id(p) not in tables]}
        if stage == 3:
            return {"ctr": rest, "uim": self.uim_parameters()} if self.use_uim else {"ctr": rest}
        raise ValueError(f"DAIAN has training stages 1, 2 and 3, not {stage!r}")

    # ----- forward ---------------------------------------------------------------------------

    def predict_intent(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """UIM's p_hat (B, n) alone, without the CTR network (stage 1 needs nothing else)."""
        if not self.use_uim:
            raise ValueError("DAIAN without UIM (ablation no-uim) predicts no intent")
        return self.uim(features, self.frozen_vectors)

    def _intent(self, features: dict[str, torch.Tensor],
                intent_override: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
        """(p_hat, p used downstream): p is the override where a row has one, else p_hat."""
        if not self.use_uim:
            return None, None
        p_hat = self.uim(features, self.frozen_vectors)
        if intent_override is None:
            return p_hat, p_hat
        override = intent_override.to(p_hat.dtype)
        if override.shape != p_hat.shape:
            raise ValueError(f"intent_override must have shape {tuple(p_hat.shape)}, "
                             f"got {tuple(override.shape)}")
        has = override.sum(dim=-1, keepdim=True) > 0
        return p_hat, torch.where(has, override, p_hat.detach())

    def forward(self, features: dict[str, torch.Tensor],
                intent_override: torch.Tensor | None = None) -> ModelOutput:
        """Click logit (B,) and UIM's intent prediction (B, n) (None under no-uim)."""
        seqs = [features["target"], features["trigger"], features["hist"]]
        if self.use_die:
            seqs.append(features["mm_seq"])
        target, trigger, hist, *mm = self.items.embed_many(*seqs)
        mask = features["hist_mask"]
        parts = [self.users(features["user"], features["user_profile"]), trigger, target,
                 self.attention(target, hist, mask), masked_sum(hist, mask),
                 self.page(features["page"])]
        p_hat, p = self._intent(features, intent_override)

        if self.use_die:
            # Implicit intent: query from the trigger and the intent distribution
            e_int = self.i2e(trigger if p is None else torch.cat([trigger, p], dim=-1))
            e_imp = self.implicit(e_int, hist, mask)  # (B, A)
            # Explicit intent over the multimodal subsequence
            mm_items, mm_mask = mm[0], features["mm_mask"]
            target_mm = target
            if self.use_mm:
                ids = torch.cat([features["target_vec"][:, None], features["mm_vec"]], dim=1)
                v = self._project_frozen(ids)  # (B, 1 + T, mm_dim)
                target_mm = torch.cat([target, v[:, 0]], dim=-1)
                mm_items = torch.cat([mm_items, v[:, 1:]], dim=-1)
            keys = self.explicit_mhsa(mm_items, mm_mask)
            e_exp = self.explicit(target_mm, keys, mm_mask)  # (B, A)

        if self.use_sein:
            e_hyb = self._hybrid_similarity(features["tt_sim"], trigger, target)
            at_level = None
            if self._level_in("shift") or self._level_in("head"):
                level = similarity_bucket(features["tt_sim"], *self.config.sim_range, self.config.levels)
                p_l = p.gather(1, level[:, None])
                at_level = torch.log(self.config.levels * p_l.clamp_min(1e-4))  # (B, 1)
            if self.use_die:
                x = [e_hyb, e_int.detach()] + ([at_level.detach()] if self._level_in("shift") else [])
                x = torch.cat(x, dim=-1)
                w = self.config.gate_gamma * torch.sigmoid(self.shift_mlp(self.shift_gate(x) * x))
                w_exp, w_imp = w.chunk(2, dim=-1)
                e_exp, e_imp = w_exp * e_exp, w_imp * e_imp
            parts.append(e_hyb)
            if self._level_in("head"):
                parts.append(at_level)
        if self.use_die:
            parts += [e_exp, e_imp]
        logit = self.mlp(torch.cat(parts, dim=-1)).squeeze(-1)
        return ModelOutput(logit=logit, intent_pred=p_hat)

    def _project_frozen(self, ids: torch.Tensor) -> torch.Tensor:
        """mm_proj(v[ids]): gather then project, or project the table then gather when that is
        less work (a batch asking for more rows than the table holds); the results are equal."""
        if ids.numel() > self.frozen_vectors.shape[0]:
            return self.mm_proj(self.frozen_vectors)[ids]
        return self.mm_proj(self.frozen_vectors[ids])

    def _hybrid_similarity(self, tt_sim: torch.Tensor, trigger: torch.Tensor,
                           target: torch.Tensor) -> torch.Tensor:
        """Hybrid similarity enhancer: binned semantic similarity fused with collaborative ids."""
        lo, hi = self.config.sim_range
        bins = self.config.sim_bins
        e_sem = self.sim_embedding(similarity_bucket(tt_sim, lo, hi, bins))  # (B, S)
        k = self.items.id_dim
        e_col = self.collab_proj(trigger[:, :k]) * self.collab_proj(target[:, :k])  # (B, S)
        return norm_ratio_fusion(e_col, e_sem)
