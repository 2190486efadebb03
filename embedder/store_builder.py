"""`build_store`: embed a catalogue into an embedding store folder, resumably.

Work is cut into shards of `shard_size` items in input order. Each finished shard is written to
`out/shards/` (vectors + the ids embedded without their picture) before the next starts, next to a
`run.json` recording everything that decides the vectors (input hash, backend, model hash, settings,
batch size, shard size). A rerun with the same run.json skips the finished shards; since every shard is
embedded the same way whether or not the run was interrupted, the final files are byte-equal to an
uninterrupted run. At the end the shards are joined into `embeddings.npy`, `item_ids.npy` is written,
the optional FAISS index is built, `manifest.json` is written last and `out/shards/` is removed.
"""
from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa
from tqdm.auto import tqdm

from retrieval.store import (EMBEDDINGS_FILE, INDEX_FILE, INPUT_KEY, ITEM_IDS_FILE, MANIFEST_FILE, PICTURES_KEY,
                             VECTOR_DTYPES, write_manifest)

from .encoder import ON_BAD_IMAGE, EmbedderConfig, ItemEmbedder
from .items import (AUTO_TEXT, BadPictureError, Item, as_items, file_sha256, items_from_table, items_sha256,
                    picture_size, read_items_table, resolve_text_template)

SHARDS_DIR = "shards"
RUN_FILE = "run.json"
FORMAT = "daian-embedding-store/1"


@dataclass
class BuildConfig:
    """How to turn an items file into a store (what `embed-items` fills from its flags)."""

    items: str | Path  # items.parquet
    out: str | Path  # store folder to write
    embedder: EmbedderConfig = field(default_factory=EmbedderConfig)
    images_root: str | Path | None = None  # where `image` paths are relative to; None = the items file's folder
    text_template: str = AUTO_TEXT  # each item's text from its row's columns, e.g. "{title}"; auto = the title behind its category path when the table has category_name (and top_category_name)
    batch_size: int = 64  # items per forward pass
    dtype: str = "float32"  # stored vector dtype: float32 or float16
    index: str | None = None  # None = no index; "auto" = choose_index_factory; else a faiss factory string
    on_bad_image: str = "fail"  # "fail", or "text-only": embed such items from their text and list them
    shard_size: int = 4096  # items per resumable shard
    resume: bool = True  # continue from finished shards of an interrupted run with the same settings
    overwrite: bool = False  # replace an existing complete store at `out`
    show_progress_bar: bool = True

    def __post_init__(self) -> None:
        if self.dtype not in VECTOR_DTYPES:
            raise ValueError(f"dtype must be one of {VECTOR_DTYPES}, got {self.dtype!r}")
        if self.on_bad_image not in ON_BAD_IMAGE:
            raise ValueError(f"on_bad_image must be one of {ON_BAD_IMAGE}, got {self.on_bad_image!r}")
        if self.batch_size < 1 or self.shard_size < 1:
            raise ValueError(f"batch_size and shard_size must be positive, got {self.batch_size}, {self.shard_size}")


def _load_items(items: Any, images_root: str | Path | None,
                text_template: str = AUTO_TEXT) -> tuple[list[Item], dict]:
    """Items from a parquet path, an Arrow table, a pandas DataFrame or a list; plus input provenance
    (with the text template a table was rendered with; None for a list of items)."""
    path, table, root = None, None, images_root
    if isinstance(items, (str, Path)):
        path = Path(items).resolve()
        table, source = read_items_table(path), str(path)
        root = Path(images_root).resolve() if images_root is not None else path.parent
    elif hasattr(items, "to_pandas") and hasattr(items, "column_names"):  # pyarrow Table
        table, source = items, "items table"
    elif hasattr(items, "columns") and hasattr(items, "to_dict"):  # pandas DataFrame
        table, source = pa.Table.from_pandas(items, preserve_index=False), "items DataFrame"
    template = None
    if table is not None:
        template = resolve_text_template(text_template, table.column_names, source)
        loaded = items_from_table(table, root, source=source, text_template=template)
    else:
        loaded = as_items(items)
    if path is not None:
        return loaded, {"path": str(path), "sha256": file_sha256(path), "images_root": str(root),
                        "text_template": template}
    missing = [i for i, it in enumerate(loaded) if it.item_id is None]
    if missing:
        raise ValueError(f"items at positions {missing[:10]} have no item_id; a store needs one per item")
    return loaded, {"path": None, "sha256": items_sha256(loaded),
                    "images_root": None if images_root is None else str(Path(images_root).resolve()),
                    "text_template": template}


