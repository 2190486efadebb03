"""Every users.parquet column besides user_id is a profile field (common.contract.profile_columns)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from daian.data import load_data
from daian.training import trainer as T
from daian.training.config import TrainConfig


def test_extra_int64_columns_become_profile_fields(synthetic, tmp_path, caps):
    dataset = tmp_path / "dataset"
    shutil.copytree(synthetic["dataset"], dataset)
    users = pq.read_table(dataset / "users.parquet")
    rng = np.random.default_rng(3)
    region = rng.integers(0, 5, users.num_rows)
    tier = rng.integers(100, 103, users.num_rows)
    users = users.append_column("region", pa.array(region, pa.int64())).append_column("tier", pa.array(tier, pa.int64()))
    pq.write_table(users, dataset / "users.parquet")

    bundle = load_data(synthetic["labelled"], synthetic["store"], dataset, **caps)
    expected = [c for c in users.column_names if c != "user_id"]  # gender, age_level, city_id, region, tier
    assert list(bundle.sizes.profile_fields) == expected == ["gender", "age_level", "city_id", "region", "tier"]
    # vocabulary sizes: the distinct codes of the users the train split shows, plus padding and unknown
    seen = pd.read_parquet(synthetic["labelled"] / "train.parquet", columns=["user_id"]).user_id.unique()
    frame = users.to_pandas()
    for name in expected:
        assert bundle.sizes.profile_fields[name] == frame[frame.user_id.isin(seen)][name].nunique() + 2, name
    # the user table carries each user's codes: distinct codes stay distinct
    user_rows = bundle.train.columns["user_row"][:50].long()
    profile = bundle.train.user_fields[user_rows][:, 1:].numpy()  # (50, 5)
    raw = frame.set_index("user_id").loc[bundle.train.meta["user_id"][:50], expected].to_numpy()
    for j in range(len(expected)):
        pairs = set(zip(raw[:, j].tolist(), profile[:, j].tolist()))
        assert len(pairs) == len({a for a, _ in pairs}) == len({b for _, b in pairs})

    config = TrainConfig(data=synthetic["labelled"], store=synthetic["store"], dataset=dataset,
                         run=tmp_path / "run", model="din", recipe="paper", batch_size=512, progress=False,
                         model_settings={"mlp_hidden": (8,), "attention_hidden": (8,)}, **caps)
    T.train(config, bundle)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["data"]["profile_fields"] == expected
