"""Streaming a labelled split from its Parquet row groups: bounded memory, seeded, sharded, resumable.

The label-intents output (one file or a folder of parts, on a local disk or any filesystem pyarrow
understands: `file://`, `s3://`, `gs://`, `hdfs://`) is read one row group at a time with
`pyarrow.parquet`. We use pyarrow itself rather than Hugging Face `datasets` streaming or Ray Data:
the unit we shuffle and shard is the Parquet row group, which pyarrow addresses directly with its
filesystems, and tensorising a window of row groups is the same vectorised `tensorise` the
in-memory path runs, so both paths build features with one code.

The order of an epoch is a pure function of (seed, epoch, shards), never of the process count:

1. The row groups are permuted by a `torch.Generator` seeded with (seed, epoch).
2. They are dealt to `shards` virtual shards, each to the shard with the fewest rows so far, so
   shards differ by less than one row group.
3. Each shard reads its row groups in that order in windows of at least `buffer_rows / shards`
   rows. It tensorises each window and permutes its rows, seeded by (seed, epoch, shard, window):
   a shuffle buffer of bounded size.
4. The epoch has T = ceil(rows / batch_size) steps. Shard s splits its rows into T consecutive
   local batches whose sizes differ by at most one, so no row is dropped and every shard has rows
   in every step. Global batch k is the concatenation, in shard order, of every shard's batch k.

A process of a W-process run (`accelerate launch`, `torchrun`) reads shards r*S/W .. (r+1)*S/W - 1
only, and its local batch is the concatenation of those shards' batches. So two processes see the
same global batches as one process with the same `shards`. Since batch sizes are known up front
from the Parquet metadata, a resumed run skips to step k without reading the windows before it.
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import torch

from daian.data.dataset import TIRDataset


@dataclass(frozen=True)
class RowGroup:
    file: int  # index into ParquetSource.files
    index: int  # row group within the file
    rows: int
    start: int = 0  # its first row's number in the split (files in order, then row groups)


class ParquetSource:
    """The Parquet files of one split (a file or a folder of parts) and their row groups."""

    def __init__(self, fs: pafs.FileSystem, files: list[str], name: str) -> None:
        self.fs, self.files, self.name = fs, files, name
        self._handles: dict[int, pq.ParquetFile] = {}
        self.groups: list[RowGroup] = []
        start = 0
        for i in range(len(files)):
            meta = self._file(i).metadata
            for g in range(meta.num_row_groups):
                rows = meta.row_group(g).num_rows
                if rows:
                    self.groups.append(RowGroup(i, g, rows, start))
                start += rows
        self.schema = self._file(0).schema_arrow if files else pa.schema([])

    @classmethod
    def open(cls, fs: pafs.FileSystem, path: str, name: str | None = None) -> "ParquetSource":
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.NotFound:
            raise FileNotFoundError(f"{path}: no such file or folder of Parquet parts")
        if info.type == pafs.FileType.Directory:
            found = fs.get_file_info(pafs.FileSelector(path, recursive=False))
            files = sorted(f.path for f in found if f.type == pafs.FileType.File and f.path.endswith(".parquet"))
            if not files:
                raise FileNotFoundError(f"{path}: folder holds no *.parquet part")
        else:
            files = [path]
        return cls(fs, files, name or path)

    def _file(self, i: int) -> pq.ParquetFile:
        if i not in self._handles:
            try:
                self._handles[i] = pq.ParquetFile(self.fs.open_input_file(self.files[i]))
            except (pa.ArrowInvalid, OSError) as exc:
                raise ValueError(f"{self.files[i]}: not a readable Parquet file ({exc})") from exc
        return self._handles[i]

    @property
    def rows(self) -> int:
        return sum(g.rows for g in self.groups)

    def uncompressed_bytes(self, columns: set[str]) -> int:
        """What the named columns take decoded, from the Parquet metadata (no data read)."""
        total = 0
        for f in range(len(self.files)):
            meta = self._file(f).metadata
            for g in range(meta.num_row_groups):
                rg = meta.row_group(g)
                total += sum(rg.column(c).total_uncompressed_size for c in range(rg.num_columns)
                             if rg.column(c).path_in_schema.split(".")[0] in columns)
        return total

    def read(self, group: RowGroup, columns: list[str]) -> pa.Table:
        return self._file(group.file).read_row_group(group.index, columns=columns)

    def read_many(self, groups: list[RowGroup], columns: list[str]) -> pa.Table:
        tables = [self.read(g, columns) for g in groups]
        return pa.concat_tables(tables) if tables else self._file(0).schema_arrow.empty_table().select(columns)

    def batches(self, columns: list[str], rows: int):
        """Row groups in file order, as tables of about `rows` rows (evaluation, pre-passes)."""
        pending, size = [], 0
        for g in self.groups:
            pending.append(g)
            size += g.rows
            if size >= rows:
                yield self.read_many(pending, columns)
                pending, size = [], 0
        if pending:
            yield self.read_many(pending, columns)


ROW = "_row"  # the window column holding each row's number in the split


def _generator(*keys: int) -> torch.Generator:
    gen = torch.Generator()
    seed = 0
    for k in keys:
        seed = (seed * 1_000_003 + int(k)) % (2 ** 63)
    gen.manual_seed(seed)
    return gen


def deal(groups: list[RowGroup], shards: int) -> list[list[RowGroup]]:
    """Each row group, in order, to the shard with the fewest rows so far (ties: the lowest)."""
    out: list[list[RowGroup]] = [[] for _ in range(shards)]
    load = [0] * shards
    for g in groups:
        s = min(range(shards), key=lambda i: (load[i], i))
        out[s].append(g)
        load[s] += g.rows
    return out


def split_sizes(rows: int, steps: int) -> np.ndarray:
    """`rows` as `steps` consecutive sizes differing by at most one (the larger first)."""
    base, extra = divmod(rows, steps)
    return np.full(steps, base, np.int64) + (np.arange(steps) < extra)


@dataclass
class EpochPlan:
    """One epoch's order: per shard its row groups, windows and per-step batch sizes."""

    shard_groups: list[list[RowGroup]]
    windows: list[list[list[RowGroup]]]  # shard -> windows -> row groups
    sizes: np.ndarray  # (shards, steps) rows of each shard's local batch at each step

    @property
    def steps(self) -> int:
        return int(self.sizes.shape[1])


