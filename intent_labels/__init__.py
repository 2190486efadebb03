"""Intent labelling (DAIAN sections 4.1-4.2): ground-truth intent distributions over similarity
levels, users' histories and the multimodal and category subsequences, as training-ready Parquet.

Entry point: `label_intents(data, store, out, ...)` (CLI `label-intents`). The building blocks are
pure functions over numpy arrays and Arrow record batches (`binning`, `history`, `batch`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["LabelConfig", "fit_bin_edges", "intent_distribution", "label_intents", "similarity_level"]
# Imported on first use (PEP 562), so that `label-intents` starts without numpy and pyarrow and a
# Ctrl-C while they load is the CLI's one line, not a traceback.
_LAZY = {"LabelConfig": "config", "fit_bin_edges": "binning", "intent_distribution": "binning",
         "similarity_level": "labelled"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def label_intents(data: str | Path, store: str | Path, out: str | Path, **settings: Any) -> Path:
    """Label the dataset folder `data` with the embedding store `store`; write to `out`.

    `settings` are `LabelConfig`'s other fields (levels, train_days or train_fraction, bin_edges,
    engine, overwrite, ...; their defaults and meaning there; an unknown name is a TypeError). An
    existing non-empty `out` is refused unless overwrite=True; a train or test split of fewer than
    min_split_requests requests is a ValueError saying which train_days would work. Writes
    OUT/train.parquet and OUT/test.parquet (folders of parts with engine="ray"), OUT/manifest.json,
    OUT/stats/ and, with on_missing="drop", OUT/rejects.parquet. Returns `out`. docs/labels.md has
    the algorithm.
    """
    from .config import LabelConfig
    from .pipeline import run

    return run(LabelConfig(data=data, store=store, out=out, **settings))
