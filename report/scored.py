"""Loading the runs for the report: predictions matched to the labelled test rows, metrics recomputed.

Every run's predictions.parquet is read, its rows matched to the labelled test rows by
(request_id, item_id), and its AUC, GAUC and log loss recomputed with `daian.metrics`; the runs'
own metrics.json are only compared against. The sweep runs (one labelling per number of levels n)
are read here too, before anything is drawn, so that a bad folder fails fast.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from daian.run_folder import Run, discover_runs, read_predictions, recorded_metrics
from intent_labels.labelled import LabelledFolder
from report import analysis as A
from report.config import ReportConfig
from report.data import RowIndex, column, intent_matrix

TEST_COLUMNS = ["request_id", "user_id", "item_id", "clicked", "trigger_item_id", "page", "intent", "has_intent"]
AGREE_TOL = 1e-6  # recomputed metrics further than this from a run's metrics.json are reported


@dataclass
class Scored:
    """The main runs' predictions, aligned with the labelled test rows they scored."""

    runs: list[Run]
    test: dict[str, np.ndarray]  # labelled test columns at the scored rows (canonical order)
    scores: dict[str, dict[int, np.ndarray]] = field(default_factory=dict)  # name -> seed -> (N,)
    intents: dict[str, dict[int, np.ndarray]] = field(default_factory=dict)  # name -> seed -> (N, n)
    metrics: dict[str, dict[int, dict]] = field(default_factory=dict)  # name -> seed -> ctr metrics
    disagreements: list[str] = field(default_factory=list)  # recomputed vs metrics.json
    compared: int = 0  # seeds whose metrics.json was compared


def load_scored(runs: list[Run], labelled: LabelledFolder, progress: bool = True) -> Scored:
    """Read every run's predictions, match them to the labelled test rows, recompute their metrics.

    The canonical rows are those the first run scored, in the labelled file's order; every other
    run must score exactly the same rows (ValueError otherwise).
    """
    table = labelled.read("test", TEST_COLUMNS)
    what = str(labelled.split_path("test"))
    test_all = {c: column(table, c) for c in TEST_COLUMNS if c != "intent"}
    test_all["intent"] = intent_matrix(table, what)
    index = RowIndex(test_all["request_id"], test_all["item_id"], what)
    out = Scored(runs, {})
    canon = position = None
    checked: np.ndarray | None = None  # the last index array found equal to the canonical rows
    jobs = [(run, seed, folder) for run in runs for seed, folder in run.seeds.items()]
    for run, seed, folder in tqdm(jobs, desc="report: reading predictions", disable=not progress, unit="run"):
        pred = read_predictions(folder)
        idx = index.find(pred.request_id, pred.item_id, str(pred.source))
        if not np.array_equal(pred.clicked, test_all["clicked"][idx].astype(np.float64)):
            bad = int(np.flatnonzero(pred.clicked != test_all["clicked"][idx])[0])
            raise ValueError(f"{pred.source}: row {bad} says clicked={int(pred.clicked[bad])} but the labelled "
                             f"test row says {int(test_all['clicked'][idx[bad]])}; were the runs trained on "
                             f"{labelled.path}?")
        if canon is None:
            canon = np.sort(idx)
            out.test = {c: v[canon] for c, v in test_all.items()}
            position = np.full(test_all["clicked"].size, -1, np.int64)
            position[canon] = np.arange(canon.size)
        elif idx is not checked and (idx.size != canon.size or not np.array_equal(np.sort(idx), canon)):
            raise ValueError(f"{pred.source} scored {idx.size} test rows, not the {canon.size} rows that "
                             f"{runs[0].name} scored: runs in one comparison must score the same test split")
        checked = idx
        m = A.ctr_metrics(pred.clicked, pred.score, pred.user_id)
        out.metrics.setdefault(run.name, {})[seed] = m
        rows = position[idx]  # canonical row of each prediction row
        score = np.empty(canon.size)
        score[rows] = pred.score
        out.scores.setdefault(run.name, {})[seed] = score
        if pred.intent_pred is not None:
            intent = np.empty((canon.size, pred.intent_pred.shape[1]))
            intent[rows] = pred.intent_pred
            out.intents.setdefault(run.name, {})[seed] = intent
        recorded = recorded_metrics(folder)
        if recorded:
            out.compared += 1
            for key in ("auc", "gauc", "logloss"):
                if recorded.get(key) is not None and abs(recorded[key] - m[key]) > AGREE_TOL:
                    out.disagreements.append(f"{run.name} seed {seed}: {key} {m[key]:.6f} recomputed, "
                                             f"{recorded[key]:.6f} in metrics.json")
    return out


def _pick_sweep_run(runs: list[Run], name: str, folder: Path) -> Run:
    for r in runs:
        if r.name == name:
            return r
    full = [r for r in runs if r.is_full_model and r.model == name]
    if len(full) == 1:
        return full[0]
    raise ValueError(f"{folder}: no run named {name!r} (found {[r.name for r in runs]})")


def load_sweep(config: ReportConfig) -> list[dict]:
    """AUC and GAUC over seeds of the intent model's run at each `--sweep` level (read up front, so
    that a bad sweep folder fails before any figure is drawn)."""
    points = []
    for n, folder in config.sweep:
        run = _pick_sweep_run(discover_runs(folder), config.intent_model, folder)
        per_seed = []
        for seed, sub in run.seeds.items():
            pred = read_predictions(sub)
            if pred.intent_pred is not None and pred.intent_pred.shape[1] != n:
                raise ValueError(f"{pred.source}: --sweep says n={n} but intent_pred has "
                                 f"{pred.intent_pred.shape[1]} levels")
            per_seed.append(A.ctr_metrics(pred.clicked, pred.score, pred.user_id))
        points.append({"levels": n, "source": str(folder), "seeds": sorted(run.seeds),
                       "auc": A.Stat.of(m["auc"] for m in per_seed), "gauc": A.Stat.of(m["gauc"] for m in per_seed)})
    return points
