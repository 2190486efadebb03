"""The run folder, `train-daian`'s output: its layout, and its one writer and reader.

`train-daian` leaves three layouts:
- a single run with one seed: RUN/predictions.parquet, RUN/metrics.json, RUN/checkpoint/;
- a single run with several seeds: RUN/seed-S/ each holding the files above, RUN/metrics.json
  (the mean and std over seeds);
- a comparison (`--compare`): RUN/compare.json, RUN/compare.md and RUN/<name>/ per model or
  ablation, each one of the layouts above.
A run's model and ablation come from its metrics.json, else from its folder name
(`daian-no-uim` -> model daian, ablation no-uim). The checkpoint folder's own files are written
and read by `daian.training.checkpoint`. The trainer writes through `write_predictions` and
`write_json`; the report reads through `discover_runs` and `read_predictions`. This module needs
neither torch nor a model.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

PREDICTIONS = "predictions.parquet"
METRICS = "metrics.json"
CHECKPOINT = "checkpoint"
CHECKPOINT_CONFIG = "config.json"  # inside CHECKPOINT/: the training and model settings
# Readable checkpoint formats, the one written last. 2: each model's own config class (format 1
# saved one config with every model's fields and DAIAN's parameters without module prefixes).
CHECKPOINT_FORMATS = ("daian-checkpoint/1", "daian-checkpoint/2")
COMPARE_JSON = "compare.json"
COMPARE_MD = "compare.md"
PREDICTION_COLUMNS = ("request_id", "user_id", "item_id", "clicked", "score")
INTENT_COLUMN = "intent_pred"  # (n,) list of floats per row, models that predict an intent only
SEED_PREFIX = "seed-"  # RUN/seed-S/: one seed of a several-seed run
_SEED = re.compile(rf"^{SEED_PREFIX}(-?\d+)$")


def seed_dir(run: Path, seed: int) -> Path:
    """The folder of one seed of a several-seed run."""
    return Path(run) / f"{SEED_PREFIX}{seed}"


def run_of_seed(folder: Path) -> Path:
    """The run folder a seed folder belongs to (the folder itself for a one-seed run)."""
    folder = Path(folder)
    return folder.parent if _SEED.match(folder.name) else folder


def run_name(model: str, ablation: str | None) -> str:
    """A run's folder name in a comparison: the model, or model-ablation."""
    return model if ablation is None else f"{model}-{ablation}"


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if math.isnan(x) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    return x


def write_json(path: Path, value: dict) -> Path:
    """metrics.json or compare.json: numpy scalars as numbers, NaN as null, indented."""
    Path(path).write_text(json.dumps(_jsonable(value), indent=2) + "\n")
    return Path(path)


def write_predictions(folder: Path, meta: dict[str, np.ndarray], scores: np.ndarray,
                      intent: np.ndarray | None) -> Path:
    """RUN[/seed-S]/predictions.parquet: request_id, user_id, item_id, clicked, score (+ intent_pred).

    `meta` holds the test rows' request_id, user_id, item_id and clicked, in the scored order.
    """
    columns = {"request_id": pa.array(meta["request_id"], pa.int64()),
               "user_id": pa.array(meta["user_id"], pa.int64()),
               "item_id": pa.array(meta["item_id"], pa.int64()),
               "clicked": pa.array(meta["clicked"], pa.int8()),
               "score": pa.array(scores.astype(np.float32), pa.float32())}
    if intent is not None:
        n = intent.shape[1]
        flat = pa.array(intent.astype(np.float32).ravel(), pa.float32())
        offsets = pa.array(np.arange(0, intent.size + 1, n, dtype=np.int32))
        columns[INTENT_COLUMN] = pa.ListArray.from_arrays(offsets, flat)
    path = Path(folder) / PREDICTIONS
    pq.write_table(pa.table(columns), path)
    return path


