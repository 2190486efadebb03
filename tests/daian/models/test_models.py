"""DIN, DEI2N and DAIAN: shapes, padding invariance, intents, ablations, gradients, overfitting."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from daian.models import DAIANConfig, ITEM_FIELDS, FeatureSizes, ModelOutput, build_model, registry
from daian.models.daian_modules import history_spread, norm_ratio_fusion
from daian.models.dei2n import bucketise_dt, time_buckets

B, L, T, N_LEVELS = 8, 7, 4, 6
FEATURE_KEYS = {"user", "user_profile", "trigger", "target", "hist", "hist_mask", "hist_dt",
                "mm_seq", "mm_mask", "cat_seq", "cat_mask", "page", "tt_sim", "trigger_vec", "target_vec",
                "hist_vec", "mm_vec", "past_intent", "past_count"}
N_STORE = 70  # rows of the frozen store vectors (indexed by store row, not by item index)
SMALL = dict(mlp_hidden=(16, 8), attention_hidden=(8,), attention_dim=8, heads=2, time_dim=4,
             ui2m_hidden=(6,), interaction_hidden=(8,), uim_hidden=(12,), i2e_hidden=(8,),
             sim_dim=6, mm_dim=4, shift_hidden=(8,), sim_bins=8, dropout=0.0,
             item_dims={"item": 6, "category": 4, "top_category": 2, "brand": 2, "price_bucket": 2})
MODELS = ("din", "dei2n", "daian")
VARIANTS = [(name, None) for name in MODELS] + [(n, a) for n in MODELS for a in registry.get(n).config.ablations]


def config_of(name, ablation=None, only_known=False, **values):
    """The registered config of `name`; `only_known` drops the values it has no field for (SMALL
    holds every model's)."""
    cls = registry.get(name).config
    if only_known:
        values = {k: v for k, v in values.items() if k in cls.field_names()}
    return cls(ablation=ablation, **values)


@pytest.fixture(scope="session")
def sizes() -> FeatureSizes:
    return FeatureSizes(
        item_fields={"item": 60, "category": 12, "top_category": 5, "brand": 9, "price_bucket": 6},
        users=20, profile_fields={"gender": 4, "age_level": 6, "city_id": 7},
        max_page=5, max_dt=3000, levels=N_LEVELS)


@pytest.fixture(scope="session")
def frozen(sizes) -> torch.Tensor:
    g = torch.Generator().manual_seed(7)
    v = F.normalize(torch.randn(N_STORE + 2, 10, generator=g), dim=1)
    v[:2] = 0
    return v


def make_batch(sizes: FeatureSizes, seed: int, b: int = B) -> dict[str, torch.Tensor]:
    """A random feature batch following base.py's contract; row 0 has no history at all."""
    g = torch.Generator().manual_seed(seed)

    def items(*shape):
        return torch.stack([torch.randint(2, sizes.item_fields[f], shape, generator=g)
                            for f in ITEM_FIELDS], dim=-1)

    def lengths(n):
        out = torch.randint(1, n + 1, (b,), generator=g)
        out[0] = 0
        return torch.arange(n)[None, :] < out[:, None]

    hm, mm, cm = lengths(L), lengths(T), lengths(T)
    return dict(
        user=torch.randint(2, sizes.users, (b,), generator=g),
        user_profile=torch.stack([torch.randint(2, v, (b,), generator=g)
                                  for v in sizes.profile_fields.values()], dim=1),
        trigger=items(b), target=items(b),
        hist=items(b, L) * hm[..., None], hist_mask=hm,
        hist_dt=torch.randint(1, sizes.max_dt + 2, (b, L), generator=g) * hm,
        mm_seq=items(b, T) * mm[..., None], mm_mask=mm,
        cat_seq=items(b, T) * cm[..., None], cat_mask=cm,
        page=torch.randint(1, sizes.max_page + 1, (b,), generator=g),
        tt_sim=torch.rand(b, generator=g) * 2 - 1,
        trigger_vec=torch.randint(2, N_STORE + 2, (b,), generator=g),
        target_vec=torch.randint(2, N_STORE + 2, (b,), generator=g),
        hist_vec=torch.randint(2, N_STORE + 2, (b, L), generator=g) * hm,
        mm_vec=torch.randint(2, N_STORE + 2, (b, T), generator=g) * mm,
        past_intent=F.normalize(torch.rand(b, N_LEVELS, generator=g), p=1, dim=1),
        past_count=torch.randint(0, 4, (b,), generator=g).float())


def scramble_padding(batch: dict[str, torch.Tensor], sizes: FeatureSizes, seed: int):
    """Same batch with random real-looking items (and times) at every padded position."""
    g = torch.Generator().manual_seed(seed)
    out = dict(batch)
    for seq, mask in (("hist", "hist_mask"), ("mm_seq", "mm_mask"), ("cat_seq", "cat_mask")):
        noise = torch.stack([torch.randint(2, sizes.item_fields[f], batch[mask].shape, generator=g)
                             for f in ITEM_FIELDS], dim=-1)
        out[seq] = torch.where(batch[mask][..., None], batch[seq], noise)
    dt = torch.randint(1, sizes.max_dt + 2, batch["hist_dt"].shape, generator=g)
    out["hist_dt"] = torch.where(batch["hist_mask"], batch["hist_dt"], dt)
    for key, mask in (("mm_vec", "mm_mask"), ("hist_vec", "hist_mask")):
        vec = torch.randint(2, N_STORE + 2, batch[key].shape, generator=g)
        out[key] = torch.where(batch[mask], batch[key], vec)
    return out


@pytest.fixture(scope="session")
def batch(sizes):
    return make_batch(sizes, seed=0)


def build(name, sizes, frozen, ablation=None, seed=0, **overrides):
    torch.manual_seed(seed)
    config = config_of(name, ablation, only_known=True, **{**SMALL, **overrides})
    return build_model(config, sizes, frozen)


def assert_same_output(a: ModelOutput, b: ModelOutput) -> None:
    """Equal logits and (where there is one) equal intent predictions, up to float rounding."""
    torch.testing.assert_close(a.logit, b.logit, atol=1e-6, rtol=1e-5)
    if a.intent_pred is not None:
        torch.testing.assert_close(a.intent_pred, b.intent_pred, atol=1e-6, rtol=1e-5)


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------------------------
# Shapes and the feature contract


@pytest.mark.parametrize("name,ablation", VARIANTS)
def test_every_variant_builds_and_runs(name, ablation, sizes, frozen, batch):
    model = build(name, sizes, frozen, ablation)
    out = model(batch)
    assert isinstance(out, ModelOutput)
    assert out.logit.shape == (B,) and torch.isfinite(out.logit).all()
    if name == "daian" and ablation != "no-uim":
        assert out.intent_pred.shape == (B, N_LEVELS)
    else:
        assert out.intent_pred is None


class RecordingDict(dict):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.read = set()

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)


