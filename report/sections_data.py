"""The report's data sections: the setup table and training warnings, the CTR by page and level,
the example requests (with their pictures); the model sections are in `report.sections`.

Each `*_section` returns a `writers.Section` and records the numbers it shows in `doc_json`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from daian.run_folder import Run, run_of_seed
from intent_labels.labelled import LabelledFolder, similarity_level
from report import analysis as A
from report import figures as F
from report.config import ReportConfig
from report.data import ItemTitles, column
from report.provenance import TrainingNotes, recipe_text
from report.scored import Scored
from report.sections import display_name, order_runs
from report.writers import Figure, Section, Table


def ctr_section(labelled: LabelledFolder, config: ReportConfig, doc_json: dict) -> Section:
    section = Section("CTR by page and similarity level")
    table = labelled.read(config.ctr_split, ["page", "clicked", "trigger_target_sim"])
    sims = column(table, "trigger_target_sim")
    level = similarity_level(sims, labelled.edges)
    ctr = A.ctr_by_page_level(column(table, "page"), column(table, "clicked"), level, labelled.levels,
                              config.max_page)
    shown, rate = ctr["impressions"], ctr["ctr"]
    fig = F.plot_ctr_page_level(ctr, labelled.edges, config.min_cell_impressions)
    section.blocks.append(
        f"The data itself ({config.ctr_split} split, {int(shown.sum()):,} impressions): the click rate of a "
        "target by its similarity level to the trigger (the labelling's bin edges) and by the page it was shown "
        "on. DEI2N's observation is that the gap between targets close to the trigger and the others shrinks "
        "as the user scrolls down: instant interest fades with the page number.")
    ok = shown >= max(config.min_cell_impressions, 1)
    pages = (0, rate.shape[0] - 1) if rate.shape[0] > 1 else (0,)
    usable = np.flatnonzero(ok[list(pages)].all(0))  # levels with enough impressions on both pages
    lines = []
    if usable.size >= 2:
        hi, lo = usable[-1], usable[0]
        for p in pages:
            lines.append(f"page {ctr['pages'][p]}: {rate[p, hi]:.2%} at level {hi} ({int(shown[p, hi]):,} "
                         f"impressions), {rate[p, lo]:.2%} at level {lo} ({int(shown[p, lo]):,} impressions; "
                         f"ratio {rate[p, hi] / max(rate[p, lo], 1e-12):.1f})")
    if lines:
        section.blocks.append("Here: " + "; ".join(lines) + ".")
    section.blocks.append(Figure("ctr_page_level", F.to_png(fig, config.dpi),
                                 f"CTR (%) per page and similarity level, with each cell's impressions (n); cells "
                                 f"with fewer than {config.min_cell_impressions} impressions are left blank."))
    doc_json["ctr_page_level"] = {"split": config.ctr_split, "pages": ctr["pages"],
                                  "impressions": shown.tolist(), "clicks": ctr["clicks"].tolist()}
    return section


def _picture_notes(problems: dict, shown: int, dataset: Path) -> tuple[str | None, str | None]:
    """(the report's note, the one-line warning) about the shown items without a picture."""
    none = len(problems["no value"])
    missing, unreadable = problems["missing"], problems["unreadable"]
    total = none + len(missing) + len(unreadable)
    if not total:
        return None, None
    broken = []  # named files that cannot be drawn: worth a warning
    if missing:
        i, value = missing[0]
        broken.append(f"{len(missing)} name a file that does not exist (e.g. item {i}: {value!r} in {dataset})")
    if unreadable:
        broken.append(f"{len(unreadable)} cannot be opened (e.g. {unreadable[0][1]})")
    parts = broken + ([f"{none} have no `image` value (or no row) in items.parquet"] if none else [])
    note = (f"**Pictures missing**: {total} of the {shown} items shown below have no picture file and are drawn "
            "as grey tiles: " + "; ".join(parts) + ".")
    warning = None
    if broken:
        warning = (f"{len(missing) + len(unreadable)} of the {shown} items shown in the example requests have "
                   "no readable picture file: " + "; ".join(broken))
    return note, warning


def examples_section(scored: Scored, items: ItemTitles, config: ReportConfig, doc_json: dict) -> Section:
    section = Section("Example requests")
    full = [r for r in order_runs(scored.runs) if r.is_full_model] or order_runs(scored.runs)[:3]
    t = scored.test
    chosen = A.pick_example_requests(t["request_id"], t["clicked"], config.examples, config.top_k, config.seed)
    if not chosen:
        section.blocks.append("No test request with both a click and a non-click to show.")
        return section
    section.blocks.append(
        f"{len(chosen)} test requests drawn at random among those with a click: the trigger on the left, and "
        f"each model's {config.top_k} highest-scored targets of the page (first seed), best first. Clicked "
        "targets are framed in green.")
    examples = []
    for rid in chosen:
        rows = np.flatnonzero(t["request_id"] == rid)
        models = []
        for run in full:
            seed = min(scored.scores[run.name])
            targets = A.top_targets(t["item_id"][rows], scored.scores[run.name][seed][rows], t["clicked"][rows],
                                    config.top_k)
            models.append((display_name(run), run.model, targets))
        examples.append({"request_id": rid, "user_id": int(t["user_id"][rows[0]]), "page": int(t["page"][rows[0]]),
                         "trigger": int(t["trigger_item_id"][rows[0]]), "clicks": int(t["clicked"][rows].sum()),
                         "targets": int(rows.size), "models": models})
    shown = list(dict.fromkeys(i for ex in examples for i in
                               [ex["trigger"]] + [x["item_id"] for _, _, ts in ex["models"] for x in ts]))
    pictures, problems = items.pictures(shown)
    note, warning = _picture_notes(problems, len(shown), items.root)
    if note:
        section.blocks.append(note)
    doc_json["examples"] = []
    doc_json["example_pictures"] = {"shown": len(shown), "no_value": problems["no value"],
                                    "missing": [i for i, _ in problems["missing"]],
                                    "unreadable": [i for i, _ in problems["unreadable"]],
                                    "warning": warning}
    for k, example in enumerate(examples):
        fig = F.plot_example(example, pictures.get, items.title_of)
        trigger = items.title_of(example["trigger"])
        section.blocks.append(Figure(f"example_{k + 1}", F.to_png(fig, config.dpi),
                                     f"Request {example['request_id']}: trigger “{trigger}”."))
        doc_json["examples"].append({**example, "models": [{"label": m[0], "targets": m[2]}
                                                           for m in example["models"]]})
    return section


def _run_folder(run: Run) -> Path:
    return run_of_seed(next(iter(run.seeds.values())))


def setup_section(scored: Scored, labelled: LabelledFolder, dataset: Path, config: ReportConfig,
                  training: TrainingNotes | None = None, labelling_notes: list[str] | None = None) -> Section:
    t = scored.test
    section = Section("Data and runs")
    edges = ", ".join(f"{e:.3f}" for e in labelled.edges)
    section.blocks.append(
        f"Labelled data `{labelled.path}` (n = {labelled.levels} similarity levels, bin edges {edges}); "
        f"dataset `{dataset}`. Test split: {t['clicked'].size:,} impressions, "
        f"{np.unique(t['request_id']).size:,} requests, {np.unique(t['user_id']).size:,} users, "
        f"CTR {t['clicked'].mean():.2%}.")
    for note in labelling_notes or []:
        section.blocks.append(f"**Note**: {note}.")
    recipes = training.recipes if training is not None else {}
    headers = ["Run", "Model", "Seeds", "Folder"] + (["Recipe"] if recipes else [])
    section.blocks.append(Table(headers, [
        [r.name, display_name(r), ", ".join(map(str, r.seeds)), str(_run_folder(r))]
        + ([recipe_text(recipes.get(r.name, [])) or "not recorded"] if recipes else [])
        for r in order_runs(scored.runs)]))
    return section


def warning_lines(training: TrainingNotes, runs: list[Run]) -> list[str]:
    """One line per warning the runs' training recorded: 'DIN (seed 1): text'."""
    labels = {r.name: display_name(r) for r in runs}
    out = []
    for w in training.warnings:
        seeds = w["seeds"]
        where = (f" (seed {seeds[0]})" if len(seeds) == 1 else f" (seeds {', '.join(map(str, seeds))})" if seeds
                 else "")
        out.append(f"{labels.get(w['run'], w['run'])}{where}, from training: {w['text']}")
    return out
