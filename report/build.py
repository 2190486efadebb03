"""`build_report(config)`: finished runs + labelled data + dataset folder -> the report.

Writes OUT/report.html (self-contained), OUT/report.md with OUT/figures/*.png, and OUT/report.json
(every number shown, for scripts). All metrics are recomputed from each run's predictions.parquet
with `daian.metrics` (`report.scored`); the sections are drawn by `report.sections`.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from daian.run_folder import checkpoint_train_config, collect_runs
from report import sections as S
from report import sections_data as SD
from report.config import ReportConfig
from report.data import ItemTitles, Truth, resolve_inputs
from report.provenance import check_labelling, training_notes
from report.scored import load_scored, load_sweep
from report.writers import Document, write_html, write_markdown

log = logging.getLogger("report")


def build_report(config: ReportConfig) -> dict[str, Path]:
    """Write the report of `config.runs`; returns the paths written (html, md, json, figures).

    Nothing is written when an input is refused. What the report warns about (the runs' training
    warnings, missing pictures) is shown in it and logged to the "report" logger (stderr by default).
    """
    runs = collect_runs(list(config.runs))
    labelled, dataset = resolve_inputs(config.data, config.dataset, checkpoint_train_config(runs[0]))
    labelling_notes = check_labelling(runs, labelled, from_flag=config.data is not None)
    training = training_notes(runs)
    items = ItemTitles.read(dataset)
    truth = Truth.read(dataset)
    scored = load_scored(runs, labelled, config.progress)
    sweep = load_sweep(config)
    doc_json: dict = {"title": config.title, "data": str(labelled.path), "dataset": str(dataset),
                      "levels": labelled.levels, "runs": {r.name: {str(s): str(p) for s, p in r.seeds.items()}
                                                          for r in runs},
                      "training_warnings": training.warnings, "recipes": training.recipes,
                      "labelling_notes": labelling_notes}
    steps = [
        lambda: SD.setup_section(scored, labelled, dataset, config, training, labelling_notes),
        lambda: S.comparison_section(scored, config, doc_json),
        lambda: S.ablation_section(scored, config, doc_json),
        lambda: S.intent_section(scored, labelled, truth, config, doc_json),
        lambda: S.diversity_section(scored, labelled, truth, items, config, doc_json),
        lambda: S.sweep_section(sweep, scored, labelled, config, doc_json),
        lambda: SD.ctr_section(labelled, config, doc_json),
        lambda: SD.examples_section(scored, items, config, doc_json),
    ]
    sections = []
    for step in tqdm(steps, desc="report: sections", disable=not config.progress, unit="section"):
        section = step()
        if section is not None:
            sections.append(section)
    seeds = sorted({s for r in runs for s in r.seeds})
    lead = (f"{len(runs)} runs over {len(seeds)} seed{'s' if len(seeds) != 1 else ''} "
            f"({', '.join(map(str, seeds))}), scored on the test split "
            "of the labelled data. Every number below is recomputed from the runs' predictions.parquet.")
    warnings = SD.warning_lines(training, runs)
    doc = Document(config.title, lead, sections, warnings)
    config.out.mkdir(parents=True, exist_ok=True)
    md = write_markdown(doc, config.out)
    html_path = write_html(doc, config.out)
    json_path = config.out / "report.json"
    json_path.write_text(json.dumps(_jsonable(doc_json), indent=2, ensure_ascii=False) + "\n")
    if warnings:
        log.warning("%d warning(s) from training, shown at the top of %s: %s", len(warnings), html_path,
                    warnings[0] + (" (and more)" if len(warnings) > 1 else ""))
    picture_warning = (doc_json.get("example_pictures") or {}).get("warning")
    if picture_warning:
        log.warning("%s", picture_warning)
    return {"html": html_path, "markdown": md, "json": json_path, "figures": config.out / "figures"}


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (float, np.floating)):
        return None if not np.isfinite(x) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, Path):
        return str(x)
    return x
