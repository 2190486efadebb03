"""The report's sections, one function each: text, tables and figures from the loaded runs.

Each `*_section` returns a `writers.Section` (or None when it has nothing to show) and records the
numbers it shows in `doc_json`, which becomes report.json.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from daian.run_folder import Run, run_of_seed
from intent_labels.labelled import LabelledFolder, similarity_level
from report import analysis as A
from report import figures as F
from report.config import ReportConfig
from report.data import ItemTitles, Truth, column, intent_matrix
from report.scored import AGREE_TOL, Scored
from report.writers import Figure, Section, Table

MODEL_LABELS = {"din": "DIN", "dei2n": "DEI2N", "daian": "DAIAN"}
MODEL_ORDER = ("din", "dei2n", "daian")
GROUP_TITLES = {"specific": "specific-intent users", "broad": "broad-intent users"}


def display_name(run: Run) -> str:
    base = MODEL_LABELS.get(run.model, run.model)
    if run.ablation is None:
        return base
    if run.ablation == "no-three-stage":
        return f"{base} w/o three-stage training"
    part = run.ablation[3:] if run.ablation.startswith("no-") else run.ablation
    return f"{base} w/o {part.upper()}"


def _order(runs: list[Run]) -> list[Run]:
    """DIN, DEI2N, DAIAN, then other models; within a model the full one first, then its ablations
    in the order given (a comparison lists them in the paper's order)."""
    rank = {m: i for i, m in enumerate(MODEL_ORDER)}
    index = {id(r): i for i, r in enumerate(runs)}
    return sorted(runs, key=lambda r: (rank.get(r.model, len(rank)), r.model, r.ablation is not None, index[id(r)]))


def _stat_cells(row: dict, reference: str | None) -> list[str]:
    rel = {k: ("reference" if row["run"] == reference else row[f"rela_{k}"].fmt(2, "%")) for k in ("auc", "gauc")}
    return [row["auc"].fmt(4), rel["auc"], row["gauc"].fmt(4), rel["gauc"], row["logloss"].fmt(4),
            ", ".join(str(s) for s in row["seeds"])]


HEADERS = ["Model", "AUC", "RelaImpr (AUC)", "GAUC", "RelaImpr (GAUC)", "Log loss", "Seeds"]


def comparison_section(scored: Scored, config: ReportConfig, doc_json: dict) -> Section:
    full = [r for r in _order(scored.runs) if r.is_full_model]
    section = Section("Model comparison")
    if not full:
        section.blocks.append("No full model among the runs (only ablations); see the ablation tables.")
        return section
    names = {r.name for r in scored.runs}
    reference = config.baseline if config.baseline in names else None
    rows = A.table_rows(scored.metrics, [r.name for r in full], reference)
    labels = {r.name: display_name(r) for r in scored.runs}
    section.blocks.append(
        "Test AUC, GAUC (per-user AUC weighted by impressions, single-class users skipped) and log loss, "
        "mean ± std over seeds, recomputed from each run's `predictions.parquet`. RelaImpr = "
        "((metric − 0.5) / (metric of the reference − 0.5) − 1) × 100%, per seed against the reference's "
        "same seed" + (f"; the reference is {labels[reference]}." if reference else
                       f"; no run named {config.baseline!r} was given, so there is no RelaImpr."))
    section.blocks.append(Table(HEADERS, [[labels[r["run"]]] + _stat_cells(r, reference) for r in rows]))
    plot_rows = [{**r, "label": labels[r["run"]], "model": next(x.model for x in full if x.name == r["run"])}
                 for r in rows]
    section.blocks.append(Figure("comparison", F.to_png(F.plot_comparison(plot_rows), config.dpi),
                                 "Test AUC and GAUC of each model; bars are the mean over seeds, whiskers the std."))
    if scored.compared:
        if scored.disagreements:
            section.blocks.append("**Warning**: the recomputed numbers differ from what training wrote in "
                                  "metrics.json: " + "; ".join(scored.disagreements[:10]))
        else:
            section.blocks.append(f"Check: the recomputed AUC, GAUC and log loss agree with the runs' own "
                                  f"metrics.json within {AGREE_TOL:g} ({scored.compared} run-seeds).")
    doc_json["comparison"] = [_row_json(r, labels) for r in rows]
    return section


def _row_json(row: dict, labels: dict) -> dict:
    return {"run": row["run"], "label": labels[row["run"]], "seeds": row["seeds"],
            **{k: row[k].to_dict() for k in ("auc", "gauc", "logloss", "rela_auc", "rela_gauc")}}


def ablation_section(scored: Scored, config: ReportConfig, doc_json: dict) -> Section | None:
    ordered = _order(scored.runs)
    by_model = {}
    for r in ordered:
        if r.ablation is not None:
            by_model.setdefault(r.model, []).append(r)
    if not by_model:
        return None
    section = Section("Ablations")
    section.blocks.append("Each ablation against its full model, in the DAIAN paper's Table 2 format: RelaImpr "
                          "is measured against the full model (negative = the ablation is worse).")
    labels = {r.name: display_name(r) for r in scored.runs}
    doc_json["ablations"] = {}
    for model, ablations in by_model.items():
        full = next((r for r in ordered if r.model == model and r.is_full_model), None)
        names = [r.name for r in ablations] + ([full.name] if full else [])
        rows = A.table_rows(scored.metrics, names, full.name if full else None)
        caption = f"{MODEL_LABELS.get(model, model)} ablations" + ("" if full else " (no full model run given)")
        section.blocks.append(Table(HEADERS, [[labels[r["run"]]] + _stat_cells(r, full.name if full else None)
                                              for r in rows], caption))
        doc_json["ablations"][model] = [_row_json(r, labels) for r in rows]
    return section


def intent_section(scored: Scored, labelled: LabelledFolder, truth: Truth | None, config: ReportConfig,
                   doc_json: dict) -> Section:
    section = Section("Intent fit (DAIAN Figure 5)")
    preds = scored.intents.get(config.intent_model)
    if not preds:
        section.blocks.append(f"Not drawn: no run named {config.intent_model!r} with an `intent_pred` column "
                              "among the runs.")
        return section
    t = scored.test
    width = next(iter(preds.values())).shape[1]
    if width != labelled.levels:
        raise ValueError(f"{config.intent_model} predicts {width} intent levels, the labelled data has "
                         f"{labelled.levels}")
    types = truth.types_of(t["user_id"]) if truth is not None else None
    if types is not None and not any(v is not None for v in types):
        types = None
    fit = A.intent_fit(t["request_id"], t["has_intent"], t["intent"], preds, types)
    if not fit["requests"]:
        section.blocks.append("Not drawn: no test request has a click, so no request has a ground-truth intent.")
        return section
    section.blocks.append(
        "On the test requests with at least one click, the ground-truth intent p (the share of the request's "
        "clicks at each trigger-target similarity level) is averaged over the users of each group and drawn as "
        "a line; DAIAN's predicted intent p̂ (its UIM output, averaged over the request's impressions, then over "
        "the requests, then over seeds) is drawn as bars. JS is the Jensen-Shannon divergence (natural log) "
        "between the two mean distributions (the paper reports 0.082 for specific-intent users)"
        + ("; groups are the simulator's planted user types." if types is not None else
           "; the dataset has no planted user types (truth/users.parquet), so all users form one group."))
    fig = F.plot_intent_fit(fit, labelled.edges, GROUP_TITLES)
    section.blocks.append(Figure("intent_fit", F.to_png(fig, config.dpi),
                                 "Predicted (bars, ± std over seeds) against ground-truth (line) intent "
                                 "distributions over similarity levels."))
    order = [g for g in GROUP_TITLES if g in fit["groups"]] + [g for g in fit["groups"] if g not in GROUP_TITLES]
    rows = [[GROUP_TITLES.get(g, g), f"{fit['groups'][g]['requests']:,}", fit["groups"][g]["js_population"].fmt(3),
             fit["groups"][g]["js_mean"].fmt(3)] for g in order]
    rows.append(["all", f"{fit['requests']:,}", fit["js_population"].fmt(3), fit["js_mean"].fmt(3)])
    section.blocks.append(Table(["Users", "Requests with clicks", "JS of the mean distributions",
                                 "JS per request (mean)"], rows))
    doc_json["intent_fit"] = {
        "levels": labelled.levels, "bin_edges": labelled.edges.tolist(),
        "groups": {g: {"requests": v["requests"], "true": v["true"].tolist(), "pred": v["pred"].tolist(),
                       "js_population": v["js_population"].to_dict(), "js_mean": v["js_mean"].to_dict()}
                   for g, v in fit["groups"].items()},
        "js_population": fit["js_population"].to_dict(), "js_mean": fit["js_mean"].to_dict()}
    return section


DIVERSITY_AXES = {
    "labels": ("entropy of the user's mean intent label over the train split (nats)", "no train click"),
    "profile": ("entropy of the user's planted intent profile (nats)", "no profile"),
    "categories": ("leaf categories clicked besides the trigger's, train split", "no train click"),
}


def user_diversity(config: ReportConfig, labelled: LabelledFolder, truth: Truth | None,
                   items: ItemTitles) -> tuple[np.ndarray, np.ndarray]:
    if config.diversity == "profile":
        if truth is None or truth.profile is None:
            raise ValueError("diversity 'profile' needs truth/users.parquet with an intent_profile column "
                             "in the dataset folder; use diversity 'labels'")
        return truth.user_id, A.entropy(truth.profile)
    if config.diversity == "labels":
        table = labelled.read("train", ["request_id", "user_id", "intent", "has_intent"])
        return A.diversity_from_labels(column(table, "request_id"), column(table, "user_id"),
                                       column(table, "has_intent"),
                                       intent_matrix(table, str(labelled.split_path("train"))))
    table = labelled.read("train", ["user_id", "trigger_item_id", "item_id", "clicked"])

    def category(ids: np.ndarray) -> np.ndarray:
        rows = items.rows(ids)
        return np.where(rows >= 0, items.category[np.maximum(rows, 0)], -1)

    return A.diversity_from_categories(column(table, "user_id"), column(table, "clicked"),
                                       category(column(table, "item_id")),
                                       category(column(table, "trigger_item_id")))


def _group_label(entry: dict, integer: bool, missing: str) -> str:
    if entry["low"] is None:
        return f"{missing}\n({entry['test_users']} users)"
    fmt = (lambda v: f"{v:.0f}") if integer else (lambda v: f"{v:.2f}")
    span = fmt(entry["low"]) if entry["low"] == entry["high"] else f"{fmt(entry['low'])}–{fmt(entry['high'])}"
    return f"{span}\n({entry['test_users']} users)"


def diversity_section(scored: Scored, labelled: LabelledFolder, truth: Truth | None, items: ItemTitles,
                      config: ReportConfig, doc_json: dict) -> Section:
    section = Section("GAUC by user intent diversity (DAIAN Figure 6)")
    base, model = config.baseline, config.intent_model
    missing = [n for n in (base, model) if n not in scored.scores]
    if missing:
        section.blocks.append(f"Not drawn: no run named {' or '.join(repr(m) for m in missing)} among the runs.")
        return section
    div_users, div_values = user_diversity(config, labelled, truth, items)
    t = scored.test
    group, buckets = A.diversity_groups(t["user_id"], div_users, div_values, config.diversity_buckets)
    rows = A.gauc_by_group(t["clicked"].astype(np.float64), t["user_id"], group,
                           {base: scored.scores[base], model: scored.scores[model]}, buckets)
    xlabel, missing_label = DIVERSITY_AXES[config.diversity]
    integer = config.diversity == "categories"
    labels = [_group_label(r, integer, missing_label) for r in rows]
    names = {r.name: display_name(r) for r in scored.runs}
    section.blocks.append(
        f"Test users are grouped by the diversity of their intent ({xlabel}; groups are quantiles of the "
        f"users' values, at most {config.diversity_buckets}); GAUC is computed within each group for "
        f"{names[base]} and {names[model]}, mean over seeds. The paper finds the gain grows with diversity.")
    fig = F.plot_diversity_gain(rows, (base, names[base]), (model, names[model]), xlabel, labels)
    section.blocks.append(Figure("diversity_gain", F.to_png(fig, config.dpi),
                                 f"GAUC of {names[base]} and {names[model]} per user-diversity group (bars, "
                                 "± std over seeds) and the relative gain (line)."))
    table_rows = []
    for r, label in zip(rows, labels):
        gain = (r[model].mean / r[base].mean - 1) * 100 if np.isfinite(r[base].mean) else float("nan")
        table_rows.append([label.replace("\n", " "), f"{r['rows']:,}", r[base].fmt(4), r[model].fmt(4),
                           "n/a" if not np.isfinite(gain) else f"{gain:+.2f}%"])
    section.blocks.append(Table(["Diversity group", "Test impressions", f"GAUC {names[base]}",
                                 f"GAUC {names[model]}", "Gain"], table_rows))
    doc_json["diversity"] = {"measure": config.diversity, "groups": [
        {k: (v.to_dict() if isinstance(v, A.Stat) else v) for k, v in r.items()} for r in rows]}
    return section


def sweep_section(sweep: list[dict], scored: Scored, labelled: LabelledFolder, config: ReportConfig,
                  doc_json: dict) -> Section:
    section = Section("AUC and GAUC against the number of levels n (DAIAN Figure 7)")
    points = list(sweep)
    main = scored.metrics.get(config.intent_model)
    if main and labelled.levels not in {p["levels"] for p in points}:
        points.append({"levels": labelled.levels, "source": "the compared runs", "seeds": sorted(main),
                       "auc": A.Stat.of(m["auc"] for m in main.values()),
                       "gauc": A.Stat.of(m["gauc"] for m in main.values())})
    points.sort(key=lambda p: p["levels"])
    if len(points) < 2:
        section.blocks.append(
            "Not drawn: it needs runs at two or more values of n. Label the data again with another "
            "`--levels`, train DAIAN on it, and pass each run as `--sweep n=K:RUN` (the demo does this).")
        return section
    section.blocks.append(f"{MODEL_LABELS.get(config.intent_model, config.intent_model)}'s test AUC and GAUC "
                          "when the intent labels use n equal-width similarity levels (mean ± std over seeds; "
                          "each point is a separate labelling and training). The paper finds n = 6 best.")
    section.blocks.append(Figure("levels_sweep", F.to_png(F.plot_levels_sweep(points), config.dpi),
                                 "AUC and GAUC against n; the circled point is the best."))
    section.blocks.append(Table(["n", "AUC", "GAUC", "Seeds", "Runs"],
                                [[str(p["levels"]), p["auc"].fmt(4), p["gauc"].fmt(4),
                                  ", ".join(map(str, p["seeds"])), p["source"]] for p in points]))
    doc_json["levels_sweep"] = [{**p, "auc": p["auc"].to_dict(), "gauc": p["gauc"].to_dict()} for p in points]
    return section


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
            lines.append(f"page {ctr['pages'][p]}: {rate[p, hi]:.2%} at level {hi}, {rate[p, lo]:.2%} at level "
                         f"{lo} (ratio {rate[p, hi] / max(rate[p, lo], 1e-12):.1f})")
    if lines:
        section.blocks.append("Here: " + "; ".join(lines) + ".")
    section.blocks.append(Figure("ctr_page_level", F.to_png(fig, config.dpi),
                                 f"CTR (%) per page and similarity level; cells with fewer than "
                                 f"{config.min_cell_impressions} impressions are left blank."))
    doc_json["ctr_page_level"] = {"split": config.ctr_split, "pages": ctr["pages"],
                                  "impressions": shown.tolist(), "clicks": ctr["clicks"].tolist()}
    return section


def examples_section(scored: Scored, items: ItemTitles, config: ReportConfig, doc_json: dict) -> Section:
    section = Section("Example requests")
    full = [r for r in _order(scored.runs) if r.is_full_model] or _order(scored.runs)[:3]
    t = scored.test
    chosen = A.pick_example_requests(t["request_id"], t["clicked"], config.examples, config.top_k, config.seed)
    if not chosen:
        section.blocks.append("No test request with both a click and a non-click to show.")
        return section
    section.blocks.append(
        f"{len(chosen)} test requests drawn at random among those with a click: the trigger on the left, and "
        f"each model's {config.top_k} highest-scored targets of the page (first seed), best first. Clicked "
        "targets are framed in green.")
    cache: dict[int, np.ndarray | None] = {}

    def picture_of(item_id: int):
        if item_id not in cache:
            cache[item_id] = F._picture(items.picture_path(item_id))
        return cache[item_id]

    doc_json["examples"] = []
    for k, rid in enumerate(chosen):
        rows = np.flatnonzero(t["request_id"] == rid)
        models = []
        for run in full:
            seed = min(scored.scores[run.name])
            targets = A.top_targets(t["item_id"][rows], scored.scores[run.name][seed][rows], t["clicked"][rows],
                                    config.top_k)
            models.append((display_name(run), run.model, targets))
        example = {"request_id": rid, "user_id": int(t["user_id"][rows[0]]), "page": int(t["page"][rows[0]]),
                   "trigger": int(t["trigger_item_id"][rows[0]]), "clicks": int(t["clicked"][rows].sum()),
                   "targets": int(rows.size), "models": models}
        fig = F.plot_example(example, picture_of, items.title_of)
        section.blocks.append(Figure(f"example_{k + 1}", F.to_png(fig, config.dpi),
                                     f"Request {rid}: trigger “{items.title_of(example['trigger'])}”."))
        doc_json["examples"].append({**example, "models": [{"label": m[0], "targets": m[2]} for m in models]})
    return section


def _run_folder(run: Run) -> Path:
    return run_of_seed(next(iter(run.seeds.values())))


def setup_section(scored: Scored, labelled: LabelledFolder, dataset: Path, config: ReportConfig) -> Section:
    t = scored.test
    section = Section("Data and runs")
    edges = ", ".join(f"{e:.3f}" for e in labelled.edges)
    section.blocks.append(
        f"Labelled data `{labelled.path}` (n = {labelled.levels} similarity levels, bin edges {edges}); "
        f"dataset `{dataset}`. Test split: {t['clicked'].size:,} impressions, "
        f"{np.unique(t['request_id']).size:,} requests, {np.unique(t['user_id']).size:,} users, "
        f"CTR {t['clicked'].mean():.2%}.")
    section.blocks.append(Table(["Run", "Model", "Seeds", "Folder"],
                                [[r.name, display_name(r), ", ".join(map(str, r.seeds)), str(_run_folder(r))]
                                 for r in _order(scored.runs)]))
    return section
