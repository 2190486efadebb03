"""Several seeds and several models in numbers: mean and std over seeds, the comparison table."""
from __future__ import annotations

import math

import numpy as np

from daian import metrics as M
from daian import run_folder as RF

SUMMARY_KEYS = {"auc": ("ctr", "auc"), "gauc": ("ctr", "gauc"), "logloss": ("ctr", "logloss"),
                "js": ("intent", "js_mean"), "js_population": ("intent", "js_population")}


def _pick(result: dict, path: tuple[str, ...]):
    for key in path:
        if not isinstance(result, dict) or key not in result:
            return None
        result = result[key]
    return result


def _mean_std(values: list[float]) -> dict:
    return {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
            "n": len(values)}


def summarise(per_seed: dict[int, dict]) -> dict:
    """Mean and (sample) std over seeds of the headline metrics, and JS per user type."""
    out = {}
    paths = dict(SUMMARY_KEYS)
    types = set()
    for r in per_seed.values():
        types |= set((_pick(r, ("intent", "by_user_type")) or {}).keys())
    for t in sorted(types):
        paths[f"js_{t}"] = ("intent", "by_user_type", t, "js_mean")
        paths[f"js_population_{t}"] = ("intent", "by_user_type", t, "js_population")
    for name, path in paths.items():
        values = [v for v in (_pick(r, path) for r in per_seed.values()) if v is not None and not math.isnan(v)]
        if values:
            out[name] = {**_mean_std(values), "values": [float(v) for v in values]}
    return out


def write_seed_summary(config, per_seed: dict[int, dict]) -> dict:
    """RUN/metrics.json of a several-seed run: mean and std over seeds, and every seed's metrics."""
    warnings = [f"seed {seed}: {text}" for seed, r in per_seed.items() for text in r.get("warnings", [])]
    recipe = next((r["recipe"] for r in per_seed.values() if "recipe" in r), None)
    result = {"model": config.model, "ablation": config.ablation, "seeds": list(config.seeds),
              "summary": summarise(per_seed), "warnings": warnings,
              **({"recipe": recipe} if recipe is not None else {}), "per_seed": per_seed}
    RF.write_json(config.run / RF.METRICS, result)
    return result


def comparison_rows(results: dict[str, dict], baseline: str = "din") -> list[dict]:
    """Per run: mean/std over seeds of AUC, GAUC, log loss, JS and RelaImpr against the `baseline`
    run of the same seed (DIN, the papers' base model, by default)."""
    base = results.get(baseline)
    rows = []
    for name, res in results.items():
        per_seed = res["per_seed"]
        row = {"run": name, **{k: {"mean": v["mean"], "std": v["std"], "n": v["n"]}
                               for k, v in summarise(per_seed).items()}}
        if base is not None:
            impr = [M.rela_impr(per_seed[s]["ctr"]["auc"], base["per_seed"][s]["ctr"]["auc"])
                    for s in per_seed if s in base["per_seed"]]
            if impr:
                row["rela_impr"] = _mean_std(impr)
        rows.append(row)
    return rows


def format_table(rows: list[dict], baseline: str = "din") -> str:
    """A Markdown table of the comparison rows: mean ± std over seeds, the mean alone for one seed
    (a std of one value is not a spread)."""
    cols = [("auc", "AUC", 4), ("gauc", "GAUC", 4), ("rela_impr", f"RelaImpr vs {baseline.upper()} (%)", 2),
            ("logloss", "log loss", 4), ("js", "JS (per request)", 3)]
    extra = sorted({k for r in rows for k in r if k.startswith("js_population_")})
    cols += [(k, f"JS pop. {k[len('js_population_'):]}", 3) for k in extra]
    lines = ["| run | " + " | ".join(c[1] for c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for r in rows:
        cells = []
        for key, _, digits in cols:
            v = r.get(key)
            if v is None:
                cells.append("")
            elif v.get("n", 2) < 2:
                cells.append(f"{v['mean']:.{digits}f}")
            else:
                cells.append(f"{v['mean']:.{digits}f} ± {v['std']:.{digits}f}")
        lines.append(f"| {r['run']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
