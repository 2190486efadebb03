"""DAIAN (section 4): Deep Adaptive Intent-Aware Network, on a DIN base.

The paper's figure, and where each part lives (`daian.models.daian_modules`):

    DIN base   e_u, e_tr, e_ta, e_page, DIN target attention over E_b, sum(E_b)     DAIAN itself
    UIM        p_hat = softmax(MLP(e_u', pool(E_b'), e_tr', ...)), own embeddings (')  UserIntentModel (eq. 2-5)
    DIE  I2E   e_int = f(e_tr, p_hat); e_imp = MHTA(query e_int, keys E_b)         DiverseIntentExtraction (eq. 6-8)
         exp.  e_exp = MHTA(query e_ta, keys MHSA(E_mm)), E_mm the multimodal subseq.           (eq. 9-10)
    SEIN HSE   e_sem = Emb(bucket(cos(v_tr, v_ta))); e_col = P(e_id_tr) * P(e_id_ta);
               e_hyb = a e_col + (1 - a) e_sem, a = |e_col| / (|e_col| + |e_sem|), norms
               under stop-gradient                                 HybridSimilarityEnhancer (eq. 11-14)
         IA2N  w = shift([e_hyb, sg(e_int), sg(q)]); e_exp' = w_exp e_exp, e_imp' = w_imp e_imp
               q = log(n p[level(cos(v_tr, v_ta))]), the intent at the pair's level   IntentAwareShift (eq. 15-18)
    head       MLP 512-256-128 on [DIN base, e_hyb, q, e_exp', e_imp'] -> logit

An ablation removes its module: no-uim builds no UIM (f sees the trigger only, intent_pred is
None); no-die builds no DIE and so no IA2N shift (nothing is left to shift; UIM's prediction then
has no path to the logit, as p_hat enters through DIE only); no-sein builds no SEIN (e_exp, e_imp
enter unshifted); no-three-stage is the full model (it changes training only, `daian_stages`).

The paper's equations were lost in extraction; where our reading fills a gap (the measurements
behind each choice are in docs/training.md, "Where our reading fills a gap, measured"):
- UIM input: user profile, the masked mean of the history, the trigger, their product, log(1 +
  length) of the multimodal subsequence and of the history, the history's spread around the
  trigger read from the frozen store vectors (`uim_spread`: its share in each of the n labels'
  similarity levels, and the norm of its mean vector), and the user's own earlier requests
  (`uim_past`: the mean ground-truth intent of the user's labelled *training* requests that
  started before this one, and log(1 + their number); `daian.data.attach_past_intent`, so no
  evaluated click reaches it). The paper says UIM reads the behaviour sequence but not how. UIM's
  tables are its own (the paper: the intent and CTR networks share no parameters). The paper
  also lists user and item ids; they are left out by default (`uim_ids=False`): labels exist only
  for requests with a click, all impressions of a request share one, and id embeddings memorise
  them.
- f in I2E is an MLP on [e_tr, p_hat]; MHTA is multi-head attention with a masked softmax (128
  units, 4 heads, the paper's implementation details).
- Explicit intent: the subsequence items and the target are embedded as id || side info || a
  learned projection of their frozen store vector (where the "multimodal parts" enter); one
  transformer self-attention block at that width, normalised before attending (pre-LN,
  `mhsa_norm`; the paper does not say: after the residual, a LayerNorm rescales the small-init id
  parts, noise in stage 2 where the ids stay at their initial values), then the target attention.
- HSE: the semantic similarity is the data's tt_sim, cut into `sim_bins` equal-width buckets over
  `sim_range` and embedded. The collaborative part projects the trigger's and the target's id
  embeddings with a bias-free MLP P and multiplies them: P is positively homogeneous, so |e_col|
  grows with the id embeddings' norms and cold ids lean on e_sem. The ratio's norms are detached.
- IA2N ("Gate NU and multi-layer MLP"): z = GateNU(x) * x, then w = gamma * sigmoid(MLP(z)), one
  weight per feature of e_exp and e_imp, near 1 at the start. The intent enters as sg(e_int).
- The intent at the pair's similarity level (`intent_level`): the paper's IA2N re-weights by "the
  correlation between the intent and the similarity" without saying how they meet. We read off
  the intent at the level the trigger-target cosine falls in (the labels' own level rule and
  edges, `level_edges`), q = log(n p[level]), 0 for a uniform intent, into the shift
  (stop-gradient) and the head ("shift", "head", "both", "none").
- `intent_override` (stage 2): a (B, n) ground-truth intent replaces p_hat in DIE; zero rows
  (requests without a click) fall back to p_hat, detached, so no zero row acts as a "no click"
  signal and UIM gets no gradient from a stage that does not train it. `intent_pred` is always
  UIM's own prediction.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from daian.layers import MLP, SELF_ATTENTION_NORMS, TargetAttention, feature_embeddings, masked_sum
from daian.models.base import ITEM_FIELDS, FeatureSizes, ModelOutput
from daian.models.config import check_choice, check_positive, check_widths
from daian.models.daian_modules import (DiverseIntentExtraction, SimilarityEnhancedIntentNetwork,
                                        UserIntentModel)
from daian.models.din import DINConfig
from intent_labels.labelled import check_edges

INTENT_LEVEL_PLACES = ("shift", "head", "both", "none")  # where q enters


@dataclass
class DAIANConfig(DINConfig):
    """DAIAN's hyper-parameters: DIN's fields (the DAIAN paper's sizes) plus its modules'."""

    name = "daian"
    # no-three-stage changes the training schedule only; the model is the full one.
    ablations = ("no-uim", "no-die", "no-sein", "no-three-stage")
    before_field = {"mhsa_norm": "post", "uim_spread": False, "uim_past": False, "intent_level": "none",
                    "level_edges": None}

    levels: int = 6  # n, intent similarity levels; must equal the data's (train-daian sets it)
    level_edges: tuple[float, ...] | None = None  # the labels' n + 1 level edges (train-daian sets them); None = equal width over sim_range
    attention_dim: int = 128  # model width of multi-head attention (paper: 128)
    heads: int = 4  # heads of multi-head attention (paper: 4)
    mhsa_norm: str = "pre"  # LayerNorm place in the explicit self-attention: pre | post (paper silent)
    # UIM
    uim_hidden: tuple[int, ...] = (256, 128)  # user intent MLP (paper silent)
    uim_ids: bool = False  # UIM embeds user and item ids too (the paper's inputs; they overfit)
    uim_spread: bool = True  # UIM sees how the history spreads over the intent levels around the trigger (store vectors)
    uim_past: bool = True  # UIM sees the mean intent of the user's earlier training requests and their number
    # DIE
    i2e_hidden: tuple[int, ...] = (128,)  # f(e_tr, p_hat) -> intent-based query (paper silent)
    mm_dim: int = 32  # projection of the frozen store vectors in the explicit-intent branch (0 = none)
    # SEIN
    sim_bins: int = 20  # buckets of the trigger-target cosine in the hybrid enhancer
    sim_range: tuple[float, float] = (-1.0, 1.0)  # range the buckets cover (clipped outside; train-daian sets the labels' outer edges)
    sim_dim: int = 32  # width of the hybrid similarity representation
    shift_hidden: tuple[int, ...] = (128,)  # IA2N shifting MLP after the Gate NU
    gate_gamma: float = 2.0  # Gate NU scale (PEPNet: 2)
    intent_level: str = "both"  # where log(n p[level of tt_sim]) enters: IA2N "shift", "head", "both", "none"
    # Training
    stage2_embeddings: bool = False  # stage 2 also trains the CTR network's id/side-info tables (a second pass over the ids)

    def validate(self) -> None:
        super().validate()
        check_positive(levels=self.levels, attention_dim=self.attention_dim, heads=self.heads,
                       sim_bins=self.sim_bins, sim_dim=self.sim_dim)
        if self.levels < 2:
            raise ValueError(f"levels must be at least 2, got {self.levels}")
        check_widths(uim_hidden=self.uim_hidden, i2e_hidden=self.i2e_hidden, shift_hidden=self.shift_hidden)
        check_choice("mhsa_norm", self.mhsa_norm, SELF_ATTENTION_NORMS)
        check_choice("intent_level", self.intent_level, INTENT_LEVEL_PLACES)
        if self.mm_dim < 0:
            raise ValueError(f"mm_dim must be >= 0, got {self.mm_dim}")
        if self.attention_dim % self.heads:
            raise ValueError(f"attention_dim {self.attention_dim} is not divisible by heads {self.heads}")
        if (self.item_dim + self.mm_dim) % self.heads:
            raise ValueError(f"DAIAN's explicit-intent self-attention runs at the item width "
                             f"sum(item_dims) + mm_dim = {self.item_dim + self.mm_dim}, which "
                             f"heads={self.heads} must divide")
        if len(self.sim_range) != 2 or not self.sim_range[0] < self.sim_range[1]:
            raise ValueError(f"sim_range must be (low, high) with low < high, got {self.sim_range}")
        if self.level_edges is not None:
            check_edges(self.level_edges, "level_edges")
            if len(self.level_edges) != self.levels + 1:
                raise ValueError(f"level_edges hold {len(self.level_edges)} values; levels={self.levels} "
                                 f"needs {self.levels + 1}")
        if self.gate_gamma <= 0:
            raise ValueError(f"gate_gamma must be positive, got {self.gate_gamma}")

    @classmethod
    def data_settings(cls, levels: int, edges) -> dict:
        """The data's levels and their edges (the labels' level rule reads them), and the range of
        the HSE's similarity buckets: the outer edges, which label-intents fitted on the train
        split's trigger-target similarities, so the buckets cover the cosines that actually occur."""
        return {"levels": int(levels), "sim_range": (float(edges[0]), float(edges[-1])),
                "level_edges": tuple(float(e) for e in edges)}

    def edges(self) -> np.ndarray:
        """The n + 1 level edges: the labels' own, or equal width over sim_range (older checkpoints)."""
        if self.level_edges is not None:
            return np.asarray(self.level_edges, dtype=np.float64)
        return np.linspace(self.sim_range[0], self.sim_range[1], self.levels + 1)


