"""build_store / embed-items: store contents, manifest, resumption, bad input."""
import hashlib
import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from PIL import Image

from common.contract import ContractError
from embedder import Item, build_store
from embedder.cli import build_parser
from embedder.cli import main as embed_items
from retrieval.store import EmbeddingStore


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_text_store_matches_sentence_transformers(catalogue, text_embedder, st_model, tmp_path):
    out = build_store(catalogue, tmp_path / "store", embedder=text_embedder, batch_size=5, show_progress_bar=False)
    store = EmbeddingStore.load(out)
    table = pq.read_table(catalogue)
    np.testing.assert_array_equal(store.item_ids, table.column("item_id").to_numpy())
    ref = st_model.encode(table.column("title").to_pylist(), normalize_embeddings=True)
    assert store.vectors.dtype == np.float32
    assert (np.asarray(store.vectors) * ref).sum(1).min() >= 0.9999
    m = store.manifest
    assert (m["backend"], m["dim"], m["count"], m["dtype"], m["pooling"]) == ("text", 384, 12, "float32", "mean")
    assert m["input"]["sha256"] == sha256(catalogue)
    weights = text_embedder.backend.model_dir / "model.safetensors"
    assert m["model"]["weights_sha256"] == hashlib.sha256(b"model.safetensors" + weights.read_bytes()).hexdigest()
    assert m["index"] is None and not (out / "shards").exists()


def test_qwen_store_float16_index_and_manifest(catalogue, qwen_embedders, tmp_path):
    emb = qwen_embedders["qwen2_vl"]
    out = build_store(catalogue, tmp_path / "store", embedder=emb, batch_size=4, dtype="float16",
                      index="Flat", show_progress_bar=False)
    store = EmbeddingStore.load(out)
    assert store.vectors.dtype == np.float16
    rows = pq.read_table(catalogue).to_pylist()
    items = [Item(r["title"], catalogue.parent / r["image"] if r["image"] else None, r["item_id"]) for r in rows]
    ref = emb.encode(items, batch_size=4)
    np.testing.assert_allclose(np.asarray(store.vectors, dtype=np.float32), ref, atol=2e-3)
    m = store.manifest
    assert m["backend"] == "qwen-vl" and m["model"]["family"] == "qwen2_vl"
    assert m["instruction"] == emb.backend.instruction and m["pooling"] == "last"
    bounds = (emb.backend.min_pixels, emb.backend.max_pixels, 28)
    assert (m["min_pixels"], m["max_pixels"], m["resize_factor"]) == bounds
    images = pq.read_table(catalogue, columns=["image"]).column("image")
    assert m["items_without_picture"] == {"no_picture_given": images.null_count, "bad_picture_count": 0,
                                          "bad_picture_text_only": [], "bad_picture_missing": [],
                                          "bad_picture_unreadable": []}
    assert m["index"]["factory"] == "Flat" and (out / "index.faiss").is_file()
    with pytest.raises(FileExistsError, match="already holds an embedding store"):
        build_store(catalogue, out, embedder=emb, show_progress_bar=False)


class Interrupt(Exception):
    pass


def test_resume_after_interruption_is_byte_equal(catalogue, qwen_embedders, tmp_path):
    emb = qwen_embedders["qwen2_5_vl"]
    kw = dict(embedder=emb, batch_size=2, shard_size=3, index="Flat", show_progress_bar=False)
    full = build_store(catalogue, tmp_path / "full", **kw)

    def fail_after_two(s):
        if s == 1:
            raise Interrupt

    part = tmp_path / "part"
    with pytest.raises(Interrupt):
        build_store(catalogue, part, on_shard_done=fail_after_two, **kw)
    assert sorted(p.name for p in (part / "shards").glob("shard-*.npy")) == ["shard-000000.npy", "shard-000001.npy"]
    assert not (part / "manifest.json").exists()
    # a rerun with other settings must not mix its vectors with these shards
    with pytest.raises(ValueError, match="different run.*batch_size"):
        build_store(catalogue, part, **dict(kw, batch_size=3))
    redone = []
    build_store(catalogue, part, on_shard_done=redone.append, **kw)
    assert redone == [2, 3]  # 12 items in shards of 3: only the unfinished shards ran
    for name in ("embeddings.npy", "item_ids.npy", "manifest.json", "index.faiss"):
        assert (part / name).read_bytes() == (full / name).read_bytes(), name
    assert not (part / "shards").exists()


