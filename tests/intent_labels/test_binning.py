"""Bin edges, levels and intent distributions against numpy's histogram and Python loops."""
from __future__ import annotations

import json

import numpy as np
import pytest

from intent_labels.binning import fit_bin_edges, intent_distribution, load_bin_edges
from intent_labels.labelled import similarity_level


def test_edges_equal_numpy_equal_width_edges():
    sims = np.random.default_rng(0).uniform(-0.3, 0.9, 1000).astype(np.float32)
    for n in (1, 2, 6, 10):
        np.testing.assert_allclose(fit_bin_edges(sims, n), np.histogram_bin_edges(sims.astype(np.float64), bins=n),
                                   rtol=0, atol=1e-12)


@pytest.mark.parametrize("q", [0.01, 0.05, 0.2])
def test_quantile_range_trims_at_most_q_on_each_side(q):
    rng = np.random.default_rng(3)
    sims = np.r_[np.clip(rng.normal(0.4, 0.15, 20_000), -1, 1), [-0.9, 0.999, 1.0]]  # a few outliers
    edges = fit_bin_edges(sims, 6, quantile=q)
    width = 2 / 4096  # the sketch's resolution
    # At most q of the values lie beyond each end, and one sketch bin further in, more than q would.
    assert np.mean(sims < edges[0]) <= q < np.mean(sims < edges[0] + width)
    assert np.mean(sims > edges[-1]) <= q < np.mean(sims > edges[-1] - width)
    lo_q, hi_q = np.quantile(sims, [q, 1 - q])
    assert abs(edges[0] - lo_q) < 2 * width and abs(edges[-1] - hi_q) < 2 * width
    np.testing.assert_allclose(np.diff(edges), (edges[-1] - edges[0]) / 6, rtol=1e-9)
    # A q below one value's share keeps the exact ends.
    np.testing.assert_array_equal(fit_bin_edges(sims, 6, quantile=1e-9)[[0, -1]], [sims.min(), sims.max()])


def test_levels_count_like_numpy_histogram():
    rng = np.random.default_rng(1)
    sims = rng.uniform(-1, 1, 5000)
    edges = fit_bin_edges(sims, 6)
    sims = np.r_[sims, edges]  # every edge itself, the last one included in the top bin
    counts = np.bincount(similarity_level(sims, edges), minlength=6)
    np.testing.assert_array_equal(counts, np.histogram(sims, bins=edges)[0])


def test_values_outside_the_edges_clip_into_the_end_levels():
    edges = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
    got = similarity_level(np.array([-5.0, -0.01, 0.0, 0.2499, 0.25, 0.99, 1.0, 1.01, 7.0]), edges)
    np.testing.assert_array_equal(got, [0, 0, 0, 0, 1, 3, 3, 3, 3])


def test_intent_distribution_matches_a_loop():
    rng = np.random.default_rng(2)
    n_req, levels = 50, 6
    req = rng.integers(0, n_req, 300)
    lv = rng.integers(0, levels, 300)
    intent, has = intent_distribution(req, lv, n_req, levels)
    for r in range(n_req):
        counts = np.array([np.sum((req == r) & (lv == k)) for k in range(levels)], float)
        assert has[r] == (counts.sum() > 0)
        expected = counts / counts.sum() if counts.sum() else np.zeros(levels)
        np.testing.assert_allclose(intent[r], expected, rtol=1e-6)
    assert intent.dtype == np.float32
    np.testing.assert_allclose(intent[has].sum(axis=1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("sims, levels, match", [
    ([], 6, "empty"), ([0.3, 0.3], 6, "degenerate"), ([0.1, np.nan], 6, "non-finite"),
    ([0.1, 0.2], 0, "positive integer")])
def test_bad_inputs_raise(sims, levels, match):
    with pytest.raises(ValueError, match=match):
        fit_bin_edges(np.array(sims, float), levels)


def test_intent_rejects_out_of_range_levels():
    with pytest.raises(ValueError, match="clicked levels"):
        intent_distribution(np.array([0]), np.array([6]), 1, 6)


def test_load_edges_from_list_manifest_and_npy(tmp_path):
    edges = [0.0, 0.1, 0.5, 0.9]
    (tmp_path / "e.json").write_text(json.dumps(edges))
    (tmp_path / "m.json").write_text(json.dumps({"levels": 3, "bin_edges": edges}))
    np.save(tmp_path / "e.npy", np.array(edges))
    for name in ("e.json", "m.json", "e.npy"):
        np.testing.assert_array_equal(load_bin_edges(tmp_path / name), edges)
    (tmp_path / "bad.json").write_text(json.dumps([0.0, 0.5, 0.4]))
    with pytest.raises(ValueError, match="strictly increasing"):
        load_bin_edges(tmp_path / "bad.json")
    (tmp_path / "nokey.json").write_text(json.dumps({"edges": edges}))
    with pytest.raises(ValueError, match="bin_edges"):
        load_bin_edges(tmp_path / "nokey.json")