@dataclass
class Run:
    """One trained model (or ablation): its name and one folder per seed."""

    name: str  # e.g. "daian", "daian-no-uim"
    model: str  # din | dei2n | daian (or whatever the metrics.json names)
    ablation: str | None
    seeds: dict[int, Path] = field(default_factory=dict)  # seed -> folder with predictions.parquet

    @property
    def is_full_model(self) -> bool:
        return self.ablation is None


@dataclass
class Predictions:
    """One seed's test predictions (rows in the file's order)."""

    request_id: np.ndarray  # (N,) int64
    user_id: np.ndarray  # (N,) int64
    item_id: np.ndarray  # (N,) int64
    clicked: np.ndarray  # (N,) float64 0/1
    score: np.ndarray  # (N,) float64 click probability
    intent_pred: np.ndarray | None  # (N, n) float64, DAIAN only
    source: Path


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


def read_checkpoint_config(checkpoint: Path) -> dict:
    """CHECKPOINT/config.json, its format checked (the training config under "train", the model's
    under "model")."""
    path = Path(checkpoint) / CHECKPOINT_CONFIG
    meta = _read_json(path)
    if meta.get("format") not in CHECKPOINT_FORMATS:
        raise ValueError(f"{path}: format {meta.get('format')!r}, expected one of {list(CHECKPOINT_FORMATS)}")
    return meta


def _name_parts(name: str) -> tuple[str, str | None]:
    model, sep, ablation = name.partition("-")
    return model, (ablation if sep else None)


def _seed_of(folder: Path, default: int) -> int:
    metrics = folder / METRICS
    if metrics.is_file():
        seed = _read_json(metrics).get("seed")
        if isinstance(seed, int):
            return seed
    return default


def read_run(folder: Path, name: str | None = None) -> Run:
    """One run folder (single seed, or seed-S/ sub-folders) -> Run; ValueError when it holds none."""
    folder = Path(folder)
    seeds: dict[int, Path] = {}
    if (folder / PREDICTIONS).is_file():
        seeds[_seed_of(folder, 0)] = folder
    for sub in sorted(folder.iterdir()) if folder.is_dir() else []:
        match = _SEED.match(sub.name)
        if match and (sub / PREDICTIONS).is_file():
            seeds[int(match.group(1))] = sub
    if not seeds:
        raise ValueError(f"{folder}: no {PREDICTIONS} (nor seed-S/{PREDICTIONS}); is this a finished run?")
    meta = {}
    for candidate in [folder / METRICS, *(p / METRICS for p in seeds.values())]:
        if candidate.is_file():
            meta = _read_json(candidate)
            break
    name = name or (_run_name(meta) if meta.get("model") else folder.name)
    model, ablation = _name_parts(name)
    if meta.get("model"):
        model, ablation = str(meta["model"]), meta.get("ablation") or None
    return Run(name=name, model=model, ablation=ablation, seeds=dict(sorted(seeds.items())))


def _run_name(meta: dict) -> str:
    return run_name(meta["model"], meta.get("ablation") or None)


def is_run(folder: Path) -> bool:
    folder = Path(folder)
    return (folder / PREDICTIONS).is_file() or any(
        _SEED.match(p.name) and (p / PREDICTIONS).is_file() for p in folder.glob(f"{SEED_PREFIX}*"))


