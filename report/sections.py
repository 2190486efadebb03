"""The report's sections, one function each: text, tables and figures from the loaded runs.

Each `*_section` returns a `writers.Section` (or None when it has nothing to show) and records the
numbers it shows in `doc_json`, which becomes report.json.
"""
from __future__ import annotations

import numpy as np

from daian.run_folder import Run
from intent_labels.labelled import LabelledFolder
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


def order_runs(runs: list[Run]) -> list[Run]:
    """DIN, DEI2N, DAIAN, then other models; within a model the full one first, then its ablations
    in the order given (a comparison lists them in the paper's order)."""
    rank = {m: i for i, m in enumerate(MODEL_ORDER)}
    index = {id(r): i for i, r in enumerate(runs)}
    return sorted(runs, key=lambda r: (rank.get(r.model, len(rank)), r.model, r.ablation is not None, index[id(r)]))


def _rela_cell(row: dict, key: str, reference: str | None) -> str:
    if row["run"] == reference:
        return "reference"
    if row.get(f"rela_{key}_note"):
        return f"n/a ({row[f'rela_{key}_note']})"
    return row[f"rela_{key}"].fmt(2, "%")


def _stat_cells(row: dict, reference: str | None) -> list[str]:
    return [row["auc"].fmt(4), _rela_cell(row, "auc", reference), row["gauc"].fmt(4),
            _rela_cell(row, "gauc", reference), row["logloss"].fmt(4), ", ".join(str(s) for s in row["seeds"])]


HEADERS = ["Model", "AUC", "RelaImpr (AUC)", "GAUC", "RelaImpr (GAUC)", "Log loss", "Seeds"]


def _chance(scored: Scored) -> dict[str, dict]:
    t = scored.test
    return A.chance_margins(t["clicked"].astype(np.float64), t["user_id"])


def _chance_rule(chance: dict[str, dict]) -> str:
    parts = [f"{key.upper()} > {c['threshold']:.4f} (0.5 + {A.CHANCE_SE:g} × {c['null_se']:.4f})"
             for key, c in chance.items() if np.isfinite(c["threshold"])]
    return ("RelaImpr is shown only where every seed of its reference is above chance by more than "
            f"{A.CHANCE_SE:g} standard errors of the metric under no signal (from the test split's clicks and "
            "users): " + (", ".join(parts) if parts else "not computable on this test split") +
            "; otherwise it reads “n/a (base at chance)”, since dividing by a reference within noise of 0.5 "
            "gives numbers without meaning.")


def _at_chance_lines(rows: list[dict], reference: str | None, labels: dict, chance: dict) -> list[str]:
    """'**Note**' lines for runs whose AUC is within noise of 0.5, and for a reference whose AUC or
    GAUC is (its RelaImpr is not shown)."""
    out = [f"**Note**: {labels[r['run']]}'s test AUC ({r['auc'].fmt(4)}) is not above {chance['auc']['threshold']:.4f} "
           "(0.5 plus twice its standard error under no signal): its scores rank clicks no better than chance."
           for r in rows if np.isfinite(chance["auc"]["threshold"]) and np.isfinite(r["auc"].mean)
           and not A.above_chance(r["auc"].mean, chance["auc"]["threshold"])]
    ref = next((r for r in rows if r["run"] == reference), None)
    if ref is None:
        return out
    for key in ("auc", "gauc"):
        if any(r.get(f"rela_{key}_note") for r in rows):
            out.append(f"**Note**: {labels[reference]}'s {key.upper()} ({ref[key].fmt(4)}) is not above "
                       f"{chance[key]['threshold']:.4f}: the reference is at chance, so RelaImpr ({key.upper()}) "
                       "is not shown.")
    return out


