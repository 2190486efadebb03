"""The data stage: vocabularies, ragged padding, tensorised batches, the epoch sampler, bad inputs."""
from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from daian.data import (FEATURE_KEYS, TARGET_KEYS, EpochBatchSampler, load_data, make_loader,
                        ragged_to_padded, resolve_dataset)
from daian.models.base import ITEM_FIELDS
from daian.vocab import Vocab, Vocabularies
from retrieval.store import EmbeddingStore

CAPS = dict(max_hist=10, max_subseq=4, max_page=2, max_dt=60 * 24 * 7, price_buckets=4)


def test_vocab_lookup_and_json_roundtrip(bundle, tmp_path):
    v = Vocab.fit(np.array([30, 10, 20, 10]))
    np.testing.assert_array_equal(v.lookup(np.array([[10, 99], [30, 20]])), [[2, 1], [4, 3]])
    assert len(v) == 5
    np.testing.assert_array_equal(v.raw(np.array([2, 4])), [10, 30])
    path = bundle.vocabs.save(tmp_path / "vocab.json")
    back = Vocabularies.load(path)
    ids = np.arange(900, 1700)
    np.testing.assert_array_equal(back.item.lookup(ids), bundle.vocabs.item.lookup(ids))
    np.testing.assert_array_equal(back.price_edges, bundle.vocabs.price_edges)
    assert list(back.profile) == list(bundle.vocabs.profile) == ["gender", "age_level", "city_id"]
    with pytest.raises(ValueError, match="format"):
        Vocabularies.from_json({**json.loads(path.read_text()), "format": "x"})


def test_ragged_to_padded_matches_python_reference():
    rng = np.random.default_rng(0)
    lists = [None if rng.random() < 0.1 else rng.integers(0, 100, rng.integers(0, 9)).tolist()
             for _ in range(200)]
    arr = pa.chunked_array([pa.array(lists[:70], pa.list_(pa.int64())),
                            pa.array(lists[70:], pa.list_(pa.int64())).slice(0)])
    sliced = pa.array(lists, pa.list_(pa.int64())).slice(30, 120)
    for column, rows in ((arr, lists), (sliced, lists[30:150])):
        out, full = ragged_to_padded(column, 5, lambda x: x + 1000, np.int64)
        for i, row in enumerate(rows):
            row = row or []
            expected = [x + 1000 for x in row[:5]] + [0] * (5 - min(len(row), 5))
            assert out[i].tolist() == expected
            assert full[i] == len(row)


def _reference_rows(synthetic, split):
    """Pure-Python reference mapping of a split, built only from the Parquet files."""
    train = pd.read_parquet(synthetic["labelled"] / "train.parquet")
    df = pd.read_parquet(synthetic["labelled"] / f"{split}.parquet")
    items = pd.read_parquet(synthetic["dataset"] / "items.parquet").set_index("item_id")
    users = pd.read_parquet(synthetic["dataset"] / "users.parquet").set_index("user_id")
    seen = set(train.item_id) | set(train.trigger_item_id) | {i for h in train.hist_item_ids for i in h}
    seen_users = set(train.user_id)

    def index_of(values):
        return {v: i + 2 for i, v in enumerate(sorted(values))}

    maps = {"item": index_of(seen),
            "category": index_of(set(items.loc[sorted(seen), "category_id"])),
            "top_category": index_of(set(items.loc[sorted(seen), "top_category_id"])),
            "brand": index_of(set(items.loc[sorted(seen), "brand_id"]))}
    prices = items.loc[sorted(seen), "price"].to_numpy()
    edges = np.unique(np.quantile(prices, [0.25, 0.5, 0.75]))
    user_map = index_of(seen_users)
    profile_maps = {c: index_of(set(users.loc[sorted(seen_users), c])) for c in ("gender", "age_level", "city_id")}

    def item_fields(i):
        row = items.loc[i]
        return [maps["item"].get(i, 1), maps["category"].get(row.category_id, 1),
                maps["top_category"].get(row.top_category_id, 1), maps["brand"].get(row.brand_id, 1),
                2 + sum(e <= row.price for e in edges)]

    return df, item_fields, user_map, profile_maps, users


