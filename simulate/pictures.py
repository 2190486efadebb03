"""Item pictures: small RGB PNGs drawn with numpy from the attributes, encoded with PIL.

- shape: the top category's primitive (brush-like bar, pan-like disc, t-shirt, ...), stretched by a
  per-leaf variant, so leaves of one top category look alike and different from other tops;
- fill: exactly the RGB of the item's colour attribute (the picture's dominant colour);
- texture: a pattern from the material (stripes, dots, checks or plain) in a darker or lighter
  shade of the fill, covering well under half of the shape; the outline uses the same shade;
- position: shifted by a few pixels per brand; background pure white (255, 255, 255).
PNG bytes are deterministic: no metadata chunks, fixed compression level.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from .catalogue import Catalogue
from .words import COLOURS, MATERIALS

BACKGROUND = (255, 255, 255)
_VARIANTS = ((1.0, 1.0), (0.8, 1.12), (1.15, 0.85), (0.9, 0.92), (1.1, 1.08))  # (x, y) stretch per leaf


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    c = (np.arange(size) + 0.5) / size * 2.0 - 1.0
    y, x = np.meshgrid(c, c, indexing="ij")  # y grows downwards
    return x, y


def _primitive(name: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Boolean mask of one shape primitive on coordinates in [-1, 1] (extent within ~0.8)."""
    r = np.hypot(x, y)
    box = lambda cx, cy, hw, hh: (np.abs(x - cx) < hw) & (np.abs(y - cy) < hh)  # noqa: E731
    disc = lambda cx, cy, rad: np.hypot(x - cx, y - cy) < rad  # noqa: E731
    if name == "rect":
        return box(0, 0, 0.28, 0.75)
    if name == "circle":
        return disc(0, 0, 0.72)
    if name == "rounded":
        return box(0, 0, 0.42, 0.75) & ~((np.abs(x) > 0.27) & (np.abs(y) > 0.6) &
                                         (np.hypot(np.abs(x) - 0.27, np.abs(y) - 0.6) > 0.15))
    if name == "ellipse":
        return (x / 0.78) ** 2 + (y / 0.45) ** 2 < 1
    if name == "tshirt":
        return box(0, 0.1, 0.4, 0.65) | box(0, -0.4, 0.75, 0.2)
    if name == "trapezoid":
        return (np.abs(y) < 0.6) & (np.abs(x) < 0.55 + 0.25 * y)
    if name == "square":
        return box(0, 0, 0.7, 0.7)
    if name == "cup":
        return box(-0.15, 0.05, 0.5, 0.62) | ((np.hypot(x - 0.4, y) < 0.38) & (np.hypot(x - 0.4, y) > 0.2))
    if name == "ring":
        return (r < 0.78) & (r > 0.38)
    if name == "bottle":
        return box(0, 0.15, 0.38, 0.62) | box(0, -0.6, 0.15, 0.2)
    if name == "dumbbell":
        return box(-0.55, 0, 0.2, 0.55) | box(0.55, 0, 0.2, 0.55) | box(0, 0, 0.5, 0.12)
    if name == "book":
        return box(0.05, 0, 0.55, 0.75) | box(-0.55, 0, 0.08, 0.75)
    if name == "paw":
        return disc(0, 0.25, 0.45) | disc(-0.55, -0.2, 0.2) | disc(-0.2, -0.55, 0.2) | \
            disc(0.2, -0.55, 0.2) | disc(0.55, -0.2, 0.2)
    if name == "star":
        return r < 0.55 + 0.2 * np.cos(5 * np.arctan2(y, x))
    if name == "triangle":
        return (y < 0.65) & (y > -0.7) & (np.abs(x) < (y + 0.7) * 0.55)
    if name == "pot":
        return ((y > -0.45) & (y < 0.7) & (np.abs(x) < 0.55 - 0.2 * y)) | box(0, -0.55, 0.72, 0.12)
    raise ValueError(f"unknown picture shape {name!r}")


def _texture(name: str, size: int) -> np.ndarray:
    """Boolean pattern mask in pixel units; every pattern covers at most ~36% of the canvas."""
    row, col = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    if name == "plain":
        return np.zeros((size, size), dtype=bool)
    if name == "hstripes":
        return row % 6 < 2
    if name == "vstripes":
        return col % 6 < 2
    if name == "dstripes":
        return (row + col) % 7 < 2
    if name == "checks":
        return (row % 5 == 0) | (col % 5 == 0)
    if name == "dots":
        return (row % 6 - 2.5) ** 2 + (col % 6 - 2.5) ** 2 < 2.6
    if name == "bigdots":
        return (row % 10 - 4.5) ** 2 + (col % 10 - 4.5) ** 2 < 9.5
    raise ValueError(f"unknown texture {name!r}")


