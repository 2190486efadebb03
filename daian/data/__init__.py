"""Labelled TIR samples -> pre-tensorised datasets and an index-batch loader for training.

The data path (see docs/training.md), one module per step:

1. `loading`: open the `label-intents` output folder (`intent_labels.labelled.LabelledFolder`:
   `DATA/train.parquet`, `DATA/test.parquet`, each a file or a folder of parts, and
   `DATA/manifest.json`, validated once), and the dataset's `items.parquet` / `users.parquet`
   through the data contract (`common.contract.read_table`).
2. `vocab`, `tables`: fit the vocabularies on the train split: ids the train split never showed map
   to 1 (unknown). Side information (category, top category, brand, price bucket, user profile)
   comes from the catalogue and the users table for every item and user, seen or not, so a cold
   item keeps its category even though its id embedding is the shared "unknown" row. Items are
   rows of a small item table (catalogue row -> ITEM_FIELDS indices), so a batch's (B, L, F)
   history is one gather; the frozen store vectors are indexed separately (catalogue row -> store
   row), so every catalogue item, seen in training or not, brings its own vector to the model.
3. `columns`, `dataset`: tensorise each split once: every ragged list column becomes a padded
   int32 matrix built from the Arrow offsets with numpy (no per-row Python). `TIRDataset[idx]`
   turns a tensor of row indices into the `(features, targets)` dicts of `daian.models.base`.
4. `intent`: the leave-one-out intent (DAIAN's stage-2 target) and the past intent (UIM's view of
   the user's earlier train requests).
5. `batching`: `EpochBatchSampler` draws a fresh permutation per epoch from a `torch.Generator`
   seeded with (seed, epoch) and shards every global batch across processes; `make_loader`.

Features never carry the label, the intent or has_intent: those are posterior information and
travel in `targets`, which only the training code reads.
"""
from daian.data.batching import EpochBatchSampler, make_loader
from daian.data.columns import ragged_to_padded
from daian.data.dataset import FEATURE_KEYS, TARGET_KEYS, TIRDataset, tensorise
from daian.data.intent import attach_past_intent, leave_one_out_intent, past_intent
from daian.data.loading import LABELLED_COLUMNS, OPTIONAL_COLUMNS, DataBundle, load_data, resolve_dataset
from daian.data.tables import (LookupTable, build_item_table, build_user_table, fit_vocabularies,
                               frozen_item_vectors, store_rows)
from daian.data.vocab import PAD, UNKNOWN, Vocab, Vocabularies

__all__ = [
    "DataBundle", "EpochBatchSampler", "FEATURE_KEYS", "LABELLED_COLUMNS", "LookupTable",
    "OPTIONAL_COLUMNS", "PAD", "TARGET_KEYS", "TIRDataset", "UNKNOWN", "Vocab", "Vocabularies",
    "attach_past_intent", "build_item_table", "build_user_table", "fit_vocabularies",
    "frozen_item_vectors", "leave_one_out_intent", "load_data", "make_loader",
    "past_intent", "ragged_to_padded", "resolve_dataset", "store_rows", "tensorise",
]
