"""Checks of a finished run's test scores: a model that did not learn says so.

`score_warnings` returns one sentence per problem (metrics.json's "warnings", also logged):
- scores constant over the test split (std below `CONSTANT_STD`): the model predicts one number;
- a test AUC within noise of 0.5: |AUC - 0.5| < `NOISE_SE` null standard errors, the null
  standard error of the Mann-Whitney AUC being sqrt((n_pos + n_neg + 1) / (12 n_pos n_neg))
  (Hanley and McNeil 1982, the AUC of scores independent of the labels);
- a test split without clicks or without non-clicks, where the AUC is undefined.
"""
from __future__ import annotations

import math

import numpy as np

CONSTANT_STD = 1e-6
NOISE_SE = 2.0
HINT = "see docs/training.md, \"Small worlds\" (--recipe, --epochs, --batch-size)"


def null_auc_se(n_pos: int, n_neg: int) -> float:
    """Standard error of the AUC of label-independent scores, n_pos positives and n_neg negatives."""
    return math.sqrt((n_pos + n_neg + 1) / (12.0 * n_pos * n_neg))


def score_warnings(labels: np.ndarray, scores: np.ndarray, auc: float) -> list[str]:
    """The warnings of one run's test scores (empty when it learned something measurable)."""
    labels = np.asarray(labels, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    out = []
    if scores.size and float(np.std(scores)) < CONSTANT_STD:
        out.append(f"test scores are constant (p = {float(np.mean(scores)):.3f} for every one of "
                   f"{scores.size:,} candidates): the model did not learn; {HINT}")
    n_pos = int((labels == 1).sum())
    n_neg = int(labels.size - n_pos)
    if not n_pos or not n_neg:
        out.append(f"test AUC undefined: the test split holds {n_pos:,} clicks and {n_neg:,} non-clicks")
    elif auc is not None and math.isfinite(auc):
        se = null_auc_se(n_pos, n_neg)
        if abs(auc - 0.5) < NOISE_SE * se:
            out.append(f"test AUC {auc:.4f} is within noise of 0.5 (|AUC - 0.5| < {NOISE_SE:g} x {se:.4f}, "
                       f"the null standard error for {n_pos:,} clicks and {n_neg:,} non-clicks): "
                       f"the model learned nothing measurable; {HINT}")
    return out