def shade(rgb: np.ndarray) -> np.ndarray:
    """Texture/outline colour: darker for light fills, lighter for dark fills."""
    rgb = np.asarray(rgb, dtype=np.float64)
    light = rgb @ np.array([0.299, 0.587, 0.114]) > 110
    return np.where(light[..., None], rgb * 0.62, rgb + 0.45 * (255 - rgb)).round().astype(np.uint8)


def _outline(mask: np.ndarray) -> np.ndarray:
    inner = mask.copy()
    inner[1:] &= mask[:-1]
    inner[:-1] &= mask[1:]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return mask & ~inner


def leaf_masks(cat: Catalogue, size: int) -> np.ndarray:
    """(L, size, size) shape mask of each leaf: its top's primitive, stretched by the leaf's variant."""
    x, y = _grid(size)
    out = np.zeros((cat.tree.n_leaves, size, size), dtype=bool)
    for leaf in range(cat.tree.n_leaves):
        sx, sy = _VARIANTS[cat.tree.leaf_variant[leaf] % len(_VARIANTS)]
        out[leaf] = _primitive(cat.tree.top_shapes[cat.tree.leaf_top[leaf]], x / sx, y / sy)
    return out


def draw_pictures(masks: np.ndarray, outlines: np.ndarray, textures: np.ndarray, rgb: np.ndarray,
                  shifts: np.ndarray) -> np.ndarray:
    """(B, size, size, 3) uint8 pictures from per-item shape masks, outlines, textures (B, size, size),
    fill colours (B, 3) and (row, col) shifts (B, 2)."""
    lut = np.empty((rgb.shape[0], 3, 3), dtype=np.uint8)  # per item: background, fill, shade
    lut[:, 0], lut[:, 1], lut[:, 2] = BACKGROUND, rgb, shade(rgb)
    code = masks.astype(np.int64) + ((masks & textures) | outlines)
    code += 3 * np.arange(rgb.shape[0])[:, None, None]
    img = np.take(lut.reshape(-1, 3), code, axis=0)
    for shift in np.unique(shifts, axis=0):
        sel = np.flatnonzero((shifts == shift).all(axis=1))
        img[sel] = np.roll(img[sel], tuple(int(v) for v in shift), axis=(1, 2))
    return img


def brand_shifts(brand: np.ndarray) -> np.ndarray:
    """Small per-brand offset (rows, cols) in -3..3 pixels -> (B, 2)."""
    return np.stack([brand % 7 - 3, (brand // 7) % 7 - 3], axis=1)


def write_pictures(cat: Catalogue, folder: Path, size: int, show_progress_bar: bool = True,
                   batch: int = 512) -> list[str]:
    """Write images/<item_id>.png for every item; return the relative paths in catalogue row order."""
    folder.mkdir(parents=True, exist_ok=True)
    masks = leaf_masks(cat, size)
    outlines = np.stack([_outline(m) for m in masks])
    pattern_names = sorted({t for _, t in MATERIALS})
    textures = np.stack([_texture(name, size) for name in pattern_names])
    material_pattern = np.array([pattern_names.index(t) for _, t in MATERIALS])
    palette = np.array([rgb for _, rgb, _ in COLOURS], dtype=np.uint8)
    paths = []
    with tqdm(total=cat.n_items, desc="pictures", disable=not show_progress_bar, mininterval=1.0) as bar:
        for s in range(0, cat.n_items, batch):
            rows = np.arange(s, min(s + batch, cat.n_items))
            leaf = cat.leaf[rows]
            imgs = draw_pictures(masks[leaf], outlines[leaf], textures[material_pattern[cat.material[rows]]],
                                 palette[cat.colour[rows]], brand_shifts(cat.brand[rows]))
            for img, item_id in zip(imgs, cat.item_ids[rows].tolist()):
                name = f"{item_id}.png"
                Image.fromarray(img).save(folder / name, format="PNG", compress_level=1)
                paths.append(f"{folder.name}/{name}")
            bar.update(rows.shape[0])
    return paths
