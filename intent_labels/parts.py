"""A split's output as one Parquet file, or a folder of parts once it outgrows one.

`SplitWriter` appends labelled tables in input order. Row groups hold at most `row_group_rows`
rows (the unit a streaming reader shuffles and a process of a multi-process run reads); a part
holds at most `part_rows` rows, then the next part starts. On close, a split that fit one part
becomes OUT/<split>.parquet, a file; a larger one becomes the folder OUT/<split>.parquet/ of
part-00000.parquet, part-00001.parquet, ... Readers (pyarrow, `datasets`, Spark) take either.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


class SplitWriter:
    """Writes one split to `path` (a file, or a folder of parts when it exceeds `part_rows`)."""

    def __init__(self, path: Path, schema: pa.Schema, *, part_rows: int, row_group_rows: int,
                 **options) -> None:
        self.path, self.schema, self.options = Path(path), schema, options
        self.part_rows, self.row_group_rows = part_rows, row_group_rows
        self.staging = self.path.with_name(self.path.name + ".partial")
        shutil.rmtree(self.staging, ignore_errors=True)
        self.staging.mkdir(parents=True)
        self.parts: list[Path] = []
        self.writer: pq.ParquetWriter | None = None
        self.in_part = 0
        self.rows = 0

    def _next_part(self) -> None:
        if self.writer is not None:
            self.writer.close()
        part = self.staging / f"part-{len(self.parts):05d}.parquet"
        self.writer = pq.ParquetWriter(part, self.schema, **self.options)
        self.parts.append(part)
        self.in_part = 0

    def write(self, table: pa.Table) -> None:
        """Append `table`, cut at part boundaries into row groups of at most row_group_rows."""
        start = 0
        while start < table.num_rows:
            if self.writer is None or self.in_part >= self.part_rows:
                self._next_part()
            take = min(table.num_rows - start, self.part_rows - self.in_part)
            self.writer.write_table(table.slice(start, take), row_group_size=self.row_group_rows)
            self.in_part += take
            self.rows += take
            start += take

    def close(self) -> str:
        """Finish the split; returns its name inside OUT ("train.parquet" or "train.parquet/")."""
        if self.writer is None:  # an empty split is still a readable file with the schema
            self._next_part()
        self.writer.close()
        if len(self.parts) == 1:
            self.parts[0].replace(self.path)
            self.staging.rmdir()
            return self.path.name
        self.staging.replace(self.path)
        return self.path.name + "/"

    def abort(self) -> None:
        """Close the open part; OUT/<split>.parquet.partial/ stays, marking the folder incomplete
        (no manifest is written), until --overwrite replaces it."""
        if self.writer is not None:
            self.writer.close()
