"""Evaluation metrics on numpy arrays: AUC, GAUC, log loss, RelaImpr and intent JS divergence.

Definitions (as the DAIAN paper's evaluation defines them, its equations 22-24; GAUC and RelaImpr
as DIN (Zhou et al., KDD 2018) introduced them):
- AUC: the Mann-Whitney statistic with tied scores counted as one half (average ranks).
- GAUC: AUC per user, averaged with each user's impression count as weight; users whose
  impressions are all clicked or all unclicked have no AUC and are skipped (FuxiCTR convention).
- Log loss: mean binary cross-entropy of the click probability, clipped to [eps, 1 - eps].
- RelaImpr = ((AUC_model - 0.5) / (AUC_base - 0.5) - 1) * 100 (percent; the base is DIN).
- JS divergence between the true intent p and the predicted p_hat, natural log (so it lies in
  [0, ln 2]); equal to `scipy.spatial.distance.jensenshannon(p, q) ** 2`. It is measured per test
  request that has clicks (the label exists only there), with p_hat averaged over the request's
  impressions (constant within a request for a model whose intent sees no target), then averaged
  over requests, overall and per planted user type. The population-level JS compares the mean p_hat
  with the mean p over a user type's requests: the quantity DAIAN's Figure 5 plots and reports
  (0.082 for specific-intent users).
"""
from __future__ import annotations

import numpy as np


def _check_pair(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels).astype(np.float64).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if labels.shape != scores.shape:
        raise ValueError(f"labels and scores differ in length: {labels.size} vs {scores.size}")
    if not np.isin(labels, (0.0, 1.0)).all():
        raise ValueError("labels must be 0/1")
    if not np.isfinite(scores).all():
        raise ValueError(f"scores hold {int((~np.isfinite(scores)).sum())} non-finite value(s)")
    return labels, scores


