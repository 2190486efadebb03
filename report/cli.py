"""`tir-report`: build the report (HTML + Markdown) from finished `train-daian` runs.

    tir-report runs/cmp --data out/labelled --dataset out/world --out out/report
    tir-report runs/cmp --sweep n=4:runs/n4 --sweep n=8:runs/n8 --out out/report
"""
from __future__ import annotations

import argparse
import logging
import sys

from common.cli import default_of, make_parser, run
from intent_labels.labelled import SPLITS
from report.config import DIVERSITY_MEASURES, ReportConfig, parse_sweep

# ReportConfig fields that a flag of the same name (dashes for underscores) sets.
_SETTINGS = ("baseline", "intent_model", "diversity", "diversity_buckets", "ctr_split", "max_page",
             "min_cell_impressions", "examples", "top_k", "seed", "dpi", "title")


def _default(name: str):
    return default_of(ReportConfig, name)


def build_parser() -> argparse.ArgumentParser:
    p = make_parser(
        "tir-report",
        "Build report.html (self-contained) and report.md (with figures/) from finished train-daian "
        "runs; every number is recomputed from the runs' predictions.parquet.")
    p.add_argument("runs", nargs="+", help="run folders: a `train-daian --compare` output, or single-model runs")
    p.add_argument("--out", required=True, help="output folder for report.html, report.md, figures/, report.json")
    p.add_argument("--data", help="label-intents output the runs were trained on (default: the folder the "
                                  "runs recorded in checkpoint/config.json)")
    p.add_argument("--dataset", help="dataset folder with items.parquet, images/ and truth/ (default: the "
                                     "runs' recorded one, else the labelled manifest's)")
    p.add_argument("--sweep", action="append", default=[], metavar="n=K:RUN",
                   help="a DAIAN run trained on labels with K similarity levels, for the AUC/GAUC-against-n "
                        "figure; repeatable")
    p.add_argument("--baseline", default=_default("baseline"),
                   help="run that RelaImpr and the diversity figure compare against (default %(default)s)")
    p.add_argument("--intent-model", default=_default("intent_model"),
                   help="run whose predicted intent is drawn (default %(default)s)")
    p.add_argument("--diversity", choices=DIVERSITY_MEASURES, default=_default("diversity"),
                   help="user diversity measure of the GAUC-gain figure: labels, the entropy of the train "
                        "split's intent labels; profile, the planted profile; categories, the paper's count "
                        "of other leaf categories clicked (default %(default)s)")
    p.add_argument("--diversity-buckets", type=int, default=_default("diversity_buckets"),
                   help="at most this many user groups (default %(default)s)")
    p.add_argument("--ctr-split", choices=SPLITS, default=_default("ctr_split"),
                   help="split the CTR-by-page figure reads (default %(default)s)")
    p.add_argument("--max-page", type=int, default=_default("max_page"),
                   help="pages from this one on share a column (default %(default)s)")
    p.add_argument("--min-cell-impressions", type=int, default=_default("min_cell_impressions"),
                   help="CTR cells with fewer impressions are left blank (default %(default)s)")
    p.add_argument("--examples", type=int, default=_default("examples"),
                   help="example requests to draw (default %(default)s)")
    p.add_argument("--top-k", type=int, default=_default("top_k"),
                   help="targets shown per model in an example (default %(default)s)")
    p.add_argument("--seed", type=int, default=_default("seed"),
                   help="seed choosing the example requests (default %(default)s)")
    p.add_argument("--dpi", type=int, default=_default("dpi"),
                   help="resolution of the PNG figures, in dots per inch (default %(default)s)")
    p.add_argument("--title", default=_default("title"), help="report heading (default %(default)r)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return p


def _run(args: argparse.Namespace) -> None:
    config = ReportConfig(runs=args.runs, out=args.out, data=args.data, dataset=args.dataset,
                          sweep=parse_sweep(args.sweep), progress=not args.no_progress,
                          **{name: getattr(args, name) for name in _SETTINGS})
    from report import build_report  # matplotlib loads only now, not for --help

    paths = build_report(config)
    print(f"report written to {paths['html']} (self-contained) and {paths['markdown']} "
          f"(figures in {paths['figures']}); numbers in {paths['json']}")


class _Warnings(logging.Handler):
    """The report's warnings (logger "report") as one line each on stderr: `tir-report: warning: ...`."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"tir-report: warning: {' '.join(record.getMessage().split())}", file=sys.stderr)


def _show_warnings() -> None:
    log = logging.getLogger("report")
    if not any(isinstance(h, _Warnings) for h in log.handlers):
        log.addHandler(_Warnings(logging.WARNING))
    log.propagate = False


def main(argv: list[str] | None = None) -> int:
    _show_warnings()
    return run(build_parser, argv, _run)


if __name__ == "__main__":
    sys.exit(main())
