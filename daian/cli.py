"""`train-daian`: train DAIAN, DEI2N or DIN on label-intents output, or compare several.

    train-daian --data LABELLED --store STORE --model daian --seeds 1,2,3 --run runs/daian
    train-daian --data LABELLED --store STORE --compare din,dei2n,daian --ablations --run runs/cmp
    accelerate launch -m daian.cli --data ... --model daian --run ...   (several GPUs)
"""
from __future__ import annotations

import argparse
import json
import sys

from daian.config import MODEL_NAMES, TrainConfig, parse_set


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="train-daian",
        description="Train DAIAN / DEI2N / DIN on labelled trigger-induced recommendation samples; "
                    "writes RUN/metrics.json, RUN/predictions.parquet and RUN/checkpoint/.")
    p.add_argument("--data", required=True, help="label-intents output folder (train/test parquet + manifest.json)")
    p.add_argument("--store", required=True, help="embedding store folder (frozen multimodal item vectors)")
    p.add_argument("--dataset", help="dataset folder with items.parquet/users.parquet (default: the one "
                                     "named in the labelled manifest)")
    p.add_argument("--model", choices=MODEL_NAMES, help="model to train (or use --compare)")
    p.add_argument("--ablation", help="ablation of the model, e.g. no-uim, no-die, no-sein, no-three-stage "
                                      "(DAIAN) or no-ui2m, no-tim, no-il, no-uhim, no-usim (DEI2N)")
    p.add_argument("--compare", help="comma-separated models to train and compare, e.g. din,dei2n,daian")
    p.add_argument("--ablations", nargs="?", const="all", metavar="MODELS",
                   help="with --compare: also train the ablations of the compared models; "
                        "--ablations daian limits them to the named (comma-separated) models")
    p.add_argument("--seeds", help="comma-separated seeds, one sub-run each (default 1)")
    p.add_argument("--jobs", type=int, default=1,
                   help="with --compare: train this many (model, seed) runs at once in separate "
                        "processes, the CPU cores shared out among them (default 1)")
    p.add_argument("--epochs", type=int, help="CTR epochs (DAIAN's stage 3; default 1)")
    p.add_argument("--batch-size", type=int, help="training batch size (default 4096)")
    p.add_argument("--optimizer", choices=("adagrad", "adam"),
                   help="optimizer of every stage (default adagrad, the papers'; adam learns far faster "
                        "on small worlds, see docs/training.md)")
    p.add_argument("--lr", type=float, help="learning rate of every stage; DAIAN's UIM learns at lr * "
                                            "uim_lr_factor in stage 3 (default 0.05)")
    p.add_argument("--max-hist", type=int, help="behaviour sequence length L, most recent first (default 50, "
                                                "the DAIAN paper's; 20 is the DEI2N paper's)")
    p.add_argument("--max-subseq", type=int, help="multimodal and category subsequence length T (default 20)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="device (default auto)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any training setting (e.g. uim_epochs=2, optimizer=adam) or model setting "
                        "written model.<field> (e.g. model.dropout=0.1); repeatable")
    p.add_argument("--run", required=True, help="output folder of the run")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from RUN's checkpoints")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    values: dict = {"data": args.data, "store": args.store, "run": args.run, "resume": args.resume}
    for name in ("dataset", "ablation", "epochs", "batch_size", "optimizer", "max_hist", "max_subseq",
                 "device"):
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    if args.lr is not None:  # one rate for the three stages unless --set says otherwise
        values.update(lr=args.lr, uim_lr=args.lr, die_lr=args.lr)
    if args.model is not None:
        values["model"] = args.model
    if args.seeds is not None:
        values["seeds"] = args.seeds
    if args.no_progress:
        values["progress"] = False
    values.update(parse_set(args.set))
    return TrainConfig.from_mapping(values)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.model is None) == (args.compare is None):
        parser.error("give exactly one of --model and --compare")
    if args.ablations is not None and args.compare is None:
        parser.error("--ablations goes with --compare")
    try:
        if args.compare is not None:
            models = [m.strip() for m in args.compare.split(",") if m.strip()]
            bad = [m for m in models if m not in MODEL_NAMES]
            if bad or not models:
                parser.error(f"--compare: unknown model(s) {bad}; choose from {list(MODEL_NAMES)}")
            if args.ablation is not None:
                parser.error("--ablation goes with --model; use --ablations with --compare")
            args.model = models[0]
            config = config_from_args(args)
            from daian.train import compare

            ablations = (True if args.ablations == "all" else
                         [m.strip() for m in args.ablations.split(",") if m.strip()] if args.ablations else False)
            out = compare(config, models, ablations=ablations, jobs=args.jobs)
            if not out:  # not the main process of a distributed launch
                return 0
            print(out["table"])
            print(f"comparison written to {config.run / 'compare.md'} and {config.run / 'compare.json'}")
            return 0
        config = config_from_args(args)
        from daian.train import train

        result = train(config)
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        parser.exit(2, f"train-daian: error: {exc}\n")
    if not result:  # not the main process of a distributed launch
        return 0
    if "summary" in result:
        line = {k: f"{v['mean']:.4f} ± {v['std']:.4f}" for k, v in result["summary"].items()}
    else:
        line = {k: round(result["ctr"][k], 4) for k in ("auc", "gauc", "logloss")}
    print(json.dumps(line))
    print(f"metrics: {config.run / 'metrics.json'}; predictions and checkpoints under {config.run}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
