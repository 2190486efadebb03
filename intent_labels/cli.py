"""`label-intents`: label a dataset folder's impressions with intent distributions and subsequences."""
from __future__ import annotations

import argparse
import sys

from common.cli import default_of, make_parser, overwrite_help, run

# numpy and pyarrow load inside build_parser and _label, so that a Ctrl-C while they import is one line.


def _add_layout_flags(p) -> None:
    """How the output splits are cut into row groups and files (docs/labels.md)."""
    from .config import LabelConfig

    p.add_argument("--row-group-rows", type=int, default=default_of(LabelConfig, "row_group_rows"),
                   help="rows per output Parquet row group: the unit streaming training shuffles and each "
                        "process of a multi-process run reads (default %(default)s)")
    p.add_argument("--part-rows", type=int, default=default_of(LabelConfig, "part_rows"),
                   help="rows per output file: a split with more is written as a folder "
                        "OUT/<split>.parquet/ of part-NNNNN.parquet files (default %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    from common.contract import ALLOW_ANY_TS_FLAG

    from .config import ENGINES, ON_MISSING, LabelConfig
    from .labelled import MANIFEST, REJECTS
    from .split import DEFAULT_TRAIN_DAYS

    p = make_parser(
        "label-intents",
        "Turn impressions + behaviours + an embedding store into labelled train/test samples "
        "(intent distribution over similarity levels, history, multimodal and category "
        "subsequences). See docs/labels.md.")
    p.add_argument("--data", required=True, help="dataset folder (items, users, behaviors, impressions Parquet)")
    p.add_argument("--store", required=True, help="embedding store folder written by embed-items")
    p.add_argument("--out", required=True, help="output folder (refused if it exists and is not empty, "
                                                "unless --overwrite)")
    p.add_argument("--overwrite", action="store_true",
                   help=overwrite_help("the output folder's labels") + " (default: off)")
    p.add_argument("--levels", type=int, default=default_of(LabelConfig, "levels"),
                   help="number of similarity levels n (default %(default)s)")
    split = p.add_mutually_exclusive_group()
    split.add_argument("--train-days", type=int, default=None,
                       help="UTC days of requests, from the first request's day, in the train split; "
                            f"the rest is the test split (default {DEFAULT_TRAIN_DAYS})")
    split.add_argument("--train-fraction", type=float, default=None, metavar="F",
                       help="instead of --train-days: the first round(F x the UTC days the requests "
                            "span) days train, at least 1 and at most all days but one (default: unset)")
    p.add_argument("--min-split-requests", type=int, default=default_of(LabelConfig, "min_split_requests"),
                   help="fewer requests than this in the train or the test split is an error "
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
                   help=f"use these edges instead of fitting them: JSON list, a previous {MANIFEST}, or .npy "
                        "(default: fitted on the train split)")
    p.add_argument("--on-missing", choices=ON_MISSING, default=default_of(LabelConfig, "on_missing"),
                   help=f"impressions whose item or trigger has no vector: fail, or drop to {REJECTS} (default %(default)s)")
    p.add_argument("--allow-store-mismatch", action="store_true",
                   help="label with a store whose recorded items.parquet sha256 differs from DATA/items.parquet's "
                        "(logged, and recorded in the manifest; default: refused)")
    p.add_argument(ALLOW_ANY_TS_FLAG, action="store_true",
                   help="accept any unix seconds in [0, 1e11) in behaviours and impressions (default: only "
                        "times from 2000-01-01 to now + 1 day, so that minutes or milliseconds fail)")
    p.add_argument("--engine", choices=ENGINES, default=default_of(LabelConfig, "engine"),
                   help="local: in-process streaming; ray: Ray Data (pip install '.[ray]') (default %(default)s)")
    p.add_argument("--batch-rows", type=int, default=default_of(LabelConfig, "batch_rows"),
                   help="impressions per record batch (default %(default)s)")
    _add_layout_flags(p)
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars (default: shown)")
    return p


def _label(args: argparse.Namespace) -> None:
    from . import pipeline
    from .config import LabelConfig
    from .labelled import MANIFEST, SPLITS, STATS_DIR

    config = LabelConfig(data=args.data, store=args.store, out=args.out, levels=args.levels,
                         train_days=args.train_days, train_fraction=args.train_fraction,
                         min_split_requests=args.min_split_requests, subseq_level=args.subseq_level,
                         max_hist=args.max_hist, hist_days=args.hist_days, max_subseq=args.max_subseq,
                         edge_quantile=args.edge_quantile,
                         bin_edges=args.bin_edges, on_missing=args.on_missing, engine=args.engine,
                         batch_rows=args.batch_rows, row_group_rows=args.row_group_rows,
                         part_rows=args.part_rows, show_progress_bar=not args.no_progress,
                         allow_any_ts=args.allow_any_ts, allow_store_mismatch=args.allow_store_mismatch,
                         overwrite=args.overwrite)
    out = pipeline.run(config)
    print(f"label-intents: wrote {out} ({', '.join(SPLITS)}, {MANIFEST}, {STATS_DIR}/)")


def _interrupted(args: argparse.Namespace) -> str:
    from .labelled import MANIFEST

    return (f"{args.out} is incomplete (no {MANIFEST} written); rerun the same command with "
            "--overwrite to label again from the start")


def main(argv: list[str] | None = None) -> int:
    return run(build_parser, argv, _label, interrupted=_interrupted)


if __name__ == "__main__":
    sys.exit(main())
