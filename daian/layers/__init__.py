"""Generic layers shared by the CTR models (DIN, DEI2N, DAIAN), small parts first.

Only pieces that carry no model's own logic live here:

- `masking`: a masked softmax that is safe on all-padding rows, masked sum and mean pooling;
- `mlp`: activations (PReLU, Dice), the MLP, PEPNet's Gate NU;
- `embedding`: item / user / page embeddings;
- `attention`: the DIN activation unit (target attention), multi-head target attention,
  multi-head self-attention with a key padding mask.

Shapes: B batch, L sequence length, D feature width, H heads. Every sequence layer takes a boolean
mask (True at real positions) and never lets a padded position reach its output, so a model built
from them is invariant to whatever sits at padded positions.
"""
from daian.layers.attention import (SELF_ATTENTION_NORMS, MultiHeadSelfAttention, MultiHeadTargetAttention,
                                    TargetAttention)
from daian.layers.embedding import ItemEmbedding, UserEmbedding, feature_embeddings, init_embedding
from daian.layers.masking import masked_mean, masked_softmax, masked_sum
from daian.layers.mlp import ACTIVATIONS, MLP, Dice, GateNU, PReLU, apply_activation, make_activation

__all__ = [
    "ACTIVATIONS", "Dice", "GateNU", "ItemEmbedding", "MLP", "MultiHeadSelfAttention",
    "MultiHeadTargetAttention", "PReLU", "SELF_ATTENTION_NORMS", "TargetAttention", "UserEmbedding",
    "apply_activation", "feature_embeddings", "init_embedding", "make_activation", "masked_mean",
    "masked_softmax", "masked_sum",
]
