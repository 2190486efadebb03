"""What the runs recorded about their training, read back for the report.

- The labelling each run was trained on: `checkpoint/config.json` names its labelled folder
  (`train.data`), and a metrics.json may record the labelling's levels and bin edges under `data`.
  `check_labelling` refuses a labelled folder (`--data`) that differs from it in what identifies a
  labelling: levels, bin edges, split boundary, the sha256 of the dataset files it read and of the
  embedding store (each compared where both manifests record it).
- What training warned about (metrics.json `warnings`, a list of strings) and the recipe it chose
  (metrics.json `recipe`: {"asked", "used", "reason", "settings"}). Runs written before these keys
  existed have none: nothing is shown for them.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from daian.run_folder import CHECKPOINT, CHECKPOINT_CONFIG, METRICS, Run, read_checkpoint_config, run_of_seed
from intent_labels.labelled import EDGES_KEY, INPUTS_KEY, LEVELS_KEY, MANIFEST, LabelledFolder

# What identifies a labelling: (name in messages, path of keys in the manifest).
IDENTITY: tuple[tuple[str, tuple[str, ...]], ...] = (
    (LEVELS_KEY, (LEVELS_KEY,)),
    (EDGES_KEY, (EDGES_KEY,)),
    ("split boundary_ts", ("split", "boundary_ts")),
    (f"{INPUTS_KEY} sha256", (INPUTS_KEY,)),
    ("store sha256", ("store", "sha256")),
)
EDGE_TOL = 1e-9  # bin edges written by the same labelling compare equal; any refit moves them far more


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


def _lookup(record: dict, keys: tuple[str, ...]):
    for key in keys:
        if not isinstance(record, dict) or record.get(key) is None:
            return None
        record = record[key]
    return record


def _short(value) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 80 else text[:77] + "..."


def _hash_differences(name: str, a: dict, b: dict) -> list[str]:
    if not isinstance(a, dict) or not isinstance(b, dict):
        return [] if a == b else [f"{name} {_short(a)} vs {_short(b)}"]
    out = []
    for file in sorted(set(a) | set(b)):
        if a.get(file) != b.get(file):
            out.append(f"{name} of {file}: {str(a.get(file, 'absent'))[:12]} vs {str(b.get(file, 'absent'))[:12]}")
    return out


def labelling_differences(recorded: dict, given: dict) -> list[str]:
    """What differs between two labelled manifests (or a run's record of one), in IDENTITY's terms;
    a key that either side lacks is not compared."""
    out = []
    for name, keys in IDENTITY:
        a, b = _lookup(recorded, keys), _lookup(given, keys)
        if a is None or b is None:
            continue
        if keys == (EDGES_KEY,):
            ea, eb = np.asarray(a, np.float64), np.asarray(b, np.float64)
            if ea.shape != eb.shape or not np.allclose(ea, eb, rtol=0, atol=EDGE_TOL):
                out.append(f"{EDGES_KEY} {[round(float(e), 4) for e in ea]} vs {[round(float(e), 4) for e in eb]}")
        elif isinstance(a, dict) or isinstance(b, dict):
            out += _hash_differences(name, a, b)
        elif a != b:
            out.append(f"{name} {_short(a)} vs {_short(b)}")
    return out


def _seed_records(runs: list[Run]):
    """(run, seed, seed folder, checkpoint config or {}, metrics.json or {}) of every run's seed."""
    for run in runs:
        for seed, folder in run.seeds.items():
            ckpt = folder / CHECKPOINT
            config = read_checkpoint_config(ckpt) if (ckpt / CHECKPOINT_CONFIG).is_file() else {}
            metrics = _read_json(folder / METRICS) if (folder / METRICS).is_file() else {}
            yield run, seed, folder, config, metrics


def check_labelling(runs: list[Run], labelled: LabelledFolder, from_flag: bool = True) -> list[str]:
    """Refuse (ValueError, one line naming both folders and what differs) a labelled folder that
    is not the one the runs were trained on; returns notes on what could not be compared (a
    recorded folder that no longer exists). `from_flag`: the folder came from `--data` (else from
    the first run's record, and another run disagrees with it)."""
    given = labelled.manifest
    what = (f"--data {labelled.path}" if from_flag
            else f"the labelled folder {labelled.path} (recorded by {runs[0].name})")
    notes: list[str] = []
    seen: set[Path] = set()
    for run, seed, folder, config, metrics in _seed_records(runs):
        where = f"{run.name} seed {seed}"
        recorded_data = (config.get("train") or {}).get("data") if isinstance(config.get("train"), dict) else None
        record = metrics.get("data") if isinstance(metrics.get("data"), dict) else {}
        diffs = labelling_differences(record, given)  # what the run itself wrote down, if anything
        source = f"{folder / METRICS}"
        if not diffs and recorded_data:
            data = Path(recorded_data)
            if data.resolve() == labelled.path.resolve() or data.resolve() in seen:
                continue
            if (data / MANIFEST).is_file():
                try:
                    other = LabelledFolder.open(data)
                except ValueError as exc:
                    notes.append(f"{where} was trained on {data}, whose manifest cannot be read ({exc}); "
                                 f"the labelling was not compared")
                    continue
                diffs = labelling_differences(other.manifest, given)
                source = f"{folder / CHECKPOINT / CHECKPOINT_CONFIG}"
                if not diffs:
                    seen.add(data.resolve())
            else:
                notes.append(f"{where} was trained on {data}, which no longer holds a {MANIFEST}: the "
                             f"labelling of {labelled.path} could not be compared with it")
                seen.add(data.resolve())
        if diffs:
            trained = recorded_data or "another labelling"
            raise ValueError(f"{what} is not the labelling the runs were trained on: {where} "
                             f"was trained on {trained} (recorded in {source}); they differ in "
                             + "; ".join(diffs[:4]) + (f" and {len(diffs) - 4} more" if len(diffs) > 4 else "")
                             + "; pass the labelled folder the runs were trained on")
    return notes


# ----------------------------------------------------------------------------- warnings and recipe


def _warning_texts(value) -> list[str]:
    """metrics.json "warnings" as a list of non-empty strings (a lone string is one warning)."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value if isinstance(value, list) else [value]
    return [" ".join(str(v).split()) for v in items if str(v).strip()]


@dataclass
class TrainingNotes:
    """The runs' warnings (one entry per distinct text and run, with the seeds that wrote it) and recipes."""

    warnings: list[dict] = field(default_factory=list)  # {"run", "seeds", "text"}
    recipes: dict[str, list[dict]] = field(default_factory=dict)  # run -> distinct recipe records


def training_notes(runs: list[Run]) -> TrainingNotes:
    """Every non-empty warning and every recipe the runs' metrics.json record (seed folders, and
    the run folder's own summary of a several-seed run)."""
    notes = TrainingNotes()
    for run in runs:
        by_text: dict[str, list] = {}
        folders = [(seed, folder) for seed, folder in run.seeds.items()]
        top = run_of_seed(next(iter(run.seeds.values())))
        if all(folder != top for _, folder in folders):
            folders.append((None, top))  # RUN/metrics.json of a several-seed run
        for seed, folder in folders:
            path = folder / METRICS
            metrics = _read_json(path) if path.is_file() else {}
            for text in _warning_texts(metrics.get("warnings")):
                seeds = by_text.setdefault(text, [])
                if seed is not None and seed not in seeds:
                    seeds.append(seed)
            recipe = metrics.get("recipe")
            if isinstance(recipe, dict) and recipe and recipe not in notes.recipes.get(run.name, []):
                notes.recipes.setdefault(run.name, []).append(recipe)
        notes.warnings += [{"run": run.name, "seeds": sorted(seeds), "text": text} for text, seeds in by_text.items()]
    return notes


def recipe_text(recipes: list[dict]) -> str:
    """'used (asked: reason)' per distinct recipe of a run, '' when none was recorded."""
    parts = []
    for r in recipes:
        used, asked, reason = r.get("used"), r.get("asked"), r.get("reason")
        text = str(used) if used is not None else "?"
        extra = [f"asked {asked}"] if asked is not None and asked != used else []
        if reason:
            extra.append(" ".join(str(reason).split()))
        parts.append(text + (f" ({'; '.join(extra)})" if extra else ""))
    return " / ".join(parts)
