"""Realistic difficulty: simple features are informative but far from perfect; so is the oracle."""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score


def test_logistic_regression_and_oracle_auc_are_in_a_realistic_range(mid_world):
    imp = mid_world.impressions_with_relation()
    imp["level"] = mid_world.table("truth/impressions.parquet").level.to_numpy()
    imp["click_prob"] = mid_world.table("truth/impressions.parquet").click_prob.to_numpy()
    quality = mid_world.table("truth/items.parquet").set_index("item_id").quality
    x = pd.get_dummies(imp.level.astype("category"), prefix="level").astype(float)
    x["page"] = imp.page.astype(float)
    x["quality"] = quality.reindex(imp.item_id).to_numpy()
    train, test = (imp.day < 7).to_numpy(), (imp.day == 7).to_numpy()
    lr = LogisticRegression(max_iter=1000).fit(x[train], imp.clicked[train])
    lr_auc = roc_auc_score(imp.clicked[test], lr.predict_proba(x[test])[:, 1])
    oracle_auc = roc_auc_score(imp.clicked[test], imp.click_prob[test])
    print(f"logistic regression AUC {lr_auc:.4f}, oracle AUC {oracle_auc:.4f}")
    assert 0.62 < lr_auc < 0.82
    assert 0.75 <= oracle_auc <= 0.87
    assert oracle_auc > lr_auc + 0.05  # user intent, taste and the random effects hold real signal
    assert np.isclose(imp.clicked.mean(), imp.click_prob.mean(), rtol=0.05)
