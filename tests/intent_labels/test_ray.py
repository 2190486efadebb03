"""The Ray Data engine gives exactly the in-process engine's samples, edges and counts."""
from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from intent_labels import label_intents

from .conftest import write_store

ray = pytest.importorskip("ray", reason="Ray is not installed (optional extra: pip install '.[ray]')")
pytest.importorskip("ray.data", reason="Ray Data is not installed (pip install 'ray[data]')")

KEYS = [("request_id", "ascending"), ("item_id", "ascending")]


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def assert_same_outputs(local, distributed):
    for split in ("train", "test"):
        a = pq.read_table(local / f"{split}.parquet").sort_by(KEYS)
        assert (distributed / f"{split}.parquet").is_dir()  # the same name, a folder of parts
        b = pq.read_table(distributed / f"{split}.parquet").sort_by(KEYS)
        assert a.num_rows > 0 and a.schema == b.schema and a.equals(b), split
    ma = json.loads((local / "manifest.json").read_text())
    mb = json.loads((distributed / "manifest.json").read_text())
    for key in ("bin_edges", "levels", "threshold", "caps", "split", "rejects", "inputs", "coverage"):
        assert ma[key] == mb[key], key
    for split in ("train", "test"):
        assert {k: v for k, v in ma["counts"][split].items() if k != "path"} == \
               {k: v for k, v in mb["counts"][split].items() if k != "path"}


@pytest.fixture(scope="module")
def tiny_holey_store(tmp_path_factory, tiny_world):
    """The tiny world's items but three of them, so that some rows go to rejects."""
    imp = pq.read_table(tiny_world / "impressions.parquet", columns=["item_id", "trigger_item_id"])
    ids = pq.read_table(tiny_world / "items.parquet", columns=["item_id"]).column("item_id").to_numpy()
    gone = [imp.column("item_id")[0].as_py(), imp.column("item_id")[100].as_py(),
            imp.column("trigger_item_id")[200].as_py()]
    return write_store(tmp_path_factory.mktemp("tiny_holey") / "store", ids[~np.isin(ids, gone)], dim=32, seed=3)


@pytest.mark.slow
def test_ray_engine_matches_local_on_the_tiny_world(local_ray, tmp_path, tiny_world, tiny_holey_store):
    kwargs = dict(on_missing="drop", batch_rows=2048, show_progress_bar=False)
    local = label_intents(tiny_world, tiny_holey_store, tmp_path / "local", **kwargs)
    distributed = label_intents(tiny_world, tiny_holey_store, tmp_path / "ray", engine="ray", **kwargs)
    assert_same_outputs(local, distributed)
    rejects = [pq.read_table(o / "rejects.parquet").sort_by(KEYS) for o in (local, distributed)]
    assert rejects[0].num_rows > 0 and rejects[0].equals(rejects[1])
