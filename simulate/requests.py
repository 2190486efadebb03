"""TIR sessions, their pages (requests) and the targets each page exposes.

- Session: an organic click in the request days (not in its last hour) opens a TIR session with
  probability session_prob; that click's item is the trigger (the user's most recent click), and
  the session starts 5-60 s later.
- Pages: page 1 always; from page p the user scrolls on with probability
  continue_prob * continue_decay^(p-1), up to max_pages. Each page is one request with its own
  timestamp (15-120 s after the previous page).
- Targets: page_size slots per page, each of a kind drawn from target_mix: same leaf as the trigger
  (near), a complementary leaf (related; falls back to same top when the leaf has none), the
  trigger's top category (same top), or anywhere in the catalogue (far); the item is drawn by
  popularity inside that pool. Slots repeating an item of the page or the trigger itself are
  redrawn from the far pool (three rounds), then dropped; positions are 1..k in slot order, which
  is already random because slot kinds are drawn independently.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .catalogue import Catalogue
from .config import WorldConfig
from .histories import Pools

KIND_NEAR, KIND_RELATED, KIND_SAME_TOP, KIND_FAR = 0, 1, 2, 3


@dataclass
class Requests:
    """The requests (pages) of one user block, sorted by (user, ts, page)."""

    user_rows: np.ndarray  # (R,) block-local user row
    trigger: np.ndarray  # (R,) catalogue row of the trigger item
    page: np.ndarray  # (R,) int32, 1-based
    ts: np.ndarray  # (R,) int64 unix seconds


def make_sessions(cfg: WorldConfig, rng: np.random.Generator, user_rows: np.ndarray, items: np.ndarray,
                  ts: np.ndarray) -> Requests:
    """Sessions opened by organic clicks, expanded into one request per page."""
    req_start = cfg.start_ts + cfg.history_days * 86_400
    req_end = req_start + cfg.request_days * 86_400 - 3_600
    eligible = np.flatnonzero((ts >= req_start) & (ts < req_end))
    opened = eligible[rng.random(eligible.shape[0]) < cfg.session_prob]
    n_sessions = opened.shape[0]
    pages = np.ones(n_sessions, dtype=np.int64)
    alive = np.ones(n_sessions, dtype=bool)
    for p in range(1, cfg.max_pages):
        alive &= rng.random(n_sessions) < cfg.continue_prob * cfg.continue_decay ** (p - 1)
        pages += alive
    start = ts[opened] + rng.integers(5, 60, n_sessions)
    session = np.repeat(np.arange(n_sessions), pages)
    first = np.repeat(np.cumsum(pages) - pages, pages)
    page = np.arange(session.shape[0]) - first + 1
    gaps = np.where(page > 1, rng.integers(15, 120, session.shape[0]), 0)
    req_ts = start[session] + _segment_cumsum(gaps, first)
    order = np.lexsort((page, req_ts, user_rows[opened][session]))
    session = session[order]
    return Requests(user_rows=user_rows[opened][session], trigger=items[opened][session],
                    page=page[order].astype(np.int32), ts=req_ts[order].astype(np.int64))


def _segment_cumsum(values: np.ndarray, segment_first: np.ndarray) -> np.ndarray:
    """Cumulative sum restarting at each segment (segment_first[i] = index where i's segment starts)."""
    total = np.cumsum(values)
    return total - (total[segment_first] - values[segment_first])


def _related_table(cat: Catalogue) -> tuple[np.ndarray, np.ndarray]:
    """Padded (L, P) partner leaves and (L,) partner counts."""
    counts = np.array([p.shape[0] for p in cat.tree.related])
    table = np.zeros((cat.tree.n_leaves, max(1, counts.max())), dtype=np.int64)
    for leaf, partners in enumerate(cat.tree.related):
        table[leaf, : partners.shape[0]] = partners
    return table, counts


def draw_targets(cfg: WorldConfig, rng: np.random.Generator, cat: Catalogue, pools: Pools,
                 trigger: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(R, page_size) target catalogue rows and a keep mask (False = dropped duplicate slot)."""
    r, k = trigger.shape[0], cfg.page_size
    mix = np.asarray(cfg.target_mix, dtype=np.float64)
    kind = rng.choice(4, size=(r, k), p=mix / mix.sum())
    t_leaf = np.repeat(cat.leaf[trigger], k).reshape(r, k)
    t_top = cat.top[trigger][:, None].repeat(k, axis=1)
    table, counts = _related_table(cat)
    has_partner = counts[t_leaf] > 0
    kind = np.where((kind == KIND_RELATED) & ~has_partner, KIND_SAME_TOP, kind)
    partner = table[t_leaf, (rng.random((r, k)) * np.maximum(counts[t_leaf], 1)).astype(np.int64)]

    targets = np.empty((r, k), dtype=np.int64)
    for code, pool, labels in ((KIND_NEAR, pools.by_leaf, t_leaf), (KIND_RELATED, pools.by_leaf, partner),
                               (KIND_SAME_TOP, pools.by_top, t_top), (KIND_FAR, pools.anywhere, None)):
        sel = kind == code
        lab = np.zeros(int(sel.sum()), dtype=np.int64) if labels is None else labels[sel]
        targets[sel] = pool.sample(rng, lab)

    for _ in range(3):
        bad = _bad_slots(targets, trigger)
        if not bad.any():
            break
        targets[bad] = pools.anywhere.sample(rng, np.zeros(int(bad.sum()), dtype=np.int64))
    return targets, ~_bad_slots(targets, trigger)


def _bad_slots(targets: np.ndarray, trigger: np.ndarray) -> np.ndarray:
    """Slots equal to the trigger or repeating an earlier slot of the same page."""
    order = np.argsort(targets, axis=1, kind="stable")
    srt = np.take_along_axis(targets, order, axis=1)
    dup_sorted = np.zeros_like(srt, dtype=bool)
    dup_sorted[:, 1:] = srt[:, 1:] == srt[:, :-1]
    dup = np.zeros_like(dup_sorted)
    np.put_along_axis(dup, order, dup_sorted, axis=1)
    return dup | (targets == trigger[:, None])
