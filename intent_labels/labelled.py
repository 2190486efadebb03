"""The labelled folder, `label-intents`' output: its layout, manifest, columns and level rule.

    OUT/manifest.json      how the labels were made; `levels`, `bin_edges` and `dataset` are read back
    OUT/train.parquet      the train split (a file, or a folder of parts with --engine ray)
    OUT/test.parquet       the test split
    OUT/stats/             label statistics (informative)
    OUT/rejects.parquet    impressions left out, with --on-missing drop

The writer (`intent_labels.pipeline`) and every reader (`daian.data`, `report`) take the names,
the manifest keys and the similarity-level rule from here. `LabelledFolder.open` validates the
manifest once; code after it trusts `levels`, `edges` and `dataset`.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

MANIFEST = "manifest.json"
SPLITS = ("train", "test")
STATS_DIR = "stats"
REJECTS = "rejects.parquet"
MANIFEST_VERSION = 1
# Manifest keys that readers rely on (the writer records more, for people).
VERSION_KEY = "version"  # MANIFEST_VERSION of the writer
LEVELS_KEY = "levels"  # n, the number of similarity levels
EDGES_KEY = "bin_edges"  # the n + 1 level edges, fitted on the train split (or given)
DATASET_KEY = "dataset"  # absolute path of the dataset folder that was labelled
INPUTS_KEY = "inputs"  # dataset file (relative path) -> sha256
# The columns of a split after the impression's own (request_id, user_id, ts, trigger_item_id,
# page, position, item_id, clicked), in file order, with their Arrow types.
LABEL_FIELDS: tuple[tuple[str, pa.DataType], ...] = (
    ("intent", pa.list_(pa.float32())),  # p over the n levels; all zeros where has_intent is false
    ("has_intent", pa.bool_()),  # the request had at least one click
    ("trigger_target_sim", pa.float32()),  # cosine of the trigger's and the target's store vectors
    ("sim_level", pa.int8()),  # similarity_level(trigger_target_sim, edges)
    ("hist_item_ids", pa.list_(pa.int64())),  # the user's history before the request, most recent first
    ("hist_ts", pa.list_(pa.int64())),
    ("hist_dt_min", pa.list_(pa.int32())),  # floor((request ts - behaviour ts) / 60)
    ("hist_action", pa.list_(pa.int8())),  # index into common.contract.ACTIONS
    ("mm_subseq_item_ids", pa.list_(pa.int64())),  # history items at or above the subsequence level
    ("mm_subseq_ts", pa.list_(pa.int64())),
    ("mm_subseq_dt_min", pa.list_(pa.int32())),
    ("cat_subseq_item_ids", pa.list_(pa.int64())),  # history items in the trigger's category
    ("cat_subseq_ts", pa.list_(pa.int64())),
    ("cat_subseq_dt_min", pa.list_(pa.int32())),
    # Derived from the request table (`intent_labels.derived`), so training can stream the rows:
    ("intent_loo", pa.list_(pa.float32())),  # the request's intent without this row's click (DAIAN stage 2)
    ("has_intent_loo", pa.bool_()),  # the request has another click besides this row's
    ("past_intent", pa.list_(pa.float32())),  # mean p of the user's labelled train requests before this one
    ("past_count", pa.float32()),  # how many such requests
)


def label_fields() -> list[pa.Field]:
    """The Arrow fields of LABEL_FIELDS (the writer appends them to the impression's schema)."""
    return [pa.field(name, arrow_type) for name, arrow_type in LABEL_FIELDS]


def split_file(split: str) -> str:
    """The name of a split's file (or folder of parts) inside the labelled folder."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    return f"{split}.parquet"


def similarity_level(sims, edges) -> Any:
    """Level of each similarity: i where edges[i] <= s < edges[i+1], clipped to [0, n-1].

    The one level rule of the project: the labels, the subsequences, the report and the models
    (DAIAN's intent at the pair's level, UIM's history spread) all call it. Comparisons run in
    float64 against the inner edges, which gives the clipping for free and makes the rule right
    for any increasing edges, not only equal-width ones. numpy in -> int8 (int32 past 127 levels)
    numpy out; a torch tensor in -> int64 tensor on its device.
    """
    edges = np.asarray(edges, dtype=np.float64)
    if type(sims).__module__.startswith("torch"):
        import torch

        inner = _inner_edges(tuple(edges.tolist()), sims.device)
        return torch.searchsorted(inner, sims.to(torch.float64).contiguous(), right=True)
    level = np.searchsorted(edges[1:-1], np.asarray(sims, dtype=np.float64), side="right")
    return level.astype(np.int8 if edges.size - 1 <= 127 else np.int32)


@functools.lru_cache(maxsize=64)
def _inner_edges(edges: tuple[float, ...], device):
    """The inner edges as a float64 tensor on `device`, made once per (edges, device): a model
    calls the rule every batch, and a fresh host-to-device copy each time would stall a GPU."""
    import torch

    return torch.tensor(edges[1:-1], dtype=torch.float64, device=device)


def check_edges(edges, source: str = "bin edges") -> np.ndarray:
    """1-D, at least 3 values (2 levels), finite, strictly increasing -> float64 array."""
    edges = np.asarray(edges, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 3 or not np.isfinite(edges).all() or not (np.diff(edges) > 0).all():
        raise ValueError(f"{source} must be at least 3 finite, strictly increasing numbers, "
                         f"got {np.asarray(edges).tolist()!r}")
    return edges


@dataclass(frozen=True)
class LabelledFolder:
    """A validated label-intents output folder."""

    path: Path
    manifest: dict  # the whole manifest.json
    levels: int  # n
    edges: np.ndarray  # (n + 1,) float64 level edges
    dataset: Path | None  # the labelled dataset folder, None when the manifest names none
    fs: Any = None  # a pyarrow filesystem for a remote folder (s3://, gs://, ...); None: the local disk

    @classmethod
    def open(cls, path: str | Path) -> "LabelledFolder":
        """A local folder, or a filesystem URI pyarrow understands (file://, s3://, ...)."""
        from common.fs import local_path, remote_path

        fs = None
        local = local_path(path)
        if local is not None:
            path = local
            manifest_path = path / MANIFEST
            text = manifest_path.read_text() if manifest_path.is_file() else None
        else:
            fs, path = remote_path(path)
            manifest_path = path / MANIFEST
            info = fs.get_file_info(str(manifest_path))
            text = None
            if info.type == pafs.FileType.File:
                with fs.open_input_stream(str(manifest_path)) as fh:
                    text = fh.read().decode()
        if text is None:
            raise FileNotFoundError(f"{path}: no {MANIFEST} (expected a label-intents output folder)")
        try:
            manifest = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{manifest_path}: not valid JSON ({exc})") from exc
        if not isinstance(manifest, dict) or EDGES_KEY not in manifest:
            raise ValueError(f"{manifest_path}: no '{EDGES_KEY}' entry")
        edges = check_edges(manifest[EDGES_KEY], f"{manifest_path}: '{EDGES_KEY}'")
        levels = manifest.get(LEVELS_KEY, edges.size - 1)
        if not isinstance(levels, int) or levels != edges.size - 1:
            raise ValueError(f"{manifest_path}: '{LEVELS_KEY}' is {levels!r} but '{EDGES_KEY}' holds "
                             f"{edges.size} edges ({edges.size - 1} levels)")
        version = manifest.get(VERSION_KEY, MANIFEST_VERSION)
        if version != MANIFEST_VERSION:
            raise ValueError(f"{manifest_path}: '{VERSION_KEY}' is {version!r}; this toolkit reads version "
                             f"{MANIFEST_VERSION} (label the dataset again with this version's label-intents)")
        named = manifest.get(DATASET_KEY)
        if named is not None and not isinstance(named, str):
            raise ValueError(f"{manifest_path}: '{DATASET_KEY}' must be a folder path, got {named!r}")
        if named is None:
            dataset = None
        elif Path(named).is_absolute():
            dataset = Path(named)
        else:  # relative to a remote folder: the caller names the local dataset folder
            dataset = path / named if fs is None else None
        return cls(path, manifest, levels, edges, dataset, fs)

    @property
    def inputs(self) -> dict[str, str]:
        """Dataset file (relative path) -> sha256, as recorded when labelling."""
        return dict(self.manifest.get(INPUTS_KEY) or {})

    def split_path(self, split: str) -> Path:
        """OUT/<split>.parquet, a file or a folder of parts."""
        path = self.path / split_file(split)
        if self.fs is not None:
            if self.fs.get_file_info(str(path)).type == pafs.FileType.NotFound:
                raise FileNotFoundError(f"{self.path}: no {path.name} (file or folder of parts)")
            return path
        if not path.exists() and (self.path / split).is_dir():
            return self.path / split  # folders of parts written by the Ray engine before 2026-12-07
        if not path.exists():
            raise FileNotFoundError(f"{self.path}: no {path.name} (file or folder of parts); "
                                    "is this a label-intents output folder?")
        return path

    def schema(self, split: str) -> pa.Schema:
        path = self.split_path(split)
        try:
            if self.fs is not None:
                return pq.ParquetDataset(str(path), filesystem=self.fs).schema
            return pq.read_schema(path) if path.is_file() else pq.ParquetDataset(path).schema
        except (pa.ArrowInvalid, OSError) as exc:
            raise ValueError(f"{path}: not a readable Parquet file or folder ({exc})") from exc

    def read(self, split: str, columns: list[str], optional: tuple[str, ...] = ()) -> pa.Table:
        """The named columns of one split (plus those of `optional` it has); ValueError names the
        file and the missing columns, and a list column of another type."""
        path = self.split_path(split)
        names = self.schema(split).names
        missing = [c for c in columns if c not in names]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; found {names}")
        table = pq.read_table(str(path) if self.fs is not None else path, filesystem=self.fs,
                              columns=list(columns) + [c for c in optional if c in names])
        for name in (n for n, t in LABEL_FIELDS if pa.types.is_list(t)):
            if name in table.column_names:
                t = table.schema.field(name).type
                if not (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)):
                    raise ValueError(f"{path}: column '{name}' has type {t}, expected a list")
        return table