# Parameter names of checkpoints written before the modules were grouped (format 1) -> today's.
_FLAT_PREFIXES = {"i2e.": "die.", "implicit.": "die.", "mm_proj.": "die.", "explicit_mhsa.": "die.",
                  "explicit.": "die.", "sim_embedding.": "sein.hse.", "collab_proj.": "sein.hse.",
                  "shift_gate.": "sein.ia2n.", "shift_mlp.": "sein.ia2n."}


class DAIAN(nn.Module):
    """DAIAN; see the module docstring for the structure and our readings."""

    def __init__(self, config: DAIANConfig, sizes: FeatureSizes,
                 frozen_vectors: torch.Tensor | None = None) -> None:
        super().__init__()
        self.config = config
        ab = config.ablation
        # DIN base
        self.items, self.users, self.page = feature_embeddings(ITEM_FIELDS, config, sizes)
        d = self.items.dim
        self.attention = TargetAttention(d, config.attention_hidden, config.attention_activation,
                                         softmax=config.attention_softmax)
        width = self.users.dim + 4 * d + config.page_dim
        # The frozen store vectors feed the explicit-intent branch (mm_dim > 0) and UIM's view of
        # how the history spreads around the trigger (uim_spread).
        use_mm = ab != "no-die" and config.mm_dim > 0
        needs_store = use_mm or (ab != "no-uim" and config.uim_spread)
        if needs_store and frozen_vectors is None:
            raise ValueError("DAIAN needs the store's frozen item vectors for its explicit-intent "
                             "branch and its UIM (or set mm_dim=0 and uim_spread=False)")
        kept = frozen_vectors.detach().float().clone() if needs_store else None
        self.register_buffer("frozen_vectors", kept, persistent=False)
        edges = config.edges()
        self.uim = None if ab == "no-uim" else UserIntentModel(config, sizes, edges)
        self.die = None if ab == "no-die" else DiverseIntentExtraction(
            config, d, config.levels if self.uim is not None else 0,
            frozen_vectors.shape[1] if use_mm else None)
        if self.die is not None:
            width += 2 * self.die.out_dim
        self.sein = None
        if ab != "no-sein":
            with_q = self.uim is not None and self.die is not None and config.intent_level != "none"
            level_in = (with_q and config.intent_level in ("shift", "both"),
                        with_q and config.intent_level in ("head", "both"))
            self.sein = SimilarityEnhancedIntentNetwork(config, self.items.id_dim, self.die, edges, level_in)
            width += self.sein.out_dim
        self.mlp = MLP(width, config.mlp_hidden, config.mlp_activation, config.dropout, out_dim=1)
        self._register_load_state_dict_pre_hook(_rename_flat_keys)

    # ----- parameter groups for the three-stage schedule (daian_stages) ---------------------

    def uim_parameters(self) -> list[nn.Parameter]:
        """UIM's parameters (its own embeddings and MLP); empty under no-uim."""
        return list(self.uim.parameters()) if self.uim is not None else []

    def die_parameters(self) -> list[nn.Parameter]:
        """Diverse Intent Extraction: I2E (f and its attention) and the explicit-intent branch."""
        return list(self.die.parameters()) if self.die is not None else []

    def stage_parameters(self, stage: int) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters of a training stage, by group ("uim", "ctr"); see `daian_stages`."""
        uim = self.uim_parameters()
        uim_ids = {id(p) for p in uim}
        rest = [p for p in self.parameters() if id(p) not in uim_ids]
        if stage == 1:
            return {"uim": uim} if uim else {}
        if stage == 2:
            if self.config.stage2_embeddings:
                return {"ctr": rest}
            tables = {id(p) for m in (self.items, self.users, self.page) for p in m.parameters()}
            return {"ctr": [p for p in rest if id(p) not in tables]}
        if stage == 3:
            return {"ctr": rest, "uim": uim} if uim else {"ctr": rest}
        raise ValueError(f"DAIAN has training stages 1, 2 and 3, not {stage!r}")

    # ----- forward ---------------------------------------------------------------------------

    def predict_intent(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """UIM's p_hat (B, n) alone, without the CTR network (stage 1 needs nothing else)."""
        if self.uim is None:
            raise ValueError("DAIAN without UIM (ablation no-uim) predicts no intent")
        return self.uim(features, self.frozen_vectors)

    def _intent(self, features: dict[str, torch.Tensor],
                intent_override: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
        """(p_hat, p used downstream): p is the override where a row has one, else p_hat."""
        if self.uim is None:
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
        if self.die is not None:
            seqs.append(features["mm_seq"])
        target, trigger, hist, *mm = self.items.embed_many(*seqs)
        mask = features["hist_mask"]
        parts = [self.users(features["user"], features["user_profile"]), trigger, target,
                 self.attention(target, hist, mask), masked_sum(hist, mask),
                 self.page(features["page"])]
        p_hat, p = self._intent(features, intent_override)
        die_out = None
        if self.die is not None:
            die_out = self.die(features, self.frozen_vectors, trigger, target, hist, mm[0], p)
        intents = None if die_out is None else [die_out[2], die_out[1]]  # e_exp, e_imp
        if self.sein is not None:
            head_parts, shifted = self.sein(features["tt_sim"], trigger, target, p, die_out)
            parts += head_parts
            if shifted is not None:
                intents = list(shifted)
        logit = self.mlp(torch.cat(parts + (intents or []), dim=-1)).squeeze(-1)
        return ModelOutput(logit=logit, intent_pred=p_hat)


def _rename_flat_keys(state_dict, prefix, *args) -> None:
    """Load hook: a format-1 checkpoint's flat parameter names (`i2e.`, `shift_mlp.`, ...) take
    their module's prefix, so DAIANs saved before the modules were grouped still load."""
    for key in list(state_dict):
        rest = key[len(prefix):]
        for old, new in _FLAT_PREFIXES.items():
            if key.startswith(prefix) and rest.startswith(old):
                state_dict[prefix + new + rest] = state_dict.pop(key)
                break
