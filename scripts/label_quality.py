"""How well do the intent labels recover the simulator's planted intent?

For every labelled request (at least one click) it compares the label p (clicks per similarity level,
p_i = c_i / C) with the planted intent of truth/requests.parquet (the expected share of clicks per
level given what was shown) by the Jensen-Shannon divergence with natural logarithms,
JS(p, q) = scipy.spatial.distance.jensenshannon(p, q) ** 2 (in [0, ln 2]), and prints the mean for:
  - the labels written by `label-intents` with the given store (e.g. the MiniLM text store);
  - labels built from categories alone: similarity 1.0 for the trigger's leaf category, 0.5 for its
    top category, 0 otherwise, binned the same way (equal width over the training range, with the
    labelling's edge quantile);
  - an oracle: the same labelling on the simulator's own latent item vectors and level edges, whose
    divergence is what click sampling noise alone leaves.

    python scripts/label_quality.py --data out/demo/world --store out/demo/store_text --out out/quality
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from scipy.spatial.distance import jensenshannon

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from intent_labels import label_intents  # noqa: E402
from intent_labels.binning import fit_bin_edges, intent_distribution  # noqa: E402
from intent_labels.history import DAY_S  # noqa: E402
from intent_labels.labelled import similarity_level  # noqa: E402


def js_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Row-wise JS divergence, natural log: jensenshannon(p, q) ** 2."""
    return jensenshannon(p, q, axis=1) ** 2


def planted(data: Path) -> tuple[np.ndarray, np.ndarray]:
    t = pq.read_table(data / "truth" / "requests.parquet", columns=["request_id", "planted_intent"])
    order = np.argsort(t.column("request_id").to_numpy())
    return t.column("request_id").to_numpy()[order], np.stack(t.column("planted_intent").to_numpy(zero_copy_only=False))[order]


def labels_from_output(out: Path) -> tuple[np.ndarray, np.ndarray]:
    """(request ids, intent) of labelled requests in a label-intents output folder."""
    ids, intents = [], []
    for split in ("train", "test"):
        path = out / f"{split}.parquet" if (out / f"{split}.parquet").exists() else out / split
        t = pq.read_table(path, columns=["request_id", "intent", "has_intent"])
        keep = t.column("has_intent").to_numpy(zero_copy_only=False)
        ids.append(t.column("request_id").to_numpy()[keep])
        intents.append(np.stack(t.column("intent").to_numpy(zero_copy_only=False)[keep]) if keep.any()
                       else np.zeros((0, 0)))
    ids = np.concatenate(ids)
    intents = np.concatenate([i for i in intents if i.size])
    ids, first = np.unique(ids, return_index=True)
    return ids, intents[first]