@pytest.mark.parametrize("name", list(MODELS))
def test_models_read_only_feature_keys(name, sizes, frozen, batch):
    features = RecordingDict(batch)
    build(name, sizes, frozen)(features)
    assert features.read <= FEATURE_KEYS


def test_paper_default_sizes(sizes, frozen):
    assert config_of("din").mlp_hidden == (512, 256, 128)
    assert config_of("daian").attention_dim == 128 and config_of("daian").heads == 4
    dei2n = config_of("dei2n")
    assert dei2n.mlp_hidden == (200, 80) and dei2n.heads == 2 and dei2n.dropout == 0.1
    assert config_of("din", mlp_hidden=(64,)).mlp_hidden == (64,)
    model = build_model(config_of("din"), sizes, frozen)
    assert [lin.out_features for lin in model.mlp.linears] == [512, 256, 128]


def test_daian_intent_pred_is_a_distribution(sizes, frozen, batch):
    model = build("daian", sizes, frozen).eval()
    out = model(batch)
    p = out.intent_pred.detach().numpy()
    assert (p > 0).all()
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-6)
    torch.testing.assert_close(model.predict_intent(batch), out.intent_pred)
    with pytest.raises(ValueError, match="no-uim"):
        build("daian", sizes, frozen, "no-uim").predict_intent(batch)


