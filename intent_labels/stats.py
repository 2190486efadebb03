"""The labelling's report: coverage (JSON + Markdown) and intent histograms (PNG).

OUT/stats/ holds
    coverage.json / coverage.md   requests labelled, impressions and behaviours lacking a vector,
                                  history lengths
    intent_overall.png            mean intent distribution of labelled requests, train vs test, and
                                  the share of requests whose most-clicked level is each level
    intent_by_user_type.png       the same mean distribution by planted user type (only when the
                                  dataset has truth/users.parquet with a user-type column)
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa

from common.contract import lookup_user_types, read_user_types



def coverage(inputs, scan: dict[str, pa.Table], requests, boundary: int, reject_counts: dict[str, int]) -> dict:
    """Counts that say how much of the data could be labelled."""
    log = inputs.log
    lo, hi = log.windows(requests.user_ids, requests.ts, 1e9)  # all behaviours before the request
    n_before = hi - lo
    rejects = scan["rejects"]
    out = {
        "requests": int(requests.request_ids.size),
        "requests_labelled": int(requests.has_intent.sum()),
        "requests_labelled_share": float(requests.has_intent.mean()) if requests.has_intent.size else 0.0,
        "requests_without_behaviour_before": int((n_before == 0).sum()),
        "impression_rows_missing_from_store": reject_counts,
        "missing_item_ids_first": sorted(set(rejects.column("item_id").to_pylist()))[:10]
        if rejects.num_rows else [],
        "behaviours": len(log),
        "behaviours_missing_from_store": int((log.store_row < 0).sum()),
        "behaviours_missing_from_items": int((log.category < 0).sum()),
        "catalogue_items": int(inputs.catalog.item_ids.size),
        "catalogue_items_missing_from_store": int((~inputs.store.contains(inputs.catalog.item_ids)).sum()),
    }
    for split, mask in (("train", requests.ts < boundary), ("test", requests.ts >= boundary)):
        out[f"{split}_requests"] = int(mask.sum())
        out[f"{split}_requests_labelled"] = int(requests.has_intent[mask].sum())
    return out


def write_stats(folder: Path, requests, boundary: int, cov: dict, dataset: Path) -> None:
    """Write the files above into `folder`; user types come from `dataset`'s truth, if any."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "coverage.json").write_text(json.dumps(cov, indent=2) + "\n")
    lines = ["# Labelling coverage", "", "| what | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in cov.items()]
    (folder / "coverage.md").write_text("\n".join(lines) + "\n")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = requests.intent.shape[1]
    x = np.arange(n)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for k, (split, mask) in enumerate((("train", requests.ts < boundary), ("test", requests.ts >= boundary))):
        sel = mask & requests.has_intent
        if not sel.any():
            continue
        axes[0].bar(x + (k - 0.5) * 0.4, requests.intent[sel].mean(axis=0), width=0.4,
                    label=f"{split} ({int(sel.sum())} requests)")
        top = np.bincount(requests.intent[sel].argmax(axis=1), minlength=n) / sel.sum()
        axes[1].bar(x + (k - 0.5) * 0.4, top, width=0.4, label=split)
    axes[0].set(title="mean intent of labelled requests", xlabel="similarity level", ylabel="share of clicks")
    axes[1].set(title="most-clicked level per request", xlabel="similarity level", ylabel="share of requests")
    for ax in axes:
        ax.set_xticks(x)
        ax.legend()
    fig.tight_layout()
    fig.savefig(folder / "intent_overall.png", dpi=100)
    plt.close(fig)

    types = read_user_types(dataset)
    if types is None:
        return
    known = lookup_user_types(types, requests.user_ids)
    req_type = np.where(known == None, "unknown", known).astype(str)  # noqa: E711 (elementwise)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    kinds = sorted(set(req_type[requests.has_intent].tolist()))
    width = 0.8 / max(len(kinds), 1)
    for k, kind in enumerate(kinds):
        sel = requests.has_intent & (req_type == kind)
        ax.bar(x + (k - (len(kinds) - 1) / 2) * width, requests.intent[sel].mean(axis=0), width=width,
               label=f"{kind} ({int(sel.sum())} requests)")
    ax.set(title="mean intent by planted user type", xlabel="similarity level", ylabel="share of clicks")
    ax.set_xticks(x)
    ax.legend()
    fig.tight_layout()
    fig.savefig(folder / "intent_by_user_type.png", dpi=100)
    plt.close(fig)
