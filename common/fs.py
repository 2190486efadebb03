"""Where data lives: a local path or a filesystem URI that pyarrow understands.

`file://` URIs and plain paths are the local disk; `s3://`, `gs://`, `hdfs://` and the others
pyarrow's filesystems know are read through `pyarrow.fs` (with the credentials its documentation
describes for each), so a labelled folder can stay where a cluster wrote it.
"""
from __future__ import annotations

from pathlib import Path, PurePosixPath

import pyarrow as pa
import pyarrow.fs as pafs


def is_uri(location: str | Path) -> bool:
    return "://" in str(location)


def open_filesystem(location: str | Path) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path inside it) of a local path or a URI pyarrow understands."""
    text = str(location)
    if is_uri(text):
        try:
            return pafs.FileSystem.from_uri(text)
        except (pa.ArrowInvalid, ValueError, OSError) as exc:
            raise ValueError(f"{text}: not a filesystem URI pyarrow can open ({exc})") from exc
    return pafs.LocalFileSystem(), str(Path(text).resolve())


def local_path(location: str | Path) -> Path | None:
    """The local path of a plain path or a file:// URI; None for a remote filesystem."""
    if not is_uri(location):
        return Path(location)
    fs, path = open_filesystem(location)
    return Path(path) if isinstance(fs, pafs.LocalFileSystem) else None


def remote_path(location: str | Path) -> tuple[pafs.FileSystem, PurePosixPath]:
    fs, path = open_filesystem(location)
    return fs, PurePosixPath(path)
