"""Items to embed: one text and an optional picture each, read from items.parquet or given in memory.

An item may be an `Item`, a dict or any object (e.g. a dataclass) with `text` or `title` and optionally
`picture` or `image` (a file path or a PIL image) and `item_id` or `id`; a plain string is a text-only
item. Pictures are opened here so that every failure names the item and the file.

Pictures named by items.parquet are a data file's paths: `items_from_table` confines them to their
folder (`common.pictures.picture_path`). Pictures given in memory (an `Item`, a `search-items
--image` query) are the caller's own choice and are not confined; every picture, wherever it comes
from, is opened under the same limits (`common.pictures.open_picture`; `picture_size` reads the
header under the same pixel and file size limits).
"""
from __future__ import annotations

import hashlib
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pyarrow as pa
from PIL import Image

from common.pictures import MAX_PICTURE_PIXELS, PictureError, open_picture, picture_header, picture_path

MAX_ASPECT_RATIO = 200  # Qwen-VL's resize rejects pictures more elongated than this


class BadPictureError(ValueError):
    """A picture that is missing, unreadable, corrupt or unsupported; names the item and the path."""

    def __init__(self, item_label: str, path: str, reason: str):
        super().__init__(f"item {item_label}: picture {path}: {reason}")
        self.item_label = item_label
        self.path = path
        self.reason = reason


@dataclass
class Item:
    """One item: its id (optional in memory), text, and picture (path, PIL image, or None)."""

    text: str | None = None
    picture: str | Path | Image.Image | None = None
    item_id: int | None = None

    @property
    def label(self) -> str:
        return str(self.item_id) if self.item_id is not None else "(no id)"


def _field(obj: Any, names: tuple[str, ...]) -> Any:
    for name in names:
        if isinstance(obj, dict):
            if name in obj:
                return obj[name]
        elif hasattr(obj, name):
            return getattr(obj, name)
    return None


def as_item(obj: Any, position: int) -> Item:
    """Normalise one input to an `Item`; raises ValueError when it has neither text nor picture."""
    if isinstance(obj, Item):
        item = obj
    elif isinstance(obj, str):
        item = Item(text=obj)
    else:
        item_id = _field(obj, ("item_id", "id"))
        item = Item(text=_field(obj, ("text", "title")), picture=_field(obj, ("picture", "image")),
                    item_id=None if item_id is None else int(item_id))
    if item.text is not None and not isinstance(item.text, str):
        raise ValueError(f"item {item.label} at position {position}: text must be a string, "
                         f"got {type(item.text).__name__}")
    if isinstance(item.picture, float) and np.isnan(item.picture):  # pandas' missing value
        item.picture = None
    if not item.text and item.picture is None:
        raise ValueError(f"item {item.label} at position {position} has neither text nor picture")
    return item


def as_items(items: Iterable[Any]) -> list[Item]:
    """Normalise a sequence of inputs; raises ValueError on duplicate item ids."""
    out = [as_item(obj, i) for i, obj in enumerate(items)]
    ids = np.array([it.item_id for it in out if it.item_id is not None], dtype=np.int64)
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        dup = uniq[counts > 1]
        raise ValueError(f"duplicate item ids ({dup.size}): first {dup[:10].tolist()}")
    return out


def picture_size(item: Item) -> tuple[int, int]:
    """(width, height) of the item's picture, reading only the file header, under the limits of
    `common.pictures.open_picture` (file size, `MAX_PICTURE_PIXELS`, Pillow's bomb guard on)."""
    if isinstance(item.picture, Image.Image):
        _check_size(item, "(in-memory image)", item.picture.size)
        return item.picture.size
    path = Path(item.picture)
    try:
        size = picture_header(path)
    except PictureError as err:  # its message is "PATH: reason"
        raise BadPictureError(item.label, str(path), str(err).removeprefix(f"{path}: ")) from None
    _check_size(item, str(path), size)
    return size


def _check_size(item: Item, path: str, size: tuple[int, int]) -> None:
    w, h = size
    if w < 1 or h < 1:
        raise BadPictureError(item.label, path, f"empty picture ({w}x{h})")
    if w * h > MAX_PICTURE_PIXELS:
        raise BadPictureError(item.label, path, f"picture of {w}x{h} pixels, over the limit of "
                                                f"{MAX_PICTURE_PIXELS} pixels")
    if max(w, h) / min(w, h) > MAX_ASPECT_RATIO:
        raise BadPictureError(item.label, path, f"unsupported aspect ratio {w}x{h} (over {MAX_ASPECT_RATIO}:1)")


def load_picture(item: Item) -> Image.Image:
    """Decode the item's picture to RGB through `common.pictures.open_picture` (its pixel and file
    size limits); raises BadPictureError naming the item and the path."""
    if isinstance(item.picture, Image.Image):
        _check_size(item, "(in-memory image)", item.picture.size)
        return item.picture.convert("RGB")
    path = Path(item.picture)
    try:
        rgb = open_picture(path)
    except PictureError as err:  # its message is "PATH: reason"
        raise BadPictureError(item.label, str(path), str(err).removeprefix(f"{path}: ")) from None
    _check_size(item, str(path), rgb.size)
    return rgb


# --- items.parquet -------------------------------------------------------------------------------

ITEM_COLUMNS = ("item_id", "title", "image")

