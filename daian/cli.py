"""`train-daian`: train a registered model (DAIAN, DEI2N, DIN) on label-intents output, or compare several.

    train-daian --data LABELLED --store STORE --model daian --seeds 1,2,3 --run runs/daian
    train-daian --data LABELLED --store STORE --compare din,dei2n,daian --ablations --run runs/cmp
    accelerate launch -m daian.cli --data ... --model daian --run ...   (several GPUs)

The optimiser settings not given come from `--recipe` (auto: chosen from the train split's size,
daian.training.recipe); the choice and why go to stderr and metrics.json. Ctrl-C ends with one
line naming the checkpoints kept and the command that resumes.
"""
from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from pathlib import Path

from common.cli import default_of, fail, make_parser, run
from daian import run_folder as RF
from daian.training.config import DEVICES, OPTIMIZERS, STREAM_MODES, TrainConfig, parse_set
from daian.training.recipe import RECIPES

PROG = "train-daian"
# flag -> TrainConfig field, for the flags that set one field each (their default is the field's;
# None for the recipe's fields: the recipe decides unless the flag is given)
_FIELD_FLAGS = ("recipe", "epochs", "batch_size", "optimizer", "max_hist", "max_subseq", "device", "stream",
                "memory_budget_gb", "checkpoint_steps", "max_steps")


def _ablations_help() -> str:
    from daian.models import registry  # imports torch: inside the parser factory (Ctrl-C is one line)

    listed = "; ".join(f"{name}: {', '.join(registry.get(name).config.ablations)}"
                       for name in registry.names() if registry.get(name).config.ablations)
    return f"ablation of the model ({listed})"


def _add_data_path_flags(p: argparse.ArgumentParser) -> None:
    """Streaming and mid-epoch checkpoints (docs/scale.md)."""
    p.add_argument("--stream", choices=STREAM_MODES, default=default_of(TrainConfig, "stream"),
                   help="read the labelled splits row group by row group instead of whole: on, off, or "
                        "auto (on once the in-memory path would pass --memory-budget-gb); default "
                        "%(default)s, docs/scale.md")
    p.add_argument("--memory-budget-gb", type=float,
                   help="what the in-memory path may hold before auto streams (default: half of this "
                        "machine's memory)")
    p.add_argument("--checkpoint-steps", type=int, default=default_of(TrainConfig, "checkpoint_steps"),
                   help="also checkpoint every this many steps inside an epoch, so that --resume "
                        "continues mid-epoch (default %(default)s: at epoch ends only)")
    p.add_argument("--max-steps", type=int, default=default_of(TrainConfig, "max_steps"),
                   help="end every epoch after this many steps (default %(default)s: whole epochs); for "
                        "smoke runs and memory benchmarks, the model is not a result")


