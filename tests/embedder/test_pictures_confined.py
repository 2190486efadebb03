"""Pictures named by items.parquet stay in their folder, are opened under a pixel limit, and a
missing one is an error or recorded in the store manifest, for every backend (issue 21)."""
import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from common.pictures import MAX_PICTURE_PIXELS
from embedder import BadPictureError, Item
from embedder.cli import main as embed_items
from embedder.items import load_picture, picture_size
from embedder.search_cli import main as search_items
from retrieval.store import PICTURES_KEY

VICTIM = 1007  # the item whose `image` value is broken (row 7 of the hand-made items)


def dataset_copy(handmade, tmp_path, image_for=None):
    """The hand-made folder copied to tmp_path/data/logs, with some items' `image` values replaced."""
    folder = tmp_path / "data" / "logs"
    shutil.copytree(handmade, folder)
    if image_for:
        table = pq.read_table(folder / "items.parquet")
        ids = table.column("item_id").to_pylist()
        images = [image_for.get(i, v) for i, v in zip(ids, table.column("image").to_pylist())]
        table = table.set_column(table.column_names.index("image"), "image", pa.array(images, pa.string()))
        pq.write_table(table, folder / "items.parquet")
    return folder


def embed_args(folder, backend, *extra):
    model = ["--model", str(folder / "no-such-model")]  # reached only if the pictures were accepted
    return ["--items", str(folder / "items.parquet"), "--out", str(folder / "store"), "--backend", backend,
            *model, "--no-progress", *extra]


@pytest.fixture
def outside_picture(tmp_path):
    path = tmp_path / "outside.png"  # two folders above the dataset folder tmp_path/data/logs
    Image.new("RGB", (8, 8), (255, 0, 0)).save(path)
    return path


# --- 1. confinement: every path a data file names --------------------------------------------------

@pytest.mark.parametrize("backend", ["text", "qwen-vl"])
@pytest.mark.parametrize("kind", ["relative", "absolute", "symlink", "http", "file-url"])
def test_picture_outside_the_dataset_folder_is_refused_before_any_model(handmade, tmp_path, outside_picture,
                                                                        user_error, backend, kind):
    value = {"relative": "../../outside.png", "absolute": str(outside_picture), "symlink": "images/link.png",
             "http": "http://example.com/1007.png", "file-url": f"file://{outside_picture}"}[kind]
    folder = dataset_copy(handmade, tmp_path, {VICTIM: value})
    if kind == "symlink":
        (folder / "images" / "link.png").symlink_to(outside_picture)
    assert embed_items(embed_args(folder, backend)) == 2
    line = user_error("embed-items")
    assert f"item {VICTIM}" in line and repr(value) in line and str(folder / "items.parquet") in line
    assert ("URL" in line) if kind.endswith(("http", "url")) else ("outside the folder" in line)
    assert "no-such-model" not in line and not (folder / "store").exists()


def test_confinement_holds_with_text_only_and_images_root(handmade, tmp_path, outside_picture, user_error):
    """--on-bad-image text-only does not turn a refused path into a text-only item; --images-root is
    the folder the paths are confined to."""
    folder = dataset_copy(handmade, tmp_path, {VICTIM: "../../outside.png"})
    assert embed_items(embed_args(folder, "text", "--on-bad-image", "text-only")) == 2
    assert f"item {VICTIM}" in user_error("embed-items")
    # paths relative to images/ given as --images-root: "../items.parquet" is a file, but outside it
    table = pq.read_table(folder / "items.parquet")
    names = [f"{i}.png" if i != VICTIM else "../items.parquet" for i in table.column("item_id").to_pylist()]
    pq.write_table(table.set_column(2, "image", pa.array(names)), folder / "items.parquet")
    assert embed_items(embed_args(folder, "text", "--images-root", str(folder / "images"))) == 2
    line = user_error("embed-items")
    assert f"item {VICTIM}" in line and "'../items.parquet'" in line
    assert f"outside the folder {folder / 'images'}" in line