# ---------------------------------------------------------------------------------------------
# Padding invariance


@pytest.mark.parametrize("name,ablation", VARIANTS)
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_padding_invariance(name, ablation, mode, sizes, frozen, batch):
    model = build(name, sizes, frozen, ablation)
    model.train(mode == "train")
    scrambled = scramble_padding(batch, sizes, seed=1)
    assert not torch.equal(scrambled["hist"], batch["hist"])
    a, b = model(batch), model(scrambled)
    assert_same_output(a, b)


@pytest.mark.parametrize("name", list(MODELS))
def test_padding_width_invariance(name, sizes, frozen, batch):
    """Batches are padded to their own longest sequence: extra padded columns change nothing."""
    model = build(name, sizes, frozen).train()
    wide = dict(batch)
    for key, extra in (("hist", 3), ("mm_seq", 2), ("cat_seq", 2)):
        pad = torch.zeros(B, extra, len(ITEM_FIELDS), dtype=torch.long)
        wide[key] = torch.cat([batch[key], pad], dim=1)
    for key, extra in (("hist_mask", 3), ("hist_vec", 3), ("mm_mask", 2), ("mm_vec", 2), ("cat_mask", 2),
                       ("hist_dt", 3)):
        wide[key] = torch.cat([batch[key], torch.zeros(B, extra, dtype=batch[key].dtype)], dim=1)
    a, b = model(batch), model(wide)
    assert_same_output(a, b)


@pytest.mark.parametrize("name", list(MODELS))
def test_degenerate_training_batches(name, sizes, frozen, batch):
    """A batch of one row, and a batch whose histories are all empty, train without error."""
    model = build(name, sizes, frozen).train()
    one = {k: v[1:2] for k, v in batch.items()}
    # Row 0 of the fixture has no history and no subsequences.
    empty = {k: v[:1].expand(3, *v.shape[1:]).clone() for k, v in batch.items()}
    for features in (one, empty):
        out = model(features)
        assert torch.isfinite(out.logit).all()
        out.logit.sum().backward()


def test_real_positions_do_matter(sizes, frozen, batch):
    """The converse of padding invariance: changing a real history item changes the score."""
    for name in MODELS:
        # PReLU head: a small ReLU head at init can be dead on a row, hiding any change.
        model = build(name, sizes, frozen, mlp_activation="prelu").eval()
        changed = dict(batch)
        changed["hist"] = batch["hist"].clone()
        changed["hist"][1, 0] = torch.where(batch["hist"][1, 0] == 2, 3, 2)  # every field differs
        assert batch["hist_mask"][1, 0]
        assert (model(batch).logit[1] - model(changed).logit[1]).abs() > 1e-6


# ---------------------------------------------------------------------------------------------
# Intent override


def test_intent_override_changes_daian_not_din_or_dei2n(sizes, frozen, batch):
    g = torch.Generator().manual_seed(3)
    override = torch.softmax(torch.randn(B, N_LEVELS, generator=g) * 3, dim=1)
    daian = build("daian", sizes, frozen).eval()
    base, over = daian(batch), daian(batch, intent_override=override)
    assert not torch.allclose(base.logit, over.logit)
    torch.testing.assert_close(base.intent_pred, over.intent_pred)  # always UIM's own prediction
    for name in ("din", "dei2n"):
        model = build(name, sizes, frozen).eval()
        torch.testing.assert_close(model(batch).logit, model(batch, intent_override=override).logit)


def test_intent_override_zero_rows_fall_back_to_prediction(sizes, frozen, batch):
    daian = build("daian", sizes, frozen).eval()
    base = daian(batch)
    override = torch.zeros(B, N_LEVELS)
    override[::2, 0] = 1.0  # even rows have a label, odd rows have none
    out = daian(batch, intent_override=override)
    torch.testing.assert_close(out.logit[1::2], base.logit[1::2])
    assert not torch.allclose(out.logit[::2], base.logit[::2])
    with pytest.raises(ValueError, match="shape"):
        daian(batch, intent_override=torch.zeros(B, N_LEVELS + 1))


