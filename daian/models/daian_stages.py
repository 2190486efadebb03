"""DAIAN's three-stage training (section 4.4), our reading, and its two pre-training losses.

  1. `uim`: the UIM alone on KL(p || p_hat), averaged over rows whose request has a click (the
     ground-truth intent p exists only there).
  2. `die`: every parameter except the UIM and the CTR network's embedding tables (item fields,
     user, page) on the CTR loss, with the true p in place of p_hat (`intent_override`). Eq. 20
     names the DIE parameters as the ones pre-trained; the CTR loss needs a head and the networks
     around DIE to learn along, so they train too. The embedding tables wait for stage 3: a second
     pass over the same ids overfits them (`stage2_embeddings=True` trains them here as well). The
     override is the leave-one-out intent of each row (the request's other clicks,
     `daian.data.leave_one_out_intent`): the request's full p is zero at the target's level exactly
     when that target was not clicked, a shortcut to the label. The paper is silent about rows
     without a label; they are passed as zero rows, for which the model uses its own detached
     prediction, so "has an intent label" (itself "this request had a click") is never a
     shortcut either. Stage 3, which sees only p_hat, decides the evaluated model.
  3. `ctr`: every parameter on the CTR loss (plus auxiliary losses), no intent supervision, the
     UIM at `lr * uim_lr_factor` (the paper: "a smaller learning rate").
The `no-three-stage` ablation runs stage 3 only, from scratch (same learning rates). Which
parameters each stage trains is the model's `stage_parameters(k)`; the rates and epochs are the
training config's `uim_*`, `die_*`, `lr` and `uim_lr_factor`.
"""
from __future__ import annotations

from torch import nn

from daian.training.losses import click_loss, ctr_loss, ddp_anchor, intent_kl
from daian.training.schedule import Stage, unique_parameters


def uim_loss(model: nn.Module, features: dict, targets: dict) -> tuple:
    """Stage 1: KL(p || p_hat) on rows whose request had a click.

    p_hat comes from the model's `predict_intent` (the UIM alone) when it is not wrapped for
    distributed training (a wrapped model must be called through its wrapper), else from a full
    forward pass.
    """
    anchor = 0.0
    if hasattr(model, "predict_intent"):
        p_hat = model.predict_intent(features)
    else:
        out = model(features)
        if out.intent_pred is None:
            raise ValueError(f"{type(getattr(model, 'module', model)).__name__} predicts no intent; "
                             "it has no UIM stage")
        p_hat, anchor = out.intent_pred, ddp_anchor(model, out)
    kl = intent_kl(targets["intent"], p_hat, targets["has_intent"])
    return kl + anchor, {"kl": kl.detach()}


def die_loss(model: nn.Module, features: dict, targets: dict) -> tuple:
    """Stage 2: the CTR loss with the leave-one-out true intent in place of p_hat (zero rows where
    a row has none: by the `intent_override` convention, "use your own detached prediction")."""
    loo = targets["intent_loo"]
    override = loo * targets["has_intent_loo"][:, None].to(loo.dtype)
    return click_loss(model, model(features, intent_override=override), targets)


def build_stages(config, model: nn.Module) -> list[Stage]:
    """DAIAN's schedule for `config` (a TrainConfig): stages 1 and 2 unless ablated away, then 3."""
    def groups(stage: int, rates: dict[str, float]) -> list[dict]:
        return [{"params": unique_parameters(params), "lr": rates[name], "name": name}
                for name, params in model.stage_parameters(stage).items()]

    stages = []
    if config.ablation != "no-three-stage" and model.stage_parameters(1):
        if config.uim_epochs:
            stages.append(Stage("uim", config.uim_epochs, groups(1, {"uim": config.uim_lr}), uim_loss))
        if config.die_epochs:
            stages.append(Stage("die", config.die_epochs,
                                groups(2, {"ctr": config.die_lr, "uim": config.die_lr}), die_loss))
    stages.append(Stage("ctr", config.epochs,
                        groups(3, {"ctr": config.lr, "uim": config.lr * config.uim_lr_factor}), ctr_loss))
    return stages
