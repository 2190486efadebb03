"""Intent labelling (DAIAN sections 4.1-4.2): ground-truth intent distributions over similarity
levels, users' histories and the multimodal and category subsequences, as training-ready Parquet.

Entry point: `label_intents(data, store, out, ...)` (CLI `label-intents`). The building blocks are
pure functions over numpy arrays and Arrow record batches (`binning`, `history`, `batch`).
"""
from __future__ import annotations

from pathlib import Path

from .binning import fit_bin_edges, intent_distribution
from .config import LabelConfig
from .labelled import similarity_level

__all__ = ["LabelConfig", "fit_bin_edges", "intent_distribution", "label_intents", "similarity_level"]


def label_intents(data: str | Path, store: str | Path, out: str | Path, *, levels: int = 6,
                  train_days: int = 7, subseq_level: int | None = None, max_hist: int = 50,
                  hist_days: float = 14.0, max_subseq: int = 20, edge_quantile: float = 0.01,
                  bin_edges: str | Path | list[float] | None = None, on_missing: str = "fail",
                  engine: str = "local", batch_rows: int = 65_536, show_progress_bar: bool = True) -> Path:
    """Label the dataset folder `data` with the embedding store `store`; write to `out`.

    Writes OUT/train.parquet and OUT/test.parquet (folders of parts with engine="ray"),
    OUT/manifest.json, OUT/stats/ and, with on_missing="drop", OUT/rejects.parquet. Returns `out`.
    See `LabelConfig` for every argument and docs/labels.md for the algorithm.
    """
    from .pipeline import run

    return run(LabelConfig(data=data, store=store, out=out, levels=levels, train_days=train_days,
                           subseq_level=subseq_level, max_hist=max_hist, hist_days=hist_days,
                           max_subseq=max_subseq, edge_quantile=edge_quantile,
                           bin_edges=bin_edges, on_missing=on_missing,
                           engine=engine, batch_rows=batch_rows, show_progress_bar=show_progress_bar))
