"""What `--resume` accepts: the settings a checkpoint was trained with, and nothing changed.

A resumed run takes the checkpoint's values for the recipe fields it leaves unset (so a run from
before recipes, whose stored settings were the papers', resumes as it was built), and refuses,
in one line naming the setting and both values, any training setting that differs from the
stored one. Execution-only settings (where and how fast it runs) may change. One change is
allowed: more CTR epochs (`epochs`) with constant rates (`lr_decay=none`), since that run equals
one trained that long from the start (the shuffle depends only on seed and epoch).
"""
from __future__ import annotations

import os
from pathlib import Path

from daian.training.recipe import RECIPE_FIELDS

# Settings that change where and how fast a run goes, not its results.
EXECUTION_ONLY = frozenset({"progress", "resume", "num_workers", "device", "cpu_threads", "eval_batch_size",
                            "run", "seeds", "checkpoint_steps", "memory_budget_gb"})
# Compared elsewhere: the model settings through the resolved model config (trainer._restore).
COMPARED_ELSEWHERE = frozenset({"model_settings"})
PATHS = ("data", "store", "dataset")
# Compared first, so a refusal names the setting a user gives (lr before the stage rates it sets)
FIRST = ("model", "ablation", "recipe", "optimizer", "lr", "batch_size", "epochs")
FLAGS = {"recipe", "optimizer", "lr", "batch_size", "epochs", "max_hist", "max_subseq", "dataset", "data", "store"}


def fill_from_checkpoint(config, stored: dict):
    """`config` with its unset recipe fields taken from the checkpoint's training settings."""
    values = {name: stored[name] for name in RECIPE_FIELDS
              if getattr(config, name) is None and stored.get(name) is not None}
    if config.lr is not None:  # an explicit lr sets the stage rates it is not given (recipe.given_settings)
        values = {k: v for k, v in values.items() if k not in ("uim_lr", "die_lr")}
    return config.replace(**values) if values else config


def _same_path(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return os.path.realpath(Path(a)) == os.path.realpath(Path(b))


def refuse_changes(checkpoint: Path, stored: dict, stored_seed, config, seed: int) -> None:
    """Raise ValueError (one line) when `config` or `seed` differs from what the checkpoint holds."""
    where = f"{checkpoint}: --resume refused"
    if stored_seed is not None and int(stored_seed) != int(seed):
        raise ValueError(f"{where}: seed was {stored_seed}, now {seed}; resume with the seed it was trained with")
    current = config.to_dict()
    for name in [*FIRST, *sorted(set(current) - set(FIRST))]:
        if name in EXECUTION_ONLY or name in COMPARED_ELSEWHERE or name not in stored:
            continue  # a field added since the checkpoint was written keeps its old meaning
        old, new = stored[name], current[name]
        if name in PATHS:
            if _same_path(old, new):
                continue
        elif old == new or (isinstance(old, (int, float)) and isinstance(new, (int, float))
                            and not isinstance(old, bool) and float(old) == float(new)):
            continue
        if name == "epochs" and current.get("lr_decay") == "none" and new is not None and old is not None \
                and new > old:
            continue  # training further at constant rates equals a longer run from the start
        how = f"--{name.replace('_', '-')} or --set {name}=..." if name in FLAGS else f"--set {name}=..."
        raise ValueError(f"{where}: setting '{name}' was {old!r} when the run was trained, now {new!r}; "
                         f"resume with the same {name} ({how}), or train into another --run folder")