def discover_runs(folder: Path) -> list[Run]:
    """Every run under `folder`: a comparison's runs, or the folder itself when it is one run."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such run folder")
    compare = folder / COMPARE_JSON
    if compare.is_file():
        names = list(_read_json(compare).get("runs", {}))
        runs = []
        for name in names:
            sub = folder / name
            if not is_run(sub):
                raise ValueError(f"{compare} lists run {name!r} but {sub} holds no {PREDICTIONS}")
            runs.append(read_run(sub, name))
        if runs:
            return runs
    if is_run(folder):
        return [read_run(folder)]
    runs = [read_run(sub, sub.name) for sub in sorted(folder.iterdir()) if sub.is_dir() and is_run(sub)]
    if not runs:
        raise ValueError(f"{folder}: neither a comparison (compare.json), nor a run, nor a folder of runs "
                         f"(no {PREDICTIONS} found)")
    return runs


def collect_runs(folders: list[Path]) -> list[Run]:
    """The runs of several folders; a name found twice is an error (the tables would mix them up)."""
    runs: list[Run] = []
    where: dict[str, Path] = {}
    for folder in folders:
        for run in discover_runs(folder):
            if run.name in where:
                raise ValueError(f"run name {run.name!r} appears in both {where[run.name]} and {folder}; "
                                 "give each compared run folder once")
            where[run.name] = Path(folder)
            runs.append(run)
    return runs


def read_predictions(folder: Path) -> Predictions:
    """RUN[/seed-S]/predictions.parquet -> Predictions; ValueError names the file and the column."""
    path = Path(folder) / PREDICTIONS
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ValueError(f"{path}: not a readable Parquet file ({exc})") from exc
    missing = [c for c in PREDICTION_COLUMNS if c not in table.column_names]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; found {table.column_names}")
    cols = {}
    for name in PREDICTION_COLUMNS:
        col = table.column(name)
        if col.null_count:
            raise ValueError(f"{path}: column '{name}' holds {col.null_count} null(s)")
        cols[name] = col.to_numpy()
    score = cols["score"].astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(score) | (score < 0) | (score > 1))
    if bad.size:
        raise ValueError(f"{path}: column 'score': {bad.size} value(s) outside [0, 1]; first row(s) "
                         f"{bad[:5].tolist()} (values {score[bad[:5]].tolist()})")
    clicked = cols["clicked"].astype(np.float64)
    bad = np.flatnonzero((clicked != 0) & (clicked != 1))
    if bad.size:
        raise ValueError(f"{path}: column 'clicked': {bad.size} value(s) not 0/1; first row(s) {bad[:5].tolist()}")
    intent = None
    if INTENT_COLUMN in table.column_names:
        intent = list_matrix(table.column(INTENT_COLUMN), f"{path}: column '{INTENT_COLUMN}'")
    return Predictions(cols["request_id"].astype(np.int64), cols["user_id"].astype(np.int64),
                       cols["item_id"].astype(np.int64), clicked, score, intent, path)


def list_matrix(column: pa.ChunkedArray | pa.Array, what: str) -> np.ndarray:
    """A list<float> column whose rows all have the same length n -> (N, n) float64."""
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if column.null_count:
        raise ValueError(f"{what}: {column.null_count} null row(s)")
    if pa.types.is_fixed_size_list(column.type):
        n = column.type.list_size
        return column.flatten().to_numpy(zero_copy_only=False).astype(np.float64).reshape(-1, n)
    if not (pa.types.is_list(column.type) or pa.types.is_large_list(column.type)):
        raise ValueError(f"{what}: type {column.type}, expected a list of floats")
    offsets = column.offsets.to_numpy()
    lengths = np.diff(offsets)
    if lengths.size and (lengths != lengths[0]).any():
        row = int(np.flatnonzero(lengths != lengths[0])[0])
        raise ValueError(f"{what}: rows differ in length ({lengths[0]} in row 0, {lengths[row]} in row {row})")
    n = int(lengths[0]) if lengths.size else 0
    values = column.flatten().to_numpy(zero_copy_only=False).astype(np.float64)
    return values.reshape(-1, n) if n else np.zeros((len(column), 0))


def checkpoint_train_config(run: Run) -> dict:
    """The training settings a run recorded (checkpoint/config.json "train"), or {}."""
    for folder in run.seeds.values():
        if (folder / CHECKPOINT / CHECKPOINT_CONFIG).is_file():
            return dict(read_checkpoint_config(folder / CHECKPOINT).get("train") or {})
    return {}


def recorded_metrics(folder: Path) -> dict:
    """The "ctr" block of a seed's metrics.json (what training reported), or {}."""
    path = Path(folder) / METRICS
    return dict(_read_json(path).get("ctr") or {}) if path.is_file() else {}
