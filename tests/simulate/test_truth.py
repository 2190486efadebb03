"""The planted truth is consistent: levels, click probabilities and planted intents recomputed with numpy."""
from __future__ import annotations

import numpy as np


def _truth_frame(world):
    imp = world.table("impressions.parquet")
    ti = world.table("truth/impressions.parquet")
    assert (ti.request_id.to_numpy() == imp.request_id.to_numpy()).all()
    assert (ti.position.to_numpy() == imp.position.to_numpy()).all()
    imp["level"] = ti.level.to_numpy()
    imp["click_prob"] = ti.click_prob.to_numpy()
    return imp


def test_levels_follow_latent_cosine_and_edges(tiny_world):
    imp = _truth_frame(tiny_world)
    ids = np.load(tiny_world.path / "truth" / "item_ids.npy")
    latent = np.load(tiny_world.path / "truth" / "item_latent.npy").astype(np.float64)
    edges = np.asarray(tiny_world.json("truth/levels.json")["edges"])
    a = latent[np.searchsorted(ids, imp.trigger_item_id)]
    b = latent[np.searchsorted(ids, imp.item_id)]
    cos = (a * b).sum(axis=1)
    expected = np.clip(np.digitize(cos, edges[1:-1]), 0, 5)
    near_edge = np.abs(cos[:, None] - edges[None, 1:-1]).min(axis=1) < 1e-5
    assert (expected[~near_edge] == imp.level.to_numpy()[~near_edge]).all()
    assert set(np.unique(expected)) == set(range(6))


def test_click_probability_matches_documented_formula(tiny_world):
    imp = _truth_frame(tiny_world)
    p = tiny_world.json("truth/click_model.json")
    par = p["parameters"]
    ids = np.load(tiny_world.path / "truth" / "item_ids.npy")
    latent = np.load(tiny_world.path / "truth" / "item_latent.npy").astype(np.float64)
    quality = tiny_world.table("truth/items.parquet").set_index("item_id").quality
    users = tiny_world.table("truth/users.parquet").set_index("user_id")
    effect = tiny_world.table("truth/requests.parquet").set_index("request_id").request_effect
    profile = np.stack(users.intent_profile.reindex(imp.user_id).to_numpy()).astype(np.float64)
    taste = np.stack(users.taste.reindex(imp.user_id).to_numpy()).astype(np.float64)
    lam = par["drift_max"] * (1 - np.exp(-par["drift_rate"] * (imp.page.to_numpy() - 1.0)))
    lvl = imp.level.to_numpy().astype(np.int64)
    q = (1 - lam) * profile[np.arange(len(imp)), lvl] + lam * np.asarray(p["broad_template"])[lvl]
    target = latent[np.searchsorted(ids, imp.item_id)]
    logit = (par["click_bias"] + par["w_intent"] * np.log(6 * q) + par["w_affinity"] * (target * taste).sum(1)
             + par["w_quality"] * quality.reindex(imp.item_id).to_numpy()
             + users.click_bias.reindex(imp.user_id).to_numpy() + effect.reindex(imp.request_id).to_numpy())
    np.testing.assert_allclose(1 / (1 + np.exp(-logit)), imp.click_prob, rtol=2e-4, atol=1e-6)


def test_clicks_are_bernoulli_draws_of_the_probabilities(mid_world):
    imp = _truth_frame(mid_world)
    # Calibration: within probability deciles, the observed CTR matches the mean probability.
    bins = np.quantile(imp.click_prob, np.linspace(0, 1, 11))
    group = np.clip(np.digitize(imp.click_prob, bins[1:-1]), 0, 9)
    stats = imp.groupby(group).agg(p=("click_prob", "mean"), ctr=("clicked", "mean"), n=("clicked", "size"))
    se = np.sqrt(stats.p * (1 - stats.p) / stats.n)
    assert (np.abs(stats.ctr - stats.p) < 4 * se + 1e-3).all(), stats


def test_planted_intent_is_expected_click_share_by_level(tiny_world):
    imp = _truth_frame(tiny_world)
    req = tiny_world.table("truth/requests.parquet").set_index("request_id")
    mass = imp.pivot_table(index="request_id", columns="level", values="click_prob", aggfunc="sum",
                           fill_value=0.0).reindex(columns=range(6), fill_value=0.0)
    expected = mass.to_numpy() / mass.to_numpy().sum(axis=1, keepdims=True)
    planted = np.stack(req.planted_intent.reindex(mass.index).to_numpy())
    np.testing.assert_allclose(planted, expected, atol=1e-5)


def test_user_profiles_follow_their_type(tiny_world):
    users = tiny_world.table("truth/users.parquet")
    prof = np.stack(users.intent_profile.to_numpy())
    top2 = prof[:, 4:].sum(axis=1)
    spec = (users.user_type == "specific").to_numpy()
    # Specific users put most intent on the two most similar levels; broad users on the low-mid ones.
    assert top2[spec].mean() > 0.6 and top2[~spec].mean() < 0.3
    assert prof[~spec, 1:4].sum(axis=1).mean() > 0.55
