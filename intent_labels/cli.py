"""`label-intents`: label a dataset folder's impressions with intent distributions and subsequences."""
from __future__ import annotations

import argparse
import sys

from common.cli import default_of, make_parser, run

from . import pipeline
from .config import ENGINES, ON_MISSING, LabelConfig
from .labelled import MANIFEST, REJECTS, SPLITS, STATS_DIR


def build_parser() -> argparse.ArgumentParser:
    p = make_parser(
        "label-intents",
        "Turn impressions + behaviours + an embedding store into labelled train/test samples "
        "(intent distribution over similarity levels, history, multimodal and category "
        "subsequences). See docs/labels.md.")
    p.add_argument("--data", required=True, help="dataset folder (items, behaviors, impressions Parquet)")
    p.add_argument("--store", required=True, help="embedding store folder written by embed-items")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--levels", type=int, default=default_of(LabelConfig, "levels"),
                   help="number of similarity levels n (default %(default)s)")
    p.add_argument("--train-days", type=int, default=default_of(LabelConfig, "train_days"),
                   help="UTC days of requests, from the first request's day, in the train split "
                        "(default %(default)s)")
    p.add_argument("--subseq-level", type=int, default=default_of(LabelConfig, "subseq_level"),
                   help="multimodal subsequence keeps history items at this level or above "
                        "(0-based; default levels // 2)")
    p.add_argument("--max-hist", type=int, default=default_of(LabelConfig, "max_hist"),
                   help="history length cap (default %(default)s)")
    p.add_argument("--hist-days", type=float, default=default_of(LabelConfig, "hist_days"),
                   help="history window in days (default %(default)s)")
    p.add_argument("--max-subseq", type=int, default=default_of(LabelConfig, "max_subseq"),
                   help="cap T_h of both subsequences (default %(default)s)")
    p.add_argument("--edge-quantile", type=float, default=default_of(LabelConfig, "edge_quantile"),
                   help="fitted bins span the [q, 1-q] quantiles of the training similarities; 0 = min..max "
                        "(default %(default)s)")
    p.add_argument("--bin-edges", default=None,
                   help=f"use these edges instead of fitting them: JSON list, a previous {MANIFEST}, or .npy")
    p.add_argument("--on-missing", choices=ON_MISSING, default=default_of(LabelConfig, "on_missing"),
                   help=f"impressions whose item or trigger has no vector: fail, or drop to {REJECTS} (default %(default)s)")
    p.add_argument("--engine", choices=ENGINES, default=default_of(LabelConfig, "engine"),
                   help="local: in-process streaming; ray: Ray Data (pip install '.[ray]') (default %(default)s)")
    p.add_argument("--batch-rows", type=int, default=default_of(LabelConfig, "batch_rows"),
                   help="impressions per record batch (default %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    return p


def _label(args: argparse.Namespace) -> None:
    config = LabelConfig(data=args.data, store=args.store, out=args.out, levels=args.levels,
                         train_days=args.train_days, subseq_level=args.subseq_level,
                         max_hist=args.max_hist, hist_days=args.hist_days, max_subseq=args.max_subseq,
                         edge_quantile=args.edge_quantile,
                         bin_edges=args.bin_edges, on_missing=args.on_missing, engine=args.engine,
                         batch_rows=args.batch_rows, show_progress_bar=not args.no_progress)
    out = pipeline.run(config)
    print(f"label-intents: wrote {out} ({', '.join(SPLITS)}, {MANIFEST}, {STATS_DIR}/)")


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv, _label)


if __name__ == "__main__":
    sys.exit(main())
