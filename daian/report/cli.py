"""`tir-report`: build the report (HTML + Markdown) from finished `train-daian` runs.

    tir-report runs/cmp --data out/labelled --dataset out/world --out out/report
    tir-report runs/cmp --sweep n=4:runs/n4 --sweep n=8:runs/n8 --out out/report
"""
from __future__ import annotations

import argparse
import sys

from daian.report.config import DIVERSITY_MEASURES, SPLITS, ReportConfig, parse_sweep


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tir-report",
        description="Build report.html (self-contained) and report.md (with figures/) from finished "
                    "train-daian runs; every number is recomputed from the runs' predictions.parquet.")
    p.add_argument("runs", nargs="+", help="run folders: a `train-daian --compare` output, or single-model runs")
    p.add_argument("--out", required=True, help="output folder for report.html, report.md, figures/, report.json")
    p.add_argument("--data", help="label-intents output the runs were trained on (default: the folder the "
                                  "runs recorded in checkpoint/config.json)")
    p.add_argument("--dataset", help="dataset folder with items.parquet, images/ and truth/ (default: the "
                                     "runs' recorded one, else the labelled manifest's)")
    p.add_argument("--sweep", action="append", default=[], metavar="n=K:RUN",
                   help="a DAIAN run trained on labels with K similarity levels, for the AUC/GAUC-against-n "
                        "figure; repeatable")
    p.add_argument("--baseline", help="run that RelaImpr and the diversity figure compare against (default din)")
    p.add_argument("--intent-model", help="run whose predicted intent is drawn (default daian)")
    p.add_argument("--diversity", choices=DIVERSITY_MEASURES,
                   help="user diversity measure of the GAUC-gain figure (default labels: entropy of the "
                        "train split's intent labels; profile: the planted profile; categories: the paper's "
                        "count of other leaf categories clicked)")
    p.add_argument("--diversity-buckets", type=int, help="at most this many user groups (default 5)")
    p.add_argument("--ctr-split", choices=SPLITS, help="split the CTR-by-page figure reads (default train)")
    p.add_argument("--max-page", type=int, help="pages from this one on share a column (default 10)")
    p.add_argument("--min-cell-impressions", type=int,
                   help="CTR cells with fewer impressions are left blank (default 30)")
    p.add_argument("--examples", type=int, help="example requests to draw (default 3)")
    p.add_argument("--top-k", type=int, help="targets shown per model in an example (default 5)")
    p.add_argument("--seed", type=int, help="seed choosing the example requests (default 0)")
    p.add_argument("--title", help="report heading")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    values = {"runs": args.runs, "out": args.out, "data": args.data, "dataset": args.dataset,
              "progress": not args.no_progress}
    for name in ("baseline", "intent_model", "diversity", "diversity_buckets", "ctr_split", "max_page",
                 "min_cell_impressions", "examples", "top_k", "seed", "title"):
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    try:
        values["sweep"] = parse_sweep(args.sweep)
        config = ReportConfig(**values)
        from daian.report import build_report

        paths = build_report(config)
    except (ValueError, FileNotFoundError) as exc:
        parser.exit(2, f"tir-report: error: {exc}\n")
    print(f"report written to {paths['html']} (self-contained) and {paths['markdown']} "
          f"(figures in {paths['figures']}); numbers in {paths['json']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
