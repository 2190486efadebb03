"""Similarity levels and ground-truth intent distributions (DAIAN section 4.1).

A request's intent is a distribution over n similarity levels: p_i = c_i / C, where C is the number
of targets the user clicked in the request and c_i the number of those whose cosine similarity to
the trigger falls in level i. Levels are equal-width bins (the paper's "Equal-Width Binning").

Where our reading fills a gap: the paper does not say over which range the equal-width bins are laid.
We lay them over the trigger-target similarities of every exposed (not only clicked) training
impression, so the levels span what the recommender actually shows, from the q-quantile to the
(1-q)-quantile: q = 0 gives [min, max]; the labelling's default q = 0.01 keeps a handful of outliers
(near-duplicate titles at cosine 1.0, say) from squeezing the bulk into the middle levels. Quantiles
come from a fixed histogram of the cosine range [-1, 1] in SKETCH_BINS bins (what a streaming or
distributed pass can merge): the low end is the left edge of the bin holding the q-quantile, the
high end the right edge of the bin holding the (1-q)-quantile, both kept inside [min, max] (the
end bins reach min and max themselves).
Similarities outside the range (on later days, or the trimmed tails) are clipped into the first or
last level. Level 0 is the least similar, n-1 the most. Each bin is half-open [e_i, e_{i+1}) except
the last, which also holds e_n: the one level rule, `intent_labels.labelled.similarity_level`.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .labelled import EDGES_KEY, check_edges

SKETCH_BINS = 4096  # histogram bins over the cosine range [-1, 1] (width 2 / 4096 ~ 0.0005)


def fit_bin_edges(similarities: np.ndarray, levels: int, quantile: float = 0.0) -> np.ndarray:
    """Equal-width edges from the `quantile` to the 1 - `quantile` point of `similarities`.

    quantile = 0 gives [min, max] exactly. Returns (levels + 1,) float64, ascending.
    """
    if int(levels) != levels or levels < 1:
        raise ValueError(f"levels must be a positive integer, got {levels!r}")
    sims = np.asarray(similarities, dtype=np.float64).ravel()
    if sims.size == 0:
        raise ValueError("cannot fit bin edges on an empty set of similarities")
    if not np.isfinite(sims).all():
        raise ValueError(f"similarities hold {int((~np.isfinite(sims)).sum())} non-finite value(s)")
    return edges_from_sketch(similarity_sketch(sims), float(sims.min()), float(sims.max()), levels, quantile)


def similarity_sketch(similarities: np.ndarray) -> np.ndarray:
    """Counts of similarities per bin of [-1, 1] cut in SKETCH_BINS -> (SKETCH_BINS,) int64."""
    sims = np.asarray(similarities, dtype=np.float64)
    bins = np.clip(np.floor((sims + 1.0) * (SKETCH_BINS / 2)), 0, SKETCH_BINS - 1).astype(np.int64)
    return np.bincount(bins, minlength=SKETCH_BINS)


def edges_from_sketch(sketch: np.ndarray, lo: float, hi: float, levels: int, quantile: float) -> np.ndarray:
    """Edges over the [quantile, 1 - quantile] range read off a sketch, within the exact [lo, hi]."""
    if not 0.0 <= quantile < 0.5:
        raise ValueError(f"quantile must be in [0, 0.5), got {quantile!r}")
    if quantile > 0:
        cum = np.cumsum(sketch)
        total = cum[-1]
        k_lo = int(np.searchsorted(cum, quantile * total, side="right"))  # bin holding the q-quantile
        k_hi = int(np.searchsorted(cum, (1.0 - quantile) * total, side="left"))
        width = 2.0 / SKETCH_BINS  # the end bins also hold what lies beyond [-1, 1]
        lo = max(lo, -1.0 + k_lo * width) if k_lo > 0 else lo
        hi = min(hi, -1.0 + (k_hi + 1) * width) if k_hi < SKETCH_BINS - 1 else hi
    return edges_from_range(lo, hi, levels)


def edges_from_range(lo: float, hi: float, levels: int) -> np.ndarray:
    """Equal-width edges over [lo, hi] (used when min and max are gathered while streaming)."""
    if not hi > lo:
        raise ValueError(f"cannot fit {levels} equal-width levels on a degenerate range [{lo}, {hi}]: "
                         "all training similarities are equal")
    edges = np.linspace(lo, hi, int(levels) + 1)
    edges[0], edges[-1] = lo, hi  # exact ends, whatever linspace rounds
    return edges


def intent_distribution(request_index: np.ndarray, clicked_levels: np.ndarray, n_requests: int,
                        levels: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-request intent from the levels of its clicked targets.

    request_index (K,) gives the request (0..n_requests-1) of each clicked target, clicked_levels (K,)
    its level. Returns intent (n_requests, levels) float32, rows summing to 1 where the request has a
    click and all zeros where it has none, and has_intent (n_requests,) bool.
    """
    request_index = np.asarray(request_index, dtype=np.int64)
    clicked_levels = np.asarray(clicked_levels, dtype=np.int64)
    if request_index.shape != clicked_levels.shape:
        raise ValueError(f"request_index {request_index.shape} and clicked_levels "
                         f"{clicked_levels.shape} differ in shape")
    if clicked_levels.size and (clicked_levels.min() < 0 or clicked_levels.max() >= levels):
        raise ValueError(f"clicked levels must lie in [0, {levels}), got "
                         f"[{clicked_levels.min()}, {clicked_levels.max()}]")
    counts = np.bincount(request_index * levels + clicked_levels,
                         minlength=n_requests * levels).reshape(n_requests, levels)
    total = counts.sum(axis=1)
    has_intent = total > 0
    intent = np.zeros((n_requests, levels), dtype=np.float32)
    intent[has_intent] = counts[has_intent] / total[has_intent, None]
    return intent, has_intent


def load_bin_edges(path: str | Path) -> np.ndarray:
    """Read edges from a JSON list, a JSON object with the edges key (a labelling manifest) or .npy."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such bin-edges file")
    if path.suffix == ".npy":
        return check_edges(np.load(path), f"{path}: bin edges")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc})") from exc
    if isinstance(data, dict):
        if EDGES_KEY not in data:
            raise ValueError(f"{path}: JSON object without a '{EDGES_KEY}' key")
        data = data[EDGES_KEY]
    return check_edges(np.asarray(data, dtype=np.float64), f"{path}: bin edges")
