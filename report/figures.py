"""The report's figures, one function each, drawn with matplotlib's object API (Agg canvas).

Every function takes numbers already computed (`report.analysis`) and returns a
`matplotlib.figure.Figure`; `to_png` renders one to PNG bytes. No pyplot, so no global state and
no display is touched.
"""
from __future__ import annotations

import io
import textwrap

import numpy as np
from matplotlib.figure import Figure
from matplotlib.gridspec import GridSpec
from matplotlib.patches import Patch, Rectangle

MODEL_COLOURS = {"din": "#8c8c8c", "dei2n": "#4c72b0", "daian": "#dd5a3a"}
OTHER_COLOURS = ["#55a868", "#8172b2", "#ccb974", "#64b5cd", "#937860"]
CLICKED = "#2ca02c"


def colour(model: str, index: int = 0) -> str:
    return MODEL_COLOURS.get(model, OTHER_COLOURS[index % len(OTHER_COLOURS)])


def to_png(fig: Figure, dpi: int = 110) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    return buf.getvalue()


def level_labels(edges: np.ndarray) -> list[str]:
    """'[lo, hi)' per similarity level (the last one closed)."""
    e = np.asarray(edges, np.float64)
    n = e.size - 1
    return [f"[{e[i]:.2f}, {e[i + 1]:.2f}{']' if i == n - 1 else ')'}" for i in range(n)]


CHANCE = 0.5  # the AUC of a score without signal: where AUC and GAUC bars start
MUTED = "#d9d9d9"  # groups too small to read


def _zoom(ax, values: np.ndarray, errors: np.ndarray) -> None:
    """Fit the y axis to the points and their error bars (dot and line plots only, never bars)."""
    lo = np.nanmin(values - errors)
    hi = np.nanmax(values + errors)
    pad = max((hi - lo) * 0.35, 0.005)
    ax.set_ylim(max(lo - pad, 0.0), min(hi + pad, 1.0))


def _auc_axis(ax, values: np.ndarray, errors: np.ndarray) -> None:
    """A y axis for AUC/GAUC bars: from 0.5 (chance, where the bars start), lower only if a bar
    (a mean) goes below it, up to the highest bar and whisker; a dotted line marks chance."""
    values = np.asarray(values, np.float64)
    errors = np.nan_to_num(np.asarray(errors, np.float64))
    finite = np.isfinite(values)
    lo = float(np.min(values[finite])) if finite.any() else CHANCE  # a whisker below 0.5 is clipped, a bar is not
    hi = float(np.max(values[finite] + errors[finite])) if finite.any() else CHANCE + 0.1
    pad = max((max(hi, CHANCE) - min(lo, CHANCE)) * 0.15, 0.01)
    bottom = CHANCE if lo >= CHANCE else max(lo - pad, 0.0)
    ax.set_ylim(bottom, min(max(hi, CHANCE) + pad, 1.0))
    ax.axhline(CHANCE, color="#555555", linewidth=0.7, linestyle=":")


def _auc_bars(ax, x, means, stds, width=0.8, **style):
    """Bars of AUC/GAUC values drawn from 0.5 (so their length is the signal above chance)."""
    means = np.asarray(means, np.float64)
    errs = np.nan_to_num(np.asarray(stds, np.float64))
    if not errs.any():  # one seed: no whiskers (and no zero-length caps)
        errs = None
        style.pop("capsize", None)
    return ax.bar(x, np.nan_to_num(means - CHANCE), width, bottom=CHANCE, yerr=errs, **style)


# ----------------------------------------------------------------------------- comparison


