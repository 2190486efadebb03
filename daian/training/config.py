"""The training configuration: one typed dataclass that `train-daian`, scripts and tests fill in.

`TrainConfig` holds everything a run needs besides the model's own architecture, which lives in
the model's config class (`DINConfig`, `DEI2NConfig`, `DAIANConfig`, found through
`daian.models.registry`); `model_settings` overrides that config's fields by name (checked against
its dataclass fields, so a misspelt key is an error, not a silently ignored setting).
The optimiser settings (optimizer, rates, batch size, epochs) default to None: the `recipe`
decides them from the train split's size (`daian.training.recipe`: the papers' Adagrad at lr 0.05
and batch 4096 on large logs, Adam at lr 0.001 on small ones), and an explicitly given value
always wins. `recipe="paper"` fills them in at once; `auto` and `small` once the data is read
(`resolve_recipe`, called by the trainer).
`from_mapping` and `parse_set` turn `key=value` strings (CLI `--set`) into typed field values.
"""
from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daian.training.recipe import RECIPE_FIELDS, RECIPES, fill_recipe, recipe_values

OPTIMIZERS = ("adagrad", "adam")
LR_DECAYS = ("none", "linear")
DEVICES = ("auto", "cpu", "cuda")
STREAM_MODES = ("auto", "on", "off")


