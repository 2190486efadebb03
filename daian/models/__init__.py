"""CTR models for trigger-induced recommendation: DIN, DEI2N and DAIAN, and `build_model`.

Every model takes `(config, sizes, frozen_vectors)` and is called as
`model(features, intent_override=None) -> ModelOutput` (see `daian.models.base`).
"""
from __future__ import annotations

import torch
from torch import nn

from daian.models.base import ITEM_FIELDS, FeatureSizes, ModelOutput
from daian.models.config import ABLATIONS, MODEL_NAMES, PAPER_DEFAULTS, ModelConfig
from daian.models.daian import DAIAN
from daian.models.dei2n import DEI2N
from daian.models.din import DIN

MODELS: dict[str, type[nn.Module]] = {"din": DIN, "dei2n": DEI2N, "daian": DAIAN}

__all__ = ["ABLATIONS", "ITEM_FIELDS", "MODELS", "MODEL_NAMES", "PAPER_DEFAULTS", "FeatureSizes",
           "ModelConfig", "ModelOutput", "build_model", "DIN", "DEI2N", "DAIAN"]


def build_model(config: ModelConfig, sizes: FeatureSizes,
                frozen_vectors: torch.Tensor | None = None) -> nn.Module:
    """The model `config.name` sized by `sizes`.

    frozen_vectors: (store rows + 2, d) store vectors indexed by the `target_vec` / `mm_vec`
    features (rows 0 and 1 zeros), float, as a tensor or numpy array; models that use them (DAIAN)
    hold them as a buffer that is never trained, the others ignore them.
    """
    if config.levels != sizes.levels:
        raise ValueError(f"config.levels={config.levels} differs from the data's "
                         f"levels={sizes.levels}")
    if frozen_vectors is not None:
        frozen_vectors = torch.as_tensor(frozen_vectors, dtype=torch.float32)
        if frozen_vectors.ndim != 2 or frozen_vectors.shape[0] < 2:
            raise ValueError(f"frozen_vectors must have shape (store rows + 2, d), "
                             f"got {tuple(frozen_vectors.shape)}")
    return MODELS[config.name](config, sizes, frozen_vectors)
