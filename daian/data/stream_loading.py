"""The streaming data path: a labelled folder read row group by row group, never whole.

`load_streaming` opens the same catalogue as the in-memory path (`loading.open_catalogue`: items,
users, the frozen store vectors, which stay in memory) and makes one streaming pass over the train
split for the vocabularies and the base rate, and one over the test split for its summary. Nothing
else needs all rows, since label-intents writes the leave-one-out and past intent per row
(`intent_labels.derived`). Training then reads windows of row groups through
`streaming.StreamingLoader`, and scoring reads the test split in file order (`test_windows`). Both
tensorise with `dataset.tensorise`, the in-memory path's code.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import torch
from tqdm.auto import tqdm

from common.contract import lookup_user_types, read_user_types
from daian.data.dataset import DERIVED_COLUMNS, TIRDataset, tensorise
from daian.data.loading import (LABELLED_COLUMNS, Catalogue, catalogue_summary, feature_sizes,
                                open_catalogue, unknown_count)
from daian.data.streaming import ParquetSource, StreamingLoader
from daian.data.tables import train_ids, vocabularies_for
from daian.data.vocab import Vocabularies
from daian.models.base import FeatureSizes
from intent_labels.labelled import SPLITS

STREAM_COLUMNS = (*LABELLED_COLUMNS, "ts", *DERIVED_COLUMNS)
PASS_ROWS = 262_144  # rows per read of the streaming passes and of scoring


def split_source(folder, split: str, check: bool = True) -> ParquetSource:
    """The split's row groups; with `check`, refused unless it has every column the stream reads."""
    path = folder.split_path(split)
    source = ParquetSource.open(folder.fs or pafs.LocalFileSystem(), str(path), name=str(path))
    if not check:
        return source
    missing = [c for c in STREAM_COLUMNS if c not in source.schema.names]
    if missing:
        hint = (" (written before label-intents derived the leave-one-out and past intent: label "
                "again with this version, or train in memory with --stream off)"
                if set(missing) <= set(DERIVED_COLUMNS) else "")
        raise ValueError(f"{path}: missing column(s) {missing} the streaming path reads{hint}")
    return source


def _train_pass(source: ParquetSource, progress: bool) -> tuple[np.ndarray, np.ndarray, int, int]:
    """One pass over the train split: the item and user ids it shows, its clicks and rows."""
    items, users, clicks, rows = np.zeros(0, np.int64), np.zeros(0, np.int64), 0, 0
    cols = ["item_id", "trigger_item_id", "hist_item_ids", "user_id", "clicked"]
    with tqdm(total=source.rows, desc="train-daian: vocabularies", unit="row", unit_scale=True,
              disable=not progress, leave=False) as bar:
        for table in source.batches(cols, PASS_ROWS):
            i, u = train_ids(table)
            items, users = np.union1d(items, i), np.union1d(users, u)
            clicks += int(np.asarray(table.column("clicked").to_numpy()).sum())
            rows += table.num_rows
            bar.update(table.num_rows)
    return items, users, clicks, rows


def _test_pass(source: ParquetSource, cat: Catalogue) -> dict:
    rows = clicks = unknown_target = unknown_user = 0
    for table in source.batches(["item_id", "user_id", "clicked"], PASS_ROWS):
        rows += table.num_rows
        clicks += int(np.asarray(table.column("clicked").to_numpy()).sum())
        unknown_target += unknown_count(cat.item_table, cat.item_table.rows(table.column("item_id").to_numpy()))
        unknown_user += unknown_count(cat.user_table, cat.user_table.rows(table.column("user_id").to_numpy()))
    return {"rows": rows, "clicks": clicks, "test_unknown_target_share": unknown_target / max(rows, 1),
            "test_unknown_user_share": unknown_user / max(rows, 1)}