@dataclass
class TrainConfig:
    """One training run (one model, one or more seeds)."""

    # --- inputs and outputs
    data: str | Path  # label-intents output folder (train/test .parquet files or folders of parts, manifest.json): a path or a URI pyarrow reads (file://, s3://, ...)
    store: Path  # embedding store folder: the frozen multimodal item vectors
    run: Path  # output folder: checkpoint/, metrics.json, predictions.parquet (seed-S/ sub-runs for several seeds)
    dataset: Path | None = None  # dataset folder (items/users.parquet, truth/); None = read it from the labelled manifest
    # --- model
    model: str = "daian"  # a registered model: din | dei2n | daian (daian.models.registry)
    ablation: str | None = None  # one of the model's ablations (its config class's `ablations`), None = full model
    model_settings: dict[str, Any] = field(default_factory=dict)  # model config field -> value overrides
    # --- optimisation (None = the recipe's; paper: batch 4096, Adagrad, lr 0.05 for every model)
    seeds: tuple[int, ...] = (1,)  # one sub-run per seed; results reported as mean and std
    recipe: str = "auto"  # auto (paper from 2,000 steps per epoch at batch 4096, else small) | paper | small (docs/training.md)
    batch_size: int | None = None  # training rows per step (global, over all processes)
    optimizer: str | None = None  # adagrad (the papers) | adam
    lr: float | None = None  # learning rate of the CTR stage
    epochs: int | None = None  # CTR epochs (DAIAN's stage 3; the only stage of DIN and DEI2N)
    # --- DAIAN's stages (read by its schedule, daian.models.daian_stages; None = the recipe's)
    uim_epochs: int | None = None  # DAIAN stage 1: UIM pre-training on KL(p || p_hat)
    uim_lr: float | None = None  # DAIAN stage 1 learning rate (None: lr when lr is given, else the recipe's)
    die_epochs: int | None = None  # DAIAN stage 2: DIE pre-training with the true intent in place of p_hat
    die_lr: float | None = None  # DAIAN stage 2 learning rate (None: lr when lr is given, else the recipe's)
    uim_lr_factor: float = 0.1  # DAIAN stage 3: UIM learns at lr * this (the paper: "a smaller learning rate")
    lr_decay: str = "none"  # none (constant rates, the papers') | linear (each stage's rates fall to 0 over its steps)
    init_bias: bool = True  # start the logit's bias at the train split's base-rate log-odds (not 0, i.e. CTR 50%)
    eval_batch_size: int = 16384  # rows per step when scoring the test split
    # --- data shaping
    max_hist: int = 50  # behaviour sequence length L (paper: at most 50 items)
    max_subseq: int = 20  # multimodal / category subsequence length T
    max_page: int = 20  # pages above this share one embedding
    max_dt: int = 20160  # minutes (14 days): older history intervals are clipped to it
    price_buckets: int = 10  # price -> quantile bucket over the train split's items
    # --- data path (docs/scale.md)
    stream: str = "auto"  # auto (stream once the in-memory path would pass memory_budget_gb) | on | off; a run records on/off
    memory_budget_gb: float | None = None  # what the in-memory path may hold; None = half of physical memory
    stream_shards: int = 1  # virtual shards of the streamed train split: a multiple of the process count; the batches depend on it, not on the processes
    stream_buffer_rows: int = 262_144  # shuffle window: rows read, tensorised and permuted together (over all shards)
    checkpoint_steps: int = 0  # also checkpoint every this many steps inside an epoch, so --resume continues mid-epoch (0: at epoch ends only)
    max_steps: int = 0  # end every epoch after this many steps (0: whole epochs); smoke runs and memory benchmarks, not results
    # --- execution
    device: str = "auto"  # auto (accelerate decides) | cpu | cuda
    num_workers: int = 0  # DataLoader workers assembling batches (0 = in the training process)
    cpu_threads: int = 0  # torch intra-op threads (0 = torch's default; 1 avoids oversubscribing a shared CPU)
    deterministic: bool = True  # torch deterministic algorithms: bit-identical reruns and resumes (multi-threaded CPU scatter-adds otherwise vary in the last bit)
    progress: bool = True  # tqdm progress bars
    resume: bool = False  # continue from RUN/checkpoint (epoch granularity) instead of refusing a non-empty run

    def __post_init__(self) -> None:
        from common.fs import is_uri

        self.data = str(self.data) if is_uri(self.data) else Path(self.data)
        self.store = Path(self.store)
        self.run = Path(self.run)
        self.dataset = None if self.dataset is None else Path(self.dataset)
        self.seeds = tuple(int(s) for s in self.seeds)
        self.model_settings = dict(self.model_settings)
        from daian.models import registry

        if self.model not in registry.names():
            raise ValueError(f"model must be one of {registry.names()}, got {self.model!r}")
        if self.ablation in ("", "none"):
            self.ablation = None
        if not self.seeds:
            raise ValueError("seeds must name at least one seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds repeat a value: {list(self.seeds)}")
        if self.recipe not in RECIPES:
            raise ValueError(f"recipe must be one of {list(RECIPES)}, got {self.recipe!r}")
        if self.optimizer is not None and self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.lr_decay not in LR_DECAYS:
            raise ValueError(f"lr_decay must be one of {list(LR_DECAYS)}, got {self.lr_decay!r}")
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {list(DEVICES)}, got {self.device!r}")
        for name in ("batch_size", "eval_batch_size", "max_hist", "max_subseq", "max_page",
                     "max_dt", "price_buckets"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.stream not in STREAM_MODES:
            raise ValueError(f"stream must be one of {list(STREAM_MODES)}, got {self.stream!r}")
        if self.memory_budget_gb is not None and not self.memory_budget_gb > 0:
            raise ValueError(f"memory_budget_gb must be > 0, got {self.memory_budget_gb}")
        for name in ("stream_shards", "stream_buffer_rows"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("epochs", "uim_epochs", "die_epochs", "num_workers", "cpu_threads", "checkpoint_steps",
                     "max_steps"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("lr", "uim_lr", "die_lr"):
            if getattr(self, name) is not None and not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.uim_lr_factor <= 1:
            raise ValueError(f"uim_lr_factor must be in [0, 1], got {self.uim_lr_factor}")
        if "name" in self.model_settings or "ablation" in self.model_settings:
            raise ValueError("set the model and ablation with `model` / `ablation`, not model_settings")
        if self.recipe == "paper":  # the papers' settings need no data: filled in at once
            for name, value in fill_recipe(self, recipe_values("paper")).items():
                setattr(self, name, value)

    @property
    def resolved(self) -> bool:
        """Whether every recipe field is set (`resolve_recipe` has run, or recipe="paper")."""
        return all(getattr(self, name) is not None for name in RECIPE_FIELDS)

    def model_config(self, data_defaults: dict[str, Any] | None = None):
        """The model's resolved config: its class's defaults, then those of `data_defaults` (what
        the data says, e.g. levels and level edges from the labelled folder) that the class has,
        then `model_settings`; a setting the class does not have raises ValueError."""
        from daian.models import registry

        config_class = registry.get(self.model).config
        known = config_class.field_names() - {"ablation"}
        unknown = sorted(set(self.model_settings) - known)
        if unknown:
            raise ValueError(f"unknown {self.model} setting(s) {unknown}; {config_class.__name__} "
                             f"fields are {sorted(known)}")
        hints = typing.get_type_hints(config_class)
        values = {k: coerce(v, hints[k], f"model.{k}") for k, v in self.model_settings.items()}
        values = {**{k: v for k, v in (data_defaults or {}).items() if k in known}, **values}
        return config_class(ablation=self.ablation, **values)

    def for_model(self, model: str, ablation: str | None = None, **changes) -> "TrainConfig":
        """This config for another model of a comparison: the model settings that model's config
        has are kept, the others (another compared model's) dropped."""
        from daian.models import registry

        known = registry.get(model).config.field_names()
        settings = {k: v for k, v in self.model_settings.items() if k in known}
        return self.replace(model=model, ablation=ablation, model_settings=settings, **changes)

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """JSON-ready dict (paths as strings); `from_mapping(to_dict())` rebuilds the config."""
        out = dataclasses.asdict(self)
        for key, value in out.items():
            if isinstance(value, Path):
                out[key] = str(value)
            elif isinstance(value, tuple):
                out[key] = list(value)
        return out

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> "TrainConfig":
        """Build from a dict of field -> value (strings are parsed by the field's type).

        Keys `model.<field>` go to `model_settings`; any other unknown key raises ValueError.
        """
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        settings = dict(values.get("model_settings") or {})
        for key, value in values.items():
            if key == "model_settings":
                continue
            if key.startswith("model."):
                settings[key[len("model."):]] = value
            elif key in names:
                kwargs[key] = coerce(value, hints[key], key)
            else:
                raise ValueError(f"unknown training setting {key!r}; known: {sorted(names)} "
                                 "(model architecture settings are written model.<field>)")
        kwargs["model_settings"] = settings
        return cls(**kwargs)


def parse_set(items: list[str] | None) -> dict[str, str]:
    """`["a=1", "model.dropout=0.1"]` -> `{"a": "1", "model.dropout": "0.1"}` (values still strings)."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def coerce(value: Any, hint: Any, name: str) -> Any:
    """Convert `value` (often a CLI string) to the annotated type `hint`; ValueError naming `name`."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            if type(None) in args:
                return None
        inner = [a for a in args if a is not type(None)]
        errors = []
        for arg in inner:
            try:
                return coerce(value, arg, name)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError(f"{name}: cannot read {value!r} as {hint} ({'; '.join(errors)})")
    if not isinstance(value, str):
        if origin is tuple and isinstance(value, (list, tuple)):
            inner = args[0] if args else Any
            return tuple(coerce(v, inner, name) for v in value)
        if hint is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if hint is Path and isinstance(value, str | Path):
            return Path(value)
        return value
    text = value.strip()
    try:
        if hint is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true/false")
        if hint is int:
            return int(text)
        if hint is float:
            return float(text)
        if hint is str:
            return text
        if hint is Path:
            return Path(text)
        if origin is tuple:
            inner = args[0] if args else str
            parts = [p for p in text.strip("()[]").split(",") if p.strip()]
            return tuple(coerce(p.strip(), inner, name) for p in parts)
        if origin in (dict, list) or hint in (dict, list):
            return json.loads(text)
        if hint is Any:
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                return text
    except (ValueError, json.JSONDecodeError) as exc:
        raise ValueError(f"{name}: cannot read {value!r} as {getattr(hint, '__name__', hint)} ({exc})") from exc
    raise ValueError(f"{name}: unsupported setting type {hint}")
