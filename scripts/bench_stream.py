"""The streaming data path: bounded memory over log sizes, and its speed against the in-memory path.

Each measurement is a whole `train-daian` process (`python -m daian.cli`), so the peak resident
memory is the kernel's figure for that process (`os.wait4` ru_maxrss): the vocabulary pass,
training and scoring the test split all count.

    # memory: one run per labelled folder, streaming on, histories of 50
    python scripts/bench_stream.py memory --store STORE --data L1 L2 L3 [--model din] [--out F.json]
    # speed: in-memory and streaming alternated on one labelled folder, best of --rounds
    python scripts/bench_stream.py speed --data LABELLED --store STORE [--rounds 2]

Memory goal: the peaks within 25% of each other and at most 3 GB. Speed goal: the streaming path
trains at >= 0.9x the in-memory path's samples/s. Both print the figures and the ratios.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_training(data: str, store: str, run: Path, *, model: str, stream: str, extra: list[str]) -> dict:
    """One train-daian process; returns its wall time, peak RSS and what its metrics.json says."""
    shutil.rmtree(run, ignore_errors=True)
    cmd = [sys.executable, "-m", "daian.cli", "--data", data, "--store", store, "--model", model,
           "--run", str(run), "--stream", stream, "--max-hist", "50", "--no-progress", *extra]
    log_file = run.with_suffix(".log")
    start = time.perf_counter()
    with open(log_file, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak, not the largest so far
    wall = time.perf_counter() - start
    log = log_file.read_text()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"train-daian failed on {data}:\n{log}")
    metrics = json.loads((run / "metrics.json").read_text())
    history = metrics["train"]["history"]
    rows = sum(h["rows"] for h in history)
    seconds = sum(h["seconds"] for h in history)
    return {"data": data, "stream": stream, "model": model, "wall_s": round(wall, 1),
            "peak_rss_gb": round(usage.ru_maxrss / 2 ** 20, 3),  # ru_maxrss is in KiB on Linux
            "train_rows": metrics["data"]["rows"]["train"], "test_rows": metrics["data"]["rows"]["test"],
            "samples_per_s": round(rows / max(seconds, 1e-9), 1),
            "auc": metrics["ctr"]["auc"], "gauc": metrics["ctr"]["gauc"],
            "recipe": metrics.get("recipe", {}).get("settings"), "log_tail": log.strip().splitlines()[-3:]}


def memory(args) -> dict:
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, data in enumerate(args.data):
            r = run_training(data, args.store, Path(tmp) / f"run{i}", model=args.model, stream="on",
                             extra=args.extra)
            print(json.dumps({k: v for k, v in r.items() if k != "log_tail"}), flush=True)
            results.append(r)
    peaks = [r["peak_rss_gb"] for r in results]
    summary = {"peaks_gb": peaks, "max_over_min": round(max(peaks) / min(peaks), 3),
               "within_25pct": max(peaks) <= 1.25 * min(peaks), "at_most_3gb": max(peaks) <= 3.0}
    print(json.dumps(summary))
    return {"runs": results, "summary": summary}


def speed(args) -> dict:
    best: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rnd in range(args.rounds):
            for stream in ("off", "on"):
                r = run_training(args.data[0], args.store, Path(tmp) / f"{stream}{rnd}", model=args.model,
                                 stream=stream, extra=args.extra)
                print(json.dumps({k: v for k, v in r.items() if k != "log_tail"}), flush=True)
                if stream not in best or r["samples_per_s"] > best[stream]["samples_per_s"]:
                    best[stream] = r
    ratio = best["on"]["samples_per_s"] / best["off"]["samples_per_s"]
    summary = {"in_memory_samples_per_s": best["off"]["samples_per_s"],
               "streaming_samples_per_s": best["on"]["samples_per_s"], "ratio": round(ratio, 3),
               "goal_0.9x": ratio >= 0.9}
    print(json.dumps(summary))
    return {"best": best, "summary": summary}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=("memory", "speed"), help="what to measure")
    p.add_argument("--data", nargs="+", required=True, help="labelled folder(s) (label-intents output)")
    p.add_argument("--store", required=True, help="the embedding store the folders were labelled with")
    p.add_argument("--model", default="din", help="model to train (default %(default)s)")
    p.add_argument("--rounds", type=int, default=2, help="speed: rounds of (in-memory, streaming) (default 2)")
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[],
                   help="further train-daian flags, e.g. --extra --epochs 1")
    p.add_argument("--out", help="also write the results as JSON here")
    args = p.parse_args(argv)
    result = memory(args) if args.mode == "memory" else speed(args)
    result["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform(),
                         "date": time.strftime("%Y-%m-%d")}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
