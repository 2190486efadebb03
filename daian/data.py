"""Labelled TIR samples -> pre-tensorised datasets and an index-batch loader for training.

The data path (see docs/training.md):

1. Read `label-intents` output (`DATA/train.parquet`, `DATA/test.parquet`, each a file or a folder
   of parts, and `DATA/manifest.json`), and the dataset's `items.parquet` / `users.parquet` through
   the data contract (`retrieval.contract.read_table`).
2. Fit the vocabularies (`daian.vocab`) on the train split: ids the train split never showed map to
   1 (unknown). Side information (category, top category, brand, price bucket, user profile) comes
   from the catalogue and the users table for every item and user, seen or not, so a cold item keeps
   its category even though its id embedding is the shared "unknown" row.
3. Tensorise each split once: every ragged list column becomes a padded int32 matrix built from the
   Arrow offsets with numpy (no per-row Python). Items are stored as rows of a small item table
   (catalogue row -> ITEM_FIELDS indices), so a batch's (B, L, F) history is one gather. The
   frozen store vectors are indexed separately (catalogue row -> store row), so every catalogue
   item, seen in training or not, brings its own vector to the model.
4. `TIRDataset[idx]` turns a tensor of row indices into the `(features, targets)` dicts of
   `daian.models.base`; sequences are cut to the longest real one in the batch. `EpochBatchSampler`
   draws a fresh permutation per epoch from a `torch.Generator` seeded with (seed, epoch), so a
   resumed run sees exactly the batches an uninterrupted one would, and shards every global batch
   across processes under `accelerate launch`.

Features never carry the label, the intent or has_intent: those are posterior information and
travel in `targets`, which only the training code reads.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from daian.models.base import ITEM_FIELDS, FeatureSizes
from daian.vocab import PAD, UNKNOWN, Vocab, Vocabularies
from intent_labels.binning import similarity_level
from retrieval.contract import profile_columns, read_table
from retrieval.store import EmbeddingStore

log = logging.getLogger(__name__)

SPLITS = ("train", "test")
MANIFEST = "manifest.json"
# Columns of the label-intents output this stage reads (others, e.g. hist_ts, are ignored).
LABELLED_COLUMNS = (
    "request_id", "user_id", "trigger_item_id", "page", "item_id", "clicked", "intent",
    "has_intent", "hist_item_ids", "hist_dt_min", "mm_subseq_item_ids", "cat_subseq_item_ids",
    "trigger_target_sim",
)
# Read when present: the request time, which orders a user's requests for `past_intent`.
OPTIONAL_COLUMNS = ("ts",)
FEATURE_KEYS = ("user", "user_profile", "trigger", "target", "hist", "hist_mask", "hist_dt",
                "mm_seq", "mm_mask", "cat_seq", "cat_mask", "page", "tt_sim", "trigger_vec", "target_vec",
                "hist_vec", "mm_vec", "past_intent", "past_count")
TARGET_KEYS = ("label", "intent", "has_intent", "intent_loo", "has_intent_loo")
# Manifest keys under which label-intents may record the dataset folder it read.
_DATASET_KEYS = ("dataset", "data", "data_dir", "dataset_dir")


# ----------------------------------------------------------------------------- reading


def labelled_path(data: Path, split: str) -> Path:
    """`DATA/<split>.parquet` (a file or a folder of parts) or `DATA/<split>/`."""
    for candidate in (data / f"{split}.parquet", data / split):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"{data}: no {split}.parquet (file or folder of parts); "
                            "is this a label-intents output folder?")


def read_labelled(data: Path, split: str) -> pa.Table:
    """Read one split's columns, checking names and types; ValueError names the file and column."""
    path = labelled_path(Path(data), split)
    try:
        schema = pq.read_schema(path) if path.is_file() else pq.ParquetDataset(path).schema
    except (pa.ArrowInvalid, OSError) as exc:
        raise ValueError(f"{path}: not a readable Parquet file or folder ({exc})") from exc
    missing = [c for c in LABELLED_COLUMNS if c not in schema.names]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; found {schema.names}")
    table = pq.read_table(path, columns=list(LABELLED_COLUMNS)
                          + [c for c in OPTIONAL_COLUMNS if c in schema.names])
    for name in ("hist_item_ids", "hist_dt_min", "mm_subseq_item_ids", "cat_subseq_item_ids", "intent"):
        t = table.schema.field(name).type
        if not (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)):
            raise ValueError(f"{path}: column '{name}' has type {t}, expected a list")
    return table


