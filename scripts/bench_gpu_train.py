"""Training samples/s of DIN and DAIAN on one device, in float32 and under bf16 autocast.

The real models and the real batches (`TIRDataset[idx]` of a labelled world) at the papers' batch
size of 4096; each step is forward, loss (`daian.training.losses` through the model's CTR stage),
backward and an Adagrad step, with the device synchronised before the clock stops. Float32 and
bf16 alternate in rounds, and the best round of each is kept.

    python scripts/bench_gpu_train.py                       # cuda, the demo world (simulated here)
    python scripts/bench_gpu_train.py --device cpu --rows 8192 --rounds 1   # a smoke run on a CPU
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.bench_train import prepare_world, subset  # noqa: E402
from daian.data import load_data  # noqa: E402
from daian.models import build_model  # noqa: E402
from daian.training import trainer as T  # noqa: E402
from daian.training.config import TrainConfig  # noqa: E402
from daian.training.loop import to_device  # noqa: E402


def epoch_samples_per_s(model, stage, optimizer, train, batch: int, device: torch.device, amp: bool) -> float:
    gen = torch.Generator().manual_seed(0)
    order = torch.randperm(len(train), generator=gen)
    batches = [train[order[s:s + batch]] for s in range(0, len(train) - batch + 1, batch)]
    model.train()

    def step(features, targets):
        features, targets = to_device(features, device), to_device(targets, device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss, _ = stage.loss(model, features, targets)
        model.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step(*batches[0])  # warm-up: kernels chosen, memory allocated
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for features, targets in batches:
        step(features, targets)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return len(batches) * batch / (time.perf_counter() - start)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", help="torch device (default %(default)s)")
    p.add_argument("--world", default="demo", help="simulator preset to build and label (default %(default)s)")
    p.add_argument("--cache", default="out/bench_gpu_train", help="folder for the world and its labels")
    p.add_argument("--rows", type=int, default=131072, help="training rows per measured epoch")
    p.add_argument("--batch-size", type=int, default=4096, help="rows per step (the papers': 4096)")
    p.add_argument("--rounds", type=int, default=2, help="rounds of (float32, bf16) per model")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_gpu_train: no CUDA device; pass --device cpu for a smoke run")
    labelled, store, dataset = prepare_world(args.world, Path(args.cache), 0)
    bundle = load_data(labelled, store, dataset)
    train = subset(bundle.train, args.rows)
    results = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
               "batch_size": args.batch_size, "rows": len(train), "models": {}}
    for name in ("din", "daian"):
        config = TrainConfig(data=".", store=".", run=".", model=name, recipe="paper", progress=False)
        torch.manual_seed(0)
        model = build_model(config.model_config(T.data_model_defaults(config, bundle)), bundle.sizes,
                            bundle.frozen_vectors).to(device)
        stage = next(s for s in T.build_stages(config, model) if s.name == "ctr")
        optimizer = stage.make_optimizer("adagrad")
        best = {"float32": 0.0, "bf16": 0.0}
        for _ in range(args.rounds):
            for label, amp in (("float32", False), ("bf16", True)):
                best[label] = max(best[label], epoch_samples_per_s(model, stage, optimizer, train,
                                                                   args.batch_size, device, amp))
        best["bf16_over_float32"] = best["bf16"] / best["float32"]
        results["models"][name] = {k: round(v, 3 if k.endswith("float32") and "over" in k else 1)
                                   for k, v in best.items()}
        print(json.dumps({name: results["models"][name]}), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