def _grouped_auc(labels: np.ndarray, scores: np.ndarray, groups: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-group AUC with average ranks for ties -> (group ids, AUC (NaN if one class), group sizes)."""
    order = np.lexsort((scores, groups))
    g, s, y = groups[order], scores[order], labels[order]
    n = g.size
    new_group = np.ones(n, bool)
    new_group[1:] = g[1:] != g[:-1]
    new_block = new_group.copy()
    new_block[1:] |= s[1:] != s[:-1]
    group_id = np.cumsum(new_group) - 1
    block_id = np.cumsum(new_block) - 1
    group_start = np.flatnonzero(new_group)
    rank = np.arange(n) - group_start[group_id] + 1.0  # 1-based rank within the group
    block_mean = np.bincount(block_id, weights=rank) / np.bincount(block_id)
    rank = block_mean[block_id]  # ties share their average rank
    n_groups = group_start.size
    size = np.bincount(group_id, minlength=n_groups).astype(np.float64)
    pos = np.bincount(group_id, weights=y, minlength=n_groups)
    neg = size - pos
    pos_rank = np.bincount(group_id, weights=rank * y, minlength=n_groups)
    with np.errstate(divide="ignore", invalid="ignore"):
        auc_g = (pos_rank - pos * (pos + 1) / 2) / (pos * neg)
    auc_g[(pos == 0) | (neg == 0)] = np.nan
    return g[group_start], auc_g, size


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (ties count one half); NaN when only one class is present."""
    labels, scores = _check_pair(labels, scores)
    if labels.size == 0:
        return float("nan")
    _, value, _ = _grouped_auc(labels, scores, np.zeros(labels.size, np.int64))
    return float(value[0])


def gauc(labels: np.ndarray, scores: np.ndarray, users: np.ndarray) -> float:
    """Impression-weighted mean of per-user AUC over users with both classes; NaN if there are none."""
    labels, scores = _check_pair(labels, scores)
    users = np.asarray(users).ravel()
    if users.shape != labels.shape:
        raise ValueError(f"users has {users.size} entries, labels {labels.size}")
    if labels.size == 0:
        return float("nan")
    _, auc_g, size = _grouped_auc(labels, scores, users)
    ok = ~np.isnan(auc_g)
    if not ok.any():
        return float("nan")
    return float((auc_g[ok] * size[ok]).sum() / size[ok].sum())


def log_loss(labels: np.ndarray, probs: np.ndarray, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy of probabilities clipped to [eps, 1 - eps]."""
    labels, probs = _check_pair(labels, probs)
    if labels.size == 0:
        return float("nan")
    p = np.clip(probs, eps, 1 - eps)
    return float(-(labels * np.log(p) + (1 - labels) * np.log1p(-p)).mean())


def rela_impr(auc_model: float, auc_base: float) -> float:
    """RelaImpr in percent: ((AUC_model - 0.5) / (AUC_base - 0.5) - 1) * 100."""
    if auc_base == 0.5:
        raise ValueError("RelaImpr is undefined against a base AUC of exactly 0.5")
    return float(((auc_model - 0.5) / (auc_base - 0.5) - 1.0) * 100.0)


def js_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Row-wise Jensen-Shannon divergence, natural log: (N, n), (N, n) -> (N,) in [0, ln 2].

    Rows are renormalised to sum to one first (as scipy does).
    """
    p = np.atleast_2d(np.asarray(p, dtype=np.float64))
    q = np.atleast_2d(np.asarray(q, dtype=np.float64))
    if p.shape != q.shape:
        raise ValueError(f"p and q differ in shape: {p.shape} vs {q.shape}")
    if (p < 0).any() or (q < 0).any():
        raise ValueError("distributions must be non-negative")
    p = p / p.sum(axis=1, keepdims=True)
    q = q / q.sum(axis=1, keepdims=True)
    m = (p + q) / 2

    def kl(a: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(a > 0, a * np.log(a / m), 0.0)
        return terms.sum(axis=1)

    return np.maximum(0.5 * kl(p) + 0.5 * kl(q), 0.0)


def per_request_intent(request_ids: np.ndarray, has_intent: np.ndarray, intent_true: np.ndarray,
                       intent_pred: np.ndarray, user_type: np.ndarray | None = None) -> dict:
    """Collapse impression rows to requests with clicks: true p, mean predicted p_hat, user type."""
    request_ids = np.asarray(request_ids)
    keep = np.asarray(has_intent, dtype=bool)
    rid = request_ids[keep]
    uniq, first, inverse = np.unique(rid, return_index=True, return_inverse=True)
    counts = np.bincount(inverse, minlength=uniq.size).astype(np.float64)
    pred = np.asarray(intent_pred, dtype=np.float64)[keep]
    mean_pred = np.stack([np.bincount(inverse, weights=pred[:, j], minlength=uniq.size)
                          for j in range(pred.shape[1])], axis=1) / counts[:, None]
    out = {"request_id": uniq, "true": np.asarray(intent_true, dtype=np.float64)[keep][first],
           "pred": mean_pred}
    if user_type is not None:
        out["user_type"] = np.asarray(user_type, dtype=object)[keep][first]
    return out


def intent_metrics(request_ids: np.ndarray, has_intent: np.ndarray, intent_true: np.ndarray,
                   intent_pred: np.ndarray, user_type: np.ndarray | None = None) -> dict:
    """JS divergence of predicted vs true intent: per-request mean and population level, by user type."""
    req = per_request_intent(request_ids, has_intent, intent_true, intent_pred, user_type)
    js = js_divergence(req["true"], req["pred"]) if req["request_id"].size else np.zeros(0)
    out = {"requests": int(js.size), "js_mean": float(js.mean()) if js.size else float("nan"),
           "js_population": (float(js_divergence(req["true"].mean(0), req["pred"].mean(0))[0])
                             if js.size else float("nan")),
           "log": "natural"}
    if user_type is not None:
        by_type = {}
        types = req["user_type"]
        for t in sorted({str(v) for v in types if v is not None}):
            sel = types == t
            by_type[t] = {
                "requests": int(sel.sum()),
                "js_mean": float(js[sel].mean()),
                "js_population": float(js_divergence(req["true"][sel].mean(0), req["pred"][sel].mean(0))[0]),
                "true_mean": req["true"][sel].mean(0).round(6).tolist(),
                "pred_mean": req["pred"][sel].mean(0).round(6).tolist(),
            }
        out["by_user_type"] = by_type
    return out


def ctr_metrics(labels: np.ndarray, scores: np.ndarray, users: np.ndarray,
                user_type: np.ndarray | None = None) -> dict:
    """AUC, GAUC and log loss of click probabilities, overall and per planted user type."""
    out = {"auc": auc(labels, scores), "gauc": gauc(labels, scores, users),
           "logloss": log_loss(labels, scores), "rows": int(np.size(labels)),
           "ctr": float(np.mean(labels)) if np.size(labels) else float("nan")}
    if user_type is not None:
        user_type = np.asarray(user_type, dtype=object)
        by_type = {}
        for t in sorted({str(v) for v in user_type if v is not None}):
            sel = user_type == t
            by_type[t] = {"auc": auc(labels[sel], scores[sel]),
                          "gauc": gauc(labels[sel], scores[sel], users[sel]),
                          "logloss": log_loss(labels[sel], scores[sel]), "rows": int(sel.sum())}
        out["by_user_type"] = by_type
    return out