@pytest.mark.parametrize("split", ["train", "test"])
def test_batches_match_reference(bundle, synthetic, split):
    df, item_fields, user_map, profile_maps, users = _reference_rows(synthetic, split)
    ds = bundle.train if split == "train" else bundle.test
    idx = torch.tensor([0, 5, 17, len(ds) - 1, 3])
    features, targets = ds[idx]
    assert set(features) == set(FEATURE_KEYS) and set(targets) == set(TARGET_KEYS)
    L = features["hist"].shape[1]
    for b, i in enumerate(idx.tolist()):
        row = df.iloc[i]
        assert features["user"][b] == user_map.get(row.user_id, 1)
        assert features["user_profile"][b].tolist() == [
            profile_maps[c].get(users.loc[row.user_id, c], 1) for c in ("gender", "age_level", "city_id")]
        assert features["trigger"][b].tolist() == item_fields(row.trigger_item_id)
        assert features["target"][b].tolist() == item_fields(row.item_id)
        hist = list(row.hist_item_ids)[:10]
        assert features["hist_mask"][b].tolist() == [True] * len(hist) + [False] * (L - len(hist))
        assert features["hist"][b, :len(hist)].tolist() == [item_fields(h) for h in hist]
        assert (features["hist"][b, len(hist):] == 0).all()
        assert features["hist_dt"][b].tolist() == (
            [min(int(d), 60 * 24 * 7) + 1 for d in list(row.hist_dt_min)[:10]] + [0] * (L - len(hist)))
        for key, col in (("mm", "mm_subseq_item_ids"), ("cat", "cat_subseq_item_ids")):
            seq = list(row[col])[:4]
            assert features[f"{key}_seq"][b, :len(seq)].tolist() == [item_fields(h) for h in seq]
            assert features[f"{key}_mask"][b].sum() == len(seq)
        assert features["page"][b] == min(row.page, 2)
        assert features["tt_sim"][b] == pytest.approx(row.trigger_target_sim)
        assert targets["label"][b] == row.clicked
        assert targets["has_intent"][b] == row.has_intent
        np.testing.assert_allclose(targets["intent"][b].numpy(), np.asarray(row.intent, np.float32))
    assert ds.meta["request_id"][idx.numpy()].tolist() == df.request_id.to_numpy()[idx.numpy()].tolist()


def test_features_never_carry_labels(bundle):
    features, targets = bundle.test[torch.arange(len(bundle.test))]
    forbidden = {"label", "clicked", "intent", "has_intent"}
    assert not forbidden & set(features)
    assert set(features) == set(FEATURE_KEYS)
    # permuting the targets leaves every feature tensor untouched
    perm = torch.randperm(len(bundle.test), generator=torch.Generator().manual_seed(0))
    other = bundle.test.with_targets(**{k: bundle.test.columns[k][perm] for k in TARGET_KEYS})
    f2, t2 = other[torch.arange(len(other))]
    for key in FEATURE_KEYS:
        assert torch.equal(features[key], f2[key])
    assert not torch.equal(targets["label"], t2["label"])


def test_unseen_items_keep_side_information(bundle, synthetic):
    train = pd.read_parquet(synthetic["labelled"] / "train.parquet")
    test = pd.read_parquet(synthetic["labelled"] / "test.parquet")
    seen = set(train.item_id) | set(train.trigger_item_id) | {i for h in train.hist_item_ids for i in h}
    cold = ~test.item_id.isin(seen).to_numpy()
    assert cold.any()
    f, _ = bundle.test[torch.from_numpy(np.flatnonzero(cold))]
    assert (f["target"][:, 0] == 1).all()  # unknown id ...
    assert (f["target"][:, 1] >= 1).all() and (f["target"][:, 1] > 1).any()  # ... known category mostly
    assert bundle.summary["test_unknown_target_share"] == pytest.approx(cold.mean())


