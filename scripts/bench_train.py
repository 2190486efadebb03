"""Training speed of our DIN, DEI2N and DAIAN against DeepCTR-Torch's DIN, plus scoring latency.

All in one run, on the same labelled data, the same batch size and the same CPU threads:
- training samples/s of one epoch (after a warm-up) through our real training loop
  (`daian.training.loop.run_epoch`: loader, forward, loss, backward, Adagrad step); for DAIAN also per
  stage of its three-stage schedule;
- DeepCTR-Torch's DIN (`pip install deepctr-torch requests`) trained with its own `fit()` on the same
  rows and batch size, with the same embedding widths, attention unit (128, Dice) and MLP
  (512-256-128); its model step alone (forward/backward/step on pre-built batches) is reported too;
- latency of scoring 1,000 candidates for one request (one user, trigger and history; 1,000
  targets), median over repeats, per model.
Measurements are interleaved in rounds (each model once per round) and the best round is kept, so
load from other processes on a shared machine biases every model alike.

Goals: our DIN >= 1.5x DeepCTR-Torch's DIN; DAIAN >= 0.4x our DIN.

    python scripts/bench_train.py --world demo            # simulate + label a world (random store)
    python scripts/bench_train.py --data LABELLED --store STORE [--dataset DIR]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from daian.training import trainer as T  # noqa: E402
from daian.training.config import TrainConfig  # noqa: E402
from daian.data import EpochBatchSampler, TIRDataset, load_data, make_loader  # noqa: E402
from daian.models import build_model  # noqa: E402
from daian.models.base import ITEM_FIELDS  # noqa: E402


def prepare_world(preset: str, root: Path, seed: int) -> tuple[Path, Path, Path]:
    """Simulate a world, give it a random unit-vector store (384-d, MiniLM's width), label it."""
    from simulate import simulate_world
    from intent_labels import label_intents

    dataset, store, labelled = root / "world", root / "store", root / "labelled"
    if not (labelled / "manifest.json").is_file():
        if not (dataset / "items.parquet").is_file():
            simulate_world(preset, dataset, seed=seed, overwrite=True)
        import pyarrow.parquet as pq

        ids = pq.read_table(dataset / "items.parquet", columns=["item_id"]).column("item_id").to_numpy()
        rng = np.random.default_rng(seed)
        vecs = rng.normal(size=(ids.size, 384)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        store.mkdir(parents=True, exist_ok=True)
        np.save(store / "embeddings.npy", vecs)
        np.save(store / "item_ids.npy", ids.astype(np.int64))
        (store / "manifest.json").write_text(json.dumps({
            "backend": "random", "dim": 384, "count": int(ids.size),
            "input": {"path": str((dataset / "items.parquet").resolve())}}))
        label_intents(dataset, store, labelled, overwrite=True, show_progress_bar=False)
    return labelled, store, dataset


def subset(ds: TIRDataset, n: int) -> TIRDataset:
    n = min(n, len(ds))
    return TIRDataset({k: v[:n] for k, v in ds.columns.items()}, ds.item_fields, ds.user_fields,
                      ds.item_vec, {k: v[:n] for k, v in ds.meta.items()})


# ----------------------------------------------------------------------------- ours


class OurTrainer:
    """One of our models trained with the real loop; `epoch()` returns samples/s of one epoch."""

    def __init__(self, name: str, bundle, train: TIRDataset, batch: int, stage_name: str = "ctr"):
        self.config = TrainConfig(data=".", store=".", run=".", model=name, batch_size=batch, progress=False,
                                  recipe="paper")
        torch.manual_seed(0)
        self.model = build_model(self.config.model_config(), bundle.sizes, bundle.frozen_vectors)
        self.stage = next(s for s in T.build_stages(self.config, self.model) if s.name == stage_name)
        self.optimizer = self.stage.make_optimizer("adagrad")
        self.accelerator = T._accelerator(self.config)
        self.sampler = EpochBatchSampler(len(train), batch, shuffle=True, seed=0)
        self.loader = make_loader(train, self.sampler)
        self.epochs = 0

    def epoch(self) -> float:
        self.sampler.set_epoch(self.epochs)
        self.epochs += 1
        stats = T.run_epoch(self.model, self.stage, self.optimizer, self.loader, self.accelerator,
                            desc="bench", progress=False)
        return stats["rows"] / stats["seconds"]


# ----------------------------------------------------------------------------- DeepCTR-Torch


def deepctr_inputs(bundle, ds: TIRDataset, L: int) -> tuple[dict, np.ndarray]:
    """Our tensorised rows -> DeepCTR-Torch's input dict (one array per feature name)."""
    idx = torch.arange(len(ds))
    features, targets = ds[idx]
    hist = torch.zeros(len(ds), L, len(ITEM_FIELDS), dtype=torch.long)
    h = features["hist"][:, :L]
    hist[:, :h.shape[1]] = h
    x = {"user": features["user"].numpy(), "page": features["page"].numpy(),
         "seq_length": features["hist_mask"].sum(1).numpy()}
    for j, name in enumerate(bundle.sizes.profile_fields):
        x[name] = features["user_profile"][:, j].numpy()
    for j, f in enumerate(ITEM_FIELDS):
        x[f] = features["target"][:, j].numpy()
        x[f"trigger_{f}"] = features["trigger"][:, j].numpy()
        x[f"hist_{f}"] = hist[:, :, j].numpy()
    return x, targets["label"].numpy().astype(np.float32)


class DeepCTRTrainer:
    """DeepCTR-Torch's DIN with our DIN's widths, trained through its own `fit()`."""

    def __init__(self, bundle, train: TIRDataset, batch: int, L: int):
        from deepctr_torch.inputs import SparseFeat, VarLenSparseFeat
        from deepctr_torch.models import DIN

        from daian.models import DINConfig

        cfg = DINConfig()
        sizes = bundle.sizes
        cols = [SparseFeat("user", sizes.users, cfg.user_dim), SparseFeat("page", sizes.max_page + 1, cfg.page_dim)]
        cols += [SparseFeat(n, v, cfg.profile_dim) for n, v in sizes.profile_fields.items()]
        for f in ITEM_FIELDS:
            cols.append(SparseFeat(f, sizes.item_fields[f], cfg.item_dims[f]))
            cols.append(SparseFeat(f"trigger_{f}", sizes.item_fields[f], cfg.item_dims[f], embedding_name=f))
        for f in ITEM_FIELDS:
            cols.append(VarLenSparseFeat(SparseFeat(f"hist_{f}", sizes.item_fields[f], cfg.item_dims[f],
                                                    embedding_name=f), maxlen=L, length_name="seq_length"))
        torch.manual_seed(0)
        with contextlib.redirect_stdout(io.StringIO()):
            self.model = DIN(cols, list(ITEM_FIELDS), dnn_hidden_units=cfg.mlp_hidden,
                             att_hidden_size=cfg.attention_hidden, att_activation="dice", device="cpu")
            self.model.compile(torch.optim.Adagrad(self.model.parameters(), lr=0.05), "binary_crossentropy")
        self.x, self.y = deepctr_inputs(bundle, train, L)
        self.batch = batch
        # the model step alone: DeepCTR's concatenated float input matrix, pre-cut into batches
        arrays = [self.x[name] for name in self.model.feature_index]
        arrays = [a[:, None] if a.ndim == 1 else a for a in arrays]
        full = torch.from_numpy(np.concatenate(arrays, axis=-1)).float()
        self.batches = [(full[s:s + batch], torch.from_numpy(self.y[s:s + batch]))
                        for s in range(0, len(self.y), batch)]

    def epoch(self) -> float:
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            self.model.fit(self.x, self.y, batch_size=self.batch, epochs=1, verbose=0)
        return len(self.y) / (time.perf_counter() - start)

    def model_step(self) -> float:
        start = time.perf_counter()
        self.model.train()
        for xb, yb in self.batches:
            pred = self.model(xb).squeeze(-1)
            loss = torch.nn.functional.binary_cross_entropy(pred, yb, reduction="sum")
            self.model.optim.zero_grad()
            (loss + self.model.get_regularization_loss()).backward()
            self.model.optim.step()
        return len(self.y) / (time.perf_counter() - start)


# ----------------------------------------------------------------------------- latency


def candidates_batch(bundle, n: int, seed: int = 0) -> dict:
    """One test request's features repeated for n candidate targets drawn from the item table."""
    ds = bundle.test
    lens = ds.columns["hist_len"].numpy()
    row = int(np.argmax(lens))  # the longest history: the costliest request
    features, _ = ds[torch.tensor([row])]
    rng = np.random.default_rng(seed)
    rows = torch.from_numpy(rng.integers(2, ds.item_fields.shape[0], n))
    batch = {k: v.expand(n, *v.shape[1:]).contiguous() for k, v in features.items()}
    batch["target"] = ds.item_fields[rows]
    batch["tt_sim"] = torch.from_numpy(rng.uniform(-0.2, 1.0, n).astype(np.float32))
    return batch


@torch.inference_mode()
def latency_ms(model, batch: dict, repeats: int) -> float:
    model.eval()
    model(batch)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(batch)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--world", default="demo", help="simulator preset to build when --data is not given")
    p.add_argument("--cache", default="out/bench_train", help="folder for the simulated world and labels")
    p.add_argument("--data", help="label-intents output folder (instead of --world)")
    p.add_argument("--store", help="embedding store folder (with --data)")
    p.add_argument("--dataset", help="dataset folder (with --data; default from the manifest)")
    p.add_argument("--rows", type=int, default=65536, help="training rows per epoch")
    p.add_argument("--batch-size", type=int, default=4096, help="batch size (the papers': 4096)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved measurement rounds (best kept)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    p.add_argument("--candidates", type=int, default=1000, help="candidates scored for one request")
    p.add_argument("--json", help="also write the results to this JSON file")
    args = p.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.data:
        labelled, store, dataset = Path(args.data), Path(args.store), args.dataset
    else:
        labelled, store, dataset = prepare_world(args.world, Path(args.cache) / args.world, seed=0)
    bundle = load_data(labelled, store, dataset)
    train = subset(bundle.train, args.rows)
    L = int(train.columns["hist_len"].max())
    print(f"data: {len(train)} training rows, batch {args.batch_size}, history up to {L}, "
          f"{bundle.sizes.item_fields['item']} items; torch {torch.__version__}, {torch.get_num_threads()} "
          f"thread(s), {platform.processor() or platform.machine()}, {os.cpu_count()} CPU(s)")

    runners = {name: OurTrainer(name, bundle, train, args.batch_size) for name in ("din", "dei2n", "daian")}
    runners["daian/stage1-uim"] = OurTrainer("daian", bundle, train, args.batch_size, "uim")
    runners["daian/stage2-die"] = OurTrainer("daian", bundle, train, args.batch_size, "die")
    deepctr_error = None
    try:
        deep = DeepCTRTrainer(bundle, train, args.batch_size, L)
        runners["deepctr-torch DIN (fit)"] = deep
        runners["deepctr-torch DIN (model step only)"] = type("Step", (), {"epoch": staticmethod(deep.model_step)})()
    except Exception as exc:  # report exactly why the reference cannot run
        deepctr_error = f"{type(exc).__name__}: {exc}"
        print(f"DeepCTR-Torch DIN cannot run: {deepctr_error}")

    for runner in runners.values():  # warm-up epoch (allocations, first-call costs)
        runner.epoch()
    best = {name: 0.0 for name in runners}
    for r in range(args.rounds):
        for name, runner in runners.items():
            value = runner.epoch()
            best[name] = max(best[name], value)
            print(f"  round {r + 1}: {name:38s} {value:10.0f} samples/s", flush=True)

    batch = candidates_batch(bundle, args.candidates)
    latency = {}
    for _ in range(args.rounds):
        for name in ("din", "dei2n", "daian"):
            ms = latency_ms(runners[name].model, batch, repeats=20)
            latency[name] = min(latency.get(name, float("inf")), ms)

    print(f"\ntraining samples/s (best of {args.rounds} interleaved rounds, one epoch each):")
    for name, value in best.items():
        print(f"  {name:38s} {value:10.0f}")
    results = {"samples_per_s": best, "latency_ms_1000": latency, "rows": len(train),
               "batch_size": args.batch_size, "threads": torch.get_num_threads(), "deepctr_error": deepctr_error}
    ref = best.get("deepctr-torch DIN (fit)")
    if ref:
        results["din_vs_deepctr_fit"] = best["din"] / ref
        results["din_vs_deepctr_step"] = best["din"] / best["deepctr-torch DIN (model step only)"]
        print(f"our DIN / DeepCTR-Torch DIN (fit):        {results['din_vs_deepctr_fit']:.2f}x  (goal >= 1.5)")
        print(f"our DIN / DeepCTR-Torch DIN (model step): {results['din_vs_deepctr_step']:.2f}x")
    results["daian_vs_din"] = best["daian"] / best["din"]
    results["dei2n_vs_din"] = best["dei2n"] / best["din"]
    print(f"DAIAN / our DIN: {results['daian_vs_din']:.2f}x  (goal >= 0.4);  DEI2N / our DIN: "
          f"{results['dei2n_vs_din']:.2f}x")
    print(f"\nscoring {args.candidates} candidates of one request (median ms, CPU):")
    for name, ms in latency.items():
        print(f"  {name:8s} {ms:8.2f} ms")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