def labels_from_similarity(imp: dict, sims: np.ndarray, levels: int, train_days: int,
                           edges: np.ndarray | None = None, quantile: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Intent labels of labelled requests from per-row trigger-target similarities."""
    boundary = (int(imp["ts"].min()) // DAY_S + train_days) * DAY_S
    if edges is None:
        edges = fit_bin_edges(sims[imp["ts"] < boundary], levels, quantile=quantile)
    rids, ridx = np.unique(imp["request_id"], return_inverse=True)
    clicked = imp["clicked"] == 1
    intent, has = intent_distribution(ridx[clicked], similarity_level(sims[clicked], edges), rids.size, levels)
    return rids[has], intent[has]


def category_similarity(data: Path, imp: dict) -> np.ndarray:
    items = pq.read_table(data / "items.parquet", columns=["item_id", "category_id", "top_category_id"])
    ids = items.column("item_id").to_numpy()
    order = np.argsort(ids)
    ids = ids[order]
    leaf, top = (items.column(c).to_numpy()[order] for c in ("category_id", "top_category_id"))
    a, b = np.searchsorted(ids, imp["trigger_item_id"]), np.searchsorted(ids, imp["item_id"])
    return np.where(leaf[a] == leaf[b], 1.0, np.where(top[a] == top[b], 0.5, 0.0))


def latent_similarity(data: Path, imp: dict) -> tuple[np.ndarray, np.ndarray]:
    truth = data / "truth"
    vecs = np.load(truth / "item_latent.npy").astype(np.float64)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    ids = np.load(truth / "item_ids.npy")
    order = np.argsort(ids)
    rows = lambda x: order[np.searchsorted(ids[order], x)]  # noqa: E731
    sims = np.einsum("pd,pd->p", vecs[rows(imp["trigger_item_id"])], vecs[rows(imp["item_id"])])
    edges = np.asarray(json.loads((truth / "levels.json").read_text())["edges"])
    return sims, edges


def mean_js(ids: np.ndarray, intent: np.ndarray, truth_ids: np.ndarray, truth: np.ndarray) -> tuple[float, int]:
    pos = np.searchsorted(truth_ids, ids)
    if (truth_ids[pos] != ids).any():
        raise ValueError("some labelled requests are absent from truth/requests.parquet")
    return float(js_divergence(intent, truth[pos]).mean()), int(ids.size)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, type=Path, help="a simulated world (with truth/)")
    p.add_argument("--store", required=True, type=Path,
                   help="embedding store of the world's items (built with the offline MiniLM if absent)")
    p.add_argument("--labels", type=Path, default=None,
                   help="an existing label-intents output for this world and store (else labelled now)")
    p.add_argument("--levels", type=int, default=6, help="similarity levels (default 6)")
    p.add_argument("--train-days", type=int, default=7, help="days in the train split (default 7)")
    p.add_argument("--json", type=Path, default=None, help="also write the numbers to this JSON file")
    args = p.parse_args(argv)

    if not (args.store / "embeddings.npy").is_file():
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the MiniLM ships in a package; never download
        from embedder import build_store

        print(f"building a MiniLM text store in {args.store} ...", flush=True)
        build_store(args.data / "items.parquet", args.store, backend="text", show_progress_bar=True)
    labels = args.labels
    if labels is None or not (labels / "manifest.json").is_file():
        labels = labels or Path(tempfile.mkdtemp(prefix="label_quality_"))
        label_intents(args.data, args.store, labels, levels=args.levels, train_days=args.train_days,
                      overwrite=True)

    truth_ids, truth = planted(args.data)
    cols = ["request_id", "ts", "trigger_item_id", "item_id", "clicked"]
    t = pq.read_table(args.data / "impressions.parquet", columns=cols)
    imp = {c: t.column(c).to_numpy() for c in cols}
    store_js = mean_js(*labels_from_output(labels), truth_ids, truth)
    quantile = json.loads((labels / "manifest.json").read_text()).get("edge_quantile", 0.0)
    cat_js = mean_js(*labels_from_similarity(imp, category_similarity(args.data, imp), args.levels,
                                             args.train_days, quantile=quantile), truth_ids, truth)
    sims, edges = latent_similarity(args.data, imp)
    oracle_js = mean_js(*labels_from_similarity(imp, sims, edges.size - 1, args.train_days, edges),
                        truth_ids, truth)
    store_manifest = json.loads((args.store / "manifest.json").read_text())
    result = {"world": str(args.data), "store": str(args.store),
              "store_model": store_manifest.get("model", {}).get("id") if isinstance(store_manifest.get("model"), dict)
              else store_manifest.get("model"),
              "labelled_requests": store_js[1],
              "mean_js_store_labels": store_js[0], "mean_js_category_labels": cat_js[0],
              "mean_js_oracle_latent_labels": oracle_js[0],
              "js": "scipy.spatial.distance.jensenshannon(p, q) ** 2, natural log"}
    print(f"labelled requests: {store_js[1]}")
    print(f"mean JS divergence to the planted intent (natural log; lower is better):")
    print(f"  labels from the store ({args.store.name}):   {store_js[0]:.4f}")
    print(f"  labels from categories alone:           {cat_js[0]:.4f}")
    print(f"  oracle (simulator's latent vectors):    {oracle_js[0]:.4f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