def _check_pictures(items: list[Item], on_bad_image: str) -> list[int]:
    """Read every picture's header before any work: the first missing or unreadable one raises
    (on_bad_image='fail'); with 'text-only' the ids of such items are returned (they are embedded
    from their text). An item with no text to fall back on raises either way."""
    bad = []
    for it in items:
        if it.picture is None:
            continue
        try:
            picture_size(it)
        except BadPictureError:
            if on_bad_image == "fail" or not it.text:
                raise
            bad.append(int(it.item_id))
    return bad


def picture_record(items: list[Item], bad_ids: list[int]) -> dict:
    """The manifest's `items_without_picture` entry: how many items have no picture given, and
    which were embedded from their text because their picture is missing or unreadable (ids sorted,
    split by whether the file exists, with counts)."""
    bad_ids = sorted(set(bad_ids))
    pictures = {it.item_id: it.picture for it in items}
    missing = [i for i in bad_ids if isinstance(pictures[i], (str, Path)) and not Path(pictures[i]).exists()]
    gone = set(missing)
    return {"no_picture_given": sum(it.picture is None for it in items),
            "bad_picture_count": len(bad_ids), "bad_picture_text_only": bad_ids,
            "bad_picture_missing": missing, "bad_picture_unreadable": [i for i in bad_ids if i not in gone]}


def picture_warning(record: dict, n_items: int, store: Path, show: int = 5) -> str | None:
    """The one-line warning for a store whose items have missing or unreadable pictures; None when
    there are none."""
    ids = record["bad_picture_text_only"]
    if not ids:
        return None
    first = ", ".join(str(i) for i in ids[:show]) + (", ..." if len(ids) > show else "")
    return (f"{len(ids)} of {n_items} items have a missing ({len(record['bad_picture_missing'])}) or "
            f"unreadable ({len(record['bad_picture_unreadable'])}) picture and were embedded from their "
            f"text: items {first}; listed in {store / MANIFEST_FILE} under {PICTURES_KEY}")