@dataclass
class StreamBundle:
    """The streaming counterpart of `loading.DataBundle`: the same catalogue-sized fields, the
    splits as row-group sources; `train_loader`, `test_windows`, `train_rows`, `base_rate` as there."""

    sources: dict[str, ParquetSource]
    catalogue: Catalogue
    vocabs: Vocabularies
    sizes: FeatureSizes
    frozen_vectors: torch.Tensor
    labelled: object  # LabelledFolder
    dataset_dir: object
    summary: dict
    make_kwargs: dict
    base_rate: float
    user_type: object  # (user ids, types) from the dataset's truth, or None
    streaming = True

    @property
    def train_rows(self) -> int:
        return self.sources["train"].rows

    def make(self, table: pa.Table, split: str = "train") -> TIRDataset:
        """Tensorise one window of rows, as the in-memory path does a whole split."""
        c = self.catalogue
        return tensorise(table, c.item_table, c.user_table, c.item_vec, source=self.sources[split].name,
                         **self.make_kwargs)

    def template(self) -> TIRDataset:
        return self.make(self.sources["train"].schema.empty_table().select(list(STREAM_COLUMNS)))

    def train_loader(self, *, batch_size: int, seed: int, rank: int, world_size: int, shards: int = 1,
                     buffer_rows: int = 262_144, **_) -> StreamingLoader:
        return StreamingLoader(self.sources["train"], self.make, self.template(), list(STREAM_COLUMNS),
                               batch_size=batch_size, seed=seed, shards=shards, rank=rank,
                               world_size=world_size, buffer_rows=buffer_rows)

    def test_windows(self):
        """The test split in file order, tensorised a window at a time, with its meta."""
        for table in self.sources["test"].batches(list(STREAM_COLUMNS), PASS_ROWS):
            ds = self.make(table, "test")
            if self.user_type is not None:
                ds.meta["user_type"] = lookup_user_types(self.user_type, ds.meta["user_id"])
            yield ds


def load_streaming(data, store, dataset=None, *, max_hist: int = 50, max_subseq: int = 20,
                   max_page: int = 20, max_dt: int = 20160, price_buckets: int = 10,
                   vocabs: Vocabularies | None = None, progress: bool = False) -> StreamBundle:
    """Open a labelled folder (local or URI) for streaming; `vocabs` given = a checkpoint's."""
    from intent_labels.labelled import LabelledFolder

    folder = LabelledFolder.open(data)
    sources = {s: split_source(folder, s) for s in SPLITS}
    items, users, clicks, rows = _train_pass(sources["train"], progress)

    def fit(catalogue_items, catalogue_users):
        return vocabularies_for(items, users, catalogue_items, catalogue_users, price_buckets)

    cat = open_catalogue(folder, store, dataset, fit, vocabs)
    test = _test_pass(sources["test"], cat)
    summary = {"rows": {"train": rows, "test": test["rows"]},
               "ctr": {"train": clicks / rows if rows else float("nan"),
                       "test": test["clicks"] / test["rows"] if test["rows"] else float("nan")},
               "test_unknown_target_share": test["test_unknown_target_share"],
               "test_unknown_user_share": test["test_unknown_user_share"],
               **catalogue_summary(cat, True), "streaming": True,
               "row_groups": {s: len(src.groups) for s, src in sources.items()}}
    make_kwargs = dict(levels=cat.folder.levels, bin_edges=cat.folder.edges, max_hist=max_hist,
                       max_subseq=max_subseq, max_page=max_page, max_dt=max_dt)
    return StreamBundle(sources, cat, cat.vocabs,
                        feature_sizes(cat.vocabs, max_page=max_page, max_dt=max_dt, levels=cat.folder.levels),
                        cat.frozen_vectors, cat.folder, cat.dataset_dir, summary, make_kwargs,
                        clicks / rows if rows else 0.5, read_user_types(cat.dataset_dir))


def in_memory_bytes(data, max_hist: int, max_subseq: int) -> int:
    """About what the in-memory path holds for a labelled folder: the Arrow columns it reads
    (uncompressed, from the Parquet metadata) and the tensors it builds from them."""
    from intent_labels.labelled import LabelledFolder

    folder = LabelledFolder.open(data)
    per_row = 4 * (3 * max_hist + 2 * max_subseq + 4 * folder.levels + 16)  # padded int32 rows, dt, intents, ids
    total = 0
    for split in SPLITS:
        source = split_source(folder, split, check=False)
        total += source.uncompressed_bytes(set(STREAM_COLUMNS)) + source.rows * per_row
    return total


def memory_budget(gb: float | None) -> int:
    """The budget in bytes: `gb` given, else half of this machine's physical memory."""
    if gb is not None:
        return int(gb * 2 ** 30)
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2)
