"""`label-intents`: label a dataset folder's impressions with intent distributions and subsequences."""
from __future__ import annotations

import argparse
import sys

from .config import LabelConfig


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="label-intents",
        description="Turn impressions + behaviours + an embedding store into labelled train/test samples "
                    "(intent distribution over similarity levels, history, multimodal and category "
                    "subsequences). See docs/labels.md.")
    p.add_argument("--data", required=True, help="dataset folder (items, behaviors, impressions Parquet)")
    p.add_argument("--store", required=True, help="embedding store folder written by embed-items")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--levels", type=int, default=6, help="number of similarity levels n (default 6)")
    p.add_argument("--train-days", type=int, default=7,
                   help="UTC days of requests, from the first request's day, in the train split (default 7)")
    p.add_argument("--subseq-level", type=int, default=None,
                   help="multimodal subsequence keeps history items at this level or above "
                        "(0-based; default levels // 2)")
    p.add_argument("--max-hist", type=int, default=50, help="history length cap (default 50)")
    p.add_argument("--hist-days", type=float, default=14.0, help="history window in days (default 14)")
    p.add_argument("--max-subseq", type=int, default=20, help="cap T_h of both subsequences (default 20)")
    p.add_argument("--edge-quantile", type=float, default=0.01,
                   help="fitted bins span the [q, 1-q] quantiles of the training similarities; 0 = min..max "
                        "(default 0.01)")
    p.add_argument("--bin-edges", default=None,
                   help="use these edges instead of fitting them: JSON list, a previous manifest.json, or .npy")
    p.add_argument("--on-missing", choices=["fail", "drop"], default="fail",
                   help="impressions whose item or trigger has no vector: fail (default) or drop to "
                        "rejects.parquet")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local: in-process streaming (default); ray: Ray Data (pip install '.[ray]')")
    p.add_argument("--batch-rows", type=int, default=65_536, help="impressions per record batch")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = LabelConfig(data=args.data, store=args.store, out=args.out, levels=args.levels,
                         train_days=args.train_days, subseq_level=args.subseq_level,
                         max_hist=args.max_hist, hist_days=args.hist_days, max_subseq=args.max_subseq,
                         edge_quantile=args.edge_quantile,
                         bin_edges=args.bin_edges, on_missing=args.on_missing, engine=args.engine,
                         batch_rows=args.batch_rows, show_progress_bar=not args.no_progress)
    from .pipeline import run

    out = run(config)
    print(f"label-intents: wrote {out} (train, test, manifest.json, stats/)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