def test_frozen_vectors_follow_every_catalogue_item(bundle, synthetic):
    """Each target and subsequence item brings its own store vector, cold items included."""
    store = EmbeddingStore.load(synthetic["store"])
    v = bundle.frozen_vectors
    assert v.shape == (store.vectors.shape[0] + 2, store.dim)
    assert (v[:2] == 0).all()
    test = pd.read_parquet(synthetic["labelled"] / "test.parquet")
    f, _ = bundle.test[torch.arange(len(bundle.test))]
    expected = np.asarray(store.vectors[store.rows_for(test.item_id.to_numpy())])
    np.testing.assert_array_equal(v[f["target_vec"]].numpy(), expected)
    cold = f["target"][:, 0] == 1  # ids the train split never showed ...
    assert cold.any() and (v[f["target_vec"][cold]].norm(dim=1) > 0.99).all()  # ... keep their vector
    np.testing.assert_array_equal(
        v[f["trigger_vec"]].numpy(), np.asarray(store.vectors[store.rows_for(test.trigger_item_id.to_numpy())]))
    for b in range(len(test)):
        for key, column, rows in (("mm_vec", "mm_subseq_item_ids", "mm_rows"),
                                  ("hist_vec", "hist_item_ids", "hist_rows")):
            seq = list(test[column][b])[:bundle.test.columns[rows].shape[1]]
            n = len(seq)
            assert f[key][b, n:].eq(0).all()
            if n:
                np.testing.assert_array_equal(v[f[key][b, :n]].numpy(),
                                              np.asarray(store.vectors[store.rows_for(np.asarray(seq))]))
    assert bundle.sizes.levels == 6 and bundle.sizes.max_page == 2
    assert bundle.sizes.item_fields == {
        "item": len(bundle.vocabs.item), "category": len(bundle.vocabs.category),
        "top_category": len(bundle.vocabs.top_category), "brand": len(bundle.vocabs.brand),
        "price_bucket": bundle.vocabs.price_size}
    assert list(bundle.sizes.item_fields) == list(ITEM_FIELDS)


def test_folder_of_parts_reads_the_same(bundle, synthetic, tmp_path):
    data = tmp_path / "labelled"
    shutil.copytree(synthetic["labelled"], data)
    table = pq.read_table(data / "train.parquet")
    (data / "train.parquet").unlink()
    (data / "train.parquet").mkdir()
    pq.write_table(table.slice(0, 1000), data / "train.parquet" / "part-0.parquet")
    pq.write_table(table.slice(1000), data / "train.parquet" / "part-1.parquet")
    again = load_data(data, synthetic["store"], synthetic["dataset"], **CAPS)
    for key, value in bundle.train.columns.items():
        assert torch.equal(again.train.columns[key], value), key


def test_sampler_permutes_per_epoch_and_shards():
    s = EpochBatchSampler(103, 10, shuffle=True, seed=7)
    s.set_epoch(0)
    e0 = torch.cat(list(s))
    s.set_epoch(1)
    e1 = torch.cat(list(s))
    assert sorted(e0.tolist()) == list(range(103)) == sorted(e1.tolist())
    assert not torch.equal(e0, e1)
    s.set_epoch(0)
    assert torch.equal(torch.cat(list(s)), e0)  # depends on (seed, epoch) only
    assert len(s) == 11
    shards = [EpochBatchSampler(103, 10, shuffle=True, seed=7, rank=r, world_size=3) for r in range(3)]
    batches = [list(sh) for sh in shards]
    assert len(batches[0]) == len(shards[0]) == 11  # last global batch of 3 rows still splits
    for step in range(11):
        assert torch.equal(torch.cat([b[step] for b in batches]), list(EpochBatchSampler(103, 10, shuffle=True,
                                                                                       seed=7))[step])