@pytest.fixture()
def bad_dataset(catalogue, tmp_path):
    """A copy of the catalogue whose pictures of items 1007, 1014, 1021 are missing / corrupt / unsupported."""
    folder = tmp_path / "bad"
    shutil.copytree(catalogue.parent, folder)
    (folder / "images" / "1007.png").unlink()
    data = (folder / "images" / "1014.png").read_bytes()
    (folder / "images" / "1014.png").write_bytes(data[: len(data) // 2])  # header intact, pixels cut
    (folder / "images" / "1021.png").write_text("not a picture")
    return folder / "items.parquet"


@pytest.mark.parametrize("item_id,reason", [(1007, "file not found"), (1014, "corrupt or truncated"),
                                            (1021, "not a picture format")])
def test_bad_picture_fails_naming_item_and_path(bad_dataset, qwen_embedders, tmp_path, item_id, reason):
    table = pq.read_table(bad_dataset)
    keep = [i for i, x in enumerate(table.column("item_id").to_pylist()) if x in (1000, item_id)]
    single = bad_dataset.parent / f"only_{item_id}.parquet"
    pq.write_table(table.take(keep), single)
    path = bad_dataset.parent / "images" / f"{item_id}.png"
    with pytest.raises(ValueError, match=rf"item {item_id}: picture {path}: {reason}"):
        build_store(single, tmp_path / "s", embedder=qwen_embedders["qwen3_vl"], show_progress_bar=False)


def test_bad_pictures_text_only(bad_dataset, qwen_embedders, tmp_path):
    emb = qwen_embedders["qwen3_vl"]
    out = build_store(bad_dataset, tmp_path / "s", embedder=emb, on_bad_image="text-only", batch_size=4,
                      show_progress_bar=False)
    store = EmbeddingStore.load(out)
    record = store.manifest["items_without_picture"]
    assert record["bad_picture_text_only"] == [1007, 1014, 1021] and record["bad_picture_count"] == 3
    assert (record["bad_picture_missing"], record["bad_picture_unreadable"]) == ([1007], [1014, 1021])
    titles = dict(zip(*pq.read_table(bad_dataset, columns=["item_id", "title"]).to_pydict().values()))
    ref = emb.encode([titles[i] for i in (1007, 1014, 1021)])
    got = np.asarray(store.vectors[store.rows_for([1007, 1014, 1021])])
    assert (got * ref).sum(1).min() >= 0.9999
    good = emb.encode([Item(titles[1000], bad_dataset.parent / "images" / "1000.png")])[0]
    assert float(np.asarray(store.vectors[store.rows_for([1000])])[0] @ good) >= 0.9999


def test_unsupported_aspect_ratio(qwen_embedders, tmp_path):
    Image.new("RGB", (600, 2), (0, 0, 0)).save(tmp_path / "thin.png")
    with pytest.raises(ValueError, match=r"item 4: picture .*thin.png: unsupported aspect ratio"):
        build_store([Item("x", tmp_path / "thin.png", 4)], tmp_path / "s", embedder=qwen_embedders["qwen2_vl"],
                    show_progress_bar=False)


def test_items_without_text_and_picture_or_duplicated(catalogue, text_embedder, tmp_path):
    table = pq.read_table(catalogue)
    blank = table.set_column(1, "title", pa.array([""] + table.column("title").to_pylist()[1:]))
    blank = blank.set_column(2, "image", pa.array([None] * len(blank), pa.string()))
    pq.write_table(blank, tmp_path / "blank.parquet")
    # items.parquet is checked by common.contract (when present) or by the embedder: either names the row
    with pytest.raises(ValueError, match=r"neither.*(title|picture)") as err:
        build_store(tmp_path / "blank.parquet", tmp_path / "a", embedder=text_embedder, show_progress_bar=False)
    assert "1000" in str(err.value)
    dup = pa.concat_tables([table, table.slice(3, 2)])
    pq.write_table(dup, tmp_path / "dup.parquet")
    with pytest.raises(ValueError, match=r"(?i)duplicate|repeat an id") as err:
        build_store(tmp_path / "dup.parquet", tmp_path / "b", embedder=text_embedder, show_progress_bar=False)
    assert "1021" in str(err.value)
    with pytest.raises(ValueError, match=r"duplicate item ids \(2\): first \[1021, 1028\]"):
        build_store(dup, tmp_path / "b", embedder=text_embedder, show_progress_bar=False)
    with pytest.raises(ValueError, match="no item_id"):
        build_store(["no id"], tmp_path / "c", embedder=text_embedder, show_progress_bar=False)


def test_embed_items_cli(catalogue, tiny_dirs, tmp_path, capsys):
    out = tmp_path / "cli_store"
    rc = embed_items(["--items", str(catalogue), "--backend", "qwen-vl", "--model", str(tiny_dirs["qwen3_vl"]),
                      "--out", str(out), "--batch-size", "4", "--index", "auto", "--min-pixels", "1024",
                      "--max-pixels", "4096", "--instruction", "Find it.", "--no-progress"])
    assert rc == 0 and str(out) in capsys.readouterr().out
    store = EmbeddingStore.load(out)
    m = store.manifest
    settings = (m["min_pixels"], m["max_pixels"], m["instruction"], m["index"]["factory"])
    assert settings == (1024, 4096, "Find it.", "Flat")
    assert len(store) == 12 and json.loads((out / "manifest.json").read_text())["count"] == 12
    rc = embed_items(["--items", str(catalogue), "--out", str(tmp_path / "x"), "--instruction", "y"])
    assert rc == 2 and "--instruction applies to --backend qwen-vl only" in capsys.readouterr().err


def test_embed_items_cli_contract_violation_exits_2_with_one_line(catalogue, tmp_path, user_error):
    """items.parquet with an int32 item_id: one line naming the file and the column, no model loaded."""
    table = pq.read_table(catalogue)
    bad = tmp_path / "items.parquet"
    pq.write_table(table.set_column(0, "item_id", pc.cast(table.column("item_id"), pa.int32())), bad)
    args = ["--items", str(bad), "--out", str(tmp_path / "store"), "--no-progress"]
    assert embed_items(args) == 2
    assert user_error("embed-items").startswith(f"embed-items: error: {bad}: column 'item_id' has type int32")
    with pytest.raises(ContractError, match="'item_id' has type int32"):
        embed_items(args + ["--debug"])
    assert not (tmp_path / "store").exists()


def test_embed_items_every_flag_has_help(every_flag_has_help):
    every_flag_has_help(build_parser())


def _with_category_names(catalogue, tmp_path):
    """The tiny catalogue plus the catalogue's category name columns (as the simulator writes them)."""
    table = pq.read_table(catalogue)
    n = len(table)
    table = table.append_column("category_name", pa.array([f"leaf {i % 3}" for i in range(n)]))
    table = table.append_column("top_category_name", pa.array([f"top {i % 2}" if i != 4 else None
                                                                for i in range(n)]))
    path = catalogue.parent / "named.parquet"  # beside the pictures, whose paths are relative
    pq.write_table(table, path)
    return path, table


def test_text_template_auto_puts_the_title_behind_its_category_path(catalogue, text_embedder, st_model, tmp_path):
    path, table = _with_category_names(catalogue, tmp_path)
    out = build_store(path, tmp_path / "store", embedder=text_embedder, batch_size=5, show_progress_bar=False)
    store = EmbeddingStore.load(out)
    rows = table.to_pylist()
    texts = [f"{r['top_category_name'] or ''} > {r['category_name']}: {r['title']}" for r in rows]
    assert texts[4].startswith(" > leaf 1: ")  # a null name renders as an empty string
    ref = st_model.encode(texts, normalize_embeddings=True)
    assert (np.asarray(store.vectors) * ref).sum(1).min() >= 0.9999
    title_only = st_model.encode(table.column("title").to_pylist(), normalize_embeddings=True)
    assert (np.asarray(store.vectors) * title_only).sum(1).max() < 0.999  # not the titles alone
    assert store.manifest["input"]["text_template"] == "{top_category_name} > {category_name}: {title}"
    # the plain catalogue (no name columns) is embedded from its titles, and says so
    plain = EmbeddingStore.load(build_store(catalogue, tmp_path / "plain", embedder=text_embedder,
                                            show_progress_bar=False))
    assert plain.manifest["input"]["text_template"] == "{title}"


def test_text_template_given_and_checked(catalogue, text_embedder, st_model, tmp_path, capsys):
    path, table = _with_category_names(catalogue, tmp_path)
    out = build_store(path, tmp_path / "store", embedder=text_embedder, text_template="{title} ({category_name})",
                      show_progress_bar=False)
    texts = [f"{r['title']} ({r['category_name']})" for r in table.to_pylist()]
    ref = st_model.encode(texts, normalize_embeddings=True)
    assert (np.asarray(EmbeddingStore.load(out).vectors) * ref).sum(1).min() >= 0.9999
    with pytest.raises(ValueError, match=r"named.parquet: text template '\{brand_name\} \{title\}' names "
                                         r"column\(s\) \['brand_name'\]"):
        build_store(path, tmp_path / "a", embedder=text_embedder, text_template="{brand_name} {title}",
                    show_progress_bar=False)
    for bad, why in (("{0}", "not a column name"), ("{title", "malformed"), ("plain words", "names no column")):
        with pytest.raises(ValueError, match=why):
            build_store(path, tmp_path / "b", embedder=text_embedder, text_template=bad, show_progress_bar=False)
    # a store's shards remember the template: resuming with another one is refused
    class Stop(Exception):
        pass

    def stop(_):
        raise Stop

    with pytest.raises(Stop):
        build_store(path, tmp_path / "c", embedder=text_embedder, shard_size=4, on_shard_done=stop,
                    show_progress_bar=False)
    with pytest.raises(ValueError, match=r"different run \(differs in \['text_template'\]\)"):
        build_store(path, tmp_path / "c", embedder=text_embedder, shard_size=4, text_template="{title}",
                    show_progress_bar=False)
    rc = embed_items(["--items", str(path), "--out", str(tmp_path / "cli"), "--text", "{nope}", "--no-progress"])
    assert rc == 2 and "names column(s) ['nope']" in capsys.readouterr().err
