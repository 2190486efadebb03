"""The labelling's settings: one typed dataclass, validated on construction."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .split import DEFAULT_TRAIN_DAYS

ENGINES = ("local", "ray")
ON_MISSING = ("fail", "drop")


@dataclass
class LabelConfig:
    """Settings of one `label-intents` run (defaults: the papers' settings where they give one).

    DAIAN gives the 6 similarity levels and histories of up to 50 behaviours over 14 days, DEI2N
    subsequences of 10-20 items. The 7-day train split (for the simulator's 8-day worlds), the bin
    range, the batch size and the checks are this toolkit's choices; each field's comment says which.
    """

    data: Path  # dataset folder: items, behaviors and impressions Parquet (truth/ optional, for stats)
    store: Path  # embedding store folder (embeddings.npy, item_ids.npy, manifest.json)
    out: Path  # output folder: train/test Parquet, manifest.json, stats/, rejects.parquet
    levels: int = 6  # similarity levels n; the DAIAN paper finds 6 best
    train_days: int | None = None  # UTC days of requests from the first request's day that train; None -> 7
    train_fraction: float | None = None  # instead: the first round(F * days spanned) days, within [1, days - 1]
    min_split_requests: int = 100  # fewer requests in a split is an error: a few requests measure nothing
    subseq_level: int | None = None  # multimodal subsequence keeps levels >= this; None -> levels // 2
    max_hist: int = 50  # history length cap (DAIAN: up to 50 behaviours)
    hist_days: float = 14.0  # history window in days before the request (DAIAN: 14)
    max_subseq: int = 20  # T_h, cap of both subsequences (DEI2N uses 10-20)
    edge_quantile: float = 0.01  # bins span the [q, 1-q] quantiles of training similarities; 0 = min..max
    bin_edges: Path | list[float] | None = None  # given edges (file or list) instead of fitting them
    on_missing: str = "fail"  # impressions whose item or trigger lacks a vector: fail, or drop to rejects
    engine: str = "local"  # "local" (in-process, streaming) or "ray" (Ray Data)
    batch_rows: int = 65_536  # impressions per record batch: bounds memory of pass 2
    row_group_rows: int = 16_384  # rows per output row group: the unit streaming training shuffles and shards
    part_rows: int = 4_194_304  # rows per output file; a larger split is written as a folder of parts
    show_progress_bar: bool = True  # tqdm bars over the impression batches
    allow_any_ts: bool = False  # accept any unix seconds in [0, 1e11), not only 2000..now + 1 day
    allow_store_mismatch: bool = False  # label with a store embedded from another items file (logged)
    overwrite: bool = False  # replace an existing non-empty output folder (refused otherwise)

    def __post_init__(self) -> None:
        self.data, self.store, self.out = Path(self.data), Path(self.store), Path(self.out)
        if isinstance(self.bin_edges, str):
            self.bin_edges = Path(self.bin_edges)
        if self.train_days is not None and self.train_fraction is not None:
            raise ValueError("give train_days (--train-days) or train_fraction (--train-fraction), "
                             f"not both (got {self.train_days} and {self.train_fraction})")
        if self.train_fraction is not None:
            if isinstance(self.train_fraction, bool) or not isinstance(self.train_fraction, (int, float)) \
                    or not 0.0 < self.train_fraction < 1.0:
                raise ValueError(f"train_fraction must be in (0, 1), got {self.train_fraction!r}")
            self.train_fraction = float(self.train_fraction)
        elif self.train_days is None:
            self.train_days = DEFAULT_TRAIN_DAYS
        for name in ("levels", "train_days", "min_split_requests", "max_hist", "max_subseq", "batch_rows",
                     "row_group_rows", "part_rows"):
            value = getattr(self, name)
            if value is None and name == "train_days":
                continue  # chosen from train_fraction once the request days are known
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.levels < 2:  # the labelled folder's readers need a distribution over two levels at least
            raise ValueError(f"levels must be at least 2, got {self.levels}")
        if not self.hist_days > 0:
            raise ValueError(f"hist_days must be > 0, got {self.hist_days!r}")
        if not 0.0 <= self.edge_quantile < 0.5:
            raise ValueError(f"edge_quantile must be in [0, 0.5), got {self.edge_quantile!r}")
        if self.subseq_level is None:
            self.subseq_level = self.levels // 2
        if not 0 <= self.subseq_level < self.levels:
            raise ValueError(f"subseq_level must be in [0, {self.levels}), got {self.subseq_level}")
        if self.on_missing not in ON_MISSING:
            raise ValueError(f"on_missing must be one of {ON_MISSING}, got {self.on_missing!r}")
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {self.engine!r}")
