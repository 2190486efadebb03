"""`ModelConfig`: every hyper-parameter of the CTR models, typed and validated.

Fields left at None take the named model's paper default in `__post_init__` (the table
`PAPER_DEFAULTS`), so a saved config.json always holds the values a model was really built with.
DAIAN's paper gives the defaults shared by all its models (final MLP 512-256-128, attention
layers of 128 units with 4 heads); the DEI2N paper its own (final MLP 200-80, MHSA with 2 heads,
dropout 0.1).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from daian.layers import ACTIVATIONS, SELF_ATTENTION_NORMS
from daian.models.base import ITEM_FIELDS

MODEL_NAMES = ("din", "dei2n", "daian")
INTENT_LEVEL_PLACES = ("shift", "head", "both", "none")  # DAIAN's `intent_level` values

# Ablation switches per model; None (or "none") is the full model.
ABLATIONS: dict[str, tuple[str, ...]] = {
    "din": (),
    "dei2n": ("no-ui2m", "no-tim", "no-il", "no-uhim", "no-usim"),
    # no-three-stage changes the training schedule only; the model is the full one.
    "daian": ("no-uim", "no-die", "no-sein", "no-three-stage"),
}

# Paper defaults for the fields a user may leave at None (where a paper is silent, ours, noted).
PAPER_DEFAULTS: dict[str, dict[str, Any]] = {
    "din": dict(mlp_hidden=(512, 256, 128), attention_hidden=(128,), attention_softmax=False,
                heads=4, dropout=0.0, mhsa_norm="post"),
    "dei2n": dict(mlp_hidden=(200, 80), attention_hidden=(80, 40), attention_softmax=False,
                  heads=2, dropout=0.1, mhsa_norm="post"),
    # Neither paper places the self-attention LayerNorm. DAIAN's explicit branch normalises
    # before attending (pre): after it (post), the item vectors' small-init id parts are rescaled
    # to unit variance, and in stage 2, where the ids stay at their initial values, that is noise.
    "daian": dict(mlp_hidden=(512, 256, 128), attention_hidden=(128,), attention_softmax=False,
                  heads=4, dropout=0.0, mhsa_norm="pre"),
}

# Fields added after checkpoints were first written, with the value every model was built with
# before the field existed: a saved config without the key gets that value, not today's default.
_BEFORE_FIELD: dict[str, Any] = {"mhsa_norm": "post", "uim_spread": False, "uim_past": False,
                                 "intent_level": "none"}

_TUPLE_FIELDS = ("mlp_hidden", "attention_hidden", "ui2m_hidden", "interaction_hidden",
                 "uim_hidden", "i2e_hidden", "shift_hidden", "sim_range")


def _default_item_dims() -> dict[str, int]:
    # Sum 72 = DEI2N's d_model; the id gets the largest share.
    return {"item": 32, "category": 16, "top_category": 8, "brand": 8, "price_bucket": 8}


@dataclass
class ModelConfig:
    """Hyper-parameters of one CTR model (DIN, DEI2N or DAIAN) and its ablation."""

    name: str = "din"  # which model: one of MODEL_NAMES
    ablation: str | None = None  # one of ABLATIONS[name]; None = the full model
    levels: int = 6  # n, intent similarity levels (DAIAN); must equal FeatureSizes.levels

    # Embeddings
    item_dims: dict[str, int] = field(default_factory=_default_item_dims)  # width per ITEM_FIELDS
    user_dim: int = 16  # user id embedding width
    profile_dim: int = 8  # width of each user profile field's embedding
    page_dim: int = 8  # page number embedding (DEI2N's user context; 10 there)
    time_dim: int = 36  # DEI2N's d_time, the time-interval embedding width
    dt_buckets_per_octave: int = 2  # log-spaced time buckets per doubling; 0 = one per minute
    embedding_std: float = 1e-2  # normal init std of every embedding table (small, as FuxiCTR)

    # Shared networks (None = the model's paper default, see PAPER_DEFAULTS)
    mlp_hidden: tuple[int, ...] | None = None  # final MLP before the logit
    mlp_activation: str = "relu"  # final MLP activation: relu, prelu or dice
    attention_hidden: tuple[int, ...] | None = None  # DIN activation unit hidden widths
    attention_activation: str = "dice"  # activation unit activation (DIN's Dice)
    attention_softmax: bool | None = None  # normalise DIN-style attention weights (DIN: no)
    attention_dim: int = 128  # model width of multi-head attention (DAIAN: 128)
    heads: int | None = None  # heads of multi-head attention (DAIAN 4, DEI2N's MHSA 2)
    dropout: float | None = None  # dropout in MLPs and attention blocks (DEI2N 0.1)
    mhsa_norm: str | None = None  # LayerNorm place in self-attention blocks: post | pre (papers silent; DEI2N post, DAIAN pre)

    # DEI2N
    ui2m_hidden: tuple[int, ...] = (72, 36)  # user instant interest MLP (paper 72-36)
    interaction_hidden: tuple[int, ...] = (144, 72)  # interaction layer MLP (paper 144-72)

    # DAIAN
    uim_hidden: tuple[int, ...] = (256, 128)  # user intent MLP (paper silent)
    uim_ids: bool = False  # UIM embeds user and item ids too (the paper's inputs; they overfit)
    uim_spread: bool = True  # UIM sees how the history spreads over the intent levels around the trigger (store vectors)
    uim_past: bool = True  # UIM sees the mean intent of the user's earlier training requests and their number
    i2e_hidden: tuple[int, ...] = (128,)  # f(e_tr, p_hat) -> intent-based query (paper silent)
    sim_bins: int = 20  # buckets of the trigger-target cosine in the hybrid enhancer
    sim_range: tuple[float, float] = (-1.0, 1.0)  # range the buckets cover (clipped outside)
    sim_dim: int = 32  # width of the hybrid similarity representation
    mm_dim: int = 32  # projection of the frozen store vectors in the explicit-intent branch
    shift_hidden: tuple[int, ...] = (128,)  # IA2N shifting MLP after the Gate NU
    gate_gamma: float = 2.0  # Gate NU scale (PEPNet: 2)
    intent_level: str = "both"  # where log(n p[level of tt_sim]) enters: IA2N "shift", "head", "both", "none"
    stage2_embeddings: bool = False  # stage 2 also trains the CTR network's id/side-info tables (a second pass over the ids)

    def __post_init__(self) -> None:
        if self.name not in MODEL_NAMES:
            raise ValueError(f"unknown model {self.name!r}; valid: {list(MODEL_NAMES)}")
        if self.ablation in ("", "none"):
            self.ablation = None
        if self.ablation is not None and self.ablation not in ABLATIONS[self.name]:
            valid = list(ABLATIONS[self.name]) or "none (this model has no ablations)"
            raise ValueError(f"unknown ablation {self.ablation!r} for {self.name}; valid: {valid}")
        for key, value in PAPER_DEFAULTS[self.name].items():
            if getattr(self, key) is None:
                setattr(self, key, value)
        for key in _TUPLE_FIELDS:
            value = getattr(self, key)
            if isinstance(value, list):
                setattr(self, key, tuple(value))
        self._validate()

    def _validate(self) -> None:
        if set(self.item_dims) != set(ITEM_FIELDS):
            raise ValueError(f"item_dims must have exactly the keys {list(ITEM_FIELDS)}, "
                             f"got {sorted(self.item_dims)}")
        positive = dict(levels=self.levels, user_dim=self.user_dim, profile_dim=self.profile_dim,
                        page_dim=self.page_dim, time_dim=self.time_dim,
                        attention_dim=self.attention_dim, heads=self.heads,
                        sim_bins=self.sim_bins, sim_dim=self.sim_dim,
                        **{f"item_dims[{k}]": v for k, v in self.item_dims.items()})
        for key, value in positive.items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be a positive integer, got {value!r}")
        if self.levels < 2:
            raise ValueError(f"levels must be at least 2, got {self.levels}")
        if self.mm_dim < 0 or self.dt_buckets_per_octave < 0:
            raise ValueError("mm_dim and dt_buckets_per_octave must be >= 0")
        for key in ("mlp_hidden", "attention_hidden", "ui2m_hidden", "interaction_hidden",
                    "uim_hidden", "i2e_hidden", "shift_hidden"):
            value = getattr(self, key)
            if not value or any(not isinstance(h, int) or h < 1 for h in value):
                raise ValueError(f"{key} must be a non-empty tuple of positive ints, got {value!r}")
        if self.mhsa_norm not in SELF_ATTENTION_NORMS:
            raise ValueError(f"mhsa_norm must be one of {list(SELF_ATTENTION_NORMS)}, got {self.mhsa_norm!r}")
        if self.intent_level not in INTENT_LEVEL_PLACES:
            raise ValueError(f"intent_level must be one of {list(INTENT_LEVEL_PLACES)}, "
                             f"got {self.intent_level!r}")
        for key in ("mlp_activation", "attention_activation"):
            if getattr(self, key) not in ACTIVATIONS:
                raise ValueError(f"{key} must be one of {list(ACTIVATIONS)}, "
                                 f"got {getattr(self, key)!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.attention_dim % self.heads:
            raise ValueError(f"attention_dim {self.attention_dim} is not divisible by "
                             f"heads {self.heads}")
        if self.name == "daian" and (self.item_dim + self.mm_dim) % self.heads:
            raise ValueError(f"DAIAN's explicit-intent self-attention runs at the item width "
                             f"sum(item_dims) + mm_dim = {self.item_dim + self.mm_dim}, which "
                             f"heads={self.heads} must divide")
        if len(self.sim_range) != 2 or not self.sim_range[0] < self.sim_range[1]:
            raise ValueError(f"sim_range must be (low, high) with low < high, got {self.sim_range}")
        if self.embedding_std <= 0 or self.gate_gamma <= 0:
            raise ValueError("embedding_std and gate_gamma must be positive")

    @property
    def item_dim(self) -> int:
        """Width of one embedded item (all ITEM_FIELDS concatenated)."""
        return sum(self.item_dims.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists); `from_dict` reads it back."""
        out = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        """Build from a saved dict (a checkpoint's config.json); unknown keys are an error. A key
        the dict lacks because it was saved before the field existed takes the value models had
        then (`_BEFORE_FIELD`), so an old checkpoint is rebuilt as it was trained."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown ModelConfig keys {unknown}; valid: {sorted(known)}")
        return cls(**{**_BEFORE_FIELD, **data})
