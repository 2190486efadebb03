"""The report's numbers against scikit-learn, scipy and pandas recomputations from the fake runs' files."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy as scipy_entropy
from sklearn.metrics import log_loss, roc_auc_score

from .conftest import EDGES, SEEDS


def _predictions(folder) -> pd.DataFrame:
    return pd.read_parquet(folder / "predictions.parquet")


def _gauc(df: pd.DataFrame) -> float:
    num = den = 0.0
    for _, g in df.groupby("user_id"):
        if g["clicked"].nunique() == 2:
            num += roc_auc_score(g["clicked"], g["score"]) * len(g)
            den += len(g)
    return num / den


def _seed_metrics(world, name: str) -> dict[int, dict]:
    out = {}
    for seed in SEEDS:
        df = _predictions(world["cmp"] / name / f"seed-{seed}")
        out[seed] = {"auc": roc_auc_score(df["clicked"], df["score"]), "gauc": _gauc(df),
                     "logloss": log_loss(df["clicked"], df["score"].astype(np.float64))}
    return out


def _mean_std(values) -> tuple[float, float]:
    values = np.asarray(list(values), dtype=np.float64)
    return values.mean(), values.std(ddof=1)


def test_comparison_table_matches_sklearn(world, report):
    rows = {r["run"]: r for r in report["json"]["comparison"]}
    assert list(rows) == ["din", "dei2n", "daian"]  # full models, the papers' order; ablations apart
    din = _seed_metrics(world, "din")
    for name in rows:
        ref = _seed_metrics(world, name)
        for key in ("auc", "gauc", "logloss"):
            mean, std = _mean_std(ref[s][key] for s in SEEDS)
            assert rows[name][key]["mean"] == pytest.approx(mean, abs=1e-9)
            assert rows[name][key]["std"] == pytest.approx(std, abs=1e-9)
            cell = f"{mean:.4f} ± {std:.4f}"
            assert cell in report["html"], f"{name} {key}: {cell} not in report.html"
        for key in ("auc", "gauc"):
            impr = [((ref[s][key] - 0.5) / (din[s][key] - 0.5) - 1) * 100 for s in SEEDS]
            mean, std = _mean_std(impr)
            assert rows[name][f"rela_{key}"]["mean"] == pytest.approx(mean, abs=1e-7)
            if name != "din":
                assert f"{mean:.2f}% ± {std:.2f}%" in report["html"]


def test_ablation_table_is_measured_against_the_full_model(world, report):
    rows = {r["run"]: r for r in report["json"]["ablations"]["daian"]}
    assert list(rows) == ["daian-no-uim", "daian"]
    abl, full = _seed_metrics(world, "daian-no-uim"), _seed_metrics(world, "daian")
    impr = [((abl[s]["gauc"] - 0.5) / (full[s]["gauc"] - 0.5) - 1) * 100 for s in SEEDS]
    assert rows["daian-no-uim"]["rela_gauc"]["mean"] == pytest.approx(np.mean(impr), abs=1e-7)
    assert "DAIAN w/o UIM" in report["html"]


def test_metrics_json_agreement_is_reported(report):
    # the fixture's metrics.json hold sklearn's AUC and log loss: the report must find them equal
    assert "agree with the runs' own metrics.json" in report["html"]
    assert "Warning" not in report["html"]


def test_intent_fit_matches_scipy(world, report):
    test = pd.read_parquet(world["labelled"] / "test.parquet")
    test["user_type"] = test["user_id"].map(world["user_type"])
    fit = report["json"]["intent_fit"]
    for group in ("specific", "broad"):
        js, preds = [], []
        for seed in SEEDS:
            pred = _predictions(world["cmp"] / "daian" / f"seed-{seed}")
            df = test.merge(pred[["request_id", "item_id", "intent_pred"]], on=["request_id", "item_id"])
            df = df[df["has_intent"] & (df["user_type"] == group)]
            per_req = df.groupby("request_id").agg(
                true=("intent", lambda s: np.asarray(s.iloc[0], np.float64)),
                pred=("intent_pred", lambda s: np.stack(s.to_numpy()).astype(np.float64).mean(axis=0)))
            p = np.mean(np.stack(per_req["true"].to_numpy()), axis=0)
            q = np.mean(np.stack(per_req["pred"].to_numpy()), axis=0)
            js.append(jensenshannon(p, q) ** 2)
            preds.append(q)
        got = fit["groups"][group]
        assert got["requests"] == len(per_req)
        np.testing.assert_allclose(got["true"], p, atol=1e-6)
        np.testing.assert_allclose(got["pred"], np.mean(preds, axis=0), atol=1e-6)
        assert got["js_population"]["mean"] == pytest.approx(np.mean(js), abs=1e-9)
        assert f"{np.mean(js):.3f}" in report["html"]


def test_diversity_groups_match_pandas(world, report):
    train = pd.read_parquet(world["labelled"] / "train.parquet")
    req = train[train["has_intent"]].drop_duplicates("request_id")
    per_user = req.groupby("user_id")["intent"].apply(lambda s: np.stack(s.to_numpy()).astype(np.float64).mean(axis=0))
    ent = per_user.apply(lambda p: scipy_entropy(p))
    groups = report["json"]["diversity"]["groups"]
    assert groups[0]["low"] is None  # test users without a labelled train request come first
    assert sum(g["users"] for g in groups[1:]) == len(ent)
    test = pd.read_parquet(world["labelled"] / "test.parquet")
    for g in groups:
        if g["low"] is None:
            users = set(test["user_id"]) - set(ent.index)
        else:
            users = set(ent.index[(ent >= g["low"] - 1e-12) & (ent <= g["high"] + 1e-12)])
            assert len(users) == g["users"]
        for name in ("din", "daian"):
            values = []
            for seed in SEEDS:
                df = _predictions(world["cmp"] / name / f"seed-{seed}")
                values.append(_gauc(df[df["user_id"].isin(users)]))
            assert g[name]["mean"] == pytest.approx(np.mean(values), abs=1e-9)
    # groups are ordered and do not overlap
    ranges = [(g["low"], g["high"]) for g in groups[1:]]
    assert all(a[1] < b[0] for a, b in zip(ranges, ranges[1:]))


def test_ctr_by_page_and_level_matches_pandas(world, report):
    train = pd.read_parquet(world["labelled"] / "train.parquet")
    level = pd.cut(train["trigger_target_sim"].astype(np.float64), bins=EDGES, right=False, labels=False)
    level = level.fillna(len(EDGES) - 2).astype(int)  # the top edge belongs to the last level
    page = train["page"].clip(upper=report["config"].max_page)
    got = report["json"]["ctr_page_level"]
    shown = pd.crosstab(page, level).reindex(index=range(1, page.max() + 1), columns=range(len(EDGES) - 1),
                                             fill_value=0)
    clicks = train.pivot_table(index=page, columns=level, values="clicked", aggfunc="sum").reindex(
        index=range(1, page.max() + 1), columns=range(len(EDGES) - 1)).fillna(0)
    np.testing.assert_array_equal(np.array(got["impressions"]), shown.to_numpy())
    np.testing.assert_allclose(np.array(got["clicks"]), clicks.to_numpy())


def test_levels_sweep_points(world, report):
    points = {p["levels"]: p for p in report["json"]["levels_sweep"]}
    assert sorted(points) == [3, 4]  # the sweep run (n=3) and the compared DAIAN at the data's n=4
    df = _predictions(world["n3"])
    assert points[3]["auc"]["mean"] == pytest.approx(roc_auc_score(df["clicked"], df["score"]), abs=1e-9)
    assert points[3]["gauc"]["mean"] == pytest.approx(_gauc(df), abs=1e-9)
    assert points[4]["auc"]["mean"] == pytest.approx(
        np.mean([m["auc"] for m in _seed_metrics(world, "daian").values()]), abs=1e-9)


def test_examples_show_each_models_top_scored_targets(world, report):
    examples = report["json"]["examples"]
    assert len(examples) == 2
    for ex in examples:
        assert [m["label"] for m in ex["models"]] == ["DIN", "DEI2N", "DAIAN"]
        for m, name in zip(ex["models"], ("din", "dei2n", "daian")):
            df = _predictions(world["cmp"] / name / "seed-1")
            df = df[df["request_id"] == ex["request_id"]].sort_values(["score", "item_id"],
                                                                     ascending=[False, True]).head(4)
            assert [t["item_id"] for t in m["targets"]] == df["item_id"].tolist()
            assert [t["clicked"] for t in m["targets"]] == df["clicked"].astype(bool).tolist()
        assert 0 < ex["clicks"] < ex["targets"]


def test_report_json_is_plain_json(report):
    text = report["paths"]["json"].read_text()
    assert "NaN" not in text
    assert json.loads(text)["levels"] == len(EDGES) - 1
