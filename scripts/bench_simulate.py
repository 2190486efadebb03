"""Benchmark `simulate-tir`: wall time and peak memory of the demo and large presets.

Each preset runs in a fresh subprocess (peak RSS from resource.getrusage of that process). The
reference measured in the same run is the file-system floor: copying the finished dataset folder
(same bytes, same number of files), so `ratio` says how much generation costs on top of plain I/O.
For the demo world the script also prints the row counts, CTR, the share of cold items and the two
difficulty proxies (logistic regression on level/page/quality, and the oracle AUC of the true
click probabilities), both trained on days 0-6 and scored on day 7.

    .venv/bin/python scripts/bench_simulate.py --out /tmp/bench [--presets demo large] [--seed 0]
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def child(preset: str, out: str, seed: int) -> None:
    """Run inside the subprocess: build the world, print time and peak RSS as JSON."""
    sys.path.insert(0, str(REPO))
    from simulate import simulate_world

    start = time.perf_counter()
    simulate_world(preset, out, seed=seed, overwrite=True, show_progress_bar=False)
    wall = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(json.dumps({"wall_s": wall, "peak_rss_mib": peak_mib}))


def folder_stats(folder: Path) -> tuple[int, int]:
    files = [p for p in folder.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def copy_reference(folder: Path) -> float:
    target = folder.with_name(folder.name + "_copy")
    shutil.rmtree(target, ignore_errors=True)
    start = time.perf_counter()
    shutil.copytree(folder, target)
    elapsed = time.perf_counter() - start
    shutil.rmtree(target)
    return elapsed


def demo_quality(folder: Path) -> dict:
    """Counts, CTR, cold share and the difficulty proxies, computed from the files."""
    import numpy as np
    import pandas as pd
    import pyarrow.parquet as pq
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    world = json.loads((folder / "world.json").read_text())
    imp = pq.read_table(folder / "impressions.parquet").to_pandas()
    truth = pq.read_table(folder / "truth" / "impressions.parquet").to_pandas()
    quality = pq.read_table(folder / "truth" / "items.parquet").to_pandas().set_index("item_id").quality
    n_items = world["counts"]["items"]
    day = (imp.ts - world["request_start_ts"]) // 86_400
    first7 = imp.item_id[day < 7].value_counts()
    cold = 1.0 - (first7 > 2).sum() / n_items
    x = pd.get_dummies(truth.level.astype("category"), prefix="level").astype(float)
    x["page"] = imp.page.astype(float)
    x["quality"] = quality.reindex(imp.item_id).to_numpy()
    train, test = (day < 7).to_numpy(), (day == 7).to_numpy()
    lr = LogisticRegression(max_iter=1000).fit(x[train], imp.clicked[train])
    return {**world["counts"], "cold_share": round(float(cold), 4),
            "lr_auc": round(float(roc_auc_score(imp.clicked[test], lr.predict_proba(x[test])[:, 1])), 4),
            "oracle_auc": round(float(roc_auc_score(imp.clicked[test], truth.click_prob[test])), 4),
            "test_ctr": round(float(np.mean(imp.clicked[test])), 4)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="scratch folder for the generated worlds")
    parser.add_argument("--presets", nargs="+", default=["demo", "large"], help="presets to time")
    parser.add_argument("--seed", type=int, default=0, help="world seed")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds before a preset run is stopped")
    parser.add_argument("--child", nargs=2, metavar=("PRESET", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.seed)
        return 0
    for preset in args.presets:
        out = Path(args.out) / preset
        cmd = [sys.executable, __file__, "--out", args.out, "--seed", str(args.seed), "--child", preset, str(out)]
        try:
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, check=True)
        except subprocess.TimeoutExpired:
            print(f"{preset}: stopped after {args.timeout:.0f} s")
            continue
        result = json.loads(run.stdout.strip().splitlines()[-1])
        n_files, n_bytes = folder_stats(out)
        ref = copy_reference(out)
        counts = json.loads((out / "world.json").read_text())["counts"]
        print(f"{preset}: wall {result['wall_s']:.1f} s, peak RSS {result['peak_rss_mib']:.0f} MiB, "
              f"{n_files} files, {n_bytes / 2**20:.0f} MiB; copy-folder reference {ref:.1f} s, "
              f"ratio {result['wall_s'] / ref:.1f}x; impressions {counts['impressions']}, "
              f"{counts['impressions'] / result['wall_s']:.0f} impressions/s")
        if preset == "demo":
            print(f"demo world: {json.dumps(demo_quality(out), sort_keys=True)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
