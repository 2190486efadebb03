"""The report's numbers, recomputed from the runs' predictions with `daian.metrics`.

Pure functions on arrays (no plotting, no files). Conventions:
- a number "over seeds" is the mean and the sample standard deviation (ddof=1), as
  `train-daian --compare` reports them; with one seed there is no std (NaN, shown "1 seed");
- RelaImpr (AUC or GAUC) is computed per seed against the reference run's same seed, then
  averaged; when the two runs share no seed, against the reference's mean over its seeds. It is
  computed only when every reference value it divides by is above chance: more than
  `CHANCE_SE` null standard errors above 0.5 (`null_se_auc`, `null_se_gauc`: the metric's standard
  deviation when the scores carry no signal, from the test split's class counts alone);
- a group of users (a diversity group, a planted user type) with fewer than `MIN_GROUP_USERS`
  users that count in its metric is "too small to read": its numbers are shown, marked;
- intent fit (DAIAN Figure 5): per group of users, the mean ground-truth intent p and the mean
  predicted p_hat over the test requests with clicks, and their JS divergence (natural log), as
  `daian.metrics.intent_metrics` measures them;
- user diversity (Figure 6): the paper counts leaf categories other than the trigger's in the
  user's clicks over the training week; the default here is the entropy of the user's mean intent
  label over the train split's requests with clicks (it measures the same spread over similarity
  levels and needs no category tree); both, and the planted profile's entropy, are offered.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from daian import metrics as M


@dataclass
class Stat:
    """A metric over seeds."""

    mean: float
    std: float
    values: list[float] = field(default_factory=list)

    @classmethod
    def of(cls, values) -> "Stat":
        vals = [float(v) for v in values if v is not None and np.isfinite(v)]
        if not vals:
            return cls(float("nan"), float("nan"), [])
        return cls(float(np.mean(vals)), float(np.std(vals, ddof=1)) if len(vals) > 1 else float("nan"), vals)

    def fmt(self, digits: int = 4, suffix: str = "") -> str:
        """"mean ± std" over two seeds or more, "mean (1 seed)" over one (no std to show), "n/a"."""
        if not np.isfinite(self.mean):
            return "n/a"
        if len(self.values) < 2:
            return f"{self.mean:.{digits}f}{suffix} (1 seed)"
        return f"{self.mean:.{digits}f}{suffix} ± {self.std:.{digits}f}{suffix}"

    def to_dict(self) -> dict:
        return {"mean": _num(self.mean), "std": _num(self.std), "values": self.values}


def _num(x: float):
    return None if not np.isfinite(x) else float(x)


CHANCE_SE = 2.0  # a reference AUC/GAUC is "above chance" when more than this many null standard errors above 0.5
MIN_GROUP_USERS = 30  # a user group with fewer users (counted in its metric) is marked too small to read
AT_CHANCE = "base at chance"  # why a RelaImpr is not shown


def ctr_metrics(clicked: np.ndarray, score: np.ndarray, users: np.ndarray) -> dict:
    """AUC, GAUC and log loss of one seed's predictions (daian.metrics)."""
    return {"auc": M.auc(clicked, score), "gauc": M.gauc(clicked, score, users),
            "logloss": M.log_loss(clicked, score), "rows": int(np.size(clicked))}


# ----------------------------------------------------------------------------- chance level