def read_manifest(data: Path) -> dict:
    path = Path(data) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{data}: no {MANIFEST} (expected the label-intents manifest)")
    manifest = json.loads(path.read_text())
    if "levels" not in manifest:
        raise ValueError(f"{path}: no 'levels' entry")
    return manifest


def resolve_dataset(data: Path, manifest: dict, explicit: Path | None, store: Path | None = None) -> Path:
    """The dataset folder (items.parquet, users.parquet, truth/).

    In order: the explicit folder; one the labelled manifest names (`data`/`dataset`); else the
    folder of the items.parquet the embedding store was built from (its manifest's `input.path`),
    accepted only if its sha256 equals the one the labelled manifest recorded for items.parquet.
    """
    if explicit is not None:
        folder = Path(explicit)
    else:
        folder = _dataset_from_manifest(Path(data), manifest)
        if folder is None and store is not None:
            folder = _dataset_from_store(Path(store), manifest)
        if folder is None:
            raise ValueError(f"cannot tell the dataset folder: {Path(data) / MANIFEST} names none and the "
                             "store's items.parquet is not the labelled one; pass --dataset DIR")
    if not (folder / "items.parquet").is_file():
        raise FileNotFoundError(f"{folder}: no items.parquet (is this a dataset folder?)")
    return folder


def _dataset_from_manifest(data: Path, manifest: dict) -> Path | None:
    for key in _DATASET_KEYS:
        value = manifest.get(key)
        if isinstance(value, dict):
            value = value.get("path") or value.get("dir")
        if isinstance(value, str):
            candidate = Path(value)
            if not candidate.is_absolute():
                candidate = (data / candidate).resolve()
            if (candidate / "items.parquet").is_file():
                return candidate
    return None


def _dataset_from_store(store: Path, manifest: dict) -> Path | None:
    import hashlib

    try:
        source = json.loads((store / MANIFEST).read_text()).get("input") or {}
    except (OSError, ValueError):
        return None
    items = Path(source["path"]) if isinstance(source, dict) and source.get("path") else None
    if items is None or not items.is_file():
        return None
    recorded = (manifest.get("inputs") or {}).get("items.parquet")
    if recorded is None:
        return None
    digest = hashlib.sha256(items.read_bytes()).hexdigest()
    return items.parent if digest == recorded else None


def _np(column: pa.ChunkedArray | pa.Array, name: str, source: str) -> np.ndarray:
    if column.null_count:
        raise ValueError(f"{source}: column '{name}' has {column.null_count} null value(s)")
    return column.to_numpy()