def comparison_section(scored: Scored, config: ReportConfig, doc_json: dict) -> Section:
    full = [r for r in order_runs(scored.runs) if r.is_full_model]
    section = Section("Model comparison")
    if not full:
        section.blocks.append("No full model among the runs (only ablations); see the ablation tables.")
        return section
    names = {r.name for r in scored.runs}
    reference = config.baseline if config.baseline in names else None
    chance = _chance(scored)
    rows = A.table_rows(scored.metrics, [r.name for r in full], reference, chance)
    labels = {r.name: display_name(r) for r in scored.runs}
    several = any(len(r["seeds"]) > 1 for r in rows)
    section.blocks.append(
        "Test AUC, GAUC (per-user AUC weighted by impressions, single-class users skipped) and log loss, "
        + ("mean ± std over seeds" if several else "one seed each (no std)")
        + ", recomputed from each run's `predictions.parquet`. RelaImpr = "
        "((metric − 0.5) / (metric of the reference − 0.5) − 1) × 100%, per seed against the reference's "
        "same seed" + (f"; the reference is {labels[reference]}. " if reference else
                       f"; no run named {config.baseline!r} was given, so there is no RelaImpr. ")
        + (_chance_rule(chance) if reference else ""))
    section.blocks += _at_chance_lines(rows, reference, labels, chance)
    section.blocks.append(Table(HEADERS, [[labels[r["run"]]] + _stat_cells(r, reference) for r in rows]))
    plot_rows = [{**r, "label": labels[r["run"]], "model": next(x.model for x in full if x.name == r["run"])}
                 for r in rows]
    section.blocks.append(Figure("comparison", F.to_png(F.plot_comparison(plot_rows), config.dpi),
                                 "Test AUC and GAUC of each model; bars start at 0.5 (chance) and end at the mean "
                                 + ("over seeds, whiskers the std." if several else "(one seed: no whiskers).")))
    if scored.compared:
        if scored.disagreements:
            section.blocks.append("**Warning**: the recomputed numbers differ from what training wrote in "
                                  "metrics.json: " + "; ".join(scored.disagreements[:10]))
        else:
            section.blocks.append(f"Check: the recomputed AUC, GAUC and log loss agree with the runs' own "
                                  f"metrics.json within {AGREE_TOL:g} ({scored.compared} run-seeds).")
    doc_json["comparison"] = [_row_json(r, labels) for r in rows]
    doc_json["chance"] = chance
    return section


def _row_json(row: dict, labels: dict) -> dict:
    return {"run": row["run"], "label": labels[row["run"]], "seeds": row["seeds"],
            **{k: row[k].to_dict() for k in ("auc", "gauc", "logloss", "rela_auc", "rela_gauc")},
            **{f"rela_{k}_note": row[f"rela_{k}_note"] for k in ("auc", "gauc")}}


def ablation_section(scored: Scored, config: ReportConfig, doc_json: dict) -> Section | None:
    ordered = order_runs(scored.runs)
    by_model = {}
    for r in ordered:
        if r.ablation is not None:
            by_model.setdefault(r.model, []).append(r)
    if not by_model:
        return None
    section = Section("Ablations")
    chance = _chance(scored)
    section.blocks.append("Each ablation against its full model, in the DAIAN paper's Table 2 format: RelaImpr "
                          "is measured against the full model (negative = the ablation is worse), under the "
                          "comparison's rule: not shown when the full model is at chance.")
    labels = {r.name: display_name(r) for r in scored.runs}
    doc_json["ablations"] = {}
    for model, ablations in by_model.items():
        full = next((r for r in ordered if r.model == model and r.is_full_model), None)
        names = [r.name for r in ablations] + ([full.name] if full else [])
        rows = A.table_rows(scored.metrics, names, full.name if full else None, chance)
        caption = f"{MODEL_LABELS.get(model, model)} ablations" + ("" if full else " (no full model run given)")
        section.blocks += _at_chance_lines(rows, full.name if full else None, labels, chance)
        section.blocks.append(Table(HEADERS, [[labels[r["run"]]] + _stat_cells(r, full.name if full else None)
                                              for r in rows], caption))
        doc_json["ablations"][model] = [_row_json(r, labels) for r in rows]
    return section


def _intent_entries(fit: dict) -> list[tuple[str, dict]]:
    """(row label, group entry) of the intent-fit table: the planted groups, then all users unless
    a single group already holds every request (the row would repeat it)."""
    groups = fit["groups"]
    order = [g for g in GROUP_TITLES if g in groups] + [g for g in groups if g not in GROUP_TITLES]
    entries = [(GROUP_TITLES.get(g, g), groups[g]) for g in order]
    if not (len(groups) == 1 and entries[0][1]["requests"] == fit["requests"]):
        entries.append(("all users", fit["all"]))
    return entries


