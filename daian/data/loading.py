"""Read a labelled folder, its dataset and its embedding store into a `DataBundle`.

The labelled folder (`label-intents` output) is opened through `intent_labels.labelled`, which
validates its manifest once (levels, bin edges, the dataset it labelled); the dataset's items and
users tables through the data contract (`common.contract`).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from common.contract import FILES, lookup_user_types, read_table, read_user_types
from daian.data.batching import EpochBatchSampler, EpochLoader
from daian.data.dataset import DERIVED_COLUMNS, TIRDataset, tensorise
from daian.data.intent import attach_past_intent
from daian.data.tables import (LookupTable, build_item_table, build_user_table, fit_vocabularies,
                               frozen_item_vectors, store_rows)
from daian.data.vocab import UNKNOWN, Vocabularies
from daian.models.base import FeatureSizes
from intent_labels.labelled import MANIFEST, SPLITS, LabelledFolder
from retrieval.store import EmbeddingStore

# Columns of the label-intents output this stage reads (others, e.g. hist_ts, are ignored).
LABELLED_COLUMNS = (
    "request_id", "user_id", "trigger_item_id", "page", "item_id", "clicked", "intent",
    "has_intent", "hist_item_ids", "hist_dt_min", "mm_subseq_item_ids", "cat_subseq_item_ids",
    "trigger_target_sim",
)
# Read when present: the request time, which orders a user's requests for `past_intent`, and the
# leave-one-out / past intent columns label-intents writes (computed here for older folders).
OPTIONAL_COLUMNS = ("ts", *DERIVED_COLUMNS)


@dataclass
class DataBundle:
    """Everything a run needs from disk: both splits, vocabularies, sizes, frozen vectors, truth."""

    train: TIRDataset
    test: TIRDataset
    vocabs: Vocabularies
    sizes: FeatureSizes
    frozen_vectors: torch.Tensor  # (store rows + 2, d) float32, indexed by the *_vec features
    labelled: LabelledFolder  # the label-intents folder (levels, bin edges, manifest)
    dataset_dir: Path
    summary: dict  # row counts, CTR, coverage of the test split by the train vocabularies
    streaming = False

    @property
    def train_rows(self) -> int:
        return len(self.train)

    @property
    def base_rate(self) -> float:
        """The train split's click rate (the output bias starts there)."""
        return float(self.train.columns["label"].float().mean()) if len(self.train) else 0.5

    def train_loader(self, *, batch_size: int, seed: int, rank: int, world_size: int, num_workers: int = 0,
                     pin_memory: bool = False, **_) -> "EpochLoader":
        sampler = EpochBatchSampler(len(self.train), batch_size, shuffle=True, seed=seed, rank=rank,
                                    world_size=world_size)
        return EpochLoader(self.train, sampler, num_workers=num_workers, pin_memory=pin_memory)

    def test_windows(self):
        """The test split in order, as tensorised pieces with their meta (here: one, in memory)."""
        yield self.test


def resolve_dataset(folder: LabelledFolder, explicit: Path | None,
                    store: EmbeddingStore | None = None) -> Path:
    """The dataset folder (items.parquet, users.parquet, truth/).

    In order: the explicit folder; the one the labelled manifest names, if it holds items.parquet;
    else the folder of the items.parquet the embedding store was built from (its manifest's
    `input.path`), accepted only if its sha256 equals the one the labelled manifest recorded.
    """
    items = FILES["items"]
    if explicit is not None:
        dataset = Path(explicit)
    else:
        dataset = folder.dataset
        if dataset is None or not (dataset / items).is_file():
            dataset = _dataset_from_store(store, folder.inputs.get(items)) if store is not None else None
        if dataset is None:
            raise ValueError(f"cannot tell the dataset folder: {folder.path / MANIFEST} names none with "
                             f"{items} and the store's {items} is not the labelled one; pass --dataset DIR")
    if not (dataset / items).is_file():
        raise FileNotFoundError(f"{dataset}: no {items} (is this a dataset folder?)")
    return dataset


def _dataset_from_store(store: EmbeddingStore, recorded: str | None) -> Path | None:
    """The folder of the store's input items file, if its sha256 is `recorded`."""
    items = store.items_path
    if items is None or recorded is None:
        return None
    digest = hashlib.sha256(items.read_bytes()).hexdigest()
    return items.parent if digest == recorded else None


def feature_sizes(vocabs: Vocabularies, *, max_page: int, max_dt: int, levels: int) -> FeatureSizes:
    return FeatureSizes(
        item_fields={"item": len(vocabs.item), "category": len(vocabs.category),
                     "top_category": len(vocabs.top_category), "brand": len(vocabs.brand),
                     "price_bucket": vocabs.price_size},
        users=len(vocabs.user),
        profile_fields={name: len(v) for name, v in vocabs.profile.items()},
        max_page=max_page, max_dt=max_dt, levels=levels,
    )


