"""DIN (Zhou et al., KDD 2018), the base model of DAIAN and the comparison floor.

    user profile, trigger, target, history, page
      -> item embeddings (id || side info), user embedding, page embedding
      -> activation unit: w_j = MLP([e_ta, e_j, e_ta - e_j, e_ta * e_j]) over the history, masked
      -> concat [e_u, e_tr, e_ta, sum_j w_j e_j, sum_j e_j, e_page] -> MLP 512-256-128 -> logit

Where our reading fills a gap:
- TIR: DIN knows nothing of a trigger, so the trigger enters as one more plain item feature (its
  embedding is concatenated, not attended with), the page number as a context feature. This is DIN
  as the DAIAN paper deploys it as its base model, not DEI2N's "DIN+TRA".
- Attention weights are not normalised (DIN's choice, keeping the intensity of interest);
  `attention_softmax=True` switches to a masked softmax. Padding never enters the weights, the
  pooled sums or Dice's statistics.
- Sizes are the DAIAN paper's, shared by all its models (attention layer of 128 units, MLP
  512-256-128).
- The frozen store vectors are not used (DIN is an id model); the argument is accepted for a
  uniform constructor.

`DINConfig` holds the fields every model of the zoo shares (the embeddings, the final MLP, the
activation unit); DEI2N's and DAIAN's configs extend it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from daian.layers import ACTIVATIONS, MLP, TargetAttention, feature_embeddings, masked_sum
from daian.models.base import ITEM_FIELDS, FeatureSizes, ModelOutput
from daian.models.config import ModelConfig, check_choice, check_positive, check_widths


def _default_item_dims() -> dict[str, int]:
    # Sum 72 = DEI2N's d_model; the id gets the largest share.
    return {"item": 32, "category": 16, "top_category": 8, "brand": 8, "price_bucket": 8}


@dataclass
class DINConfig(ModelConfig):
    """DIN's hyper-parameters (the DAIAN paper's sizes), shared by the models built on it."""

    name = "din"

    # Embeddings
    item_dims: dict[str, int] = field(default_factory=_default_item_dims)  # width per ITEM_FIELDS
    user_dim: int = 16  # user id embedding width
    profile_dim: int = 8  # width of each user profile field's embedding
    page_dim: int = 8  # page number embedding (DEI2N's user context; 10 there)
    embedding_std: float = 1e-2  # normal init std of every embedding table (small, as FuxiCTR)
    # Final MLP and the DIN activation unit
    mlp_hidden: tuple[int, ...] = (512, 256, 128)  # final MLP before the logit (DAIAN paper)
    mlp_activation: str = "relu"  # final MLP activation: relu, prelu or dice
    attention_hidden: tuple[int, ...] = (128,)  # DIN activation unit hidden widths (DAIAN paper)
    attention_activation: str = "dice"  # activation unit activation (DIN's Dice)
    attention_softmax: bool = False  # normalise DIN-style attention weights (DIN: no)
    dropout: float = 0.0  # dropout in MLPs and attention blocks

    @property
    def item_dim(self) -> int:
        """Width of one embedded item (all ITEM_FIELDS concatenated)."""
        return sum(self.item_dims.values())

    def validate(self) -> None:
        super().validate()
        if set(self.item_dims) != set(ITEM_FIELDS):
            raise ValueError(f"item_dims must have exactly the keys {list(ITEM_FIELDS)}, "
                             f"got {sorted(self.item_dims)}")
        check_positive(user_dim=self.user_dim, profile_dim=self.profile_dim, page_dim=self.page_dim,
                       **{f"item_dims[{k}]": v for k, v in self.item_dims.items()})
        check_widths(mlp_hidden=self.mlp_hidden, attention_hidden=self.attention_hidden)
        check_choice("mlp_activation", self.mlp_activation, ACTIVATIONS)
        check_choice("attention_activation", self.attention_activation, ACTIVATIONS)
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.embedding_std <= 0:
            raise ValueError(f"embedding_std must be positive, got {self.embedding_std}")


class DIN(nn.Module):
    """Deep Interest Network with the trigger as a plain feature."""

    def __init__(self, config: DINConfig, sizes: FeatureSizes,
                 frozen_vectors: torch.Tensor | None = None) -> None:
        super().__init__()
        self.config = config
        self.items, self.users, self.page = feature_embeddings(ITEM_FIELDS, config, sizes)
        d = self.items.dim
        self.attention = TargetAttention(d, config.attention_hidden, config.attention_activation,
                                         softmax=config.attention_softmax)
        width = self.users.dim + 4 * d + config.page_dim
        self.mlp = MLP(width, config.mlp_hidden, config.mlp_activation, config.dropout, out_dim=1)

    def forward(self, features: dict[str, torch.Tensor],
                intent_override: torch.Tensor | None = None) -> ModelOutput:
        """Click logit (B,); DIN has no intent, so `intent_override` is ignored."""
        target, trigger, hist = self.items.embed_many(
            features["target"], features["trigger"], features["hist"])  # (B,D), (B,D), (B,L,D)
        mask = features["hist_mask"]
        interest = self.attention(target, hist, mask)  # (B, D)
        x = torch.cat([self.users(features["user"], features["user_profile"]), trigger, target,
                       interest, masked_sum(hist, mask), self.page(features["page"])], dim=-1)
        return ModelOutput(logit=self.mlp(x).squeeze(-1))
