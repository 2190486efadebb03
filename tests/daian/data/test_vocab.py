"""Vocabularies: lookups and the vocab.json round trip."""
from __future__ import annotations

import json

import numpy as np
import pytest

from daian.data.vocab import Vocab, Vocabularies


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