def test_intent_override_gives_uim_no_gradient(sizes, frozen, batch):
    daian = build("daian", sizes, frozen).train()
    override = torch.zeros(B, N_LEVELS)
    override[::2, 1] = 1.0
    daian(batch, intent_override=override).logit.sum().backward()
    assert all(p.grad is None for p in daian.uim_parameters())
    assert all(p.grad is not None for p in daian.die_parameters())


# ---------------------------------------------------------------------------------------------
# Ablations and configuration


@pytest.mark.parametrize("name", ["dei2n", "daian"])
def test_ablations_remove_parameters(name, sizes, frozen):
    full = n_params(build(name, sizes, frozen))
    for ablation in registry.get(name).config.ablations:
        count = n_params(build(name, sizes, frozen, ablation))
        if ablation == "no-three-stage":
            assert count == full  # changes training only
        else:
            assert count < full, ablation


def test_daian_ablations_drop_their_modules(sizes, frozen):
    full = build("daian", sizes, frozen)
    assert full.uim is not None and full.die is not None and full.sein.ia2n is not None
    assert build("daian", sizes, frozen, "no-uim").uim is None
    no_die = build("daian", sizes, frozen, "no-die")
    assert no_die.die is None and no_die.sein.ia2n is None  # nothing left to shift
    no_sein = build("daian", sizes, frozen, "no-sein")
    assert no_sein.sein is None and no_sein.die is not None
    names = {n.split(".")[0] for n, _ in no_sein.named_parameters()}
    assert names == {"items", "users", "page", "attention", "uim", "die", "mlp"}


def test_unknown_ablation_lists_valid_ones():
    with pytest.raises(ValueError, match="no-uim.*no-die.*no-sein.*no-three-stage"):
        config_of("daian", ablation="no-such")
    with pytest.raises(ValueError, match="no-ui2m"):
        config_of("dei2n", ablation="no-uim")
    with pytest.raises(ValueError, match="no ablations"):
        config_of("din", ablation="no-uim")
    with pytest.raises(ValueError, match="unknown model"):
        registry.get("dien")
    assert config_of("din", ablation="none").ablation is None


@pytest.mark.parametrize("bad,match", [
    (dict(heads=3), "divisible"), (dict(dropout=1.0), "dropout"),
    (dict(mlp_activation="gelu"), "mlp_activation"), (dict(mlp_hidden=()), "mlp_hidden"),
    (dict(item_dims={"item": 4}), "item_dims"), (dict(sim_range=(1.0, 0.0)), "sim_range"),
    (dict(levels=1), "levels"), (dict(mm_dim=3), "item width")])
def test_config_validation(bad, match):
    with pytest.raises(ValueError, match=match):
        config_of("daian", **bad)


def test_config_json_round_trip():
    config = config_of("dei2n", ablation="no-tim", mlp_hidden=(32, 16))
    data = json.loads(json.dumps(config.to_dict()))
    assert data["name"] == "dei2n" and registry.config_from_dict(data) == config
    with pytest.raises(ValueError, match="unknown DEI2NConfig keys"):
        registry.config_from_dict({**data, "layers": 3})
    # a first-format checkpoint stored every model's fields in one config: those are dropped there only
    legacy = {**data, "uim_hidden": [16], "levels": 6}
    assert registry.config_from_dict(legacy, drop_unknown=True) == config
    with pytest.raises(ValueError, match="cannot build"):
        DAIANConfig.from_dict(data)


def test_config_saved_before_a_field_keeps_the_old_behaviour():
    # DAIAN now defaults to pre-LN, to UIM seeing the history's spread and the user's earlier
    # requests, and to the intent at the pair's level; a checkpoint written before those fields
    # existed was post-LN, without any of them.
    new = config_of("daian")
    assert new.mhsa_norm == "pre" and new.uim_spread and new.uim_past and new.intent_level == "both"
    data = new.to_dict()
    del data["mhsa_norm"], data["uim_spread"], data["uim_past"], data["intent_level"], data["level_edges"]
    assert DAIANConfig.from_dict(data).level_edges is None  # equal width over sim_range
    assert DAIANConfig.from_dict(data).intent_level == "none"
    assert DAIANConfig.from_dict(data).mhsa_norm == "post"
    assert DAIANConfig.from_dict(data).uim_spread is False
    assert DAIANConfig.from_dict(data).uim_past is False
    assert DAIANConfig.from_dict({**data, "mhsa_norm": "pre"}).mhsa_norm == "pre"
    with pytest.raises(ValueError, match="mhsa_norm must be one of"):
        config_of("daian", mhsa_norm="sandwich")
    with pytest.raises(ValueError, match="intent_level must be one of"):
        config_of("daian", intent_level="mlp")


