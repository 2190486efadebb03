"""Session fixtures: the suite's tiny world, and a mid-sized world for statistics built once."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from simulate import simulate_world

# Large enough for stable click statistics (~120k impressions, ~5k clicks), small enough to build in seconds.
MID_OVERRIDES = {"n_users": 2500, "n_items": 4000, "n_top_categories": 16, "brands_per_top": 8,
                 "users_per_block": 512, "write_images": False}


@dataclass
class World:
    """A simulated dataset folder, read back from its files only."""

    path: Path

    def table(self, name: str) -> pd.DataFrame:
        return pq.read_table(self.path / name).to_pandas()

    def json(self, name: str) -> dict:
        return json.loads((self.path / name).read_text())

    def impressions_with_relation(self) -> pd.DataFrame:
        """Impressions + trigger-target relation (leaf / related / top / far, from public files) + user type."""
        imp = self.table("impressions.parquet")
        items = self.table("items.parquet").set_index("item_id")
        cats = self.json("truth/categories.json")["categories"]
        related = {(c["category_id"], r) for c in cats for r in c["related_category_ids"]}
        t_leaf = items.category_id.reindex(imp.trigger_item_id).to_numpy()
        g_leaf = items.category_id.reindex(imp.item_id).to_numpy()
        t_top = items.top_category_id.reindex(imp.trigger_item_id).to_numpy()
        g_top = items.top_category_id.reindex(imp.item_id).to_numpy()
        is_rel = np.array([(a, b) in related for a, b in zip(t_leaf.tolist(), g_leaf.tolist())])
        imp["relation"] = np.select([t_leaf == g_leaf, is_rel, t_top == g_top], [0, 1, 2], default=3)
        users = self.table("truth/users.parquet").set_index("user_id")
        imp["user_type"] = users.user_type.reindex(imp.user_id).to_numpy()
        imp["day"] = (imp.ts - self.json("world.json")["request_start_ts"]) // 86_400
        return imp


@pytest.fixture(scope="session")
def tiny_world(tiny_world) -> World:
    """The suite-wide tiny world (tests/conftest.py, built once per test run), read through `World`."""
    return World(tiny_world)


@pytest.fixture(scope="session")
def mid_world(tmp_path_factory) -> World:
    out = tmp_path_factory.mktemp("mid") / "world"
    return World(simulate_world("tiny", out, seed=11, overrides=MID_OVERRIDES, show_progress_bar=False))
