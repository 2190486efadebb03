"""`simulate_world`: build a whole simulated TIR world and write its dataset folder.

Folder layout (docs/simulator.md and docs/data.md describe each file):
    items.parquet users.parquet behaviors.parquet impressions.parquet images/<item_id>.png world.json
    truth/ item_latent.npy item_ids.npy items.parquet users.parquet requests.parquet impressions.parquet
           click_model.json levels.json categories.json
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
from tqdm.auto import tqdm

from common.contract import FILES, TABLES, TRUTH_DIR, TRUTH_USERS

from .blocks import BlockTables, WorldParts, simulate_block
from .catalogue import Catalogue, build_catalogue
from .clicks import model_description
from .config import WorldConfig, resolve_config
from .histories import Pools
from .latent import build_directions, item_latent, levels_description
from .pictures import write_pictures
from .sampling import pools_from_labels
from .titles import write_titles
from .users import group_top_preference
from .words import COLOURS, MATERIALS, STYLES
from .writer import (BEHAVIORS_SCHEMA, IMPRESSIONS_SCHEMA, ITEMS_SCHEMA, TRUTH_IMPRESSIONS_SCHEMA,
                     TRUTH_ITEMS_SCHEMA, TRUTH_REQUESTS_SCHEMA, TRUTH_USERS_SCHEMA, USERS_SCHEMA,
                     RowGroupWriter, write_json, write_npy, write_table)

WORLD_JSON = "world.json"  # how the world was made: preset, config, counts, time window
IMAGES_DIR = "images"  # images/<item_id>.png, the items' pictures
OUTPUTS = (*(FILES[t] for t in TABLES), IMAGES_DIR, TRUTH_DIR, WORLD_JSON)


def simulate_world(preset: str, out: str | Path, seed: int = 0, overrides: dict | None = None,
                   overwrite: bool = False, *, show_progress_bar: bool = True) -> Path:
    """Simulate the world of `preset` (+ `overrides`, values typed or strings) into folder `out`.

    Raises ValueError for an unknown preset or config key, a bad value, or a non-empty `out`
    without `overwrite` (then only the simulator's own outputs are removed first).
    """
    cfg = resolve_config(preset, seed, overrides)
    out = _prepare_folder(Path(out), overwrite)
    return write_world(cfg, out, preset, show_progress_bar=show_progress_bar)


def _prepare_folder(out: Path, overwrite: bool) -> Path:
    if out.exists() and not out.is_dir():
        raise ValueError(f"output path {out} exists and is not a folder")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ValueError(f"output folder {out} is not empty; pass overwrite=True (--overwrite) to replace it")
        for name in OUTPUTS:
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    (out / TRUTH_DIR).mkdir(parents=True, exist_ok=True)
    return out


def build_parts(cfg: WorldConfig) -> WorldParts:
    """Catalogue, latent vectors and item pools shared by every user block."""
    cat = build_catalogue(cfg)
    dirs = build_directions(cfg, cat)
    latent = item_latent(cfg, cat, dirs)
    pools = Pools(by_leaf=pools_from_labels(cat.leaf, cat.tree.n_leaves, cat.popularity),
                  by_top=pools_from_labels(cat.top, cat.tree.n_top, cat.popularity),
                  anywhere=pools_from_labels(np.zeros(cat.n_items, np.int64), 1, cat.popularity))
    return WorldParts(cfg=cfg, cat=cat, dirs=dirs, latent=latent, pools=pools,
                      group_pref=group_top_preference(cfg, cat.tree.n_top))


def write_world(cfg: WorldConfig, out: Path, preset: str, show_progress_bar: bool = True) -> Path:
    parts = build_parts(cfg)
    cat = parts.cat
    images = (write_pictures(cat, out / IMAGES_DIR, cfg.image_size, show_progress_bar) if cfg.write_images
              else [None] * cat.n_items)
    _write_items(cfg, cat, write_titles(cfg, cat), images, parts.latent, out)
    counts = _write_blocks(parts, out, show_progress_bar)
    write_json(model_description(cfg), out / TRUTH_DIR / "click_model.json")
    write_json(levels_description(cfg), out / TRUTH_DIR / "levels.json")
    write_json(_categories(cat), out / TRUTH_DIR / "categories.json")
    req_start = cfg.start_ts + cfg.history_days * 86_400
    write_json({"preset": preset, "config": cfg.to_dict(), "counts": counts,
                "history_start_ts": cfg.start_ts, "request_start_ts": req_start,
                "request_end_ts": req_start + cfg.request_days * 86_400}, out / WORLD_JSON)
    return out


def _write_items(cfg: WorldConfig, cat: Catalogue, titles: list[str], images: list, latent: np.ndarray,
                 out: Path) -> None:
    order = np.argsort(cat.item_ids)
    tree = cat.tree
    names = lambda table, idx: pa.array([table[i] for i in idx[order].tolist()], pa.string())  # noqa: E731
    items = pa.table({
        "item_id": cat.item_ids[order], "title": pa.array([titles[i] for i in order.tolist()], pa.string()),
        "image": pa.array([images[i] for i in order.tolist()], pa.string()),
        "category_id": cat.leaf[order].astype(np.int64) + 1,
        "top_category_id": cat.top[order].astype(np.int64) + 1,
        "brand_id": cat.brand[order].astype(np.int64) + 1, "price": cat.price[order],
        "category_name": names(tree.leaf_names, cat.leaf), "top_category_name": names(tree.top_names, cat.top),
        "brand_name": names(cat.brand_names, cat.brand), "colour": names([c[0] for c in COLOURS], cat.colour),
        "material": names([m[0] for m in MATERIALS], cat.material),
        "style": names([s[0] for s in STYLES], cat.style),
        "size": names(cat.size_names(), np.arange(cat.n_items)),
    }, schema=ITEMS_SCHEMA)
    write_table(items, out / FILES["items"], cfg.row_group_rows)
    write_table(pa.table({"item_id": cat.item_ids[order], "quality": cat.quality[order],
                          "popularity": cat.popularity[order]}, schema=TRUTH_ITEMS_SCHEMA),
                out / TRUTH_DIR / "items.parquet", cfg.row_group_rows)
    write_npy(cat.item_ids[order], out / TRUTH_DIR / "item_ids.npy")
    write_npy(latent[order], out / TRUTH_DIR / "item_latent.npy")


def _write_blocks(parts: WorldParts, out: Path, show_progress_bar: bool) -> dict:
    cfg = parts.cfg
    rg = cfg.row_group_rows
    writers = {
        "users": RowGroupWriter(out / FILES["users"], USERS_SCHEMA, rg),
        "behaviors": RowGroupWriter(out / FILES["behaviors"], BEHAVIORS_SCHEMA, rg),
        "impressions": RowGroupWriter(out / FILES["impressions"], IMPRESSIONS_SCHEMA, rg),
        "truth_users": RowGroupWriter(out / TRUTH_DIR / TRUTH_USERS, TRUTH_USERS_SCHEMA, rg),
        "truth_requests": RowGroupWriter(out / TRUTH_DIR / "requests.parquet", TRUTH_REQUESTS_SCHEMA, rg),
        "truth_impressions": RowGroupWriter(out / TRUTH_DIR / "impressions.parquet", TRUTH_IMPRESSIONS_SCHEMA, rg),
    }
    n_blocks = -(-cfg.n_users // cfg.users_per_block)
    next_request_id, clicks = 1, 0
    for block in tqdm(range(n_blocks), desc="user blocks", disable=not show_progress_bar):
        tables: BlockTables = simulate_block(parts, block, next_request_id)
        next_request_id += tables.n_requests
        clicks += int(np.asarray(tables.impressions.column("clicked")).sum())
        for name, writer in writers.items():
            writer.write(getattr(tables, name))
        del tables
    for writer in writers.values():
        writer.close()
    n_imp = writers["impressions"].rows
    return {"items": parts.cat.n_items, "users": writers["users"].rows, "behaviors": writers["behaviors"].rows,
            "impressions": n_imp, "requests": next_request_id - 1, "clicks": clicks,
            "ctr": round(clicks / max(n_imp, 1), 6)}


def _categories(cat: Catalogue) -> dict:
    """truth/categories.json: the category tree, complementary pairs and the colour palette."""
    tree = cat.tree
    return {
        "top_categories": [{"top_category_id": t + 1, "name": tree.top_names[t]} for t in range(tree.n_top)],
        "categories": [{"category_id": leaf + 1, "name": tree.leaf_names[leaf],
                        "top_category_id": int(tree.leaf_top[leaf]) + 1,
                        "related_category_ids": (tree.related[leaf] + 1).tolist()}
                       for leaf in range(tree.n_leaves)],
        "colours": {name: list(rgb) for name, rgb, _ in COLOURS},
        "brands": [{"brand_id": b + 1, "name": cat.brand_names[b], "top_category_id": int(cat.brand_top[b]) + 1,
                    "tier": int(cat.brand_tier[b])} for b in range(len(cat.brand_names))],
    }