def test_build_model_checks_sizes(sizes, frozen):
    with pytest.raises(ValueError, match="levels"):
        build_model(config_of("daian", levels=4), sizes, frozen)
    with pytest.raises(ValueError, match=r"store rows \+ 2, d"):
        build_model(config_of("daian"), sizes, frozen[0])
    with pytest.raises(ValueError, match="frozen item vectors"):
        build_model(config_of("daian"), sizes, None)
    build_model(config_of("daian", mm_dim=0, uim_spread=False), sizes, None)  # no store use: allowed


# ---------------------------------------------------------------------------------------------
# Gradients, stop-gradients, frozen vectors


@pytest.mark.parametrize("name", list(MODELS))
def test_gradient_reaches_every_parameter(name, sizes, frozen, batch):
    model = build(name, sizes, frozen).train()
    model(batch).logit.sum().backward()
    missing = [n for n, p in model.named_parameters()
               if p.requires_grad and (p.grad is None or p.grad.abs().sum() == 0)]
    assert not missing


def test_norm_ratio_fusion_uses_detached_norms():
    g = torch.Generator().manual_seed(0)
    collab = torch.randn(5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    semantic = torch.randn(5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(5, 4, generator=g, dtype=torch.float64)
    out = norm_ratio_fusion(collab, semantic)
    c, s = collab.detach().norm(dim=1, keepdim=True), semantic.detach().norm(dim=1, keepdim=True)
    a = c / (c + s)
    torch.testing.assert_close(out, a * collab + (1 - a) * semantic)
    (out * upstream).sum().backward()
    # With the norms under stop-gradient the fusion is linear in its inputs for fixed weights.
    torch.testing.assert_close(collab.grad, a * upstream)
    torch.testing.assert_close(semantic.grad, (1 - a) * upstream)
    # Cold (small) collaborative embeddings lean on the semantic part.
    w = norm_ratio_fusion(1e-3 * collab.detach(), semantic.detach())
    assert torch.allclose(w, semantic.detach(), atol=1e-2)


def test_ia2n_intent_input_is_stop_gradient(sizes, frozen, batch):
    """The shifting unit sends no gradient into the intent-based embedding e_int."""
    model = build("daian", sizes, frozen).eval()
    captured = {}
    model.die.i2e.register_forward_hook(lambda m, i, o: captured.setdefault("e_int", o))
    model.sein.ia2n.shift_gate.register_forward_hook(lambda m, i, o: captured.setdefault("x", i[0]))
    model(batch)
    x, e_int = captured["x"], captured["e_int"]
    s = model.config.sim_dim
    torch.testing.assert_close(x[:, s:s + e_int.shape[1]], e_int.detach())
    grad = torch.autograd.grad(model.sein.ia2n.shift_mlp(x).sum(), e_int, allow_unused=True)[0]
    assert grad is None  # the shift path does not reach e_int


# Level edges as a user may give them to label-intents (not equal width).
UNEVEN = (-0.9, -0.6, -0.1, 0.05, 0.3, 0.45, 0.95)


def expected_intent_at_level(p: torch.Tensor, tt_sim: torch.Tensor, edges, n: int) -> np.ndarray:
    """log(n p[level]) with the level from numpy's own binning of the cosine by the edges."""
    edges = np.asarray(edges, dtype=np.float64)
    level = np.clip(np.digitize(tt_sim.double().numpy(), edges[1:-1]), 0, n - 1)
    at = p.detach().double().numpy()[np.arange(len(level)), level]
    return np.log(n * np.maximum(at, 1e-4))


@pytest.mark.parametrize("level_edges", [None, UNEVEN])
@pytest.mark.parametrize("place", ["shift", "head", "both", "none"])
def test_intent_at_the_pairs_level_enters_where_configured(sizes, frozen, batch, place, level_edges):
    """intent_level puts log(n p[level(tt_sim)]) at the end of the IA2N input and/or before
    [e_exp', e_imp'] in the head input, nowhere else; p is UIM's prediction, or the stage-2
    override where a row has one."""
    model = build("daian", sizes, frozen, intent_level=place, level_edges=level_edges).eval()
    plain = build("daian", sizes, frozen, intent_level="none")
    a = model.config.attention_dim
    captured = {}
    model.sein.ia2n.shift_gate.register_forward_hook(lambda m, i, o: captured.__setitem__("x", i[0]))
    model.mlp.register_forward_hook(lambda m, i, o: captured.__setitem__("head", i[0]))
    override = F.normalize(torch.rand(B, N_LEVELS, generator=torch.Generator().manual_seed(3)), p=1, dim=1)
    override[::2] = 0  # unlabelled rows fall back to p_hat
    for given in (None, override):
        out = model(batch, intent_override=given)
        p = out.intent_pred if given is None else torch.where(
            given.sum(1, keepdim=True) > 0, given, out.intent_pred)
        edges = level_edges or np.linspace(*model.config.sim_range, N_LEVELS + 1)  # None: equal width
        want = expected_intent_at_level(p, batch["tt_sim"], edges, N_LEVELS)
        x, head = captured["x"], captured["head"]
        in_shift, in_head = place in ("shift", "both"), place in ("head", "both")
        assert x.shape[1] == plain.sein.ia2n.shift_gate.fc1.in_features + in_shift
        assert head.shape[1] == model.mlp.linears[0].in_features == plain.mlp.linears[0].in_features + in_head
        if in_shift:
            np.testing.assert_allclose(x[:, -1].detach().double().numpy(), want, rtol=1e-5, atol=1e-5)
        if in_head:
            np.testing.assert_allclose(head[:, -2 * a - 1].detach().double().numpy(), want,
                                       rtol=1e-5, atol=1e-5)
    # the IA2N input is detached (as sg(e_int) is); the head's copy trains UIM in stage 3
    out = model(batch)
    if in_shift:
        grad = torch.autograd.grad(captured["x"][:, -1].sum(), out.intent_pred, allow_unused=True)[0]
        assert grad is None
    if in_head:
        grad = torch.autograd.grad(captured["head"][:, -2 * a - 1].sum(), out.intent_pred)[0]
        assert grad.abs().sum() > 0


def test_intent_at_level_only_with_uim_die_and_sein(sizes, frozen):
    """Each ablation builds the same network whatever intent_level says (nothing to read or feed)."""
    for ablation in ("no-uim", "no-die", "no-sein"):
        a = build("daian", sizes, frozen, ablation=ablation, intent_level="both")
        b = build("daian", sizes, frozen, ablation=ablation, intent_level="none")
        assert n_params(a) == n_params(b)


def test_frozen_vectors_get_no_gradient_and_do_not_change(sizes, frozen, batch):
    model = build("daian", sizes, frozen).train()
    before = model.frozen_vectors.clone()
    assert not model.frozen_vectors.requires_grad
    assert all(p is not model.frozen_vectors for p in model.parameters())
    assert "frozen_vectors" not in model.state_dict()  # the store is the source of truth
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    labels = torch.arange(B, dtype=torch.float32) % 2
    for _ in range(3):
        opt.zero_grad()
        F.binary_cross_entropy_with_logits(model(batch).logit, labels).backward()
        opt.step()
    assert torch.equal(model.frozen_vectors, before)
    torch.testing.assert_close(model.frozen_vectors, frozen)


def test_frozen_vectors_enter_daian(sizes, frozen, batch):
    model = build("daian", sizes, frozen).eval()
    other = build_model(model.config, sizes, frozen.flip(0))
    other.load_state_dict(model.state_dict())
    other.eval()
    assert not torch.allclose(model(batch).logit, other(batch).logit)


# ---------------------------------------------------------------------------------------------
# Three-stage parameter groups


def test_daian_stage_parameters(sizes, frozen):
    model = build("daian", sizes, frozen)
    ids = lambda ps: {id(p) for p in ps}  # noqa: E731
    uim, die = ids(model.uim_parameters()), ids(model.die_parameters())
    every = ids(model.parameters())
    assert uim == ids(model.uim.parameters()) and uim and die
    assert not uim & die and die < every
    assert ids(model.stage_parameters(1)["uim"]) == uim
    assert set(model.stage_parameters(1)) == {"uim"}
    tables = ids(model.items.parameters()) | ids(model.users.parameters()) | ids(model.page.parameters())
    assert ids(model.stage_parameters(2)["ctr"]) == every - uim - tables  # ids wait for stage 3
    assert die <= every - uim - tables
    both = build("daian", sizes, frozen, stage2_embeddings=True)
    assert ids(both.stage_parameters(2)["ctr"]) == ids(both.parameters()) - ids(both.uim_parameters())
    stage3 = model.stage_parameters(3)
    assert ids(stage3["uim"]) == uim and ids(stage3["ctr"]) == every - uim
    no_uim = build("daian", sizes, frozen, "no-uim")
    assert no_uim.stage_parameters(1) == {} and no_uim.uim_parameters() == []
    with pytest.raises(ValueError, match="stages"):
        model.stage_parameters(4)


def test_uim_learns_intent_under_kl(sizes, frozen, batch):
    """Stage 1 in miniature: UIM alone, KL(p || p_hat) on a fixed batch, drops markedly."""
    model = build("daian", sizes, frozen).train()
    g = torch.Generator().manual_seed(4)
    p = torch.softmax(torch.randn(B, N_LEVELS, generator=g) * 2, dim=1)
    opt = torch.optim.Adam(model.stage_parameters(1)["uim"], lr=1e-2)
    losses = []
    for _ in range(60):
        opt.zero_grad()
        p_hat = model(batch).intent_pred
        loss = F.kl_div(p_hat.log(), p, reduction="batchmean")
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]


# ---------------------------------------------------------------------------------------------
# Time buckets (DEI2N)


def test_time_buckets_match_numpy():
    dt = torch.tensor([[0, 1, 2, 3, 4, 7, 8, 100, 3001]])
    size = time_buckets(3000, 2)
    assert size == 2 + math.floor(2 * np.log2(3001))
    ref = np.where(dt.numpy() > 0, 1 + np.floor(2 * np.log2(np.maximum(dt.numpy(), 1))), 0)
    np.testing.assert_array_equal(bucketise_dt(dt, 2, size).numpy(), ref)
    assert bucketise_dt(dt, 2, size).max() < size
    assert time_buckets(3000, 0) == 3002
    np.testing.assert_array_equal(bucketise_dt(dt, 0, 3002).numpy(), dt.numpy())


# ---------------------------------------------------------------------------------------------
# Sanity: every full model overfits a tiny batch


@pytest.mark.parametrize("name", list(MODELS))
def test_overfits_tiny_batch(name, sizes, frozen):
    feats = make_batch(sizes, seed=11, b=32)
    labels = (torch.arange(32) % 3 == 0).float()
    model = build(name, sizes, frozen, seed=1).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(50):
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(model(feats).logit, labels)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses[::10]


@pytest.mark.parametrize("edges", [np.linspace(-0.5, 0.8, N_LEVELS + 1), np.asarray(UNEVEN)])
def test_history_spread_matches_numpy(sizes, frozen, batch, edges):
    """UIM's spread input: level shares of cos(history, trigger) over the labels' levels (equal
    width or not), and the norm of the mean history vector, items without a store vector (rows 0,
    1) left out."""
    hist_vec = batch["hist_vec"].clone()
    r = int(torch.nonzero(batch["hist_mask"].sum(1) >= 2)[0])
    hist_vec[r, 0] = 1  # an item absent from the store
    scrambled = torch.where(batch["hist_mask"], hist_vec, 5)  # real-looking rows under the padding
    got = history_spread(frozen, batch["trigger_vec"], scrambled, batch["hist_mask"], edges).numpy()
    v = frozen.numpy().astype(np.float64)
    for b in range(B):
        rows = [r for r in hist_vec[b].tolist() if r > 1]
        want = np.zeros(N_LEVELS + 1)
        if rows:
            sims = v[rows] @ v[int(batch["trigger_vec"][b])]
            levels = np.clip(np.searchsorted(edges, sims, side="right") - 1, 0, N_LEVELS - 1)
            want[:N_LEVELS] = np.bincount(levels, minlength=N_LEVELS) / len(rows)
            want[N_LEVELS] = np.linalg.norm(v[rows].mean(axis=0))
        np.testing.assert_allclose(got[b], want, atol=1e-5)
    assert got[0].sum() == 0  # row 0 has no history
    assert np.isclose(got[r, :N_LEVELS].sum(), 1.0)


def test_uim_spread_switch(sizes, frozen, batch):
    """UIM reads the history's store vectors only with uim_spread (the default)."""
    changed = dict(batch, hist_vec=(batch["hist_vec"] % N_STORE + 2) * batch["hist_mask"])
    spread = build("daian", sizes, frozen).eval()
    assert not torch.allclose(spread.predict_intent(batch), spread.predict_intent(changed))
    plain = build("daian", sizes, frozen, uim_spread=False).eval()
    torch.testing.assert_close(plain.predict_intent(batch), plain.predict_intent(changed))
    assert n_params(spread) == n_params(plain) + (N_LEVELS + 1) * SMALL["uim_hidden"][0]
    with pytest.raises(ValueError, match="frozen item vectors"):
        build_model(config_of("daian", only_known=True, **{**SMALL, "mm_dim": 0}), sizes, None)
    build_model(config_of("daian", only_known=True, **{**SMALL, "mm_dim": 0, "uim_spread": False}), sizes, None)


def test_uim_past_switch(sizes, frozen, batch):
    """UIM reads the user's earlier requests' intent only with uim_past."""
    changed = dict(batch, past_intent=batch["past_intent"].flip(0), past_count=batch["past_count"] + 2)
    past = build("daian", sizes, frozen).eval()
    assert not torch.allclose(past.predict_intent(batch), past.predict_intent(changed))
    plain = build("daian", sizes, frozen, uim_past=False).eval()
    torch.testing.assert_close(plain.predict_intent(batch), plain.predict_intent(changed))
    assert n_params(past) == n_params(plain) + (N_LEVELS + 1) * SMALL["uim_hidden"][0]


def test_uim_ids_switch(sizes, frozen, batch):
    """By default UIM sees no ids (a new trigger id leaves p_hat alone); uim_ids=True sees them."""
    changed = dict(batch)
    changed["trigger"] = batch["trigger"].clone()
    changed["trigger"][:, 0] = torch.where(batch["trigger"][:, 0] == 2, 3, 2)
    without = build("daian", sizes, frozen).eval()
    torch.testing.assert_close(without.predict_intent(batch), without.predict_intent(changed))
    with_ids = build("daian", sizes, frozen, uim_ids=True).eval()
    assert n_params(with_ids) > n_params(without)
    assert not torch.allclose(with_ids.predict_intent(batch), with_ids.predict_intent(changed))


def test_first_format_parameter_names_still_load(sizes, frozen, batch):
    """Checkpoints written before DAIAN's modules were grouped name the parameters flat (`i2e.`,
    `shift_mlp.`, ...); they load into today's modules and score the same."""
    model = build("daian", sizes, frozen, seed=1).eval()
    flat = {}
    for key, value in model.state_dict().items():
        for prefix in ("die.", "sein.hse.", "sein.ia2n."):
            if key.startswith(prefix):
                key = key[len(prefix):]
                break
        flat[key] = value
    assert {k.split(".")[0] for k in flat} >= {"i2e", "implicit", "mm_proj", "explicit_mhsa", "explicit",
                                             "sim_embedding", "collab_proj", "shift_gate", "shift_mlp"}
    fresh = build("daian", sizes, frozen, seed=2).eval()
    assert not torch.equal(fresh.mlp.out.weight, model.mlp.out.weight)
    fresh.load_state_dict(flat)  # strict: every name found
    assert_same_output(model(batch), fresh(batch))