def test_paths_inside_the_folder_are_accepted(handmade, tmp_path, text_embedder):
    """An absolute path into the folder and a symlink to another picture inside it are allowed."""
    from embedder import build_store
    from retrieval.store import EmbeddingStore

    folder = dataset_copy(handmade, tmp_path)
    (folder / "images" / "alias.png").symlink_to(folder / "images" / "1001.png")
    table = pq.read_table(folder / "items.parquet")
    given = {VICTIM: str(folder / "images" / "1000.png"), 1002: "images/alias.png"}
    images = [given.get(i, v) for i, v in zip(table.column("item_id").to_pylist(), table.column("image").to_pylist())]
    pq.write_table(table.set_column(2, "image", pa.array(images)), folder / "items.parquet")
    out = build_store(folder / "items.parquet", folder / "store", embedder=text_embedder, show_progress_bar=False)
    record = EmbeddingStore.load(out).manifest[PICTURES_KEY]
    assert record["bad_picture_count"] == 0 and record["bad_picture_text_only"] == []


# --- 2. opening under the pixel limit ---------------------------------------------------------------

@pytest.fixture(scope="module")
def huge_pictures(tmp_path_factory):
    """Small files claiming many pixels: 7000x7000 (over our limit, under Pillow's default guard) and
    20000x20000 (a decompression bomb for Pillow too)."""
    folder = tmp_path_factory.mktemp("huge")
    sizes = {"over_limit": (7000, 7000), "bomb": (20000, 20000)}
    for name, size in sizes.items():
        Image.new("1", size).save(folder / f"{name}.png")
    return folder, sizes


@pytest.mark.parametrize("name", ["over_limit", "bomb"])
def test_huge_picture_is_refused_naming_item_and_path(handmade, tmp_path, huge_pictures, user_error, name):
    huge, sizes = huge_pictures
    w, h = sizes[name]
    assert w * h > MAX_PICTURE_PIXELS and (huge / f"{name}.png").stat().st_size < 100_000
    folder = dataset_copy(handmade, tmp_path)
    shutil.copy(huge / f"{name}.png", folder / "images" / f"{VICTIM}.png")
    for backend in ("text", "qwen-vl"):
        assert embed_items(embed_args(folder, backend)) == 2
        line = user_error("embed-items")
        assert f"item {VICTIM}: picture {folder / 'images' / f'{VICTIM}.png'}" in line
        assert f"over the limit of {MAX_PICTURE_PIXELS} pixels" in line
    # the decoder refuses it too, whichever way it is reached
    with pytest.raises(BadPictureError, match=f"item 5: picture .*{name}.png: .*limit"):
        load_picture(Item("x", huge / f"{name}.png", 5))
    with pytest.raises(BadPictureError, match=f"over the limit of {MAX_PICTURE_PIXELS} pixels"):
        picture_size(Item("x", huge / f"{name}.png", 5))


def test_query_picture_goes_through_the_pixel_limit(qwen_store, huge_pictures, user_error):
    """search-items --image is the user's own file (not confined), but it is opened under the limit."""
    store, _, _ = qwen_store
    path = huge_pictures[0] / "over_limit.png"
    assert search_items(["--store", str(store), "--image", str(path)]) == 2
    line = user_error("search-items")
    assert str(path) in line and f"over the limit of {MAX_PICTURE_PIXELS} pixels" in line


# --- 3. missing pictures: an error, or recorded in the manifest, for every backend ------------------

def break_pictures(folder, deleted, corrupt):
    for i in deleted:
        (folder / "images" / f"{i}.png").unlink()
    for i in corrupt:
        (folder / "images" / f"{i}.png").write_text("not a picture")


DELETED, CORRUPT = (1003, 1150, 1299), (1010, 1042)


def test_text_backend_fails_on_a_missing_picture_by_default(handmade, tmp_path, user_error):
    folder = dataset_copy(handmade, tmp_path)
    break_pictures(folder, DELETED, ())
    assert embed_items(embed_args(folder, "text")) == 2
    line = user_error("embed-items")
    assert f"item {DELETED[0]}: picture {folder / 'images' / f'{DELETED[0]}.png'}: file not found" in line