def plot_comparison(rows: list[dict]) -> Figure:
    """AUC and GAUC of each compared model: bars from 0.5 to the mean over seeds, the std as error bar."""
    fig = Figure(figsize=(8.5, 3.4))
    names = [r["label"] for r in rows]
    x = np.arange(len(rows))
    several = any(len(r[key].values) > 1 for r in rows for key in ("auc", "gauc"))
    for k, key in enumerate(("auc", "gauc")):
        ax = fig.add_subplot(1, 2, k + 1)
        means = np.array([r[key].mean for r in rows])
        stds = np.nan_to_num(np.array([r[key].std for r in rows]))
        bars = _auc_bars(ax, x, means, stds, capsize=4,
                         color=[colour(r["model"], i) for i, r in enumerate(rows)], edgecolor="black", linewidth=0.5)
        for bar, m, sd in zip(bars, means, stds):
            if np.isfinite(m):
                ax.annotate(f"{m:.4f}", (bar.get_x() + bar.get_width() / 2, max(m, CHANCE) + sd), xytext=(0, 3),
                            textcoords="offset points", ha="center", va="bottom", fontsize=8)
        ax.set_xticks(x, names, rotation=20 if len(rows) > 4 else 0, ha="right" if len(rows) > 4 else "center")
        ax.set_title(key.upper())
        _auc_axis(ax, means, stds)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("Test AUC and GAUC (bars from 0.5, chance; " +
                 ("mean ± std over seeds)" if several else "one seed, no std)"), fontsize=11)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- intent fit (Figure 5)


def plot_intent_fit(fit: dict, edges: np.ndarray, group_titles: dict[str, str] | None = None,
                    min_users: int = 1) -> Figure:
    """DAIAN Figure 5: per user group (or over all users when there are no groups), predicted intent
    (bars) against the ground truth (line); a group of fewer than `min_users` users is drawn grey."""
    groups = fit["groups"] or ({"all": fit["all"]} if fit.get("all") else {})
    known = ("specific", "broad")
    names = [g for g in known if g in groups] + [g for g in groups if g not in known]
    fig = Figure(figsize=(4.6 * max(len(names), 1), 3.8))
    labels = level_labels(edges)
    x = np.arange(len(labels))
    for k, name in enumerate(names):
        g = groups[name]
        small = g["users"] < min_users
        ax = fig.add_subplot(1, len(names), k + 1)
        ax.bar(x, g["pred"], yerr=g["pred_std"] if np.any(g["pred_std"]) else None, capsize=3,
               color=MUTED if small else "#f2a488",
               edgecolor="#999999" if small else "#dd5a3a", label="predicted $\\hat{p}$ (DAIAN)")
        ax.plot(x, g["true"], "o-", color="#999999" if small else "#1f3b73", linewidth=2, label="ground truth $p$")
        ax.set_xticks(x, labels, rotation=35, ha="right", fontsize=8)
        ax.set_xlabel("trigger-target similarity level")
        if k == 0:
            ax.set_ylabel("share of clicks")
        title = (group_titles or {}).get(name, "all users" if name == "all" else name)
        js = g["js_population"]
        ax.set_title(f"({chr(97 + k)}) {title}\nJS = {js.mean:.3f}"
                     + (f" ± {js.std:.3f}" if len(js.values) > 1 else "")
                     + f"   ({g['requests']:,} requests, {g['users']:,} users"
                     + (f": too few, < {min_users})" if small else ")"), fontsize=10,
                     color="#777777" if small else "black")
        ax.set_ylim(0, max(np.max(g["true"]), np.max(g["pred"] + g["pred_std"])) * 1.25)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- diversity (Figure 6)