def _intent_table(entries: list[tuple[str, dict]]) -> Table:
    rows, muted = [], set()
    for k, (label, entry) in enumerate(entries):
        small = entry["users"] < A.MIN_GROUP_USERS
        if small:
            muted.add(k)
        rows.append([label + (f" (too few users: < {A.MIN_GROUP_USERS})" if small else ""), f"{entry['users']:,}",
                     f"{entry['requests']:,}", entry["js_population"].fmt(3), entry["js_mean"].fmt(3)])
    return Table(["Group", "Users with clicks", "Requests with clicks", "JS of the mean distributions",
                  "JS per request (mean)"], rows, muted=frozenset(muted))


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
    fit = A.intent_fit(t["request_id"], t["user_id"], t["has_intent"], t["intent"], preds, types)
    if not fit["requests"]:
        section.blocks.append("Not drawn: no test request has a click, so no request has a ground-truth intent.")
        return section
    several = len(preds) > 1
    section.blocks.append(
        "On the test requests with at least one click, the ground-truth intent p (the share of the request's "
        "clicks at each trigger-target similarity level) is averaged over the users of each group and drawn as "
        "a line; DAIAN's predicted intent p̂ (its UIM output, averaged over the request's impressions, then over "
        "the requests" + (", then over seeds" if several else "") + ") is drawn as bars. JS is the "
        "Jensen-Shannon divergence (natural log) between the two mean distributions (the paper reports 0.082 "
        "for specific-intent users)"
        + ("; groups are the simulator's planted user types." if fit["groups"] else
           "; the dataset has no planted user types (truth/users.parquet), so all users form one group.")
        + f" A group of fewer than {A.MIN_GROUP_USERS} users is too small to read: it is drawn and listed grey.")
    fig = F.plot_intent_fit(fit, labelled.edges, GROUP_TITLES, A.MIN_GROUP_USERS)
    section.blocks.append(Figure("intent_fit", F.to_png(fig, config.dpi),
                                 "Predicted (bars" + (", ± std over seeds" if several else "") + ") against "
                                 "ground-truth (line) intent distributions over similarity levels."))
    groups = fit["groups"]
    entries = _intent_entries(fit)
    section.blocks.append(_intent_table(entries))

    def entry_json(v: dict) -> dict:
        return {"requests": v["requests"], "users": v["users"], "too_small": v["users"] < A.MIN_GROUP_USERS,
                "true": v["true"].tolist(), "pred": v["pred"].tolist(),
                "js_population": v["js_population"].to_dict(), "js_mean": v["js_mean"].to_dict()}

    doc_json["intent_fit"] = {
        "levels": labelled.levels, "bin_edges": labelled.edges.tolist(), "min_group_users": A.MIN_GROUP_USERS,
        "groups": {g: entry_json(v) for g, v in groups.items()}, "all": entry_json(fit["all"]),
        "rows": [label for label, _ in entries],
        "js_population": fit["all"]["js_population"].to_dict(), "js_mean": fit["all"]["js_mean"].to_dict()}
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
    users = f"{entry['test_users']} users" + (", too few" if entry.get("too_small") else "")
    if entry["low"] is None:
        return f"{missing}\n({users})"
    fmt = (lambda v: f"{v:.0f}") if integer else (lambda v: f"{v:.2f}")
    span = fmt(entry["low"]) if entry["low"] == entry["high"] else f"{fmt(entry['low'])}–{fmt(entry['high'])}"
    return f"{span}\n({users})"


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
    several = any(len(r[n].values) > 1 for r in rows for n in (base, model))
    section.blocks.append(
        f"Test users are grouped by the diversity of their intent ({xlabel}; groups are quantiles of the "
        f"users' values, at most {config.diversity_buckets}); GAUC is computed within each group for "
        f"{names[base]} and {names[model]}" + (", mean over seeds" if several else "") + ". The paper finds the "
        f"gain grows with diversity. A group in which fewer than {A.MIN_GROUP_USERS} users have both a click and "
        "a non-click (the users GAUC counts) is too small to read: it is drawn grey and its gain is marked.")
    fig = F.plot_diversity_gain(rows, (base, names[base]), (model, names[model]), xlabel, labels)
    section.blocks.append(Figure("diversity_gain", F.to_png(fig, config.dpi),
                                 f"GAUC of {names[base]} and {names[model]} per user-diversity group (bars from "
                                 "0.5" + (", ± std over seeds" if several else "") + ") and the relative gain "
                                 "(line); grey groups hold too few users to read."))
    table_rows, muted = [], set()
    for k, (r, label) in enumerate(zip(rows, labels)):
        gain = (r[model].mean / r[base].mean - 1) * 100 if np.isfinite(r[base].mean) else float("nan")
        gain_text = "n/a" if not np.isfinite(gain) else f"{gain:+.2f}%"
        if r["too_small"]:
            muted.add(k)
            gain_text += f" (too few users: {r['gauc_users']} < {A.MIN_GROUP_USERS})"
        table_rows.append([label.split("\n")[0], f"{r['test_users']:,}", f"{r['gauc_users']:,}", f"{r['rows']:,}",
                           r[base].fmt(4), r[model].fmt(4), gain_text])
    section.blocks.append(Table(["Diversity group", "Test users", "Users in GAUC", "Test impressions",
                                 f"GAUC {names[base]}", f"GAUC {names[model]}", "Gain"], table_rows,
                                muted=frozenset(muted)))
    doc_json["diversity"] = {"measure": config.diversity, "min_group_users": A.MIN_GROUP_USERS, "groups": [
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
