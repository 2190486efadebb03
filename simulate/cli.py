"""`simulate-tir`: write a simulated TIR world (dataset folder) from a preset."""
from __future__ import annotations

import argparse
import json
import sys

from common.cli import default_of, make_parser, run

from .config import PRESETS, WorldConfig, parse_set_args
from .world import WORLD_JSON, simulate_world


def build_parser() -> argparse.ArgumentParser:
    p = make_parser(
        "simulate-tir",
        "Simulate a trigger-induced recommendation world: items (titles + pictures), users, "
        "behaviours, impressions and the planted truth. See docs/simulator.md.")
    p.add_argument("--preset", required=True,
                   help=f"named world size and settings: one of {', '.join(PRESETS)}")
    p.add_argument("--seed", type=int, default=default_of(WorldConfig, "seed"),
                   help="root random seed; same preset + seed -> same bytes (default %(default)s)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config field (repeatable), e.g. --set n_users=500; tuples as "
                        "comma-separated numbers; world.json lists every field")
    p.add_argument("--out", required=True, help="output folder (must be empty or absent)")
    p.add_argument("--overwrite", action="store_true",
                   help="allow a non-empty --out: the simulator's previous outputs there are replaced")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    return p


def _run(args: argparse.Namespace) -> None:
    out = simulate_world(args.preset, args.out, seed=args.seed, overrides=parse_set_args(args.overrides),
                         overwrite=args.overwrite, show_progress_bar=not args.no_progress)
    counts = json.loads((out / WORLD_JSON).read_text())["counts"]
    print(f"wrote {out}: " + ", ".join(f"{k}={v}" for k, v in counts.items()))


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv, _run)


if __name__ == "__main__":
    sys.exit(main())
