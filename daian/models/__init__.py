"""CTR models for trigger-induced recommendation, one file each, and their registry.

Every model takes `(config, sizes, frozen_vectors)` and is called as
`model(features, intent_override=None) -> ModelOutput` (see `daian.models.base`). Adding a model
is one new file (the module and its config class) plus one `register` line below.
"""
from __future__ import annotations

import torch
from torch import nn

from daian.models import daian_stages, registry
from daian.models.base import ITEM_FIELDS, FeatureSizes, ModelOutput
from daian.models.config import ModelConfig
from daian.models.daian import DAIAN, DAIANConfig
from daian.models.dei2n import DEI2N, DEI2NConfig
from daian.models.din import DIN, DINConfig

registry.register(DIN, DINConfig, cost=1.0)
registry.register(DEI2N, DEI2NConfig, cost=3.0)
registry.register(DAIAN, DAIANConfig, stages=daian_stages.build_stages,
                  cost={None: 4.0, "no-uim": 2.0, "no-three-stage": 2.0, "no-die": 2.5, "no-sein": 3.0})

__all__ = ["DAIAN", "DAIANConfig", "DEI2N", "DEI2NConfig", "DIN", "DINConfig", "ITEM_FIELDS",
           "FeatureSizes", "ModelConfig", "ModelOutput", "build_model", "registry"]


def build_model(config: ModelConfig, sizes: FeatureSizes,
                frozen_vectors: torch.Tensor | None = None) -> nn.Module:
    """The model of `config` (its class says which) sized by `sizes`.

    frozen_vectors: (store rows + 2, d) store vectors indexed by the `*_vec` features (rows 0 and
    1 zeros), float, as a tensor or numpy array; models that use them (DAIAN) hold them as a
    buffer that is never trained, the others ignore them.
    """
    levels = getattr(config, "levels", None)
    if levels is not None and levels != sizes.levels:
        raise ValueError(f"config.levels={levels} differs from the data's levels={sizes.levels}")
    if frozen_vectors is not None:
        frozen_vectors = torch.as_tensor(frozen_vectors, dtype=torch.float32)
        if frozen_vectors.ndim != 2 or frozen_vectors.shape[0] < 2:
            raise ValueError(f"frozen_vectors must have shape (store rows + 2, d), "
                             f"got {tuple(frozen_vectors.shape)}")
    return registry.get(config.name).model(config, sizes, frozen_vectors)
