"""Text backend against sentence-transformers and a direct transformers forward."""
import json
import shutil

import numpy as np
import pytest
import torch

from embedder import Item, ItemEmbedder

TITLES = [
    "red cotton shirt for men",
    "Blue Linen Summer Dress",
    "mug",
    "stainless steel kettle 1.7 l with temperature control and keep-warm function",
    "leather handbag, black",
    "kids running shoes size 30",
    " ".join(["very long title"] * 120),  # over MiniLM's 256-token limit: truncation must match
]


def test_minilm_matches_sentence_transformers(text_embedder, st_model):
    got = text_embedder.encode(TITLES, batch_size=3)
    ref = st_model.encode(TITLES, batch_size=3, normalize_embeddings=True, convert_to_numpy=True)
    assert got.shape == (len(TITLES), 384) and got.dtype == np.float32
    cos = (got * ref).sum(1)
    assert cos.min() >= 0.9999, cos
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_minilm_settings_and_item_forms(text_embedder):
    s = text_embedder.settings()
    assert (s["backend"], s["dim"], s["pooling"], s["max_seq_length"]) == ("text", 384, "mean", 256)
    a = text_embedder.encode([Item("red cotton shirt", "ignored.png", 1), {"title": "red cotton shirt"},
                              "red cotton shirt"])
    np.testing.assert_allclose(a[0], a[1], atol=1e-6)
    np.testing.assert_allclose(a[0], a[2], atol=1e-6)
    assert text_embedder.encode([]).shape == (0, 384)
    with pytest.raises(ValueError, match="has no text"):
        text_embedder.encode([Item("", "a.png", item_id=3)])


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory, text_embedder):
    """A random 2-layer BERT saved as a plain transformers folder (no sentence-transformers files)."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny_bert")
    tok = AutoTokenizer.from_pretrained(text_embedder.backend.model_dir)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=64)).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def direct(folder, texts, max_len, mode):
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    out = []
    for t in texts:  # one at a time: no padding at all
        enc = tok(t, truncation=True, max_length=max_len, return_tensors="pt")
        with torch.no_grad():
            h = model(**enc).last_hidden_state[0]
        v = h.mean(0) if mode == "mean" else h[0]
        out.append((v / v.norm()).numpy())
    return np.stack(out)


def test_plain_bert_folder_mean_pooling(tiny_bert):
    emb = ItemEmbedder("text", str(tiny_bert))
    assert emb.settings()["max_seq_length"] == 64  # the position-embedding limit
    got = emb.encode(TITLES, batch_size=4)
    assert (got * direct(tiny_bert, TITLES, 64, "mean")).sum(1).min() >= 0.9999


def test_sentence_transformers_pooling_config_is_respected(tiny_bert, tmp_path):
    from sentence_transformers import SentenceTransformer

    folder = tmp_path / "st_cls"
    shutil.copytree(tiny_bert, folder)
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": 32, "pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 16, "do_lower_case": False}))
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]))
    emb = ItemEmbedder("text", str(folder))
    assert (emb.settings()["pooling"], emb.settings()["max_seq_length"]) == ("cls", 16)
    got = emb.encode(TITLES, batch_size=3)
    assert (got * direct(folder, TITLES, 16, "cls")).sum(1).min() >= 0.9999
    ref = SentenceTransformer(str(folder), device="cpu").encode(TITLES, normalize_embeddings=True)
    assert (got * ref).sum(1).min() >= 0.9999


def test_unsupported_sentence_transformers_module(tiny_bert, tmp_path):
    folder = tmp_path / "st_dense"
    shutil.copytree(tiny_bert, folder)
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}]))
    with pytest.raises(ValueError, match="Dense.*not supported"):
        ItemEmbedder("text", str(folder))


def test_model_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="model folder not found"):
        ItemEmbedder("text", str(tmp_path / "missing" / "model"))
