"""Loading a labelled folder: folders of parts, bad inputs, how the dataset folder is found."""
from __future__ import annotations

import hashlib
import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from daian.data import load_data, resolve_dataset
from intent_labels.labelled import LabelledFolder
from retrieval.store import EmbeddingStore


def _edges(synthetic) -> list[float]:
    """The synthetic labels' bin edges (a manifest must carry them)."""
    return json.loads((synthetic["labelled"] / "manifest.json").read_text())["bin_edges"]


def test_folder_of_parts_reads_the_same(bundle, synthetic, tmp_path, caps):
    data = tmp_path / "labelled"
    shutil.copytree(synthetic["labelled"], data)
    table = pq.read_table(data / "train.parquet")
    (data / "train.parquet").unlink()
    (data / "train.parquet").mkdir()
    pq.write_table(table.slice(0, 1000), data / "train.parquet" / "part-0.parquet")
    pq.write_table(table.slice(1000), data / "train.parquet" / "part-1.parquet")
    again = load_data(data, synthetic["store"], synthetic["dataset"], **caps)
    for key, value in bundle.train.columns.items():
        assert torch.equal(again.train.columns[key], value), key


def test_bundle_keeps_the_labelled_folder(bundle, synthetic):
    """The bundle carries the validated labelled folder and the dataset its manifest names."""
    assert isinstance(bundle.labelled, LabelledFolder)
    assert bundle.labelled.levels == bundle.sizes.levels == 6
    assert bundle.labelled.edges.tolist() == _edges(synthetic)
    assert bundle.dataset_dir == synthetic["dataset"]


def test_bad_inputs_raise_clear_errors(synthetic, tmp_path, caps, rewrite):
    data = rewrite(tmp_path / "a", "test", lambda t: t.drop_columns(["hist_dt_min"]))
    with pytest.raises(ValueError, match=r"test\.parquet.*hist_dt_min"):
        load_data(data, synthetic["store"], synthetic["dataset"], **caps)

    def negative_dt(t):
        col = t.column("hist_dt_min").to_pylist()
        i = next(k for k, v in enumerate(col) if v)
        col[i] = [-5] + col[i][1:]
        return t.set_column(t.schema.get_field_index("hist_dt_min"), "hist_dt_min",
                            pa.array(col, pa.list_(pa.int32())))

    data = rewrite(tmp_path / "b", "train", negative_dt)
    with pytest.raises(ValueError, match="hist_dt_min.*negative"):
        load_data(data, synthetic["store"], synthetic["dataset"], **caps)

    def short_intent(t):
        col = t.column("intent").to_pylist()
        i = t.column("has_intent").to_pylist().index(True)
        col[i] = col[i][:4]
        return t.set_column(t.schema.get_field_index("intent"), "intent", pa.array(col, pa.list_(pa.float32())))

    data = rewrite(tmp_path / "c", "train", short_intent)
    with pytest.raises(ValueError, match="intent.*6 values"):
        load_data(data, synthetic["store"], synthetic["dataset"], **caps)

    data = tmp_path / "d"
    shutil.copytree(synthetic["labelled"], data)
    (data / "manifest.json").write_text(json.dumps({"levels": 6, "bin_edges": _edges(synthetic)}))
    with pytest.raises(ValueError, match="--dataset"):
        load_data(data, synthetic["store"], None, **caps)
    (data / "manifest.json").write_text(json.dumps({"levels": 6, "dataset": str(synthetic["dataset"])}))
    with pytest.raises(ValueError, match=r"manifest\.json.*bin_edges"):
        load_data(data, synthetic["store"], None, **caps)


def test_dataset_found_through_the_store(synthetic, tmp_path):
    """Without a dataset entry in the labels' manifest, the store's items.parquet is used when its
    sha256 is the one the labelling recorded."""
    dataset = synthetic["dataset"]
    items = dataset / "items.parquet"
    store = tmp_path / "store"
    shutil.copytree(synthetic["store"], store)
    (store / "manifest.json").write_text(json.dumps({"dim": 16, "input": {"path": str(items)}}))
    data = tmp_path / "labelled"
    shutil.copytree(synthetic["labelled"], data)
    manifest = {"levels": 6, "bin_edges": _edges(synthetic),
                "inputs": {"items.parquet": hashlib.sha256(items.read_bytes()).hexdigest()}}
    (data / "manifest.json").write_text(json.dumps(manifest))
    assert resolve_dataset(LabelledFolder.open(data), None, EmbeddingStore.load(store)) == dataset
    (data / "manifest.json").write_text(json.dumps({**manifest, "dataset": str(tmp_path / "moved")}))
    # a dataset folder that has gone since labelling: the store's items.parquet still tells
    assert resolve_dataset(LabelledFolder.open(data), None, EmbeddingStore.load(store)) == dataset
    manifest["inputs"]["items.parquet"] = "0" * 64  # the store was built from other items
    (data / "manifest.json").write_text(json.dumps(manifest))
    folder = LabelledFolder.open(data)
    with pytest.raises(ValueError, match="--dataset"):
        resolve_dataset(folder, None, EmbeddingStore.load(store))
    assert resolve_dataset(folder, synthetic["dataset"], EmbeddingStore.load(store)) == synthetic["dataset"]
