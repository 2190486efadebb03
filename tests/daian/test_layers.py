"""Generic layers of `daian.layers` against hand-written numpy references."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from daian.layers import (MLP, Dice, GateNU, ItemEmbedding, MultiHeadSelfAttention,
                          MultiHeadTargetAttention, PReLU, TargetAttention, UserEmbedding,
                          make_activation, masked_mean, masked_softmax, masked_sum)

B, L, D = 8, 7, 6
FIELDS = ("item", "category", "top_category", "brand", "price_bucket")


@pytest.fixture(scope="module")
def seq():
    """Random (B, L, D) sequence, a query, and a mask with one all-padding row and one full row."""
    g = torch.Generator().manual_seed(0)
    keys = torch.randn(B, L, D, generator=g, dtype=torch.float64)
    query = torch.randn(B, D, generator=g, dtype=torch.float64)
    lengths = torch.tensor([0, L, 3, 1, 5, 2, 6, 4])
    mask = torch.arange(L)[None, :] < lengths[:, None]
    return query, keys, mask


def np_(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy()


def np_softmax_masked(s: np.ndarray, m: np.ndarray) -> np.ndarray:
    out = np.zeros_like(s)
    for i in range(s.shape[0]):
        if m[i].any():
            e = np.exp(s[i][m[i]] - s[i][m[i]].max())
            out[i][m[i]] = e / e.sum()
    return out


def np_prelu(x: np.ndarray, a: np.ndarray) -> np.ndarray:
    return np.where(x >= 0, x, a * x)


# ---------------------------------------------------------------------------------------------


def test_masked_softmax_matches_reference_and_is_safe_on_padding_rows(seq):
    _, keys, mask = seq
    scores = keys[..., 0].clone().requires_grad_(True)
    w = masked_softmax(scores, mask)
    assert w.shape == (B, L)
    np.testing.assert_allclose(np_(w), np_softmax_masked(np_(scores), mask.numpy()), atol=1e-12)
    assert torch.isfinite(w).all()
    assert (w[0] == 0).all()  # all-padding row: zero weights, no NaN
    assert (w[~mask] == 0).all()
    w.sum().backward()
    assert torch.isfinite(scores.grad).all()


def test_masked_softmax_all_padding_batch_has_no_nan():
    w = masked_softmax(torch.randn(3, 4), torch.zeros(3, 4, dtype=torch.bool))
    assert torch.equal(w, torch.zeros(3, 4))


def test_masked_pooling(seq):
    _, keys, mask = seq
    m = mask.numpy()[..., None]
    ref_sum = (np_(keys) * m).sum(1)
    ref_mean = ref_sum / np.maximum(m.sum(1), 1)
    np.testing.assert_allclose(np_(masked_sum(keys, mask)), ref_sum, atol=1e-12)
    np.testing.assert_allclose(np_(masked_mean(keys, mask)), ref_mean, atol=1e-12)
    assert masked_sum(keys, mask).shape == (B, D)


def test_prelu_matches_formula_on_2d_and_3d(seq):
    _, keys, _ = seq
    act = PReLU(D).double()
    with torch.no_grad():
        act.alpha.copy_(torch.linspace(-0.5, 0.5, D))
    a = act.alpha.detach().numpy()
    np.testing.assert_allclose(np_(act(keys)), np_prelu(np_(keys), a), atol=1e-12)
    np.testing.assert_allclose(np_(act(keys[:, 0])), np_prelu(np_(keys[:, 0]), a), atol=1e-12)


def test_dice_training_uses_masked_batch_statistics(seq):
    _, keys, mask = seq
    dice = Dice(D).double().train()
    with torch.no_grad():
        dice.alpha.copy_(torch.linspace(-1, 1, D))
    out = dice(keys, mask)
    x, m = np_(keys), mask.numpy()
    real = x[m]  # (N, D)
    mean, var = real.mean(0), real.var(0)
    p = 1 / (1 + np.exp(-(x - mean) / np.sqrt(var + dice.eps)))
    a = dice.alpha.detach().numpy()
    np.testing.assert_allclose(np_(out), p * x + (1 - p) * a * x, atol=1e-10)
    # Running averages moved toward the masked statistics (unbiased variance, as batch norm).
    np.testing.assert_allclose(dice.running_mean.numpy(), 0.1 * mean, atol=1e-10)
    n = real.shape[0]
    np.testing.assert_allclose(dice.running_var.numpy(), 0.9 + 0.1 * var * n / (n - 1), atol=1e-10)
    # Padded values do not move the statistics.
    noisy = keys.clone()
    noisy[~mask] = 1e3
    torch.testing.assert_close(Dice(D).double().train()(noisy, mask)[mask],
                               Dice(D).double().train()(keys, mask)[mask])


def test_dice_unmasked_matches_batch_norm_statistics_and_eval_uses_running(seq):
    _, keys, _ = seq
    x2 = keys.reshape(-1, D)
    dice = Dice(D).double().train()
    out = dice(x2)
    x = np_(x2)
    p = 1 / (1 + np.exp(-(x - x.mean(0)) / np.sqrt(x.var(0) + dice.eps)))
    np.testing.assert_allclose(np_(out), p * x, atol=1e-10)  # alpha starts at 0
    dice.eval()
    rm, rv = dice.running_mean.numpy(), dice.running_var.numpy()
    p = 1 / (1 + np.exp(-(x - rm) / np.sqrt(rv + dice.eps)))
    np.testing.assert_allclose(np_(dice(x2)), p * x, atol=1e-10)


def test_make_activation_rejects_unknown():
    with pytest.raises(ValueError, match="valid"):
        make_activation("gelu", 4)


def test_mlp_shapes_and_reference():
    torch.manual_seed(0)
    mlp = MLP(5, (4, 3), "prelu", 0.0, out_dim=2).double()
    x = torch.randn(8, 5, dtype=torch.float64)
    assert mlp(x).shape == (8, 2)
    assert MLP(5, (4, 3)).out_dim == 3 and MLP(5, (4,), out_dim=1)(x.float()).shape == (8, 1)
    h = np_(x)
    for lin, act in zip(mlp.linears, mlp.acts):
        h = np_prelu(h @ np_(lin.weight).T + np_(lin.bias), np_(act.alpha))
    ref = h @ np_(mlp.out.weight).T + np_(mlp.out.bias)
    np.testing.assert_allclose(np_(mlp(x)), ref, atol=1e-12)


def test_gate_nu_matches_formula():
    torch.manual_seed(1)
    gate = GateNU(5, 3, hidden=4, gamma=2.0).double()
    x = torch.randn(8, 5, dtype=torch.float64)
    h = np.maximum(np_(x) @ np_(gate.fc1.weight).T + np_(gate.fc1.bias), 0)
    ref = 2.0 / (1 + np.exp(-(h @ np_(gate.fc2.weight).T + np_(gate.fc2.bias))))
    out = gate(x)
    assert out.shape == (8, 3)
    np.testing.assert_allclose(np_(out), ref, atol=1e-12)
    assert ((out > 0) & (out < 2)).all()


def test_item_embedding_shapes_padding_and_embed_many():
    vocab = {"item": 30, "category": 7, "top_category": 4, "brand": 9, "price_bucket": 5}
    dims = {"item": 4, "category": 3, "top_category": 2, "brand": 2, "price_bucket": 1}
    emb = ItemEmbedding(FIELDS, vocab, dims, std=0.1)
    assert emb.dim == 12 and emb.id_dim == 4
    g = torch.Generator().manual_seed(0)
    idx = torch.stack([torch.randint(0, vocab[f], (B, L), generator=g) for f in FIELDS], -1)
    out = emb(idx)
    assert out.shape == (B, L, 12)
    ref = np.concatenate([np_(t.weight)[idx[..., i].numpy()] for i, t in enumerate(emb.tables)], -1)
    np.testing.assert_allclose(np_(out), ref, atol=0)
    assert (emb(torch.zeros(2, 5, dtype=torch.long)) == 0).all()  # padding rows are zero
    out.sum().backward()
    assert all((t.weight.grad[0] == 0).all() for t in emb.tables)  # and get no gradient
    a, b = emb.embed_many(idx[:, 0], idx)
    torch.testing.assert_close(a, emb(idx[:, 0]))
    torch.testing.assert_close(b, emb(idx))
    with pytest.raises(ValueError, match="5 fields"):
        emb(idx[..., :3])


def test_user_embedding_shape():
    emb = UserEmbedding(20, [3, 4], user_dim=5, profile_dim=2)
    out = emb(torch.tensor([2, 3]), torch.tensor([[1, 2], [2, 3]]))
    assert out.shape == (2, 9) and emb.dim == 9
    torch.testing.assert_close(out[:, :5], emb.user.weight[[2, 3]])
    torch.testing.assert_close(out[:, 7:], emb.profile[1].weight[[2, 3]])


# ---------------------------------------------------------------------------------------------
# Attention


def din_reference(att: TargetAttention, q, k, mask, values, context=None) -> np.ndarray:
    """DIN activation unit by hand: MLP on the explicit concatenation [q, k, q-k, q*k (, c)]."""
    qn, kn, m = np_(q), np_(k), mask.numpy()
    qb = np.broadcast_to(qn[:, None, :], kn.shape)
    parts = [qb, kn, qb - kn, qb * kn] + ([np_(context)] if context is not None else [])
    h = np.concatenate(parts, -1) @ np_(att.first.weight).T + np_(att.first.bias)
    h = np_prelu(h, np_(att.first_act.alpha))
    for lin, act in zip(att.rest.linears, att.rest.acts):
        h = np_prelu(h @ np_(lin.weight).T + np_(lin.bias), np_(act.alpha))
    bias = np_(att.rest.out.bias) if att.rest.out.bias is not None else 0.0
    s = (h @ np_(att.rest.out.weight).T + bias)[..., 0]
    w = np_softmax_masked(s, m) if att.softmax else s * m
    return np.einsum("bl,bld->bd", w, np_(values))


@pytest.mark.parametrize("softmax", [False, True])
def test_target_attention_matches_hand_reference(seq, softmax):
    query, keys, mask = seq
    torch.manual_seed(2)
    att = TargetAttention(D, (5, 3), "prelu", softmax=softmax).double()
    with torch.no_grad():
        for mod in att.modules():
            if isinstance(mod, PReLU):
                mod.alpha.uniform_(-0.5, 0.5)
    values = torch.randn(B, L, 4, dtype=torch.float64)
    out = att(query, keys, mask, values=values)
    assert out.shape == (B, 4)
    np.testing.assert_allclose(np_(out), din_reference(att, query, keys, mask, values), atol=1e-10)
    assert (out[0] == 0).all()  # all-padding row
    np.testing.assert_allclose(np_(att(query, keys, mask)),
                               din_reference(att, query, keys, mask, keys), atol=1e-10)


def test_target_attention_with_context_matches_reference(seq):
    query, keys, mask = seq
    torch.manual_seed(3)
    att = TargetAttention(D, (4,), "prelu", softmax=True, context_dim=3).double()
    context = torch.randn(B, L, 3, dtype=torch.float64)
    out = att(query, keys, mask, context=context)
    np.testing.assert_allclose(np_(out), din_reference(att, query, keys, mask, keys, context),
                               atol=1e-10)
    with pytest.raises(ValueError, match="context"):
        att(query, keys, mask)


def test_target_attention_dice_ignores_padding_in_training(seq):
    query, keys, mask = seq
    torch.manual_seed(4)
    att = TargetAttention(D, (5,), "dice").double().train()
    out = att(query, keys, mask)
    noisy = keys.clone()
    noisy[~mask] = 100.0
    torch.testing.assert_close(att(query, noisy, mask), out)


def test_multi_head_target_attention_matches_naive(seq):
    query, keys, mask = seq
    torch.manual_seed(5)
    heads, att_dim, qd = 2, 8, 5
    mhta = MultiHeadTargetAttention(qd, D, att_dim, heads).double()
    q_in = torch.randn(B, qd, dtype=torch.float64)
    out = mhta(q_in, keys, mask)
    assert out.shape == (B, att_dim)
    # Naive: project keys and values per head, masked softmax, concat, output projection.
    dh = att_dim // heads
    Q = np_(q_in) @ np_(mhta.q_proj.weight).T + np_(mhta.q_proj.bias)
    K = np_(keys) @ np_(mhta.k_proj.weight).T
    V = np_(keys) @ np_(mhta.v_proj.weight).T
    heads_out = []
    for h in range(heads):
        sl = slice(h * dh, (h + 1) * dh)
        s = np.einsum("bd,bld->bl", Q[:, sl], K[:, :, sl]) / np.sqrt(dh)
        a = np_softmax_masked(s, mask.numpy())
        heads_out.append(np.einsum("bl,bld->bd", a, V[:, :, sl]))
    ref = np.concatenate(heads_out, -1) @ np_(mhta.o_proj.weight).T + np_(mhta.o_proj.bias)
    np.testing.assert_allclose(np_(out), ref, atol=1e-10)
    assert torch.isfinite(out).all()
    np.testing.assert_allclose(np_(out[0]), np_(mhta.o_proj.bias), atol=1e-12)  # empty row


def _np_layer_norm(x, ln):
    y = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + ln.eps)
    return y * np_(ln.weight) + np_(ln.bias)


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_multi_head_self_attention_matches_naive(seq, norm):
    _, keys, mask = seq
    torch.manual_seed(6)
    heads = 2
    mhsa = MultiHeadSelfAttention(D, heads, norm=norm).double().eval()
    with torch.no_grad():  # a non-trivial LayerNorm, so pre and post differ in its parameters too
        mhsa.norm.weight.uniform_(0.5, 1.5)
        mhsa.norm.bias.uniform_(-0.5, 0.5)
    out = mhsa(keys, mask)
    assert out.shape == (B, L, D)
    x, m = np_(keys), mask.numpy()
    h = _np_layer_norm(x, mhsa.norm) if norm == "pre" else x
    qkv = h @ np_(mhsa.qkv.weight).T + np_(mhsa.qkv.bias)
    q, k, v = qkv[..., :D], qkv[..., D:2 * D], qkv[..., 2 * D:]
    dh = D // heads
    att = np.zeros_like(x)
    for b in range(B):
        for h in range(heads):
            sl = slice(h * dh, (h + 1) * dh)
            s = q[b, :, sl] @ k[b, :, sl].T / np.sqrt(dh)  # (L, L)
            a = np_softmax_masked(s, np.broadcast_to(m[b], (L, L)))
            att[b, :, sl] = a @ v[b, :, sl]
    y = x + att @ np_(mhsa.out.weight).T + np_(mhsa.out.bias)
    if norm == "post":
        y = _np_layer_norm(y, mhsa.norm)
    y = y * m[..., None]
    np.testing.assert_allclose(np_(out), y, atol=1e-10)
    assert torch.isfinite(out).all() and (out[0] == 0).all() and (out[~mask] == 0).all()
    # Real positions ignore whatever sits at padded ones.
    noisy = keys.clone()
    noisy[~mask] = 50.0
    torch.testing.assert_close(mhsa(noisy, mask), out)
    out.sum().backward()


def test_attention_dims_must_divide_heads():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadTargetAttention(4, 4, att_dim=10, heads=4)
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadSelfAttention(10, 4)
    with pytest.raises(ValueError, match="norm must be one of"):
        MultiHeadSelfAttention(8, 4, norm="sandwich")


@pytest.mark.parametrize("masked", [False, True])
def test_dice_under_bf16_autocast_keeps_float32_statistics(masked):
    """Under autocast the Linear before Dice gives bf16: Dice standardises and gates in float32
    (as batch norm does) and hands back bf16, close to the float32 result."""
    from daian.layers.mlp import Dice

    torch.manual_seed(0)
    lin, dice = torch.nn.Linear(6, 5), Dice(5)
    with torch.no_grad():
        dice.alpha.uniform_(-0.5, 0.5)
    x = torch.randn(4, 7, 6)
    mask = torch.rand(4, 7) > 0.3 if masked else None
    ref = Dice(5)
    ref.load_state_dict(dice.state_dict())
    expected = ref(lin(x), mask) if masked else ref(lin(x))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = lin(x)
        out = dice(h, mask) if masked else dice(h)
    assert h.dtype == out.dtype == torch.bfloat16
    assert dice.running_mean.dtype == torch.float32
    torch.testing.assert_close(out.float(), expected, atol=0.05, rtol=0.05)
    torch.testing.assert_close(dice.running_mean, ref.running_mean, atol=0.02, rtol=0.02)