def _null_var(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """Variance of the Mann-Whitney AUC when scores carry no signal (continuous scores):
    Var(U) / (n1 n0)^2 = (n1 + n0 + 1) / (12 n1 n0)."""
    return (pos + neg + 1) / (12.0 * pos * neg)


def null_se_auc(clicked: np.ndarray) -> float:
    """Standard error of the AUC under no signal, from the numbers of clicks and non-clicks alone."""
    clicked = np.asarray(clicked, np.float64)
    pos = clicked.sum()
    neg = clicked.size - pos
    return float(np.sqrt(_null_var(pos, neg))) if pos > 0 and neg > 0 else float("nan")


def null_se_gauc(clicked: np.ndarray, users: np.ndarray) -> float:
    """Standard error of the GAUC under no signal: the per-user AUCs are independent, weighted by
    impressions, over the users with both classes (those GAUC counts)."""
    _, inv = np.unique(np.asarray(users), return_inverse=True)
    pos = np.bincount(inv, weights=np.asarray(clicked, np.float64))
    size = np.bincount(inv).astype(np.float64)
    neg = size - pos
    ok = (pos > 0) & (neg > 0)
    if not ok.any():
        return float("nan")
    w = size[ok]
    return float(np.sqrt((w ** 2 * _null_var(pos[ok], neg[ok])).sum()) / w.sum())


def chance_margins(clicked: np.ndarray, users: np.ndarray) -> dict[str, dict]:
    """Per metric, its null standard error and the value a reference must exceed for RelaImpr."""
    out = {}
    for key, se in (("auc", null_se_auc(clicked)), ("gauc", null_se_gauc(clicked, users))):
        out[key] = {"null_se": se, "threshold": 0.5 + CHANCE_SE * se if np.isfinite(se) else float("nan")}
    return out


def above_chance(value: float, threshold: float) -> bool:
    return bool(np.isfinite(value) and np.isfinite(threshold) and value > threshold)


def gauc_users(clicked: np.ndarray, users: np.ndarray) -> int:
    """Users with both a click and a non-click: the ones whose AUC the GAUC averages."""
    _, inv = np.unique(np.asarray(users), return_inverse=True)
    pos = np.bincount(inv, weights=np.asarray(clicked, np.float64))
    size = np.bincount(inv)
    return int(((pos > 0) & (pos < size)).sum())


# ----------------------------------------------------------------------------- tables


def _rela(values: dict[int, float], base: dict[int, float], threshold: float) -> tuple[Stat, str | None]:
    """RelaImpr over seeds and, when it is not computed, why (AT_CHANCE)."""
    common = [s for s in values if s in base]
    if common:
        if not all(above_chance(base[s], threshold) for s in common):
            return Stat.of([]), AT_CHANCE
        return Stat.of(M.rela_impr(values[s], base[s]) for s in common), None
    base_mean = Stat.of(base.values()).mean
    if not above_chance(base_mean, threshold):
        return Stat.of([]), AT_CHANCE
    return Stat.of(M.rela_impr(v, base_mean) for v in values.values()), None


def table_rows(per_seed: dict[str, dict[int, dict]], names: list[str], reference: str | None,
               chance: dict[str, dict] | None = None) -> list[dict]:
    """Rows of a comparison or ablation table.

    `per_seed[name][seed]` holds `ctr_metrics` output; RelaImpr is measured against `reference`
    (absent: no RelaImpr), and only where the reference is above `chance[key]["threshold"]`
    (`chance_margins`; None: above 0.5); otherwise `rela_<key>_note` says AT_CHANCE.
    """
    rows = []
    ref = per_seed.get(reference) if reference else None
    for name in names:
        seeds = per_seed[name]
        row = {"run": name, "seeds": sorted(seeds)}
        for key in ("auc", "gauc", "logloss"):
            row[key] = Stat.of(seeds[s][key] for s in sorted(seeds))
        for key in ("auc", "gauc"):
            row[f"rela_{key}"], row[f"rela_{key}_note"] = Stat.of([]), None
            if ref is not None:
                threshold = chance[key]["threshold"] if chance else 0.5
                row[f"rela_{key}"], row[f"rela_{key}_note"] = _rela(
                    {s: m[key] for s, m in seeds.items()}, {s: m[key] for s, m in ref.items()}, threshold)
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------- intent fit


ALL_USERS = "all"  # the intent-fit entry over every user


def _fit_entries(request_id, has_intent, intent_true, preds, labels, users) -> dict[str, dict]:
    """Per label of `labels` (one per row): requests and users with clicks, mean true p, mean p_hat
    over seeds with its std (zeros for one seed), JS over seeds."""
    per_seed = {s: M.intent_metrics(request_id, has_intent, intent_true, p, labels) for s, p in preds.items()}
    names = sorted({g for m in per_seed.values() for g in m.get("by_user_type", {})})
    keep = np.asarray(has_intent, bool)
    out = {}
    for g in names:
        parts = [m["by_user_type"][g] for m in per_seed.values() if g in m["by_user_type"]]
        pred = np.array([p["pred_mean"] for p in parts], dtype=np.float64)
        in_group = keep & (np.asarray(labels, dtype=object) == g)
        out[g] = {"requests": parts[0]["requests"], "users": int(np.unique(np.asarray(users)[in_group]).size),
                  "true": np.asarray(parts[0]["true_mean"], dtype=np.float64),
                  "pred": pred.mean(0), "pred_std": pred.std(0, ddof=1) if len(parts) > 1 else np.zeros(pred.shape[1]),
                  "js_population": Stat.of(p["js_population"] for p in parts),
                  "js_mean": Stat.of(p["js_mean"] for p in parts)}
    return out


def intent_fit(request_id: np.ndarray, user_id: np.ndarray, has_intent: np.ndarray, intent_true: np.ndarray,
               preds: dict[int, np.ndarray], groups: np.ndarray | None) -> dict:
    """Per user group and over all users: mean true p, mean predicted p_hat (over seeds), JS.

    `preds[seed]` is the (N, n) predicted intent of the N rows; `groups` the (N,) planted user type
    of each row (None where unknown), or None when the dataset plants none: then "groups" is empty
    and only the entry over all users ("all") exists, so no group repeats it.
    """
    everyone = np.full(np.shape(request_id), ALL_USERS, dtype=object)
    overall = _fit_entries(request_id, has_intent, intent_true, preds, everyone, user_id)
    by_group = {} if groups is None else _fit_entries(request_id, has_intent, intent_true, preds, groups, user_id)
    return {"groups": by_group, "all": overall.get(ALL_USERS),
            "requests": overall[ALL_USERS]["requests"] if overall else 0}


# ----------------------------------------------------------------------------- user diversity


def entropy(p: np.ndarray) -> np.ndarray:
    """Row-wise Shannon entropy in nats of non-negative rows (renormalised to sum to one)."""
    p = np.atleast_2d(np.asarray(p, dtype=np.float64))
    total = p.sum(1, keepdims=True)
    p = np.divide(p, total, out=np.zeros_like(p), where=total > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.maximum(-np.where(p > 0, p * np.log(p), 0.0).sum(1), 0.0)


def diversity_from_labels(request_id: np.ndarray, user_id: np.ndarray, has_intent: np.ndarray,
                          intent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(users, entropy of their mean intent label over their requests with clicks), users sorted."""
    keep = np.asarray(has_intent, bool)
    _, first = np.unique(np.asarray(request_id)[keep], return_index=True)
    users = np.asarray(user_id)[keep][first]
    p = np.asarray(intent, np.float64)[keep][first]
    uniq, inv = np.unique(users, return_inverse=True)
    count = np.bincount(inv, minlength=uniq.size)
    mean = np.stack([np.bincount(inv, weights=p[:, j], minlength=uniq.size) for j in range(p.shape[1])], 1)
    return uniq, entropy(mean / np.maximum(count, 1)[:, None])


def diversity_from_categories(user_id: np.ndarray, clicked: np.ndarray,
                              target_category: np.ndarray, trigger_category: np.ndarray
                              ) -> tuple[np.ndarray, np.ndarray]:
    """(users, number of distinct leaf categories they clicked that differ from the trigger's leaf).

    The DAIAN paper's measure, counted over the given (training) rows.
    """
    sel = (np.asarray(clicked) > 0) & (np.asarray(target_category) != np.asarray(trigger_category))
    users_all = np.unique(np.asarray(user_id)[np.asarray(clicked) > 0])
    pairs = np.unique(np.stack([np.asarray(user_id)[sel], np.asarray(target_category)[sel]], 1), axis=0)
    counts = np.zeros(users_all.size)
    if pairs.size:
        u, c = np.unique(pairs[:, 0], return_counts=True)
        counts[np.searchsorted(users_all, u)] = c
    return users_all, counts


def user_buckets(values: np.ndarray, n_buckets: int) -> np.ndarray:
    """Bucket (0, 1, ...) of each value, ordered by value: one per distinct value when there are at
    most `n_buckets`, else quantile buckets (fewer when values repeat; equal values share one)."""
    values = np.asarray(values, np.float64)
    uniq, inv = np.unique(values, return_inverse=True)
    if uniq.size <= n_buckets:
        return inv.astype(np.int64)
    inner = np.unique(np.quantile(values, np.linspace(0, 1, n_buckets + 1)[1:-1]))
    raw = np.searchsorted(inner, values, side="right")
    return np.unique(raw, return_inverse=True)[1].astype(np.int64)  # renumber: no empty bucket


def diversity_groups(users: np.ndarray, div_users: np.ndarray, div_values: np.ndarray,
                     n_buckets: int) -> tuple[np.ndarray, list[dict]]:
    """Group of each row's user (-1: the user has no diversity value) and the groups' descriptions."""
    div_users = np.asarray(div_users)
    bucket_of_user = user_buckets(div_values, n_buckets)
    pos = np.minimum(np.searchsorted(div_users, users), max(div_users.size - 1, 0))
    found = div_users[pos] == users if div_users.size else np.zeros(np.shape(users), bool)
    group = np.where(found, bucket_of_user[pos] if div_users.size else -1, -1)
    info = []
    for b in range(int(bucket_of_user.max()) + 1 if bucket_of_user.size else 0):
        vals = np.asarray(div_values, np.float64)[bucket_of_user == b]
        info.append({"bucket": b, "low": float(vals.min()), "high": float(vals.max()), "users": int(vals.size)})
    return group, info


def gauc_by_group(clicked: np.ndarray, users: np.ndarray, group: np.ndarray,
                  scores: dict[str, dict[int, np.ndarray]], buckets: list[dict]) -> list[dict]:
    """Per group (and for rows of users without a diversity value, bucket -1): GAUC per model over
    seeds, the group's test impressions and users, the users GAUC counts (both classes) and whether
    they are too few to read (< MIN_GROUP_USERS)."""
    rows = []
    entries = ([{"bucket": -1, "low": None, "high": None}] if (group < 0).any() else []) + buckets
    for entry in entries:
        sel = group == entry["bucket"]
        n_gauc = gauc_users(clicked[sel], users[sel])
        row = {**entry, "rows": int(sel.sum()), "test_users": int(np.unique(users[sel]).size),
               "gauc_users": n_gauc, "too_small": n_gauc < MIN_GROUP_USERS}
        for name, by_seed in scores.items():
            row[name] = Stat.of(M.gauc(clicked[sel], s[sel], users[sel]) for s in by_seed.values())
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------- CTR by page and level


def ctr_by_page_level(page: np.ndarray, clicked: np.ndarray, level: np.ndarray, levels: int,
                      max_page: int) -> dict:
    """Impressions and clicks per (page, level); pages >= max_page share the last row."""
    page = np.clip(np.asarray(page, np.int64), 1, max_page) - 1
    top = int(page.max()) + 1 if page.size else 1
    cell = page * levels + np.asarray(level, np.int64)
    shown = np.bincount(cell, minlength=top * levels).reshape(top, levels)
    clicks = np.bincount(cell, weights=np.asarray(clicked, np.float64), minlength=top * levels).reshape(top, levels)
    labels = [str(p + 1) for p in range(top)]
    if top == max_page and (np.asarray(page) == max_page - 1).any():
        labels[-1] = f"{max_page}+"
    with np.errstate(divide="ignore", invalid="ignore"):
        ctr = np.where(shown > 0, clicks / shown, np.nan)
    return {"impressions": shown, "clicks": clicks, "ctr": ctr, "pages": labels}


# ----------------------------------------------------------------------------- examples


def pick_example_requests(request_id: np.ndarray, clicked: np.ndarray, k: int, top_k: int,
                          seed: int) -> list[int]:
    """`k` test requests with at least one click and one non-click, and at least `top_k` targets."""
    rid = np.asarray(request_id)
    uniq, inv = np.unique(rid, return_inverse=True)
    size = np.bincount(inv, minlength=uniq.size)
    clicks = np.bincount(inv, weights=np.asarray(clicked, np.float64), minlength=uniq.size)
    ok = (clicks > 0) & (clicks < size) & (size >= min(top_k, 2))
    candidates = uniq[ok]
    if candidates.size == 0 or k == 0:
        return []
    rng = np.random.default_rng(seed)
    return sorted(int(r) for r in rng.choice(candidates, size=min(k, candidates.size), replace=False))


def top_targets(item_id: np.ndarray, score: np.ndarray, clicked: np.ndarray, top_k: int) -> list[dict]:
    """The request's targets sorted by score, highest first (ties by item id), at most top_k."""
    order = np.lexsort((np.asarray(item_id), -np.asarray(score)))[:top_k]
    return [{"item_id": int(item_id[i]), "score": float(score[i]), "clicked": bool(clicked[i] > 0)}
            for i in order]