def plot_diversity_gain(rows: list[dict], base: tuple[str, str], model: tuple[str, str], xlabel: str,
                        group_labels: list[str]) -> Figure:
    """DAIAN Figure 6: GAUC of the baseline and the model per user-diversity group (bars from 0.5),
    and the gain; groups marked `too_small` are drawn grey and hatched, their gain hollow."""
    (base_name, base_label), (model_name, model_label) = base, model
    fig = Figure(figsize=(max(6.0, 1.25 * len(rows) + 2), 3.9))
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(rows))
    w = 0.38
    small = np.array([bool(r.get("too_small")) for r in rows], bool)
    b = np.array([r[base_name].mean for r in rows])
    m = np.array([r[model_name].mean for r in rows])
    b_err = np.nan_to_num([r[base_name].std for r in rows])
    m_err = np.nan_to_num([r[model_name].std for r in rows])
    for values, errs, offset, name, label in ((b, b_err, -w / 2, "din", base_label),
                                              (m, m_err, w / 2, "daian", model_label)):
        bars = _auc_bars(ax, x + offset, values, errs, w, capsize=3, color=colour(name), label=f"{label} GAUC")
        for bar, muted in zip(bars, small):
            if muted:
                bar.set_facecolor(MUTED)
                bar.set_hatch("//")
                bar.set_edgecolor("#aaaaaa")
    ax.set_xticks(x, group_labels, fontsize=8)
    for tick, muted in zip(ax.get_xticklabels(), small):
        if muted:
            tick.set_color("#888888")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("GAUC")
    _auc_axis(ax, np.concatenate([b, m]), np.concatenate([b_err, m_err]))
    gain = (m / b - 1) * 100
    ax2 = ax.twinx()
    ax2.plot(x, gain, "-", color="#222222", label=f"gain of {model_label} over {base_label} (%)")
    ax2.plot(x[~small], gain[~small], "D", color="#222222")
    ax2.plot(x[small], gain[small], "D", markerfacecolor="white", markeredgecolor="#999999")
    for xi, g, muted in zip(x, gain, small):
        if np.isfinite(g):
            ax2.annotate(f"{g:+.1f}%", (xi, g), xytext=(0, 6), textcoords="offset points", ha="center",
                         fontsize=8, color="#999999" if muted else "black")
    ax2.set_ylabel("GAUC gain (%)")
    ax2.axhline(0, color="#222222", linewidth=0.6, linestyle=":")
    finite_gain = gain[np.isfinite(gain)]
    if finite_gain.size:
        lo, hi = min(finite_gain.min(), 0.0), max(finite_gain.max(), 0.0)
        pad = max((hi - lo) * 0.2, 1.0)
        ax2.set_ylim(lo - pad, hi + pad)
    handles = [Patch(color=colour("din")), Patch(color=colour("daian"))] + ax2.get_legend_handles_labels()[0][:1]
    names = [f"{base_label} GAUC", f"{model_label} GAUC", f"gain of {model_label} over {base_label} (%)"]
    if small.any():
        handles.append(Patch(facecolor=MUTED, edgecolor="#aaaaaa", hatch="//"))
        names.append("too few users to read")
    ax.legend(handles, names, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.28), ncol=4, frameon=False)
    ax.set_title("GAUC by user intent diversity" + (" (grey: too few users to read)" if small.any() else ""),
                 fontsize=11)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- levels sweep (Figure 7)


def plot_levels_sweep(points: list[dict]) -> Figure:
    """DAIAN Figure 7: AUC and GAUC against the number of similarity levels n."""
    fig = Figure(figsize=(8.5, 3.4))
    ns = np.array([p["levels"] for p in points])
    for k, key in enumerate(("auc", "gauc")):
        ax = fig.add_subplot(1, 2, k + 1)
        means = np.array([p[key].mean for p in points])
        stds = np.nan_to_num(np.array([p[key].std for p in points]))
        ax.errorbar(ns, means, yerr=stds if stds.any() else None, fmt="o-", color=colour("daian"), capsize=4)
        if np.isfinite(means).any():
            best = int(np.nanargmax(means))
            ax.scatter([ns[best]], [means[best]], s=160, facecolors="none", edgecolors="black", zorder=3,
                       label=f"best: n = {ns[best]}")
            ax.legend(fontsize=8, loc="lower right")
        for n, mval in zip(ns, means):
            ax.annotate(f"{mval:.4f}", (n, mval), xytext=(0, 7), textcoords="offset points", ha="center", fontsize=8)
        ax.set_xticks(ns)
        ax.set_xlabel("number of similarity levels n")
        ax.set_title(f"DAIAN {key.upper()}")
        _zoom(ax, means, stds)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- CTR by page and level