def plan_epoch(groups: list[RowGroup], *, seed: int, epoch: int, shards: int, batch_size: int,
               buffer_rows: int) -> EpochPlan:
    order = torch.randperm(len(groups), generator=_generator(seed, epoch)).tolist()
    dealt = deal([groups[i] for i in order], shards)
    rows = np.array([sum(g.rows for g in d) for d in dealt], np.int64)
    total = int(rows.sum())
    steps = max(1, math.ceil(total / batch_size)) if total else 0
    if total and rows.min() < steps:  # a shard must have a row in every step
        steps = int(rows.min())
        if steps == 0:
            raise ValueError(f"{shards} shards for {len(groups)} row groups leave a shard empty; use fewer "
                             "--stream-shards or label with smaller --row-group-rows")
    per_window = max(1, buffer_rows // shards)
    windows = []
    for d in dealt:
        ws, cur, size = [], [], 0
        for g in d:
            cur.append(g)
            size += g.rows
            if size >= per_window:
                ws.append(cur)
                cur, size = [], 0
        if cur:
            ws.append(cur)
        windows.append(ws)
    sizes = np.stack([split_sizes(int(r), steps) for r in rows]) if steps else np.zeros((shards, 0), np.int64)
    return EpochPlan(dealt, windows, sizes)


class _ShardStream:
    """One shard's rows in epoch order (windows read, tensorised and permuted), sliced into batches."""

    def __init__(self, source: ParquetSource, make: "callable", columns: list[str], windows, sizes,
                 key: tuple[int, ...], start_step: int, pool: ThreadPoolExecutor) -> None:
        self.source, self.make, self.columns = source, make, columns
        self.windows, self.sizes, self.key, self.pool = windows, sizes, key, pool
        skip = int(sizes[:start_step].sum())  # rows of the steps already done
        w = 0
        while w < len(windows) and skip >= sum(g.rows for g in windows[w]):
            skip -= sum(g.rows for g in windows[w])
            w += 1
        self.next_window, self.current, self.pos = w, None, 0
        self.future = self._submit(w)
        self._advance()
        self.pos = skip

    def _load(self, w: int) -> dict:
        groups = self.windows[w]
        ds = self.make(self.source.read_many(groups, self.columns))
        rows = torch.cat([torch.arange(g.start, g.start + g.rows) for g in groups])  # split row numbers
        perm = torch.randperm(len(ds), generator=_generator(*self.key, w))
        return {"columns": ds.columns | {ROW: rows}, "perm": perm}

    def _submit(self, w: int):
        return self.pool.submit(self._load, w) if w < len(self.windows) else None

    def _advance(self) -> None:
        """Make the prefetched window current and start reading the one after it."""
        self.current = self.future.result() if self.future is not None else None
        self.next_window += 1
        self.future = self._submit(self.next_window)
        self.pos = 0

    def take(self, n: int) -> list[tuple[dict[str, torch.Tensor], torch.Tensor]]:
        """The next `n` rows as (window columns, row indices) parts (a batch may span two windows)."""
        parts = []
        while n > 0:
            if self.current is None:
                raise RuntimeError(f"{self.source.name}: the stream ran out of rows ({n} short)")
            perm = self.current["perm"]
            left = len(perm) - self.pos
            if left <= 0:
                self._advance()
                continue
            k = min(n, left)
            parts.append((self.current["columns"], perm[self.pos:self.pos + k]))
            self.pos += k
            n -= k
        return parts


class StreamingLoader:
    """Batches of a streamed split for one process; `set_epoch(epoch, start_step)` before iterating.

    `make(table) -> TIRDataset` tensorises a window (the trainer's `tensorise` with its tables);
    `template` supplies the lookup tables every batch gathers through.
    """

    def __init__(self, source: ParquetSource, make, template: TIRDataset, columns: list[str], *,
                 batch_size: int, seed: int, shards: int = 1, rank: int = 0, world_size: int = 1,
                 buffer_rows: int = 262_144) -> None:
        if shards < 1 or shards % world_size:
            raise ValueError(f"--stream-shards {shards} must be a positive multiple of the process count "
                             f"{world_size} (each process reads shards/processes of them)")
        if batch_size < shards:
            raise ValueError(f"batch_size {batch_size} is smaller than --stream-shards {shards}")
        self.source, self.make, self.template, self.columns = source, make, template, columns
        self.batch_size, self.seed, self.shards = batch_size, seed, shards
        self.rank, self.world_size, self.buffer_rows = rank, world_size, buffer_rows
        self.mine = list(range(rank * shards // world_size, (rank + 1) * shards // world_size))
        self.epoch, self.start_step = 0, 0
        self._plan = None

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        self.epoch, self.start_step, self._plan = epoch, start_step, None

    def plan(self) -> EpochPlan:
        if self._plan is None:
            self._plan = plan_epoch(self.source.groups, seed=self.seed, epoch=self.epoch, shards=self.shards,
                                    batch_size=self.batch_size, buffer_rows=self.buffer_rows)
        return self._plan

    def __len__(self) -> int:
        return self.plan().steps

    def __iter__(self):
        for _, batch in self.batches():
            yield batch

    def batches(self):
        """(split row numbers (B,), (features, targets)) per step of this process, from start_step."""
        plan = self.plan()
        with ThreadPoolExecutor(max_workers=1) as pool:
            streams = [_ShardStream(self.source, self.make, self.columns, plan.windows[s], plan.sizes[s],
                                    (self.seed, self.epoch, s), self.start_step, pool) for s in self.mine]
            for step in range(self.start_step, plan.steps):
                parts = [p for s, stream in zip(self.mine, streams) for p in stream.take(int(plan.sizes[s, step]))]
                if len(parts) == 1:  # the usual case: one gather from the window, as in memory
                    cols, idx = parts[0]
                else:
                    cols = {k: torch.cat([c[k][i] for c, i in parts]) for k in parts[0][0]}
                    idx = torch.arange(len(cols[ROW]))
                batch = TIRDataset(cols, self.template.item_fields, self.template.user_fields,
                                   self.template.item_vec)
                yield cols[ROW][idx], batch[idx]