# What text an item of items.parquet is embedded with: a template over the table's columns.
AUTO_TEXT = "auto"
TITLE_TEMPLATE = "{title}"
LEAF_TEMPLATE = "{category_name}: {title}"
CATEGORY_PATH_TEMPLATE = "{top_category_name} > {category_name}: {title}"


def template_fields(template: str) -> list[str]:
    """The column names a text template reads, in order (`{title}` -> ["title"])."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as err:
        raise ValueError(f"text template {template!r} is malformed ({err}); write columns as {{title}}, "
                         "a literal brace as {{ or }}") from None
    fields = []
    for _, name, _, _ in parts:
        if name is None:
            continue
        if not name.isidentifier():
            raise ValueError(f"text template {template!r}: {{{name}}} is not a column name; write columns "
                             "as {title} or {category_name}")
        if name not in fields:
            fields.append(name)
    return fields


def resolve_text_template(template: str | None, columns: Iterable[str], source: str = "items") -> str:
    """The template an items table is embedded with.

    `auto` (or None): the title behind its category path when the table names the categories, as
    a catalogue's own text does on a product page: "{top_category_name} > {category_name}: {title}"
    when both name columns exist, "{category_name}: {title}" with the leaf name alone, else
    "{title}". Any other template is checked against the table: every `{column}` it names must
    exist (ValueError naming the source, the missing columns and the columns present).
    """
    columns = list(columns)
    if template is None or template == AUTO_TEXT:
        if {"top_category_name", "category_name"} <= set(columns):
            return CATEGORY_PATH_TEMPLATE
        return LEAF_TEMPLATE if "category_name" in columns else TITLE_TEMPLATE
    fields = template_fields(template)
    if not fields:
        raise ValueError(f"{source}: text template {template!r} names no column; write columns as {{title}}")
    missing = [f for f in fields if f not in columns]
    if missing:
        raise ValueError(f"{source}: text template {template!r} names column(s) {missing} that the table "
                         f"does not have; its columns are {columns}")
    return template


def render_texts(table: pa.Table, template: str, source: str = "items") -> list[str | None]:
    """Each row's text from a (resolved) template; a null field renders as "", and a row whose
    every field is null or empty has no text (None)."""
    fields = template_fields(template)
    values = {f: table.column(f).to_pylist() for f in fields}
    out: list[str | None] = []
    for i in range(table.num_rows):
        row = {f: values[f][i] for f in fields}
        if all(v is None or v == "" for v in row.values()):
            out.append(None)
            continue
        try:
            out.append(template.format(**{f: "" if v is None else v for f, v in row.items()}))
        except (ValueError, TypeError) as err:
            raise ValueError(f"{source}: row {i}: text template {template!r} cannot format "
                             f"{ {f: row[f] for f in fields} } ({err})") from None
    return out


def read_items_table(path: str | Path) -> pa.Table:
    """Read and validate items.parquet (the one place the embedder reads that file)."""
    from common.contract import read_table

    return read_table(Path(path), "items")


def items_from_table(table: pa.Table, images_root: str | Path | None, source: str = "items",
                     text_template: str | None = AUTO_TEXT) -> list[Item]:
    """Items from an items table (item_id, the text `text_template` renders from the row, image
    relative to `images_root`); see `resolve_text_template` for the `auto` default.

    Each `image` value is a data file's path, so it goes through `common.pictures.picture_path`:
    a URL, or a path (relative, absolute or through a symlink) whose real location is outside
    `images_root` (the working directory when None), raises PictureError naming the source, row,
    item and path, before any model loads. Only that it is allowed is checked here, not that the
    file exists (see `picture_size`)."""
    for col in ("item_id", "title"):
        if col not in table.column_names:
            raise ValueError(f"{source}: missing column {col!r}")
    ids = table.column("item_id").to_numpy(zero_copy_only=False)
    if ids.dtype.kind not in "iu":
        raise ValueError(f"{source}: column 'item_id' must be integer, got {table.schema.field('item_id').type}")
    template = resolve_text_template(text_template, table.column_names, source)
    titles = render_texts(table, template, source)
    images = table.column("image").to_pylist() if "image" in table.column_names else [None] * len(ids)
    root = Path(images_root) if images_root is not None else Path.cwd()
    out = []
    for i, (item_id, title, image) in enumerate(zip(ids.tolist(), titles, images)):
        picture = None
        if image:
            try:  # a data file's path: confined to its folder, a URL refused (common.pictures)
                picture = picture_path(root, image, item_id)
            except PictureError as err:
                raise PictureError(f"{source}: row {i}: {err}") from None
        out.append(Item(text=title, picture=picture, item_id=int(item_id)))
        if not title and picture is None:
            raise ValueError(f"{source}: item {item_id} (row {i}) has neither text ({template!r}) nor image")
    return as_items(out)


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def items_sha256(items: list[Item]) -> str:
    """A content hash of in-memory items (ids, texts, picture paths; in-memory pictures by pixels)."""
    h = hashlib.sha256()
    for it in items:
        pic = it.picture
        if isinstance(pic, Image.Image):
            pic = hashlib.sha256(pic.tobytes()).hexdigest() + f"{pic.size}{pic.mode}"
        h.update(repr((it.item_id, it.text, None if pic is None else str(pic))).encode())
    return h.hexdigest()
