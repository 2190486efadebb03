"""`label_intents`: impressions + behaviours + store -> labelled train/test samples, manifest, stats.

Two streaming passes over the impressions (Parquet record batches, bounded memory):
  1. scan: validate every batch, summarise request runs, per-day similarity ranges, the clicked
     targets' similarities and the rows missing from the store (`batch.scan_batch`);
     then, on the small summaries: the time split (`split`, refused when a split would be empty or
     tiny), the bin edges (fitted on the training days or given), the request table with each
     request's intent distribution, cross-batch checks;
  2. label: `batch.label_batch` on every batch, rows written to OUT/train and OUT/test in input order.
The engine ("local" here, "ray" in `ray_engine`) only decides where those pure functions run.
Before any of it: an existing output is refused unless `overwrite`, every input file is opened and
validated (`common.contract`), and the store's recorded items hash is checked against
DATA/items.parquet (`store_check`).
"""
from __future__ import annotations

import hashlib
import logging
import json
import shutil
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from common.cli import check_output
from common.contract import (ACTIONS, FILES, check_references, iter_parquet_batches, open_parquet,
                             read_table)
from retrieval.store import EMBEDDINGS_FILE, ITEM_IDS_FILE, MANIFEST_FILE, EmbeddingStore

from .batch import (REASONS, LabelContext, label_batch, merge_scans, output_schema,
                    parquet_options, scan_batch)
from .binning import edges_from_sketch, intent_distribution, load_bin_edges
from .checks import (check_cross_batch_duplicates, check_rejects, check_request_users,
                     check_split_clicks)
from .config import LabelConfig
from .parts import SplitWriter
from .derived import past_intent
from .history import DAY_S, BehaviourLog, ItemCatalog
from .labelled import (DATASET_KEY, EDGES_KEY, INPUTS_KEY, LEVELS_KEY, MANIFEST, MANIFEST_VERSION, REJECTS,
                       SPLITS, STATS_DIR, VERSION_KEY, check_edges, similarity_level, split_file)
from .split import Split, choose_split, request_times
from .store_check import check_store_items


log = logging.getLogger(__name__)


def impression_files(data: Path) -> list[Path]:
    """DATA/impressions.parquet, or the sorted *.parquet parts of a DATA/impressions.parquet/ folder."""
    path = data / FILES["impressions"]
    if path.is_dir():
        files = sorted(path.glob("*.parquet"))
        if not files:
            raise FileNotFoundError(f"{path}: folder holds no *.parquet part")
        return files
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (expected the impressions table)")
    return [path]


def iter_impression_batches(files: list[Path], batch_rows: int, columns: list[str] | None = None):
    """Yield (file, row offset within the file, record batch), streaming row groups; a file that
    is empty, not Parquet or corrupt past its footer is a ContractError naming it."""
    for f in files:
        for offset, batch in iter_parquet_batches(f, "impressions", batch_rows, columns):
            yield f, offset, batch


def count_rows(files: list[Path]) -> int:
    return sum(open_parquet(f, "impressions").metadata.num_rows for f in files)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class Inputs:
    """Everything pass 1 and pass 2 read besides the impressions."""

    store: EmbeddingStore
    catalog: ItemCatalog
    log: BehaviourLog
    impression_files: list[Path]
    store_check: dict  # the store's items hash against DATA/items.parquet (`store_check`)
    items_sha256: str  # of DATA/items.parquet
    user_ids: np.ndarray  # sorted ids of DATA/users.parquet, that impressions must refer to


def load_inputs(config: LabelConfig) -> Inputs:
    """Every input opened and validated against the contract before any work; users.parquet is
    checked though the labels do not read it, and every impression file's footer is opened."""
    store = EmbeddingStore.load(config.store)
    items_path = config.data / FILES["items"]
    items = read_table(items_path, "items", columns=["item_id", "category_id", "top_category_id"],
                       any_ts=config.allow_any_ts)
    items_sha256 = sha256(items_path)
    checked = check_store_items(store, config.store, items_path, items_sha256, config.allow_store_mismatch)
    users = read_table(config.data / FILES["users"], "users", columns=["user_id"], any_ts=config.allow_any_ts)
    user_ids = users.column("user_id").to_numpy()
    files = impression_files(config.data)
    for f in files:
        open_parquet(f, "impressions")
    catalog = ItemCatalog.from_table(items)
    behaviors_path = config.data / FILES["behaviors"]
    behaviors = read_table(behaviors_path, "behaviors", columns=["user_id", "item_id", "ts", "action"],
                           any_ts=config.allow_any_ts)
    if behaviors.num_rows == 0:
        log.warning("label-intents: warning: %s has no rows: every request's history and both "
                    "subsequences will be empty (the coverage in OUT/%s says so too)", behaviors_path, STATS_DIR)
    for column, known, target in (("user_id", user_ids, FILES["users"]),
                                  ("item_id", items.column("item_id").to_numpy(), FILES["items"])):
        check_references(behaviors.column(column).to_numpy(), known, str(behaviors_path), column, target)
    return Inputs(store, catalog, BehaviourLog.build(behaviors, catalog, store), files, checked,
                  items_sha256, np.sort(user_ids))