def test_loader_yields_each_row_once(bundle):
    sampler = EpochBatchSampler(len(bundle.train), 256, shuffle=True, seed=1)
    seen = []
    for features, targets in make_loader(bundle.train, sampler):
        assert features["hist"].shape[0] == targets["label"].shape[0] <= 256
        seen.append(targets["label"].shape[0])
    assert sum(seen) == len(bundle.train)
    # a worker process assembles the very same batches
    direct = [t["label"] for _, t in make_loader(bundle.train, sampler)]
    worker = [t["label"] for _, t in make_loader(bundle.train, sampler, num_workers=1)]
    assert len(direct) == len(worker) and all(torch.equal(a, b) for a, b in zip(direct, worker))


def _rewrite(synthetic, tmp_path, split, fn):
    data = tmp_path / "labelled"
    shutil.copytree(synthetic["labelled"], data)
    df = pq.read_table(data / f"{split}.parquet")
    pq.write_table(fn(df), data / f"{split}.parquet")
    return data


def test_bad_inputs_raise_clear_errors(synthetic, tmp_path):
    data = _rewrite(synthetic, tmp_path / "a", "test", lambda t: t.drop_columns(["hist_dt_min"]))
    with pytest.raises(ValueError, match=r"test\.parquet.*hist_dt_min"):
        load_data(data, synthetic["store"], synthetic["dataset"], **CAPS)

    def negative_dt(t):
        col = t.column("hist_dt_min").to_pylist()
        i = next(k for k, v in enumerate(col) if v)
        col[i] = [-5] + col[i][1:]
        return t.set_column(t.schema.get_field_index("hist_dt_min"), "hist_dt_min",
                            pa.array(col, pa.list_(pa.int32())))

    data = _rewrite(synthetic, tmp_path / "b", "train", negative_dt)
    with pytest.raises(ValueError, match="hist_dt_min.*negative"):
        load_data(data, synthetic["store"], synthetic["dataset"], **CAPS)

    def short_intent(t):
        col = t.column("intent").to_pylist()
        i = t.column("has_intent").to_pylist().index(True)
        col[i] = col[i][:4]
        return t.set_column(t.schema.get_field_index("intent"), "intent", pa.array(col, pa.list_(pa.float32())))

    data = _rewrite(synthetic, tmp_path / "c", "train", short_intent)
    with pytest.raises(ValueError, match="intent.*6 values"):
        load_data(data, synthetic["store"], synthetic["dataset"], **CAPS)

    data = tmp_path / "d"
    shutil.copytree(synthetic["labelled"], data)
    (data / "manifest.json").write_text(json.dumps({"levels": 6}))
    with pytest.raises(ValueError, match="--dataset"):
        load_data(data, synthetic["store"], None, **CAPS)


def test_dataset_found_through_the_store(synthetic, tmp_path):
    """Without a dataset entry in the labels' manifest, the store's items.parquet is used when its
    sha256 is the one the labelling recorded."""
    items = synthetic["dataset"] / "items.parquet"
    store = tmp_path / "store"
    shutil.copytree(synthetic["store"], store)
    (store / "manifest.json").write_text(json.dumps({"dim": 16, "input": {"path": str(items)}}))
    data = tmp_path / "labelled"
    shutil.copytree(synthetic["labelled"], data)
    manifest = {"levels": 6, "inputs": {"items.parquet": hashlib.sha256(items.read_bytes()).hexdigest()}}
    (data / "manifest.json").write_text(json.dumps(manifest))
    assert resolve_dataset(data, manifest, None, store) == synthetic["dataset"]
    manifest["inputs"]["items.parquet"] = "0" * 64  # the store was built from other items
    with pytest.raises(ValueError, match="--dataset"):
        resolve_dataset(data, manifest, None, store)
    assert resolve_dataset(data, manifest, synthetic["dataset"], store) == synthetic["dataset"]