def build_parser() -> argparse.ArgumentParser:
    from daian.models import registry

    p = make_parser(PROG, "Train a CTR model on labelled trigger-induced recommendation samples; "
                                   "writes RUN/metrics.json, RUN/predictions.parquet and RUN/checkpoint/.")
    p.add_argument("--data", required=True,
                   help="label-intents output folder (train/test parquet + manifest.json): a path or a "
                        "filesystem URI pyarrow reads (file://, s3://, gs://, hdfs://)")
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
    p.add_argument("--recipe", choices=RECIPES, default=default_of(TrainConfig, "recipe"),
                   help="optimiser settings the flags below leave unset: paper (Adagrad, lr 0.05, batch "
                        "4096), small (Adam, lr 0.001, batch 512 halved on small logs, more epochs on "
                        "tiny ones), auto (paper from 2,000 steps per epoch at batch 4096, else small); "
                        "default %(default)s, docs/training.md")
    p.add_argument("--epochs", type=int,
                   help="CTR epochs (DAIAN's stage 3; default: the recipe's)")
    p.add_argument("--batch-size", type=int, help="training batch size (default: the recipe's)")
    p.add_argument("--optimizer", choices=OPTIMIZERS,
                   help="optimizer of every stage (default: the recipe's; adagrad is the papers')")
    p.add_argument("--lr", type=float,
                   help="learning rate of every stage; DAIAN's UIM learns at lr * uim_lr_factor in "
                        "stage 3 (default: the recipe's; --set uim_lr=... sets one stage's)")
    p.add_argument("--max-hist", type=int, default=default_of(TrainConfig, "max_hist"),
                   help="behaviour sequence length L, most recent first (default %(default)s, the DAIAN "
                        "paper's; 20 is the DEI2N paper's)")
    p.add_argument("--max-subseq", type=int, default=default_of(TrainConfig, "max_subseq"),
                   help="multimodal and category subsequence length T (default %(default)s)")
    p.add_argument("--device", choices=DEVICES, default=default_of(TrainConfig, "device"),
                   help="device (default %(default)s)")
    _add_data_path_flags(p)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any training setting (e.g. uim_epochs=2, optimizer=adam) or model setting "
                        "written model.<field> (e.g. model.dropout=0.1); repeatable; docs/config.md lists them; "
                        "a recipe field set here wins over the recipe; stream_shards and stream_buffer_rows "
                        "shape the streamed order (docs/scale.md)")
    p.add_argument("--run", required=True, help="output folder of the run")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run from RUN's checkpoints (with the settings it was "
                        "trained with: a changed one is refused)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    values: dict = {"data": args.data, "store": args.store, "run": args.run, "resume": args.resume,
                    "seeds": args.seeds, "progress": not args.no_progress,
                    **{name: getattr(args, name) for name in _FIELD_FLAGS if getattr(args, name) is not None}}
    if args.lr is not None:  # one rate for the three stages unless --set says otherwise
        values.update(lr=args.lr)
    for name in ("dataset", "ablation", "model"):
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    values.update(parse_set(args.set))
    return TrainConfig.from_mapping(values)


def _compare(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from daian.models import registry
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


def interrupted_message(args: argparse.Namespace, argv: list[str]) -> str:
    """After a Ctrl-C: which checkpoints are kept under RUN, and the command that resumes."""
    run_dir = Path(args.run)
    kept = sorted(p.parent for p in run_dir.glob(f"**/{RF.CHECKPOINT}/{RF.CHECKPOINT_CONFIG}")) \
        if run_dir.is_dir() else []
    tail = shlex.join(argv if "--resume" in argv else [*argv, "--resume"])
    if not kept:
        return (f"no epoch had finished, so no checkpoint was kept under {run_dir}; start again with: "
                f"{PROG} {shlex.join(argv)}")
    names = ", ".join(str(p.relative_to(run_dir)) for p in kept[:4]) + (f" and {len(kept) - 4} more" if len(kept) > 4 else "")
    return (f"kept {len(kept)} checkpoint(s) of the last finished epoch under {run_dir} ({names}); "
            f"resume with: {PROG} {tail}")


class _Stderr(logging.Handler):
    """The trainer's log (the recipe line, warnings) on whatever sys.stderr is now, as `PROG: ...`."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"{PROG}: {record.getMessage()}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parsers: list[argparse.ArgumentParser] = []

    def factory() -> argparse.ArgumentParser:
        parsers.append(build_parser())
        return parsers[0]

    def body(args: argparse.Namespace) -> int:
        parser = parsers[0]
        if (args.model is None) == (args.compare is None):
            fail(parser, "give exactly one of --model and --compare")
        if args.ablations is not None and args.compare is None:
            fail(parser, "--ablations goes with --compare")
        return _compare(parser, args) if args.compare is not None else _train(args)

    logger, handler = logging.getLogger("daian"), _Stderr(logging.INFO)
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        return run(factory, argv, body, interrupted=lambda args: interrupted_message(args, argv))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


if __name__ == "__main__":
    sys.exit(main())
