"""`train-daian`: train a registered model (DAIAN, DEI2N, DIN) on label-intents output, or compare several.

    train-daian --data LABELLED --store STORE --model daian --seeds 1,2,3 --run runs/daian
    train-daian --data LABELLED --store STORE --compare din,dei2n,daian --ablations --run runs/cmp
    accelerate launch -m daian.cli --data ... --model daian --run ...   (several GPUs)
"""
from __future__ import annotations

import argparse
import json
import sys

from common.cli import default_of, fail, make_parser, run
from daian import run_folder as RF
from daian.models import registry
from daian.training.config import OPTIMIZERS, DEVICES, TrainConfig, parse_set

# flag -> TrainConfig field, for the flags that set one field each (their default is the field's)
_FIELD_FLAGS = ("epochs", "batch_size", "optimizer", "max_hist", "max_subseq", "device")


def _ablations_help() -> str:
    listed = "; ".join(f"{name}: {', '.join(registry.get(name).config.ablations)}"
                       for name in registry.names() if registry.get(name).config.ablations)
    return f"ablation of the model ({listed})"


def build_parser() -> argparse.ArgumentParser:
    p = make_parser("train-daian", "Train a CTR model on labelled trigger-induced recommendation samples; "
                                   "writes RUN/metrics.json, RUN/predictions.parquet and RUN/checkpoint/.")
    p.add_argument("--data", required=True, help="label-intents output folder (train/test parquet + manifest.json)")
    p.add_argument("--store", required=True, help="embedding store folder (frozen multimodal item vectors)")
    p.add_argument("--dataset", help="dataset folder with items.parquet/users.parquet (default: the one "
                                     "named in the labelled manifest)")
    p.add_argument("--model", choices=registry.names(), help="model to train (or use --compare)")
    p.add_argument("--ablation", help=_ablations_help())
    p.add_argument("--compare", help=f"comma-separated models to train and compare, e.g. {','.join(registry.names())}")
    p.add_argument("--ablations", nargs="?", const="all", metavar="MODELS",
                   help="with --compare: also train the ablations of the compared models; "
                        "--ablations daian limits them to the named (comma-separated) models")
    p.add_argument("--seeds", default=",".join(map(str, default_of(TrainConfig, "seeds"))),
                   help="comma-separated seeds, one sub-run each (default %(default)s)")
    p.add_argument("--jobs", type=int, default=1,
                   help="with --compare: train this many (model, seed) runs at once in separate "
                        "processes, the CPU cores shared out among them (default %(default)s)")
    p.add_argument("--epochs", type=int, default=default_of(TrainConfig, "epochs"),
                   help="CTR epochs (DAIAN's stage 3; default %(default)s)")
    p.add_argument("--batch-size", type=int, default=default_of(TrainConfig, "batch_size"),
                   help="training batch size (default %(default)s, the papers')")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=default_of(TrainConfig, "optimizer"),
                   help="optimizer of every stage (default %(default)s, the papers'; adam learns far "
                        "faster on small worlds, see docs/training.md)")
    p.add_argument("--lr", type=float,
                   help="learning rate of every stage; DAIAN's UIM learns at lr * uim_lr_factor in "
                        f"stage 3 (default {default_of(TrainConfig, 'lr')}; --set uim_lr=... sets one stage's)")
    p.add_argument("--max-hist", type=int, default=default_of(TrainConfig, "max_hist"),
                   help="behaviour sequence length L, most recent first (default %(default)s, the DAIAN "
                        "paper's; 20 is the DEI2N paper's)")
    p.add_argument("--max-subseq", type=int, default=default_of(TrainConfig, "max_subseq"),
                   help="multimodal and category subsequence length T (default %(default)s)")
    p.add_argument("--device", choices=DEVICES, default=default_of(TrainConfig, "device"),
                   help="device (default %(default)s)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any training setting (e.g. uim_epochs=2, optimizer=adam) or model setting "
                        "written model.<field> (e.g. model.dropout=0.1); repeatable; docs/config.md lists them")
    p.add_argument("--run", required=True, help="output folder of the run")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from RUN's checkpoints")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    values: dict = {"data": args.data, "store": args.store, "run": args.run, "resume": args.resume,
                    "seeds": args.seeds, "progress": not args.no_progress,
                    **{name: getattr(args, name) for name in _FIELD_FLAGS}}
    if args.lr is not None:  # one rate for the three stages unless --set says otherwise
        values.update(lr=args.lr, uim_lr=args.lr, die_lr=args.lr)
    for name in ("dataset", "ablation", "model"):
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    values.update(parse_set(args.set))
    return TrainConfig.from_mapping(values)


def _compare(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from daian.training.compare import compare

    models = [m.strip() for m in args.compare.split(",") if m.strip()]
    bad = [m for m in models if m not in registry.names()]
    if bad or not models:
        fail(parser, f"--compare: unknown model(s) {bad}; choose from {registry.names()}")
    if args.ablation is not None:
        fail(parser, "--ablation goes with --model; use --ablations with --compare")
    args.model = models[0]
    config = config_from_args(args)
    ablations = (True if args.ablations == "all" else
                 [m.strip() for m in args.ablations.split(",") if m.strip()] if args.ablations else False)
    out = compare(config, models, ablations=ablations, jobs=args.jobs)
    if out:  # empty on the other processes of a distributed launch
        print(out["table"])
        print(f"comparison written to {config.run / RF.COMPARE_MD} and {config.run / RF.COMPARE_JSON}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from daian.training.trainer import train

    config = config_from_args(args)
    result = train(config)
    if not result:  # not the main process of a distributed launch
        return 0
    if "summary" in result:
        line = {k: f"{v['mean']:.4f} ± {v['std']:.4f}" for k, v in result["summary"].items()}
    else:
        line = {k: round(result["ctr"][k], 4) for k in ("auc", "gauc", "logloss")}
    print(json.dumps(line))
    print(f"metrics: {config.run / RF.METRICS}; predictions and checkpoints under {config.run}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()

    def body(args: argparse.Namespace) -> int:
        if (args.model is None) == (args.compare is None):
            fail(parser, "give exactly one of --model and --compare")
        if args.ablations is not None and args.compare is None:
            fail(parser, "--ablations goes with --compare")
        return _compare(parser, args) if args.compare is not None else _train(args)

    return run(parser, argv, body)


if __name__ == "__main__":
    sys.exit(main())
