"""Tensorised splits and their batches against a pure-Python reference; features never carry labels."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from daian.data import FEATURE_KEYS, TARGET_KEYS
from daian.models.base import ITEM_FIELDS
from retrieval.store import EmbeddingStore


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