def plot_ctr_page_level(ctr: dict, edges: np.ndarray, min_cell: int) -> Figure:
    """CTR per (page, similarity level): a heatmap and one line per level across pages."""
    shown, rate = ctr["impressions"], ctr["ctr"].copy()
    rate[shown < max(min_cell, 1)] = np.nan
    labels = level_labels(edges)
    pages = ctr["pages"]
    fig = Figure(figsize=(11, 4.2))
    gs = GridSpec(1, 2, figure=fig, width_ratios=[1.15, 1])
    ax = fig.add_subplot(gs[0, 0])
    im = ax.imshow(rate.T * 100, origin="lower", aspect="auto", cmap="viridis")
    for p in range(rate.shape[0]):
        for lv in range(rate.shape[1]):
            if np.isfinite(rate[p, lv]):
                v = rate[p, lv] * 100
                ax.text(p, lv, f"{v:.1f}\nn={int(shown[p, lv]):,}", ha="center", va="center", fontsize=6,
                        color="white" if v < np.nanmax(rate) * 60 else "black")
    ax.set_xticks(np.arange(len(pages)), pages)
    ax.set_yticks(np.arange(len(labels)), labels, fontsize=8)
    ax.set_xlabel("page")
    ax.set_ylabel("trigger-target similarity level")
    ax.set_title("CTR (%) by page and similarity level (n: impressions)", fontsize=10)
    fig.colorbar(im, ax=ax, label="CTR (%)")
    ax2 = fig.add_subplot(gs[0, 1])
    cmap = im.cmap
    n = rate.shape[1]
    for lv in range(n):
        ax2.plot(np.arange(len(pages)), rate[:, lv] * 100, "o-", markersize=3,
                 color=cmap(lv / max(n - 1, 1)), label=f"level {lv} {labels[lv]}")
    ax2.set_xticks(np.arange(len(pages)), pages)
    ax2.set_xlabel("page")
    ax2.set_ylabel("CTR (%)")
    ax2.set_title("CTR across pages, one line per level", fontsize=10)
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- example requests


_PLACEHOLDER = np.full((64, 64, 3), 236, dtype=np.uint8)


def _tile(ax, picture: np.ndarray | None, caption: str, *, clicked: bool = False, frame: str = "#cccccc") -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    ax.imshow(_PLACEHOLDER if picture is None else picture)
    if picture is None:
        ax.text(0.5, 0.5, "no picture", ha="center", va="center", fontsize=8, color="#777777",
                transform=ax.transAxes)
    edge = CLICKED if clicked else frame
    for spine in ax.spines.values():
        spine.set_edgecolor(edge)
        spine.set_linewidth(4 if clicked else 1)
    if clicked:
        ax.add_patch(Rectangle((0.0, 0.0), 1.0, 0.2, transform=ax.transAxes, color=CLICKED, alpha=0.85))
        ax.text(0.5, 0.1, "clicked", transform=ax.transAxes, ha="center", va="center", color="white",
                fontsize=8, fontweight="bold")
    ax.set_xlabel(caption, fontsize=7)


def _wrap(text: str, width: int = 22, lines: int = 2) -> str:
    return "\n".join(textwrap.wrap(text, width=width, max_lines=lines, placeholder="…"))


def plot_example(example: dict, picture_of, title_of) -> Figure:
    """One test request: the trigger, and each model's top-scored targets (clicked ones framed green).

    `example` = {"request_id", "user_id", "page", "trigger", "clicks", "targets",
    "models": [(label, model, [{"item_id", "score", "clicked"}, ...]), ...]}; `picture_of(item_id)`
    returns an (H, W, 3) array or None, `title_of(item_id)` a string.
    """
    models = example["models"]
    k = max((len(t) for _, _, t in models), default=1)
    rows = max(len(models), 1)
    fig = Figure(figsize=(1.7 * (k + 1.5) + 0.4, 1.95 * rows + 0.5))
    gs = GridSpec(rows, k + 2, figure=fig, width_ratios=[1.3, 0.45] + [1] * k, wspace=0.1, hspace=0.6)
    trig = example["trigger"]
    ax = fig.add_subplot(gs[:, 0])
    _tile(ax, picture_of(trig), _wrap(title_of(trig), 24, 4), frame="#1f3b73")
    ax.set_title(f"trigger (item {trig})", fontsize=9, color="#1f3b73")
    for r, (label, model, targets) in enumerate(models):
        lab = fig.add_subplot(gs[r, 1])
        lab.axis("off")
        lab.text(0.5, 0.5, "\n".join(textwrap.wrap(label, 8)), ha="center", va="center", fontsize=10,
                 color=colour(model, r), fontweight="bold", transform=lab.transAxes)
        for c, t in enumerate(targets):
            ax = fig.add_subplot(gs[r, c + 2])
            _tile(ax, picture_of(t["item_id"]), _wrap(title_of(t["item_id"])), clicked=t["clicked"])
            ax.set_title(f"#{c + 1}  p={t['score']:.3f}", fontsize=7)
    fig.suptitle(f"request {example['request_id']} · user {example['user_id']} · page {example['page']} · "
                 f"{example['clicks']} click(s) among {example['targets']} targets", fontsize=10)
    return fig
