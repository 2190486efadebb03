"""Metrics against scikit-learn, scipy and pandas references computed here."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon
from sklearn.metrics import log_loss as sk_log_loss
from sklearn.metrics import roc_auc_score

from daian import metrics as M


@pytest.fixture(scope="module")
def ctr_data():
    rng = np.random.default_rng(3)
    n = 3000
    users = rng.integers(0, 120, n)
    labels = (rng.random(n) < 0.15).astype(np.int8)
    # rounded scores: many ties, inside and across users
    scores = np.round(np.clip(0.15 + 0.2 * labels * rng.random(n) + 0.3 * rng.random(n), 0, 1), 2)
    user_type = np.where(users % 3 == 0, "broad", "specific").astype(object)
    return labels, scores, users, user_type


def test_auc_matches_sklearn_with_ties(ctr_data):
    labels, scores, _, _ = ctr_data
    assert M.auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert M.auc(labels, -scores) == pytest.approx(roc_auc_score(labels, -scores), abs=1e-12)


def test_auc_one_class_is_nan_and_bad_input_raises():
    assert np.isnan(M.auc(np.zeros(5), np.arange(5.0)))
    with pytest.raises(ValueError, match="differ in length"):
        M.auc(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="0/1"):
        M.auc(np.array([0, 2]), np.zeros(2))
    with pytest.raises(ValueError, match="non-finite"):
        M.auc(np.array([0, 1]), np.array([0.1, np.nan]))


def test_gauc_matches_per_user_sklearn(ctr_data):
    labels, scores, users, _ = ctr_data
    df = pd.DataFrame({"u": users, "y": labels, "s": scores})
    num = den = 0.0
    for _, g in df.groupby("u"):
        if g.y.nunique() < 2:  # single-class users are skipped
            continue
        num += len(g) * roc_auc_score(g.y, g.s)
        den += len(g)
    assert M.gauc(labels, scores, users) == pytest.approx(num / den, abs=1e-12)


def test_gauc_weights_by_impressions():
    # user 1: 4 impressions, AUC 1; user 2: 2 impressions, AUC 0; user 3: one class -> skipped
    labels = np.array([1, 0, 0, 0, 1, 0, 1, 1])
    scores = np.array([0.9, 0.1, 0.2, 0.3, 0.1, 0.9, 0.5, 0.6])
    users = np.array([1, 1, 1, 1, 2, 2, 3, 3])
    expected = (4 * roc_auc_score(labels[:4], scores[:4]) + 2 * roc_auc_score(labels[4:6], scores[4:6])) / 6
    assert M.gauc(labels, scores, users) == pytest.approx(expected)
    assert np.isnan(M.gauc(np.ones(3), np.arange(3.0), np.arange(3)))


def test_log_loss_matches_sklearn(ctr_data):
    labels, scores, _, _ = ctr_data
    p = np.clip(scores, 0.01, 0.99)
    assert M.log_loss(labels, p) == pytest.approx(sk_log_loss(labels, p), rel=1e-10)


def test_rela_impr():
    auc_model, auc_base = 0.7312, 0.7001
    assert M.rela_impr(auc_model, auc_base) == pytest.approx(((auc_model - 0.5) / (auc_base - 0.5) - 1) * 100)
    assert M.rela_impr(0.66, 0.66) == 0.0
    with pytest.raises(ValueError):
        M.rela_impr(0.7, 0.5)


def test_js_divergence_matches_scipy_natural_log():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(6) * 0.5, size=50)
    q = rng.dirichlet(np.ones(6), size=50)
    p[0] = [1, 0, 0, 0, 0, 0]  # zeros in p
    q[1] = [0, 0, 0.5, 0.5, 0, 0]
    ours = M.js_divergence(p, q)
    ref = np.array([jensenshannon(a, b) ** 2 for a, b in zip(p, q)])
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-12)
    assert M.js_divergence(np.eye(6)[:1], np.eye(6)[1:2])[0] == pytest.approx(np.log(2))


def test_intent_metrics_against_pandas_and_scipy():
    rng = np.random.default_rng(5)
    n_req, per = 40, 5
    rid = np.repeat(np.arange(n_req) + 100, per)
    has = np.repeat(rng.random(n_req) < 0.7, per)
    true = np.repeat(rng.dirichlet(np.ones(6), n_req), per, axis=0) * has[:, None]
    pred = rng.dirichlet(np.ones(6), n_req * per)  # varies within a request: averaged per request
    utype = np.repeat(np.where(rng.random(n_req) < 0.5, "specific", "broad"), per).astype(object)
    out = M.intent_metrics(rid, has, true, pred, utype)

    df = pd.DataFrame({"rid": rid, "has": has, "t": utype})
    ref_js, ref_type, ref_true, ref_pred = [], [], [], []
    for r, g in df[df.has].groupby("rid"):
        idx = g.index.to_numpy()
        p_true, p_pred = true[idx[0]], pred[idx].mean(axis=0)
        ref_js.append(jensenshannon(p_true, p_pred) ** 2)
        ref_type.append(g.t.iloc[0])
        ref_true.append(p_true)
        ref_pred.append(p_pred)
    ref_js, ref_type = np.array(ref_js), np.array(ref_type)
    ref_true, ref_pred = np.array(ref_true), np.array(ref_pred)
    assert out["requests"] == has.reshape(n_req, per)[:, 0].sum()
    assert out["js_mean"] == pytest.approx(ref_js.mean())
    assert out["js_population"] == pytest.approx(jensenshannon(ref_true.mean(0), ref_pred.mean(0)) ** 2)
    for t in ("specific", "broad"):
        sel = ref_type == t
        assert out["by_user_type"][t]["js_mean"] == pytest.approx(ref_js[sel].mean())
        assert out["by_user_type"][t]["js_population"] == pytest.approx(
            jensenshannon(ref_true[sel].mean(0), ref_pred[sel].mean(0)) ** 2)


def test_ctr_metrics_by_user_type(ctr_data):
    labels, scores, users, user_type = ctr_data
    out = M.ctr_metrics(labels, scores, users, user_type)
    sel = user_type == "broad"
    assert out["by_user_type"]["broad"]["auc"] == pytest.approx(roc_auc_score(labels[sel], scores[sel]))
    assert out["by_user_type"]["broad"]["rows"] == sel.sum()
    assert out["auc"] == pytest.approx(roc_auc_score(labels, scores))
    assert out["ctr"] == pytest.approx(labels.mean())
