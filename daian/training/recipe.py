"""Training recipes: the optimiser settings a run gets when it does not set them itself.

The papers' settings (Adagrad, lr 0.05, batch 4096) were made for logs of billions of impressions;
on a small log they leave a model at the base rate (docs/training.md, "Small worlds"). So
`TrainConfig.recipe` chooses:

- `paper`: Adagrad, lr 0.05 for every stage, batch 4096, one epoch per stage;
- `small`: Adam at lr 0.001 for every stage (the DEI2N paper's rate), batch 512 halved on small
  logs until an epoch has `SMALL_MIN_STEPS_PER_EPOCH` steps (never below `SMALL_MIN_BATCH`), and
  as many epochs (every stage alike) as make `SMALL_MIN_STEPS` steps, at most `SMALL_MAX_EPOCHS`;
- `auto`: `paper` when one epoch at batch 4096 has at least `PAPER_MIN_STEPS` steps, else `small`.

Only the fields a run leaves unset (None) take the recipe's values: an explicitly given setting
always wins. `resolve_recipe` returns the config with every recipe field filled in, and what it
chose and why (metrics.json's "recipe").
"""
from __future__ import annotations

import math

RECIPES = ("auto", "paper", "small")
# The fields a recipe fills in; None in a TrainConfig means "the recipe's".
RECIPE_FIELDS = ("optimizer", "lr", "uim_lr", "die_lr", "batch_size", "epochs", "uim_epochs", "die_epochs")

PAPER = {"optimizer": "adagrad", "lr": 0.05, "batch_size": 4096, "epochs": 1}
SMALL = {"optimizer": "adam", "lr": 1e-3, "batch_size": 512, "epochs": 1}
# auto: the paper's recipe from 2,000 steps per epoch at batch 4096 (8.2M training rows, 23 times
# the demo world, whose 88 steps leave DIN at the base rate); below, the small one.
PAPER_MIN_STEPS = 2000
# The small recipe (measurements in docs/training.md, "Small worlds"): it halves its batch (from
# 512) until an epoch has SMALL_MIN_STEPS_PER_EPOCH steps, never below SMALL_MIN_BATCH, and trains
# as many epochs as make SMALL_MIN_STEPS steps, at most SMALL_MAX_EPOCHS (the demo world's 702
# steps at batch 512: one epoch, as measured there; the tiny world's 9,011 rows: batch 64, 4 epochs).
SMALL_MIN_STEPS_PER_EPOCH = 100
SMALL_MIN_BATCH = 32
SMALL_MIN_STEPS = 500
SMALL_MAX_EPOCHS = 20


def steps_per_epoch(rows: int, batch_size: int) -> int:
    return math.ceil(rows / batch_size) if rows > 0 else 0


def small_schedule(rows: int) -> tuple[int, int]:
    """(batch size, epochs) of the small recipe for `rows` training rows."""
    batch = SMALL["batch_size"]
    while batch > SMALL_MIN_BATCH and steps_per_epoch(rows, batch) < SMALL_MIN_STEPS_PER_EPOCH:
        batch //= 2
    steps = steps_per_epoch(rows, batch)
    epochs = min(max(SMALL["epochs"], math.ceil(SMALL_MIN_STEPS / steps)), SMALL_MAX_EPOCHS) if steps else 1
    return batch, epochs


def recipe_values(name: str, rows: int | None = None) -> dict:
    """Every recipe field's value under recipe `name` ("paper", or "small" for `rows` rows);
    the three stages share the rate and the number of epochs."""
    if name == "paper":
        base = dict(PAPER)
    elif name == "small":
        batch, epochs = small_schedule(int(rows or 0))
        base = {**SMALL, "batch_size": batch, "epochs": epochs}
    else:
        raise ValueError(f"recipe values exist for 'paper' and 'small', not {name!r}")
    return {**base, "uim_lr": base["lr"], "die_lr": base["lr"],
            "uim_epochs": base["epochs"], "die_epochs": base["epochs"]}


def choose(asked: str, rows: int) -> tuple[str, str]:
    """(recipe used, reason) for recipe `asked` on `rows` training rows."""
    if asked not in RECIPES:
        raise ValueError(f"recipe must be one of {list(RECIPES)}, got {asked!r}")
    if asked != "auto":
        return asked, f"asked for {asked}"
    steps = steps_per_epoch(rows, PAPER["batch_size"])
    if steps >= PAPER_MIN_STEPS:
        return "paper", (f"auto: {steps:,} steps per epoch at batch {PAPER['batch_size']} >= "
                         f"{PAPER_MIN_STEPS:,}: paper recipe")
    return "small", (f"auto: {steps:,} steps per epoch at batch {PAPER['batch_size']} < "
                     f"{PAPER_MIN_STEPS:,}: small recipe")


def given_settings(config) -> dict:
    """The recipe fields `config` sets itself (an explicit lr also sets the stages' rates that
    are not given their own, so DAIAN's three stages stay at one rate)."""
    given = {name: getattr(config, name) for name in RECIPE_FIELDS if getattr(config, name) is not None}
    if "lr" in given:
        for stage in ("uim_lr", "die_lr"):
            given.setdefault(stage, given["lr"])
    return given


def fill_recipe(config, values: dict) -> dict:
    """Every recipe field: `config`'s own where set, else `values`'."""
    return {**values, **given_settings(config)}


def resolve_recipe(config, rows: int):
    """(config with every recipe field set, metrics.json's "recipe" record) for `rows` training rows.

    The record: {"asked", "used", "reason", "rows", "settings": the resolved recipe fields,
    "overridden": the fields set explicitly to another value than the recipe's}."""
    used, reason = choose(config.recipe, rows)
    values = recipe_values(used, rows)
    given = given_settings(config)
    settings = {**values, **given}
    overridden = sorted(k for k, v in given.items() if v != values[k])
    record = {"asked": config.recipe, "used": used, "reason": reason,
              "rows": int(rows), "settings": settings, "overridden": overridden}
    return config.replace(**settings), record


def describe(record: dict, stages: bool = False) -> str:
    """One log line: the recipe, why, and what it set (`stages`: also DAIAN's stages 1 and 2)."""
    s = record["settings"]
    text = (f"recipe {record['used']} ({record['reason']}): {s['optimizer']} lr {s['lr']:g}, batch "
            f"{s['batch_size']}, {s['epochs']} epoch(s)")
    if stages:
        text += (f" (DAIAN stages 1-2: {s['uim_epochs']} and {s['die_epochs']} epoch(s) at lr "
                 f"{s['uim_lr']:g} and {s['die_lr']:g})")
    steps = steps_per_epoch(record["rows"], s["batch_size"])
    text += f"; {steps:,} steps per epoch on {record['rows']:,} training rows"
    if record["overridden"]:
        text += f"; set explicitly: {', '.join(record['overridden'])}"
    return text
