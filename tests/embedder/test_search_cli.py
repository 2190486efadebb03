"""search-items end to end on a tiny Qwen-VL store, against brute force."""
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embedder.search_cli import build_parser
from embedder.search_cli import main as search_items
from retrieval.store import EMBEDDINGS_FILE, EmbeddingStore


def printed(out):
    """(item_id, score, title) rows of the CLI's table."""
    rows = []
    for line in out.strip().splitlines()[1:]:
        rank, item_id, score, *title = line.split(maxsplit=3)
        rows.append((int(item_id), float(score), title[0] if title else ""))
    return rows


def brute(store, query, k, exclude=None):
    sims = np.asarray(store.vectors, dtype=np.float32) @ query
    order = [r for r in np.argsort(-sims, kind="stable") if store.item_ids[r] != exclude][:k]
    return [int(store.item_ids[r]) for r in order], sims[order]


def test_item_id_query(qwen_store, tmp_path, capsys):
    path, _, items = qwen_store
    store = EmbeddingStore.load(path)
    assert search_items(["--store", str(path), "--item-id", "1007", "-k", "4"]) == 0
    rows = printed(capsys.readouterr().out)
    ids, scores = brute(store, np.asarray(store.vectors[store.rows_for([1007])[0]]), 4, exclude=1007)
    assert [r[0] for r in rows] == ids
    np.testing.assert_allclose([r[1] for r in rows], scores, atol=1e-4)
    titles = dict(zip(*pq.read_table(items, columns=["item_id", "title"]).to_pydict().values()))
    assert [r[2] for r in rows] == [titles[i] for i in ids]  # titles from the manifest's items file
    table = pq.read_table(items)
    other = tmp_path / "renamed.parquet"
    pq.write_table(table.set_column(1, "title", pa.array([t.upper() for t in table.column("title").to_pylist()])),
                   other)
    assert search_items(["--store", str(path), "--item-id", "1007", "-k", "4", "--items", str(other)]) == 0
    assert [r[2] for r in printed(capsys.readouterr().out)] == [titles[i].upper() for i in ids]


def test_text_and_picture_queries_use_the_store_model(qwen_store, capsys):
    from embedder import Item, ItemEmbedder

    path, model, items = qwen_store
    store = EmbeddingStore.load(path)
    emb = ItemEmbedder("qwen-vl", str(model))  # same defaults as the store was built with
    picture = items.parent / "images" / "1000.png"
    for args, item in ((["--text", "red cotton shirt"], Item("red cotton shirt")),
                       (["--image", str(picture)], Item(None, picture)),
                       (["--image", str(picture), "--text", "red"], Item("red", picture))):
        assert search_items(["--store", str(path), "-k", "3", *args]) == 0
        rows = printed(capsys.readouterr().out)
        ids, _ = brute(store, emb.encode([item])[0], 3)
        assert [r[0] for r in rows] == ids


def test_min_score_and_range(qwen_store, capsys):
    path, _, _ = qwen_store
    store = EmbeddingStore.load(path)
    q = np.asarray(store.vectors[store.rows_for([1000])[0]])
    sims = np.asarray(store.vectors) @ q
    threshold = float(np.sort(sims)[-5])  # 5 items incl. 1000 itself
    args = ["--store", str(path), "--item-id", "1000", "-k", "0", "--min-score", str(threshold - 1e-6)]
    assert search_items(args) == 0
    assert len(printed(capsys.readouterr().out)) == 4
    assert search_items(["--store", str(path), "--item-id", "1000", "-k", "10", "--min-score", "1.5"]) == 0
    assert "(no neighbours)" in capsys.readouterr().out


def test_errors(qwen_store, tmp_path, capsys):
    from embedder.tiny import build_tiny_qwen_vl

    path, _, _ = qwen_store
    assert search_items(["--store", str(path), "--item-id", "5"]) == 2
    assert "1 item id(s) not in the store" in capsys.readouterr().err
    other = build_tiny_qwen_vl(tmp_path / "other", "qwen2_vl", seed=7)
    assert search_items(["--store", str(path), "--text", "mug", "--model", str(other)]) == 2
    assert "model mismatch" in capsys.readouterr().err
    wider = build_tiny_qwen_vl(tmp_path / "wider", "qwen2_vl", hidden_size=64)
    assert search_items(["--store", str(path), "--text", "mug", "--model", str(wider)]) == 2
    assert "model mismatch" in capsys.readouterr().err
    assert search_items(["--store", str(path), "--item-id", "1000", "--text", "mug"]) == 2
    assert "exactly one query" in capsys.readouterr().err
    assert search_items(["--store", str(tmp_path), "--item-id", "1000"]) == 2
    assert "not an embedding store" in capsys.readouterr().err


def test_dimension_mismatch_without_recorded_hash(qwen_store, tmp_path):
    """A manifest without a weights hash still catches a model of another width."""
    from embedder.encoder import ItemEmbedder
    from embedder.tiny import build_tiny_qwen_vl

    path, _, _ = qwen_store
    manifest = EmbeddingStore.load(path).manifest
    manifest["model"].pop("weights_sha256")
    wider = build_tiny_qwen_vl(tmp_path / "wider", "qwen2_vl", hidden_size=64)
    with pytest.raises(ValueError, match="dimension mismatch: the store has dim 32 .* gives 64"):
        ItemEmbedder.from_manifest(manifest, model=str(wider))


def test_a_broken_store_or_an_unknown_item_exits_2_with_one_line(qwen_store, tmp_path, user_error):
    path, _, _ = qwen_store
    broken = tmp_path / "broken"
    shutil.copytree(path, broken)
    (broken / EMBEDDINGS_FILE).unlink()
    assert search_items(["--store", str(broken), "--item-id", "1000"]) == 2
    line = user_error("search-items")
    assert str(broken) in line and EMBEDDINGS_FILE in line
    with pytest.raises(FileNotFoundError, match=EMBEDDINGS_FILE):
        search_items(["--store", str(broken), "--item-id", "1000", "--debug"])
    assert search_items(["--store", str(path), "--item-id", "5"]) == 2
    line = user_error("search-items")
    assert "not in the store" in line and "[5]" in line and str(path) in line
    with pytest.raises(KeyError, match="not in the store"):
        search_items(["--store", str(path), "--item-id", "5", "--debug"])


def test_every_flag_has_help(every_flag_has_help):
    every_flag_has_help(build_parser())
