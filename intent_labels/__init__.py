"""Intent labelling (DAIAN sections 4.1-4.2): ground-truth intent distributions over similarity
levels, users' histories and the multimodal and category subsequences, as training-ready Parquet.

Entry point: `label_intents(data, store, out, ...)` (CLI `label-intents`). The building blocks are
pure functions over numpy arrays and Arrow record batches (`binning`, `history`, `batch`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .binning import fit_bin_edges, intent_distribution
from .config import LabelConfig
from .labelled import similarity_level

__all__ = ["LabelConfig", "fit_bin_edges", "intent_distribution", "label_intents", "similarity_level"]


def label_intents(data: str | Path, store: str | Path, out: str | Path, **settings: Any) -> Path:
    """Label the dataset folder `data` with the embedding store `store`; write to `out`.

    `settings` are `LabelConfig`'s other fields (levels, train_days, bin_edges, engine, ...; their
    defaults and meaning there; an unknown name is a TypeError). Writes OUT/train.parquet and
    OUT/test.parquet (folders of parts with engine="ray"), OUT/manifest.json, OUT/stats/ and, with
    on_missing="drop", OUT/rejects.parquet. Returns `out`. docs/labels.md has the algorithm.
    """
    from .pipeline import run

    return run(LabelConfig(data=data, store=store, out=out, **settings))