def test_text_backend_records_missing_and_unreadable_pictures(handmade, tmp_path, capsys):
    folder = dataset_copy(handmade, tmp_path)
    break_pictures(folder, DELETED, CORRUPT)
    args = ["--items", str(folder / "items.parquet"), "--out", str(folder / "store"), "--no-progress",
            "--on-bad-image", "text-only"]
    assert embed_items(args) == 0
    err = capsys.readouterr().err.strip().splitlines()
    n_items = pq.read_metadata(folder / "items.parquet").num_rows
    bad = sorted(DELETED + CORRUPT)
    assert len(err) == 1 and err[0].startswith(f"embed-items: warning: {len(bad)} of {n_items} items")
    assert ", ".join(map(str, bad)) in err[0]
    record = json.loads((folder / "store" / "manifest.json").read_text())[PICTURES_KEY]
    images = pq.read_table(folder / "items.parquet", columns=["image"]).column("image")
    assert record == {"no_picture_given": images.null_count, "bad_picture_count": len(bad),
                      "bad_picture_text_only": bad, "bad_picture_missing": sorted(DELETED),
                      "bad_picture_unreadable": sorted(CORRUPT)}


def test_whole_images_folder_gone_is_recorded(handmade, tmp_path, text_embedder, capsys):
    from embedder import build_store

    folder = dataset_copy(handmade, tmp_path)
    shutil.rmtree(folder / "images")
    warned = []
    out = build_store(folder / "items.parquet", folder / "store", embedder=text_embedder,
                      on_bad_image="text-only", show_progress_bar=False, warn=warned.append)
    ids = sorted(pq.read_table(folder / "items.parquet", columns=["item_id"]).column("item_id").to_pylist())
    record = json.loads((out / "manifest.json").read_text())[PICTURES_KEY]
    assert record["bad_picture_count"] == len(ids) == 300
    assert record["bad_picture_missing"] == record["bad_picture_text_only"] == ids
    assert len(warned) == 1 and warned[0].startswith(f"{len(ids)} of {len(ids)} items have a missing ({len(ids)})")
    assert f"items {', '.join(map(str, ids[:5]))}, ..." in warned[0]


def test_qwen_vl_records_the_same_keys(handmade, tmp_path, qwen_embedders, capsys):
    """The tiny Qwen-VL backend, which decodes the pictures, writes the same record; a picture whose
    header reads but whose pixels are cut is found while embedding and counted as unreadable."""
    from embedder import build_store

    folder = dataset_copy(handmade, tmp_path)
    table = pq.read_table(folder / "items.parquet").slice(0, 60)  # items 1000..1059: fast on CPU
    pq.write_table(table, folder / "items.parquet")
    break_pictures(folder, (1003, 1050), (1010,))
    data = (folder / "images" / "1042.png").read_bytes()
    (folder / "images" / "1042.png").write_bytes(data[: len(data) // 2])  # header intact, pixels cut
    out = build_store(folder / "items.parquet", folder / "store", embedder=qwen_embedders["qwen2_vl"],
                      on_bad_image="text-only", batch_size=16, show_progress_bar=False)
    record = json.loads((out / "manifest.json").read_text())[PICTURES_KEY]
    assert record == {"no_picture_given": 0, "bad_picture_count": 4,
                      "bad_picture_text_only": [1003, 1010, 1042, 1050],
                      "bad_picture_missing": [1003, 1050], "bad_picture_unreadable": [1010, 1042]}
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: 4 of 60 items")


def test_interrupt_is_one_line_saying_what_was_kept(handmade, tmp_path, monkeypatch, capsys):
    import embedder.cli

    def interrupted(cfg, **_):
        (tmp_path / "store" / "shards").mkdir(parents=True)
        (tmp_path / "store" / "shards" / "shard-000000.npy").write_bytes(b"")
        raise KeyboardInterrupt

    monkeypatch.setattr(embedder.cli, "build_store_from_config", interrupted)
    folder = dataset_copy(handmade, tmp_path)
    rc = embed_items(["--items", str(folder / "items.parquet"), "--out", str(tmp_path / "store")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 130 and len(err) == 1
    assert err[0] == (f"embed-items: interrupted; 1 finished shard(s) kept in {tmp_path / 'store' / 'shards'}; "
                      "run the same command again to resume (--no-resume starts over)")
