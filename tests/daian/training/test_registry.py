"""A model joins the zoo through the registry alone: a toy model registered here, with its own
config class, schedule and ablation, trains, is compared, and reloads from its checkpoint, with no
change to the trainer."""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from daian.models import ModelOutput, registry
from daian.models.config import ModelConfig
from daian.training import trainer as T
from daian.training.checkpoint import load_checkpoint
from daian.training.compare import compare
from daian.training.config import TrainConfig
from daian.training.losses import ctr_loss
from daian.training.schedule import Stage, ctr_stage, unique_parameters


@dataclass
class ToyConfig(ModelConfig):
    """A logistic model on the target id and the page."""

    name = "toy"
    ablations = ("no-page",)

    width: int = 4  # embedding width

    def validate(self) -> None:
        if self.width < 1:
            raise ValueError(f"width must be >= 1, got {self.width}")


class Toy(nn.Module):
    """logit = out([e(target id), e(page)]); `mlp.out` is the final layer the trainer's bias init finds."""

    def __init__(self, config: ToyConfig, sizes, frozen_vectors=None) -> None:
        super().__init__()
        self.item = nn.Embedding(sizes.item_fields["item"], config.width)
        self.page = None if config.ablation == "no-page" else nn.Embedding(sizes.max_page + 1, config.width)
        self.mlp = nn.Module()
        self.mlp.out = nn.Linear(config.width * (1 if self.page is None else 2), 1)

    def forward(self, features, intent_override=None) -> ModelOutput:
        parts = [self.item(features["target"][:, 0])]
        if self.page is not None:
            parts.append(self.page(features["page"]))
        return ModelOutput(logit=self.mlp.out(torch.cat(parts, dim=-1)).squeeze(-1))


def warm_then_ctr(config, model) -> list[Stage]:
    """The toy's own schedule: one epoch of the output layer alone, then the usual CTR stage."""
    head = unique_parameters(model.mlp.parameters())
    return [Stage("warm", 1, [{"params": head, "lr": config.lr, "name": "head"}], ctr_loss),
            ctr_stage(config, model)]


@pytest.fixture
def toy():
    spec = registry.register(Toy, ToyConfig, stages=warm_then_ctr, cost={None: 0.5, "no-page": 0.2})
    yield spec
    registry.unregister("toy")


def toy_config(synthetic, run, **changes) -> TrainConfig:
    values = dict(data=synthetic["labelled"], store=synthetic["store"], run=run, model="toy", recipe="paper",
                  batch_size=256, epochs=1, optimizer="adam", lr=0.01, progress=False, max_hist=10,
                  max_subseq=4, max_page=2, max_dt=60 * 24 * 7, price_buckets=4, model_settings={"width": 3})
    values.update(changes)
    return TrainConfig(**values)


def test_registered_toy_trains_scores_and_reloads(toy, synthetic, bundle, tmp_path):
    run = tmp_path / "run"
    result = T.train(toy_config(synthetic, run), bundle)
    assert [h["stage"] for h in result["train"]["history"]] == ["warm", "ctr"]
    table = pq.read_table(run / "predictions.parquet").to_pandas()
    assert result["ctr"]["auc"] == pytest.approx(roc_auc_score(table.clicked, table.score), abs=1e-9)
    # The checkpoint names the toy and rebuilds it; its weights give the scores by hand (numpy).
    meta = json.loads((run / "checkpoint" / "config.json").read_text())
    assert meta["model"] == {"name": "toy", "ablation": None, "width": 3}
    model, _, _ = load_checkpoint(run / "checkpoint", store=synthetic["store"])
    assert isinstance(model, Toy)
    features, _ = bundle.test[torch.arange(len(bundle.test))]
    w = {k: v.numpy().astype(np.float64) for k, v in model.state_dict().items()}
    x = np.concatenate([w["item.weight"][features["target"][:, 0].numpy()],
                        w["page.weight"][features["page"].numpy()]], axis=1)
    by_hand = 1 / (1 + np.exp(-(x @ w["mlp.out.weight"][0] + w["mlp.out.bias"][0])))
    np.testing.assert_allclose(table.score.to_numpy(), by_hand, rtol=1e-5, atol=1e-6)


def test_registered_toy_is_compared_with_its_ablation(toy, synthetic, tmp_path):
    config = toy_config(synthetic, tmp_path / "cmp", model_settings={"width": 3, "mlp_hidden": (8,)})
    out = compare(config, ["din", "toy"], ablations=["toy"])
    assert [row["run"] for row in out["rows"]] == ["din", "toy", "toy-no-page"]
    # each model took the settings its config has: DIN the MLP, the toy its width
    din = json.loads((tmp_path / "cmp" / "din" / "checkpoint" / "config.json").read_text())["model"]
    no_page = json.loads((tmp_path / "cmp" / "toy-no-page" / "checkpoint" / "config.json").read_text())["model"]
    assert din["mlp_hidden"] == [8] and "width" not in din
    assert no_page == {"name": "toy", "ablation": "no-page", "width": 3}
    with pytest.raises(ValueError, match="none of the compared models"):
        compare(config.replace(model_settings={"uim_hidden": (4,)}), ["din", "toy"])


def test_unknown_model_names_the_registered_ones(toy, synthetic, tmp_path):
    with pytest.raises(ValueError, match="'din', 'dei2n', 'daian', 'toy'"):
        toy_config(synthetic, tmp_path, model="dien")
    with pytest.raises(ValueError, match="unknown toy setting"):
        toy_config(synthetic, tmp_path, model_settings={"heads": 2}).model_config()
