"""Session fixtures for the embedder tests: a tiny catalogue, tiny Qwen-VL checkpoints, MiniLM once,
and a tiny Qwen-VL store for search-items."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach a hub from tests

import pytest

FAMILIES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")
INSTRUCTION = "Find products like this one."


@pytest.fixture(scope="session")
def catalogue(tmp_path_factory):
    """items.parquet (12 items, 10 with a PNG) in its own dataset folder."""
    from embedder.tiny import write_tiny_catalogue

    return write_tiny_catalogue(tmp_path_factory.mktemp("dataset"), n=12, seed=0)


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory):
    """One tiny checkpoint folder per family; qwen2_vl is saved with its LM head, as GME is."""
    from embedder.tiny import build_tiny_qwen_vl

    root = tmp_path_factory.mktemp("models")
    return {fam: build_tiny_qwen_vl(root / fam, fam, seed=1, lm_head=(fam == "qwen2_vl")) for fam in FAMILIES}


@pytest.fixture(scope="session")
def qwen_embedders(tiny_dirs):
    from embedder import ItemEmbedder

    return {fam: ItemEmbedder("qwen-vl", str(path), instruction=INSTRUCTION) for fam, path in tiny_dirs.items()}


@pytest.fixture(scope="session")
def text_embedder():
    from embedder import ItemEmbedder

    return ItemEmbedder("text")


@pytest.fixture(scope="session")
def st_model(text_embedder):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(text_embedder.backend.model_dir), device="cpu")


@pytest.fixture(scope="session")
def qwen_store(tmp_path_factory):
    """A store of a 12-item catalogue embedded by a tiny Qwen2-VL, with the model folder."""
    from embedder import build_store
    from embedder.tiny import build_tiny_qwen_vl, write_tiny_catalogue

    root = tmp_path_factory.mktemp("qwen_store")
    items = write_tiny_catalogue(root / "data", n=12)
    model = build_tiny_qwen_vl(root / "model", "qwen2_vl", seed=0)
    store = build_store(items, root / "store", backend="qwen-vl", model=str(model), batch_size=4,
                        index="Flat", show_progress_bar=False)
    return store, model, items