def _combined(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def ragged_to_padded(column: pa.ChunkedArray | pa.Array, width: int,
                     map_values=None, dtype=np.int64) -> tuple[np.ndarray, np.ndarray]:
    """A list column -> ((N, width) padded with 0, (N,) kept lengths), first `width` entries kept.

    Pure numpy on the Arrow offsets: the flat values are mapped once (`map_values`), then scattered
    into the padded matrix. Null lists count as empty.
    """
    arr = _combined(column)
    n = len(arr)
    out = np.zeros((n, width), dtype=dtype)
    if n == 0:
        return out, np.zeros(0, np.int64)
    if pa.types.is_fixed_size_list(arr.type):
        size = arr.type.list_size
        offsets = np.arange(n + 1, dtype=np.int64) * size + arr.offset * size
    else:
        offsets = arr.offsets.to_numpy().astype(np.int64)
    values = arr.values.to_numpy(zero_copy_only=False)
    full = np.diff(offsets)
    if arr.null_count:
        full = np.where(arr.is_null().to_numpy(zero_copy_only=False), 0, full)
    lengths = np.minimum(full, width)
    rows = np.repeat(np.arange(n), lengths)
    pos = np.arange(rows.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    src = offsets[:-1][rows] + pos
    taken = values[src]
    if map_values is not None:
        taken = map_values(taken)
    out[rows, pos] = taken
    return out, full


# ----------------------------------------------------------------------------- lookup tables


@dataclass
class LookupTable:
    """Raw id -> table row -> per-field indices; row 0 is padding, row 1 an id absent from the table."""

    raw_ids: np.ndarray  # (R,) sorted int64: the raw id of rows 2..
    fields: np.ndarray  # (R + 2, F) int64 field indices (row 0 zeros, row 1 unknown everywhere)

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """Raw ids -> int32 table rows; ids not in the table -> 1."""
        return Vocab(self.raw_ids).lookup(ids).astype(np.int32)


def build_item_table(items: pa.Table, vocabs: Vocabularies) -> LookupTable:
    """Catalogue -> ITEM_FIELDS indices per item, for every catalogue item (seen in train or not)."""
    item_ids = items.column("item_id").to_numpy()
    order = np.argsort(item_ids, kind="stable")
    raw = item_ids[order]
    cols = {
        "item": vocabs.item.lookup(raw),
        "category": vocabs.category.lookup(items.column("category_id").to_numpy()[order]),
        "top_category": vocabs.top_category.lookup(items.column("top_category_id").to_numpy()[order]),
        "brand": vocabs.brand.lookup(items.column("brand_id").to_numpy()[order]),
        "price_bucket": vocabs.price_bucket(items.column("price").to_numpy()[order]),
    }
    body = np.stack([cols[f] for f in ITEM_FIELDS], axis=1)
    head = np.array([[PAD] * len(ITEM_FIELDS), [UNKNOWN] * len(ITEM_FIELDS)], dtype=np.int64)
    return LookupTable(raw, np.concatenate([head, body]).astype(np.int64))


def build_user_table(users: pa.Table, vocabs: Vocabularies) -> LookupTable:
    """Users table -> [user index, profile indices...] per user (seen in train or not)."""
    user_ids = users.column("user_id").to_numpy()
    order = np.argsort(user_ids, kind="stable")
    raw = user_ids[order]
    cols = [vocabs.user.lookup(raw)]
    cols += [vocab.lookup(users.column(name).to_numpy()[order]) for name, vocab in vocabs.profile.items()]
    body = np.stack(cols, axis=1)
    head = np.array([[PAD] * len(cols), [UNKNOWN] * len(cols)], dtype=np.int64)
    return LookupTable(raw, np.concatenate([head, body]).astype(np.int64))


def fit_vocabularies(train: pa.Table, items: pa.Table, users: pa.Table, price_buckets: int) -> Vocabularies:
    """Fit every vocabulary on the train split (ids, and the side information of the train items)."""
    hist = _combined(train.column("hist_item_ids")).values.to_numpy(zero_copy_only=False)
    seen_items = np.unique(np.concatenate([
        train.column("item_id").to_numpy(), train.column("trigger_item_id").to_numpy(), hist]))
    seen_users = np.unique(train.column("user_id").to_numpy())
    item_ids = items.column("item_id").to_numpy()
    in_train = np.isin(item_ids, seen_items)
    user_rows = np.isin(users.column("user_id").to_numpy(), seen_users)
    prices = items.column("price").to_numpy()[in_train]
    prices = prices[~np.isnan(prices)]
    qs = np.linspace(0.0, 1.0, price_buckets + 1)[1:-1]
    edges = np.unique(np.quantile(prices, qs)) if prices.size and qs.size else np.zeros(0)
    return Vocabularies(
        item=Vocab.fit(seen_items),
        user=Vocab.fit(seen_users),
        category=Vocab.fit(items.column("category_id").to_numpy()[in_train]),
        top_category=Vocab.fit(items.column("top_category_id").to_numpy()[in_train]),
        brand=Vocab.fit(items.column("brand_id").to_numpy()[in_train]),
        price_edges=np.asarray(edges, np.float64),
        profile={name: Vocab.fit(users.column(name).to_numpy()[user_rows])
                 for name in profile_columns(users.schema)},
    )


def frozen_item_vectors(store: EmbeddingStore) -> torch.Tensor:
    """(store rows + 2, d) float32: the store's vectors behind two zero rows (0 pad, 1 not in the store).

    Indexed by `store_rows` below, not by the item vocabulary: an item the training split never
    showed shares the "unknown" id embedding but keeps its own frozen vector, which is what lets
    the multimodal branch speak for cold items.
    """
    vectors = np.asarray(store.vectors, dtype=np.float32)
    out = np.zeros((vectors.shape[0] + 2, store.dim), dtype=np.float32)
    out[2:] = vectors
    return torch.from_numpy(out)


def store_rows(store: EmbeddingStore, item_table: LookupTable) -> tuple[np.ndarray, int]:
    """Item table row -> row of `frozen_item_vectors(store)` (0 pad, 1 catalogue item absent from the store).

    Returns the (R + 2,) int64 map and the number of catalogue items absent from the store.
    """
    out = np.zeros(item_table.fields.shape[0], dtype=np.int64)
    out[1] = 1
    found = store.contains(item_table.raw_ids)
    out[2:] = 1
    if found.any():
        out[2 + np.flatnonzero(found)] = store.rows_for(item_table.raw_ids[found]) + 2
    return out, int((~found).sum())


# ----------------------------------------------------------------------------- datasets


@dataclass
class TIRDataset:
    """One split, pre-tensorised; `dataset[idx]` with a LongTensor of rows gives (features, targets)."""

    columns: dict[str, torch.Tensor]  # per-row tensors (compact dtypes), see `tensorise`
    item_fields: torch.Tensor  # (R_item + 2, F) long: item table row -> ITEM_FIELDS indices
    user_fields: torch.Tensor  # (R_user + 2, 1 + P) long: user table row -> [user, profile...]
    item_vec: torch.Tensor  # (R_item + 2,) long: item table row -> row of the frozen store vectors
    meta: dict[str, np.ndarray] = field(default_factory=dict)  # request_id, user_id, item_id, clicked, ...

    def __len__(self) -> int:
        return int(self.columns["label"].shape[0])

    def __getitem__(self, idx: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        c = self.columns
        idx = torch.as_tensor(idx, dtype=torch.long)
        users = self.user_fields[c["user_row"][idx].long()]  # (B, 1 + P)
        hist_len = max(int(c["hist_len"][idx].max()), 1) if idx.numel() else 1
        mm_len = max(int(c["mm_len"][idx].max()), 1) if idx.numel() else 1
        cat_len = max(int(c["cat_len"][idx].max()), 1) if idx.numel() else 1
        hist_rows = c["hist_rows"][idx, :hist_len].long()  # (B, L)
        mm_rows = c["mm_rows"][idx, :mm_len].long()
        cat_rows = c["cat_rows"][idx, :cat_len].long()
        features = {
            "user": users[:, 0].contiguous(),
            "user_profile": users[:, 1:].contiguous(),
            "trigger": self.item_fields[c["trigger_row"][idx].long()],
            "target": self.item_fields[c["target_row"][idx].long()],
            "hist": self.item_fields[hist_rows],  # (B, L, F)
            "hist_mask": hist_rows != 0,
            "hist_dt": c["hist_dt"][idx, :hist_len].long(),
            "mm_seq": self.item_fields[mm_rows],
            "mm_mask": mm_rows != 0,
            "cat_seq": self.item_fields[cat_rows],
            "cat_mask": cat_rows != 0,
            "page": c["page"][idx].long(),
            "tt_sim": c["tt_sim"][idx],
            "trigger_vec": self.item_vec[c["trigger_row"][idx].long()],
            "target_vec": self.item_vec[c["target_row"][idx].long()],
            "hist_vec": self.item_vec[hist_rows],
            "mm_vec": self.item_vec[mm_rows],
            "past_intent": c["past_intent"][idx],
            "past_count": c["past_count"][idx],
        }
        targets = {key: c[key][idx] for key in TARGET_KEYS}
        return features, targets

    def with_targets(self, **targets: torch.Tensor) -> "TIRDataset":
        """A copy sharing every feature tensor but with other targets (TARGET_KEYS; used by the leakage test)."""
        unknown = sorted(set(targets) - set(TARGET_KEYS))
        if unknown:
            raise ValueError(f"not target columns: {unknown}; targets are {list(TARGET_KEYS)}")
        cols = dict(self.columns, **targets)
        return TIRDataset(cols, self.item_fields, self.user_fields, self.item_vec, dict(self.meta))


def tensorise(table: pa.Table, vocabs: Vocabularies, item_table: LookupTable, user_table: LookupTable,
              item_vec: np.ndarray, *, levels: int, max_hist: int, max_subseq: int, max_page: int, max_dt: int,
              bin_edges: np.ndarray | None = None,
              source: str = "labelled split") -> TIRDataset:
    """Turn one labelled split into a `TIRDataset` (all vectorised; ValueError names bad columns/rows)."""
    n = table.num_rows
    item_rows = item_table.rows
    cols: dict[str, np.ndarray] = {}
    user_id = _np(table.column("user_id"), "user_id", source)
    cols["user_row"] = user_table.rows(user_id)
    cols["trigger_row"] = item_rows(_np(table.column("trigger_item_id"), "trigger_item_id", source))
    cols["target_row"] = item_rows(_np(table.column("item_id"), "item_id", source))
    full_len = {}
    for name, key, width in (("hist_item_ids", "hist", max_hist), ("mm_subseq_item_ids", "mm", max_subseq),
                             ("cat_subseq_item_ids", "cat", max_subseq)):
        padded, full_len[key] = ragged_to_padded(table.column(name), width, item_rows, np.int32)
        cols[f"{key}_rows"] = padded
        cols[f"{key}_len"] = np.minimum(full_len[key], width).astype(np.int32)
    hist_n = full_len["hist"]
    dt, dt_n = ragged_to_padded(table.column("hist_dt_min"), max_hist, None, np.int64)
    if n and not np.array_equal(np.minimum(dt_n, max_hist), np.minimum(hist_n, max_hist)):
        bad = np.flatnonzero(np.minimum(dt_n, max_hist) != np.minimum(hist_n, max_hist))
        raise ValueError(f"{source}: hist_dt_min and hist_item_ids differ in length at rows {bad[:5].tolist()}")
    if (dt < 0).any():
        bad = np.flatnonzero((dt < 0).any(axis=1))
        raise ValueError(f"{source}: column 'hist_dt_min' is negative at rows {bad[:5].tolist()} "
                         "(history must precede the request)")
    in_hist = np.arange(max_hist)[None, :] < cols["hist_len"][:, None]
    cols["hist_dt"] = np.where(in_hist, np.minimum(dt, max_dt) + 1, 0).astype(np.int32)
    page = _np(table.column("page"), "page", source).astype(np.int64)
    if (page < 1).any():
        raise ValueError(f"{source}: column 'page' < 1 at rows {np.flatnonzero(page < 1)[:5].tolist()}")
    cols["page"] = np.minimum(page, max_page).astype(np.int32)
    sim = _np(table.column("trigger_target_sim"), "trigger_target_sim", source).astype(np.float32)
    if not np.isfinite(sim).all():
        raise ValueError(f"{source}: column 'trigger_target_sim' is not finite at rows "
                         f"{np.flatnonzero(~np.isfinite(sim))[:5].tolist()}")
    cols["tt_sim"] = sim
    clicked = _np(table.column("clicked"), "clicked", source)
    if not np.isin(clicked, (0, 1)).all():
        raise ValueError(f"{source}: column 'clicked' not 0/1 at rows "
                         f"{np.flatnonzero(~np.isin(clicked, (0, 1)))[:5].tolist()}")
    cols["label"] = clicked.astype(np.float32)
    has_intent = _np(table.column("has_intent"), "has_intent", source).astype(bool)
    intent, intent_n = ragged_to_padded(table.column("intent"), levels, None, np.float32)
    bad = np.flatnonzero((intent_n != levels) & (has_intent | (intent_n != 0)))
    if bad.size:
        raise ValueError(f"{source}: column 'intent' must hold {levels} values (the manifest's levels); "
                         f"rows {bad[:5].tolist()} hold {intent_n[bad[:5]].tolist()}")
    sums = intent.sum(axis=1)
    bad = np.flatnonzero(has_intent & (np.abs(sums - 1.0) > 1e-3))
    if bad.size or (intent < 0).any():
        raise ValueError(f"{source}: column 'intent' is not a distribution at rows {bad[:5].tolist()}")
    cols["intent"] = np.where(has_intent[:, None], intent, 0.0).astype(np.float32)
    cols["has_intent"] = has_intent
    request_id = _np(table.column("request_id"), "request_id", source).astype(np.int64)
    if bin_edges is not None:
        cols["intent_loo"], cols["has_intent_loo"] = leave_one_out_intent(
            request_id, clicked.astype(np.int64), cols["intent"], has_intent, sim, bin_edges)
    else:
        cols["intent_loo"], cols["has_intent_loo"] = np.zeros_like(cols["intent"]), np.zeros(n, bool)
    # No earlier requests until `attach_past_intent` says otherwise (load_data does, from train).
    cols["past_intent"] = np.zeros((n, levels), np.float32)
    cols["past_count"] = np.zeros(n, np.float32)
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in cols.items()}
    meta = {
        "request_id": request_id,
        "user_id": user_id.astype(np.int64),
        "item_id": table.column("item_id").to_numpy().astype(np.int64),
        "clicked": clicked.astype(np.int8),
    }
    if "ts" in table.column_names:
        meta["ts"] = _np(table.column("ts"), "ts", source).astype(np.int64)
    return TIRDataset(tensors, torch.from_numpy(item_table.fields), torch.from_numpy(user_table.fields),
                      torch.from_numpy(np.asarray(item_vec, dtype=np.int64)), meta)


def leave_one_out_intent(request_id: np.ndarray, clicked: np.ndarray, intent: np.ndarray,
                         has_intent: np.ndarray, sim: np.ndarray,
                         bin_edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's request intent without the row's own click -> (intent_loo (N, n), has_intent_loo (N,)).

    A request's intent p = c / C counts its clicks per similarity level. Handed to the model for
    the request's clicked row, p carries that row's label: p is zero at the target's level exactly
    when no row at that level was clicked. DAIAN's stage 2 therefore receives, per row,
    (c - y onehot(level)) / (C - y): the request's other clicks. Rows left without another click
    (the only click of a request, rows of requests without clicks) and rows whose intent does not
    decompose into whole clicks at the labelled levels (labels made elsewhere) get none.
    """
    n = intent.shape[1]
    if len(bin_edges) != n + 1:
        raise ValueError(f"bin_edges hold {len(bin_edges)} values; {n} levels need {n + 1}")
    if not len(request_id):
        return np.zeros_like(intent), np.zeros(0, bool)
    _, inv = np.unique(request_id, return_inverse=True)
    total = np.bincount(inv, weights=clicked)[inv]  # C, clicks of the row's request
    counts = intent.astype(np.float64) * total[:, None]
    whole = np.rint(counts)
    level = np.minimum(similarity_level(sim, bin_edges).astype(np.int64), n - 1)
    rows = np.arange(len(level))
    own = clicked.astype(bool)
    ok = has_intent & (np.abs(counts - whole) < 1e-3).all(axis=1)
    ok &= ~own | (whole[rows, level] >= 1)
    whole[rows[own], level[own]] -= 1
    rest = total - own
    has = ok & (rest > 0)
    out = np.where(has[:, None], whole / np.maximum(rest, 1)[:, None], 0.0).astype(np.float32)
    return out, has


def past_intent(user_id: np.ndarray, ts: np.ndarray, pool_user: np.ndarray, pool_ts: np.ndarray,
                pool_intent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's mean intent over its user's pooled requests that started strictly before it.

    `pool_*` hold one entry per labelled request (user, start time, intent p). Returns (mean p
    (N, n) float32, zeros where there is none; number of such requests (N,) float32). Vectorised:
    the pool is sorted by (user, time) and cumulated, and each row finds its cut by a binary search
    on a combined (user, time) key.
    """
    n = pool_intent.shape[1]
    if not len(user_id) or not len(pool_user):
        return np.zeros((len(user_id), n), np.float32), np.zeros(len(user_id), np.float32)
    _, inv = np.unique(np.concatenate([pool_user, user_id]), return_inverse=True)
    times, tinv = np.unique(np.concatenate([pool_ts, ts]), return_inverse=True)
    key = inv.astype(np.int64) * (len(times) + 1) + tinv  # orders by user, then time
    pool_key, row_key = key[:len(pool_user)], key[len(pool_user):]
    order = np.argsort(pool_key, kind="stable")
    pool_key = pool_key[order]
    cum = np.vstack([np.zeros((1, n)), np.cumsum(pool_intent[order].astype(np.float64), axis=0)])
    row_user = inv[len(pool_user):].astype(np.int64)
    start = np.searchsorted(pool_key, row_user * (len(times) + 1), side="left")  # the user's first
    stop = np.searchsorted(pool_key, row_key, side="left")  # the user's first at or after the row
    count = stop - start
    total = cum[stop] - cum[start]
    mean = np.where(count[:, None] > 0, total / np.maximum(count, 1)[:, None], 0.0)
    return mean.astype(np.float32), count.astype(np.float32)


def attach_past_intent(pool: TIRDataset, *datasets: TIRDataset) -> bool:
    """Set `past_intent` / `past_count` of each dataset from `pool`'s labelled requests.

    The pool is the train split: a train row sees its user's earlier train requests, a test row all
    of its user's train requests (the test split follows them in time) and never another test
    request's clicks, so nothing of an evaluated request's clicks reaches the model. Without a `ts`
    column in the pool and the dataset the features stay zero; returns whether they were set.
    """
    if "ts" not in pool.meta or any("ts" not in ds.meta for ds in datasets):
        log.warning("labelled data without a 'ts' column: past_intent (UIM's view of the user's "
                    "earlier requests) stays zero")
        return False
    labelled = pool.columns["has_intent"].numpy()
    _, first = np.unique(pool.meta["request_id"], return_index=True)
    first = first[labelled[first]]
    p_user, p_ts = pool.meta["user_id"][first], pool.meta["ts"][first]
    p_int = pool.columns["intent"].numpy()[first]
    for ds in datasets:
        mean, count = past_intent(ds.meta["user_id"], ds.meta["ts"], p_user, p_ts, p_int)
        ds.columns["past_intent"] = torch.from_numpy(mean)
        ds.columns["past_count"] = torch.from_numpy(count)
    return True


# ----------------------------------------------------------------------------- loading


@dataclass
class DataBundle:
    """Everything a run needs from disk: both splits, vocabularies, sizes, frozen vectors, truth."""

    train: TIRDataset
    test: TIRDataset
    vocabs: Vocabularies
    sizes: FeatureSizes
    frozen_vectors: torch.Tensor  # (store rows + 2, d) float32, indexed by the *_vec features
    manifest: dict  # the label-intents manifest
    dataset_dir: Path
    summary: dict  # row counts, CTR, coverage of the test split by the train vocabularies


def load_data(data: Path, store: Path, dataset: Path | None = None, *, max_hist: int = 50,
              max_subseq: int = 20, max_page: int = 20, max_dt: int = 20160, price_buckets: int = 10,
              vocabs: Vocabularies | None = None) -> DataBundle:
    """Read and tensorise a labelled folder; `vocabs` given = reuse a checkpoint's id mappings."""
    data = Path(data)
    manifest = read_manifest(data)
    levels = int(manifest["levels"])
    dataset_dir = resolve_dataset(data, manifest, dataset, store)
    items = read_table(dataset_dir / "items.parquet", "items")
    users = read_table(dataset_dir / "users.parquet", "users")
    tables = {split: read_labelled(data, split) for split in SPLITS}
    if vocabs is None:
        vocabs = fit_vocabularies(tables["train"], items, users, price_buckets)
    missing_profile = [f for f in vocabs.profile if f not in users.column_names]
    if missing_profile:
        raise ValueError(f"{dataset_dir / 'users.parquet'}: missing profile column(s) {missing_profile}")
    item_table = build_item_table(items, vocabs)
    user_table = build_user_table(users, vocabs)
    emb_store = EmbeddingStore.load(store)
    item_vec, store_misses = store_rows(emb_store, item_table)
    splits = {
        split: tensorise(tables[split], vocabs, item_table, user_table, item_vec, levels=levels,
                         bin_edges=_manifest_edges(manifest, levels), max_hist=max_hist,
                         max_subseq=max_subseq, max_page=max_page, max_dt=max_dt,
                         source=str(labelled_path(data, split)))
        for split in SPLITS
    }
    has_past = attach_past_intent(splits["train"], splits["train"], splits["test"])
    user_type = read_user_types(dataset_dir)
    if user_type is not None:
        for ds in splits.values():
            ds.meta["user_type"] = lookup_user_type(user_type, ds.meta["user_id"])
    frozen = frozen_item_vectors(emb_store)
    sizes = FeatureSizes(
        item_fields={"item": len(vocabs.item), "category": len(vocabs.category),
                     "top_category": len(vocabs.top_category), "brand": len(vocabs.brand),
                     "price_bucket": vocabs.price_size},
        users=len(vocabs.user),
        profile_fields={name: len(v) for name, v in vocabs.profile.items()},
        max_page=max_page, max_dt=max_dt, levels=levels,
    )
    test = splits["test"]
    summary = {
        "rows": {s: len(ds) for s, ds in splits.items()},
        "ctr": {s: float(ds.columns["label"].float().mean()) if len(ds) else float("nan")
                for s, ds in splits.items()},
        "test_unknown_target_share": float((item_table.fields[test.columns["target_row"].long().numpy(), 0]
                                            == UNKNOWN).mean()) if len(test) else 0.0,
        "test_unknown_user_share": float((user_table.fields[test.columns["user_row"].long().numpy(), 0]
                                          == UNKNOWN).mean()) if len(test) else 0.0,
        "dataset": str(dataset_dir),
        "catalogue_items_missing_from_store": store_misses,
        "store_dim": emb_store.dim,
        "past_intent": has_past,
    }
    return DataBundle(splits["train"], test, vocabs, sizes, frozen, manifest, dataset_dir, summary)


def _manifest_edges(manifest: dict, levels: int) -> np.ndarray | None:
    edges = manifest.get("bin_edges")
    if edges is None:
        log.warning("manifest.json has no bin_edges: DAIAN's stage 2 gets no leave-one-out intent")
        return None
    edges = np.asarray(edges, dtype=np.float64)
    if edges.shape != (levels + 1,):
        raise ValueError(f"manifest.json: bin_edges hold {edges.size} values; levels={levels} needs {levels + 1}")
    return edges


def read_user_types(dataset_dir: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(sorted user ids, their planted user_type) from truth/users.parquet, or None without truth."""
    path = Path(dataset_dir) / "truth" / "users.parquet"
    if not path.is_file():
        return None
    table = pq.read_table(path)
    if "user_id" not in table.column_names or "user_type" not in table.column_names:
        return None
    ids = table.column("user_id").to_numpy()
    types = np.asarray(table.column("user_type").to_pylist(), dtype=object)
    order = np.argsort(ids, kind="stable")
    return ids[order], types[order]


def lookup_user_type(user_type: tuple[np.ndarray, np.ndarray], user_ids: np.ndarray) -> np.ndarray:
    ids, types = user_type
    pos = np.minimum(np.searchsorted(ids, user_ids), max(ids.size - 1, 0))
    found = ids[pos] == user_ids if ids.size else np.zeros(user_ids.shape, bool)
    return np.where(found, types[pos] if ids.size else None, None).astype(object)


# ----------------------------------------------------------------------------- batching


class EpochBatchSampler(torch.utils.data.Sampler):
    """Yields index tensors: a per-epoch permutation cut into global batches, this process's share.

    The permutation comes from a `torch.Generator` seeded with (seed, epoch) only, so it does not
    depend on what ran before: resuming at an epoch boundary reproduces the batches exactly. Under
    several processes each global batch is split contiguously; a final global batch smaller than the
    process count is dropped when training (every process must take part in each step).
    """

    def __init__(self, n: int, batch_size: int, *, shuffle: bool, seed: int = 0,
                 rank: int = 0, world_size: int = 1) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _order(self) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(self.n)
        gen = torch.Generator()
        gen.manual_seed(int(self.seed) * 1_000_003 + int(self.epoch))
        return torch.randperm(self.n, generator=gen)

    def __iter__(self):
        order = self._order()
        for start in range(0, self.n, self.batch_size):
            chunk = order[start:start + self.batch_size]
            if self.world_size > 1:
                if chunk.numel() < self.world_size:
                    continue
                chunk = torch.tensor_split(chunk, self.world_size)[self.rank]
            yield chunk

    def __len__(self) -> int:
        full, rest = divmod(self.n, self.batch_size)
        return full + (1 if rest and (self.world_size == 1 or rest >= self.world_size) else 0)


def _as_is(batch):
    return batch


def make_loader(dataset: TIRDataset, sampler: EpochBatchSampler, *, num_workers: int = 0,
                pin_memory: bool = False) -> torch.utils.data.DataLoader:
    """A DataLoader whose every item is a whole batch (`dataset[index_tensor]`), no per-sample work."""
    return torch.utils.data.DataLoader(dataset, batch_size=None, sampler=sampler, collate_fn=_as_is,
                                       num_workers=num_workers, pin_memory=pin_memory,
                                       persistent_workers=False)