def unknown_count(table: LookupTable, rows: np.ndarray) -> int:
    """How many of the table `rows` hold an id (the table's first field) the train split never showed."""
    return int((table.fields[np.asarray(rows, np.int64), 0] == UNKNOWN).sum())


def _unknown_share(table: LookupTable, rows: torch.Tensor) -> float:
    return unknown_count(table, rows.numpy()) / len(rows) if len(rows) else 0.0


def _summary(splits: dict[str, TIRDataset], item_table: LookupTable, user_table: LookupTable) -> dict:
    """Row counts, CTR, and the test split's coverage by the train vocabularies."""
    test = splits["test"]
    return {
        "rows": {s: len(ds) for s, ds in splits.items()},
        "ctr": {s: float(ds.columns["label"].float().mean()) if len(ds) else float("nan")
                for s, ds in splits.items()},
        "test_unknown_target_share": _unknown_share(item_table, test.columns["target_row"]),
        "test_unknown_user_share": _unknown_share(user_table, test.columns["user_row"]),
    }


@dataclass
class Catalogue:
    """What both data paths read besides the labelled rows: the catalogue-sized tables."""

    folder: LabelledFolder
    dataset_dir: Path
    vocabs: Vocabularies
    item_table: LookupTable
    user_table: LookupTable
    item_vec: np.ndarray  # item table row -> row of frozen_vectors
    frozen_vectors: torch.Tensor
    store_misses: int
    store_dim: int


def open_catalogue(folder: LabelledFolder, store: Path, dataset: Path | None, fit,
                   vocabs: Vocabularies | None = None) -> Catalogue:
    """Open the store and the dataset's items and users of an opened labelled folder;
    `fit(items, users)` fits the vocabularies on the train split unless `vocabs` (a checkpoint's)
    are given."""
    emb_store = EmbeddingStore.load(store)
    dataset_dir = resolve_dataset(folder, dataset, emb_store)
    items = read_table(dataset_dir / FILES["items"], "items")
    users = read_table(dataset_dir / FILES["users"], "users")
    if vocabs is None:
        vocabs = fit(items, users)
    missing_profile = [f for f in vocabs.profile if f not in users.column_names]
    if missing_profile:
        raise ValueError(f"{dataset_dir / FILES['users']}: missing profile column(s) {missing_profile}")
    item_table = build_item_table(items, vocabs)
    user_table = build_user_table(users, vocabs)
    item_vec, store_misses = store_rows(emb_store, item_table)
    return Catalogue(folder, dataset_dir, vocabs, item_table, user_table, item_vec,
                     frozen_item_vectors(emb_store), store_misses, emb_store.dim)


def load_data(data: Path, store: Path, dataset: Path | None = None, *, max_hist: int = 50,
              max_subseq: int = 20, max_page: int = 20, max_dt: int = 20160, price_buckets: int = 10,
              vocabs: Vocabularies | None = None) -> DataBundle:
    """Read and tensorise a labelled folder; `vocabs` given = reuse a checkpoint's id mappings."""
    tables = {}

    def fit(items, users):
        return fit_vocabularies(tables["train"], items, users, price_buckets)

    folder = LabelledFolder.open(data)
    tables.update({split: folder.read(split, LABELLED_COLUMNS, optional=OPTIONAL_COLUMNS) for split in SPLITS})
    cat = open_catalogue(folder, store, dataset, fit, vocabs)
    splits = {
        split: tensorise(tables[split], cat.item_table, cat.user_table, cat.item_vec, levels=folder.levels,
                         bin_edges=folder.edges, max_hist=max_hist, max_subseq=max_subseq,
                         max_page=max_page, max_dt=max_dt, source=str(folder.split_path(split)))
        for split in SPLITS
    }
    if all(c in t.column_names for t in tables.values() for c in DERIVED_COLUMNS):
        has_past = True
    else:  # a folder from before label-intents wrote the past intent: compute it from the train split
        has_past = attach_past_intent(splits["train"], splits["train"], splits["test"])
    user_type = read_user_types(cat.dataset_dir)
    if user_type is not None:
        for ds in splits.values():
            ds.meta["user_type"] = lookup_user_types(user_type, ds.meta["user_id"])
    summary = _summary(splits, cat.item_table, cat.user_table)
    summary |= catalogue_summary(cat, has_past)
    return DataBundle(splits["train"], splits["test"], cat.vocabs,
                      feature_sizes(cat.vocabs, max_page=max_page, max_dt=max_dt, levels=folder.levels),
                      cat.frozen_vectors, folder, cat.dataset_dir, summary)


def catalogue_summary(cat: Catalogue, has_past: bool) -> dict:
    return {"dataset": str(cat.dataset_dir), "catalogue_items_missing_from_store": cat.store_misses,
            "store_dim": cat.store_dim, "past_intent": has_past,
            "profile_fields": list(cat.vocabs.profile)}  # every users.parquet column besides user_id