def test_leave_one_out_intent_matches_pandas(synthetic):
    """Stage 2's intent: the request's clicks per level other than the row's own."""
    from daian.data import leave_one_out_intent
    from intent_labels.binning import similarity_level

    df = pd.read_parquet(synthetic["labelled"] / "train.parquet")
    edges = np.asarray(json.loads((synthetic["labelled"] / "manifest.json").read_text())["bin_edges"])
    intent = np.stack([np.asarray(x, np.float32) if h else np.zeros(6, np.float32)
                       for x, h in zip(df.intent, df.has_intent)])
    loo, has = leave_one_out_intent(df.request_id.to_numpy(), df.clicked.to_numpy().astype(np.int64), intent,
                                    df.has_intent.to_numpy(), df.trigger_target_sim.to_numpy(np.float32), edges)
    df["level"] = similarity_level(df.trigger_target_sim.to_numpy(np.float32), edges)
    checked = 0
    for _, g in df.groupby("request_id"):
        for i, row in g.iterrows():
            others = g[(g.index != i) & (g.clicked == 1)]
            if others.empty:
                assert not has[i] and (loo[i] == 0).all()
                continue
            expected = np.bincount(others.level, minlength=6) / len(others)
            assert has[i]
            np.testing.assert_allclose(loo[i], expected, atol=1e-6)
            checked += 1
    assert checked > 20
    # the row's own label never shows: for a clicked row, its level's share falls by one click
    clicked = df.clicked.to_numpy() == 1
    assert (loo[clicked & has].sum(axis=1) == pytest.approx(1.0))


def test_past_intent_matches_pandas(bundle, synthetic):
    """UIM's view of the user's earlier requests: the mean intent of the same user's labelled
    *training* requests that started strictly before the row's request, and their number."""
    train = pd.read_parquet(synthetic["labelled"] / "train.parquet")
    pool = train[train.has_intent].drop_duplicates("request_id")
    checked = 0
    for split, ds in (("train", bundle.train), ("test", bundle.test)):
        df = pd.read_parquet(synthetic["labelled"] / f"{split}.parquet")
        mean, count = ds.columns["past_intent"].numpy(), ds.columns["past_count"].numpy()
        for i, row in df.iterrows():
            earlier = pool[(pool.user_id == row.user_id) & (pool.ts < row.ts)]
            assert count[i] == len(earlier)
            expected = np.stack(earlier.intent.to_numpy()).mean(0) if len(earlier) else np.zeros(6)
            np.testing.assert_allclose(mean[i], expected, atol=1e-6)
            checked += len(earlier) > 0
    assert checked > 100
    # the batch hands them over as features
    features, _ = bundle.test[torch.arange(5)]
    assert torch.equal(features["past_intent"], bundle.test.columns["past_intent"][:5])


def test_past_intent_ignores_the_evaluated_split_and_needs_ts(synthetic, tmp_path, caplog):
    """Test rows pool train requests only: scrambling the test split's clicks and intents leaves
    them unchanged. Without a ts column they stay zero, with a warning."""
    def scramble(t):
        perm = pa.array(np.random.default_rng(3).permutation(t.num_rows))
        for name in ("clicked", "intent", "has_intent"):
            t = t.set_column(t.schema.get_field_index(name), name, t.column(name).take(perm))
        return t

    base = load_data(synthetic["labelled"], synthetic["store"], synthetic["dataset"], **CAPS)
    data = _rewrite(synthetic, tmp_path / "a", "test", scramble)
    other = load_data(data, synthetic["store"], synthetic["dataset"], **CAPS)
    for key in ("past_intent", "past_count"):
        assert torch.equal(base.test.columns[key], other.test.columns[key])
    assert base.test.columns["past_count"].max() > 0
    data = _rewrite(synthetic, tmp_path / "b", "train", lambda t: t.drop_columns(["ts"]))
    with caplog.at_level("WARNING", logger="daian.data"):
        bare = load_data(data, synthetic["store"], synthetic["dataset"], **CAPS)
    assert "past_intent" in caplog.text and not bare.summary["past_intent"]
    assert (bare.train.columns["past_count"] == 0).all() and (bare.test.columns["past_intent"] == 0).all()