def _warn_on_stderr(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _run_record(cfg: BuildConfig, embedder: ItemEmbedder, source: dict, n: int) -> dict:
    return {"format": FORMAT, "input_sha256": source["sha256"], "text_template": source["text_template"],
            "count": n, "settings": embedder.settings(),
            "batch_size": cfg.batch_size, "shard_size": cfg.shard_size, "dtype": cfg.dtype,
            "on_bad_image": cfg.on_bad_image}


def _prepare_out(out: Path, run: dict, cfg: BuildConfig) -> Path:
    """Create out/shards with run.json, or reuse it when resuming the same run."""
    if (out / MANIFEST_FILE).exists():
        if not cfg.overwrite:
            raise FileExistsError(f"{out} already holds an embedding store (use overwrite=True / --overwrite)")
        for name in (MANIFEST_FILE, EMBEDDINGS_FILE, ITEM_IDS_FILE, INDEX_FILE):
            (out / name).unlink(missing_ok=True)
    shards = out / SHARDS_DIR
    run_file = shards / RUN_FILE
    if shards.exists() and cfg.resume and run_file.is_file():
        previous = json.loads(run_file.read_text())
        if previous != json.loads(json.dumps(run)):
            diff = sorted(k for k in set(previous) | set(run) if previous.get(k) != json.loads(json.dumps(run)).get(k))
            raise ValueError(f"{shards} holds shards of a different run (differs in {diff}); rerun with "
                             "resume=False / --no-resume to start over")
        return shards
    if shards.exists():
        shutil.rmtree(shards)
    shards.mkdir(parents=True)
    (shards / RUN_FILE).write_text(json.dumps(run, indent=2, sort_keys=True) + "\n")
    return shards


def _shard_paths(shards: Path, s: int) -> tuple[Path, Path]:
    return shards / f"shard-{s:06d}.npy", shards / f"shard-{s:06d}.json"


def _embed_shards(items: list[Item], embedder: ItemEmbedder, shards: Path, cfg: BuildConfig,
                  on_shard_done: Callable[[int], None] | None) -> None:
    n_shards = -(-len(items) // cfg.shard_size)
    done = [s for s in range(n_shards) if all(p.is_file() for p in _shard_paths(shards, s))]
    done_items = sum(min(cfg.shard_size, len(items) - s * cfg.shard_size) for s in done)
    bar = tqdm(total=len(items), initial=done_items, desc="embed-items", unit="item",
               disable=not cfg.show_progress_bar, smoothing=0.1)
    for s in range(n_shards):
        if s in done:
            continue
        chunk = items[s * cfg.shard_size:(s + 1) * cfg.shard_size]
        result = embedder.encode_items(chunk, batch_size=cfg.batch_size, normalize=True,
                                       show_progress_bar=False, on_bad_image=cfg.on_bad_image,
                                       on_batch=bar.update)
        vec_path, info_path = _shard_paths(shards, s)
        tmp = vec_path.with_name(vec_path.name + ".tmp.npy")
        np.save(tmp, result.vectors.astype(cfg.dtype))
        tmp.replace(vec_path)
        text_only = [int(chunk[i].item_id) for i in result.text_only]
        info_path.write_text(json.dumps({"text_only_item_ids": text_only}) + "\n")
        if on_shard_done is not None:
            on_shard_done(s)
    bar.close()


def _join_shards(items: list[Item], shards: Path, out: Path, cfg: BuildConfig, dim: int) -> list[int]:
    """Write embeddings.npy and item_ids.npy from the shards; returns the text-only item ids."""
    n_shards = -(-len(items) // cfg.shard_size)
    tmp = out / (EMBEDDINGS_FILE + ".tmp.npy")
    vectors = np.lib.format.open_memmap(tmp, mode="w+", dtype=cfg.dtype, shape=(len(items), dim))
    text_only: list[int] = []
    for s in range(n_shards):
        vec_path, info_path = _shard_paths(shards, s)
        vectors[s * cfg.shard_size:(s + 1) * cfg.shard_size] = np.load(vec_path)
        text_only += json.loads(info_path.read_text())["text_only_item_ids"]
    vectors.flush()
    del vectors
    tmp.replace(out / EMBEDDINGS_FILE)
    ids_tmp = out / (ITEM_IDS_FILE + ".tmp.npy")
    np.save(ids_tmp, np.array([it.item_id for it in items], dtype=np.int64))
    ids_tmp.replace(out / ITEM_IDS_FILE)
    return text_only


def _build_index(out: Path, spec: str, n: int, dim: int) -> dict:
    from retrieval.index import build_index, choose_index_factory, save_index

    factory = choose_index_factory(n, dim) if spec == "auto" else spec
    vectors = np.load(out / EMBEDDINGS_FILE, mmap_mode="r")
    save_index(build_index(vectors, factory), out / INDEX_FILE)
    return {"file": INDEX_FILE, "factory": factory, "metric": "inner_product"}


def build_store_from_config(cfg: BuildConfig, items: Any = None, *, embedder: ItemEmbedder | None = None,
                            on_shard_done: Callable[[int], None] | None = None,
                            warn: Callable[[str], None] | None = None) -> Path:
    """Embed `items` (default: `cfg.items`) into the store folder `cfg.out`; see `build_store`."""
    out = Path(cfg.out)
    loaded, source = _load_items(cfg.items if items is None else items, cfg.images_root, cfg.text_template)
    if not loaded:
        raise ValueError(f"no items to embed in {source['path'] or 'the input'}")
    uses_pictures = embedder.backend.uses_pictures if embedder is not None else cfg.embedder.backend != "text"
    # The headers are read up front when a bad picture must stop the run (any backend), and for
    # the text backend, which never opens a picture, so its missing ones are recorded too; the
    # qwen-vl backend finds them itself while embedding (text-only).
    read_headers = cfg.on_bad_image == "fail" or not uses_pictures
    header_bad = _check_pictures(loaded, cfg.on_bad_image) if read_headers else []
    if embedder is None:
        embedder = ItemEmbedder.from_config(cfg.embedder)
    run = _run_record(cfg, embedder, source, len(loaded))
    out.mkdir(parents=True, exist_ok=True)
    shards = _prepare_out(out, run, cfg)
    _embed_shards(loaded, embedder, shards, cfg, on_shard_done)
    text_only = _join_shards(loaded, shards, out, cfg, embedder.dim)
    pictures = picture_record(loaded, text_only + header_bad)
    manifest = dict(
        embedder.settings(), format=FORMAT, count=len(loaded), dtype=cfg.dtype, normalized=True,
        **{INPUT_KEY: source}, batch_size=cfg.batch_size, on_bad_image=cfg.on_bad_image,
        **{PICTURES_KEY: pictures},
        index=_build_index(out, cfg.index, len(loaded), embedder.dim) if cfg.index else None,
    )
    write_manifest(out, manifest)
    shutil.rmtree(shards)
    message = picture_warning(pictures, len(loaded), out)
    if message is not None:
        (warn or _warn_on_stderr)(message)
    return out


def build_store(items: Any, out: str | Path, *, backend: str = "text", model: str | None = None,
                images_root: str | Path | None = None, text_template: str = AUTO_TEXT,
                batch_size: int = 64, dtype: str = "float32",
                index: str | None = None, on_bad_image: str = "fail", resume: bool = True,
                show_progress_bar: bool = True, overwrite: bool = False, shard_size: int = 4096,
                embedder: ItemEmbedder | None = None, on_shard_done: Callable[[int], None] | None = None,
                warn: Callable[[str], None] | None = None, **embedder_settings: Any) -> Path:
    """Embed a catalogue into an embedding store folder and return its path.

    items: an items.parquet path (image paths relative to its folder unless `images_root`), an Arrow
        table or DataFrame with item_id/title/image (relative to `images_root`, else the working
        directory), or a list of `Item`s / dicts with item ids. A table's image paths must stay
        inside that folder (`common.pictures.picture_path`); a list's pictures are taken as given.
    text_template: what text a table's item is embedded with, a template over its columns such as
        "{title}" or "{brand_name} {title}"; "auto" (default) puts the title behind its category
        path when the table has `category_name` (and `top_category_name`), else the title alone
        (`embedder.items.resolve_text_template`). Ignored for a list of items (they carry their text).
    backend, model, **embedder_settings: an `EmbedderConfig` (pooling, instruction, min_pixels,
        max_pixels, device, precision, ...); or pass a loaded `embedder` to reuse it.
    index: None, "auto" (`retrieval.index.choose_index_factory`) or a faiss factory string.
    on_bad_image: "fail" (default; a missing or unreadable picture raises naming the item and file,
        for every backend) or "text-only" (such items are embedded from their text and listed in the
        manifest under items_without_picture; the text backend, which never embeds a picture, reads
        their headers to find them).
    on_shard_done(s): called after shard s is safely on disk (progress hooks, tests of resumption).
    warn(message): called with one line when items had a missing or unreadable picture (default:
        printed on stderr).
    """
    if embedder is not None and (model is not None or embedder_settings):
        raise ValueError("pass either a loaded embedder or model/settings, not both")
    emb_cfg = embedder.config if embedder is not None else EmbedderConfig(backend=backend, model=model,
                                                                           **embedder_settings)
    cfg = BuildConfig(items=items if isinstance(items, (str, Path)) else "<memory>", out=out, embedder=emb_cfg,
                      images_root=images_root, text_template=text_template, batch_size=batch_size, dtype=dtype, index=index,
                      on_bad_image=on_bad_image, shard_size=shard_size, resume=resume, overwrite=overwrite,
                      show_progress_bar=show_progress_bar)
    return build_store_from_config(cfg, items, embedder=embedder, on_shard_done=on_shard_done, warn=warn)
