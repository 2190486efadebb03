"""`simulate-tir`: write a simulated TIR world (dataset folder) from a preset."""
from __future__ import annotations

import argparse
import json
import sys

from .config import PRESETS, parse_set_args
from .world import simulate_world


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="simulate-tir",
        description="Simulate a trigger-induced recommendation world: items (titles + pictures), users, "
                    "behaviours, impressions and the planted truth. See docs/simulator.md.")
    parser.add_argument("--preset", required=True,
                        help=f"named world size and settings: one of {', '.join(PRESETS)}")
    parser.add_argument("--seed", type=int, default=0, help="root random seed (same preset + seed -> same bytes)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config field (repeatable), e.g. --set n_users=500; tuples as "
                             "comma-separated numbers; world.json lists every field")
    parser.add_argument("--out", required=True, help="output folder (must be empty or absent)")
    parser.add_argument("--overwrite", action="store_true",
                        help="allow a non-empty --out: the simulator's previous outputs there are replaced")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        overrides = parse_set_args(args.overrides)
        out = simulate_world(args.preset, args.out, seed=args.seed, overrides=overrides,
                             overwrite=args.overwrite, show_progress_bar=not args.no_progress)
    except ValueError as exc:
        print(f"simulate-tir: error: {exc}", file=sys.stderr)
        return 2
    counts = json.loads((out / "world.json").read_text())["counts"]
    print(f"wrote {out}: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