# ---------------------------------------------------------------------------------------------
# Between the passes: split, edges, request table (pure functions over the scan summaries)
# ---------------------------------------------------------------------------------------------

@dataclass
class Requests:
    """One row per request, sorted by request_id."""

    request_ids: np.ndarray
    user_ids: np.ndarray
    ts: np.ndarray
    trigger_item_ids: np.ndarray
    intent: np.ndarray  # (R, n) float32
    has_intent: np.ndarray  # (R,) bool
    n_clicks: np.ndarray  # (R,) int64 clicked targets with a vector
    multi_run: np.ndarray  # request_ids whose rows are not contiguous in one batch


def fit_edges_from_days(days: pa.Table, boundary_ts: int, levels: int, quantile: float) -> np.ndarray:
    """Edges over the training days' trigger-target similarities (see `binning`)."""
    train = days.filter(pc.less(days.column("day"), boundary_ts // DAY_S))
    if train.num_rows == 0 or pc.sum(train.column("n_rows")).as_py() == 0:
        raise ValueError("no training impression with a vector: cannot fit bin edges "
                         "(give them with bin_edges / --bin-edges)")
    sketch = train.column("sketch").combine_chunks().flatten().to_numpy().reshape(train.num_rows, -1).sum(axis=0)
    return edges_from_sketch(sketch, float(pc.min(train.column("sim_min")).as_py()),
                             float(pc.max(train.column("sim_max")).as_py()), levels, quantile)


def build_requests(runs: pa.Table, clicks: pa.Table, edges: np.ndarray) -> Requests:
    """Merge request runs (checking they agree) and compute every request's intent."""
    rid = runs.column("request_id").to_numpy()
    order = np.argsort(rid, kind="stable")
    rid = rid[order]
    cols = {n: runs.column(n).to_numpy()[order] for n in ("user_id", "ts", "trigger_item_id")}
    first = np.r_[True, rid[1:] != rid[:-1]] if rid.size else np.zeros(0, bool)
    group = np.cumsum(first) - 1
    for name, col in cols.items():
        bad = np.flatnonzero(col != col[first][group])
        if bad.size:
            r = rid[bad[0]]
            raise ValueError(f"impressions: column '{name}': request_id {r} has rows with different "
                             f"values in different parts of the file ({col[first][group][bad[0]]} and "
                             f"{col[bad[0]]}); {bad.size} run(s) disagree")
    request_ids = rid[first]
    multi = request_ids[np.bincount(group, minlength=request_ids.size) > 1]
    levels = edges.size - 1
    crid = clicks.column("request_id").to_numpy()
    cidx = np.searchsorted(request_ids, crid)
    intent, has_intent = intent_distribution(cidx, similarity_level(clicks.column("sim").to_numpy(), edges),
                                             request_ids.size, levels)
    return Requests(request_ids, cols["user_id"][first], cols["ts"][first], cols["trigger_item_id"][first],
                    intent, has_intent, np.bincount(cidx, minlength=request_ids.size), multi)


def request_features(requests: Requests, boundary_ts: int) -> dict[str, np.ndarray]:
    """Per request: its clicks (for the leave-one-out intent) and the past intent over the same
    user's labelled train requests that started before it (`intent_labels.derived`). A test request
    sees every train request of its user and never another test request's clicks."""
    pool = requests.has_intent & (requests.ts < boundary_ts)
    past, count = past_intent(requests.user_ids, requests.ts, requests.user_ids[pool], requests.ts[pool],
                              requests.intent[pool])
    return {"n_clicks": requests.n_clicks, "past_intent": past, "past_count": count}


# ---------------------------------------------------------------------------------------------
# The local engine
# ---------------------------------------------------------------------------------------------

def _bar(config: LabelConfig, total: int, desc: str) -> tqdm:
    return tqdm(total=total, desc=desc, unit="row", unit_scale=True, disable=not config.show_progress_bar)


def scan_local(config: LabelConfig, inputs: Inputs) -> dict[str, pa.Table]:
    """Pass 1 in process; in "drop" mode rejected rows stream to OUT/rejects.parquet."""
    parts, writer = [], None
    keep = config.on_missing == "drop"
    with _bar(config, count_rows(inputs.impression_files), "label-intents: scan") as bar:
        for f, offset, batch in iter_impression_batches(inputs.impression_files, config.batch_rows):
            part = scan_batch(batch, inputs.store, source=str(f), row_offset=offset, keep_rejects=keep,
                              any_ts=config.allow_any_ts)
            if keep and part["rejects"].num_rows:
                if writer is None:
                    writer = pq.ParquetWriter(config.out / REJECTS, part["rejects"].schema)
                writer.write_table(part["rejects"])
            parts.append(part)
            if len(parts) % 64 == 0:  # keep the per-day sketches from growing with the file
                parts = [merge_scans(parts)]
            bar.update(batch.num_rows)
    if writer is not None:
        writer.close()
    return merge_scans(parts)


def label_local(config: LabelConfig, inputs: Inputs, ctx: LabelContext) -> dict[str, dict]:
    """Pass 2 in process: each batch's train rows, then its test rows, labelled and appended."""
    schema = output_schema(open_parquet(inputs.impression_files[0], "impressions").schema_arrow)
    writers = {s: SplitWriter(config.out / split_file(s), schema, part_rows=config.part_rows,
                              row_group_rows=config.row_group_rows, **parquet_options(schema))
               for s in SPLITS}
    # Encoding Parquet releases the GIL: write batch k on a thread while batch k+1 is labelled.
    # At most two writes wait, which bounds memory to a few batches.
    pending: list[Future] = []
    try:
        with ThreadPoolExecutor(max_workers=1) as pool, \
                _bar(config, count_rows(inputs.impression_files), "label-intents: label") as bar:
            for _, _, batch in iter_impression_batches(inputs.impression_files, config.batch_rows):
                ts = batch.column("ts")
                for split, present in (("train", pc.min(ts).as_py() < ctx.boundary_ts),
                                       ("test", pc.max(ts).as_py() >= ctx.boundary_ts)):
                    part = label_batch(batch, ctx, split=split) if present else None
                    if part is not None and part.num_rows:
                        while len(pending) >= 2:
                            pending.pop(0).result()
                        pending.append(pool.submit(writers[split].write, part))
                bar.update(batch.num_rows)
            for f in pending:
                f.result()
    except BaseException:
        for w in writers.values():
            w.abort()
        raise
    return {s: {"path": w.close(), "rows": w.rows, "parts": len(w.parts)} for s, w in writers.items()}


# ---------------------------------------------------------------------------------------------
# The whole run
# ---------------------------------------------------------------------------------------------

def run(config: LabelConfig) -> Path:
    """Label the dataset of `config`; returns the output folder."""
    start = time.perf_counter()
    check_output(config.out, config.overwrite)
    given_edges = _given_edges(config)
    inputs = load_inputs(config)  # every input checked before the output folder is touched
    config.out.mkdir(parents=True, exist_ok=True)
    _remove_stale_outputs(config.out)
    if config.engine == "ray":
        from . import ray_engine
        scan = ray_engine.scan(config, inputs)
    else:
        scan = scan_local(config, inputs)
    if not scan or scan["runs"].num_rows == 0:
        raise ValueError(f"{inputs.impression_files[0]}: no impression rows")
    reject_counts = _reject_counts(scan["reject_counts"])
    check_rejects(reject_counts, scan["rejects"], config)
    check_request_users(scan["runs"], inputs.user_ids, inputs.impression_files)

    split = choose_split(request_times(scan["runs"]), config.train_days, config.train_fraction,
                         config.min_split_requests)
    boundary = split.boundary_ts
    edges = given_edges if given_edges is not None else fit_edges_from_days(
        scan["days"], boundary, config.levels, config.edge_quantile)
    requests = build_requests(scan["runs"], scan["clicks"], edges)
    check_split_clicks(requests, boundary)
    check_cross_batch_duplicates(inputs.impression_files, requests.multi_run, config.batch_rows)

    ctx = LabelContext(store=inputs.store, log=inputs.log, catalog=inputs.catalog, edges=edges,
                       request_ids=requests.request_ids, intent=requests.intent,
                       has_intent=requests.has_intent, boundary_ts=boundary,
                       subseq_level=config.subseq_level, max_hist=config.max_hist,
                       hist_days=config.hist_days, max_subseq=config.max_subseq,
                       **request_features(requests, boundary))
    if config.engine == "ray":
        from . import ray_engine
        outputs = ray_engine.label(config, inputs, ctx)
    else:
        outputs = label_local(config, inputs, ctx)

    rows_in = count_rows(inputs.impression_files)
    rows_out = sum(o["rows"] for o in outputs.values())
    rejected = sum(reject_counts.values())
    if rows_in != rows_out + rejected:
        raise RuntimeError(f"row accounting broke: {rows_in} rows in, {rows_out} written, {rejected} rejected")
    if config.on_missing == "drop" and rejected == 0:
        pq.write_table(scan["rejects"].slice(0, 0), config.out / REJECTS)

    from .stats import coverage, write_stats
    cov = coverage(inputs, scan, requests, boundary, reject_counts)
    manifest = _manifest(config, inputs, edges, split, requests, outputs, reject_counts, rows_in,
                         cov, time.perf_counter() - start)
    write_stats(config.out / STATS_DIR, requests, boundary, cov, config.data)
    (config.out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")  # last: the folder is complete
    return config.out


def _remove_stale_outputs(out: Path) -> None:
    """Outputs of an earlier run (of either engine, a split being a file or a folder of parts),
    replaced with `overwrite`; OUT/<split>/ is where the Ray engine wrote its parts before. The
    manifest goes first, so that a run stopped midway never leaves a folder that looks complete."""
    splits = [out / split_file(s) for s in SPLITS]
    for path in [out / MANIFEST, out / REJECTS] + splits + [p.with_name(p.name + ".partial") for p in splits] \
            + [out / s for s in SPLITS]:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def _reject_counts(table: pa.Table) -> dict[str, int]:
    grouped = table.group_by("reason").aggregate([("n_rows", "sum")])
    got = dict(zip(grouped.column("reason").to_pylist(), grouped.column("n_rows_sum").to_pylist()))
    return {r: int(got.get(r, 0)) for r in REASONS}


def _given_edges(config: LabelConfig) -> np.ndarray | None:
    """The edges given by `bin_edges`, checked against `levels` before any work; None to fit them."""
    if config.bin_edges is None:
        return None
    edges = (load_bin_edges(config.bin_edges) if isinstance(config.bin_edges, Path)
             else check_edges(config.bin_edges, "bin_edges"))
    if edges.size - 1 != config.levels:
        raise ValueError(f"the given bin edges define {edges.size - 1} levels but levels={config.levels}; "
                         f"pass levels={edges.size - 1} (--levels {edges.size - 1})")
    return edges


def _split_counts(requests: Requests, boundary: int, outputs: dict[str, dict]) -> dict[str, dict]:
    out = {}
    for split, mask in (("train", requests.ts < boundary), ("test", requests.ts >= boundary)):
        out[split] = {**outputs[split], "requests": int(mask.sum()),
                      "requests_labelled": int(requests.has_intent[mask].sum()),
                      "clicks_labelled": int(requests.n_clicks[mask].sum())}
    return out


def _manifest(config, inputs, edges, split: Split, requests, outputs, reject_counts, rows_in, cov,
              seconds) -> dict:
    boundary = split.boundary_ts
    files = [config.data / FILES["behaviors"], *inputs.impression_files]
    store_files = [config.store / n for n in (EMBEDDINGS_FILE, ITEM_IDS_FILE, MANIFEST_FILE)]
    sm = inputs.store.manifest
    return {
        VERSION_KEY: MANIFEST_VERSION,
        LEVELS_KEY: int(edges.size - 1),
        EDGES_KEY: [float(e) for e in edges],
        "bin_edges_source": "given" if config.bin_edges is not None else (
            f"fitted: equal width over the [{config.edge_quantile}, {1 - config.edge_quantile}] quantile range "
            "(within [min, max]) of the train split's trigger-target similarities, all exposed impressions"),
        "edge_quantile": config.edge_quantile,
        "threshold": {"subseq_level": config.subseq_level,
                      "similarity": float(edges[config.subseq_level])},
        "caps": {"max_hist": config.max_hist, "hist_days": config.hist_days,
                 "max_subseq": config.max_subseq},
        "split": split.manifest(),
        "counts": {"rows_in": rows_in, "rows_out": sum(o["rows"] for o in outputs.values()),
                   "rows_rejected": sum(reject_counts.values()),
                   **_split_counts(requests, boundary, outputs)},
        "rejects": {"on_missing": config.on_missing, "by_reason": reject_counts,
                    "path": REJECTS if config.on_missing == "drop" else None},
        "columns": {"hist_action": {"codes": list(ACTIONS)},
                    "hist_dt_min": "floor((request ts - behaviour ts) / 60)",
                    "intent": "all zeros where has_intent is false"},
        DATASET_KEY: str(Path(config.data).resolve()),
        INPUTS_KEY: {FILES["items"]: inputs.items_sha256,
                     **{str(p.relative_to(config.data)): sha256(p) for p in files}},
        "store": {"path": str(config.store), "count": len(inputs.store), "dim": inputs.store.dim,
                  "dtype": str(inputs.store.vectors.dtype),
                  "manifest": {k: sm[k] for k in ("backend", "model", "pooling", "dtype", "count", "dim")
                               if k in sm},
                  "sha256": {p.name: sha256(p) for p in store_files},
                  "items_check": inputs.store_check},
        "coverage": cov,
        "contract": {"any_ts": config.allow_any_ts},
        "engine": config.engine,
        "seconds": round(seconds, 2),
    }
