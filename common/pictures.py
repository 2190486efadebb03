"""Pictures named by a data file: where they may be, and how they are opened.

Every command that reads an item's picture (`embed-items`, `search-items`, `tir-report`) goes
through this module, so a data file cannot make the toolkit read a file outside its dataset folder,
fetch a URL, or decode a decompression bomb:

- `picture_path(root, value, item_id)` resolves the `image` column's value against the folder it
  belongs to (the dataset folder, or `--images-root`). A URL (`http://`, `file://`, any `scheme:`)
  is refused: the toolkit reads local files only and never fetches or follows one. A path, relative
  or absolute, whose real location (symlinks followed) is outside the folder is refused, naming the
  item and the path (`PictureError`).
- `open_picture(path)` decodes a picture to RGB with a pixel limit (`MAX_PICTURE_PIXELS`, checked
  from the header before any pixel is decoded, and Pillow's own decompression-bomb guard kept on)
  and a file-size limit (`MAX_PICTURE_BYTES`).
"""
from __future__ import annotations

import re
import warnings
from pathlib import Path

from common.contract import ContractError

MAX_PICTURE_PIXELS = 40_000_000  # 40 megapixels, e.g. 8000 x 5000: beyond any product photo
MAX_PICTURE_BYTES = 64 << 20  # 64 MiB on disk
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")  # "http:", "file:", "s3:" (not "C:" alone)


class PictureError(ContractError):
    """A picture path that is not allowed, or a picture that cannot be opened within the limits."""


def is_url(value: str) -> bool:
    return bool(_SCHEME.match(value)) and not re.match(r"^[A-Za-z]:[\\/]", value)


def picture_path(root: str | Path, value: str, item_id: object = None) -> Path:
    """The file of an `image` value, resolved against `root`; PictureError when it is a URL or its
    real path (symlinks followed) lies outside `root`. The file need not exist."""
    who = f"item {item_id}" if item_id is not None else "picture"
    if is_url(value):
        raise PictureError(f"{who}: picture {value!r} is a URL; pictures are read from local files "
                           "only (download them into the dataset folder and name them relative to it)")
    base = Path(root).resolve()
    path = Path(value)
    resolved = (path if path.is_absolute() else base / path).resolve()
    if not resolved.is_relative_to(base):
        raise PictureError(f"{who}: picture path {value!r} resolves to {resolved}, outside the folder "
                           f"{base} it must stay in")
    return resolved


def _guarded_open(path: Path, max_pixels: int, decode: bool):
    """Open `path` under the limits; the picture's (width, height), or its RGB image with `decode`."""
    from PIL import Image

    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise PictureError(f"{path}: file not found") from None
    except OSError as err:
        raise PictureError(f"{path}: cannot be opened ({err})") from None
    if size > MAX_PICTURE_BYTES:
        raise PictureError(f"{path}: picture file of {size} bytes, over the limit of {MAX_PICTURE_BYTES}")
    if Image.MAX_IMAGE_PIXELS is None or Image.MAX_IMAGE_PIXELS > 2 * MAX_PICTURE_PIXELS:
        Image.MAX_IMAGE_PIXELS = 2 * MAX_PICTURE_PIXELS  # keep Pillow's own guard on (it errors at 2x)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                w, h = img.size
                if w * h > max_pixels:
                    raise PictureError(f"{path}: picture of {w}x{h} pixels, over the limit of "
                                       f"{max_pixels} pixels")
                if not decode:
                    return w, h
                img.load()
                return img.convert("RGB")
    except PictureError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise PictureError(f"{path}: picture over the limit of {max_pixels} pixels ({err})") from None
    except Image.UnidentifiedImageError:
        raise PictureError(f"{path}: not a picture format Pillow can read") from None
    except (OSError, ValueError, SyntaxError) as err:
        what = "corrupt or truncated picture" if decode else "cannot be opened"
        raise PictureError(f"{path}: {what} ({err})") from None


def picture_header(path: str | Path, max_pixels: int = MAX_PICTURE_PIXELS) -> tuple[int, int]:
    """(width, height) from the picture's header alone, under the limits of `open_picture`."""
    return _guarded_open(Path(path), max_pixels, decode=False)


def open_picture(path: str | Path, max_pixels: int = MAX_PICTURE_PIXELS):
    """Decode the picture at `path` to an RGB `PIL.Image`; PictureError (naming the path) when it
    is missing, too large on disk or in pixels, or not a readable picture."""
    return _guarded_open(Path(path), max_pixels, decode=True)
