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
"""
from __future__ import annotations

import torch
from torch import nn

from daian.layers import MLP, TargetAttention, feature_embeddings, masked_sum
from daian.models.base import ITEM_FIELDS, FeatureSizes, ModelOutput
from daian.models.config import ModelConfig


class DIN(nn.Module):
    """Deep Interest Network with the trigger as a plain feature."""

    def __init__(self, config: ModelConfig, sizes: FeatureSizes,
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
