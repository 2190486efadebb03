"""The click model and each request's planted intent distribution.

For user u, request r on page p with trigger tr, and exposed target ta:

    s        = cos(latent[tr], latent[ta]),  l = level(s)                      (latent.py)
    lambda_p = drift_max * (1 - exp(-drift_rate * (p - 1)))                   (intent drifts with the page)
    q_u,p    = (1 - lambda_p) * intent_u + lambda_p * broad_template          (DEI2N: instant interest fades)
    logit    = click_bias
             + w_intent   * log(n * q_u,p[l])                                 (intent over similarity levels)
             + w_affinity * cos(latent[ta], taste_u)                          (long-term interests / history)
             + w_quality  * quality[ta]                                        (item quality)
             + b_u + e_r                                                       (user and request random effects)
    P(click) = sigmoid(logit),  clicked ~ Bernoulli(P(click))

b_u ~ N(0, user_bias_sd^2) per user, e_r ~ N(0, request_sd^2) per request; the Bernoulli draw is the
per-impression logistic noise. n * q is 1 for a uniform profile, so the intent term is 0 there.

Planted intent of a request (truth/requests.parquet): the expected share of its clicks by level given
what was exposed, p_i = sum of P(click) over the request's targets in level i, normalised over i.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import WorldConfig
from .histories import affinity
from .latent import assign_levels
from .users import Users, intent_templates

CHUNK = 1 << 16


@dataclass
class Clicks:
    """Per-impression outcome of the click model (arrays aligned with the flattened impressions)."""

    level: np.ndarray  # (I,) int8 latent similarity level of (trigger, target)
    prob: np.ndarray  # (I,) float32 click probability
    clicked: np.ndarray  # (I,) int8 0/1
    request_effect: np.ndarray  # (R,) float32 per-request random effect e_r


def drift(cfg: WorldConfig, page: np.ndarray) -> np.ndarray:
    """lambda(page): weight of the broad template in the page-drifted intent profile."""
    return cfg.drift_max * (1.0 - np.exp(-cfg.drift_rate * (np.asarray(page, dtype=np.float64) - 1.0)))


def pair_cosine(latent: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.empty(a.shape[0], dtype=np.float32)
    for s in range(0, a.shape[0], CHUNK):
        out[s:s + CHUNK] = np.einsum("pd,pd->p", latent[a[s:s + CHUNK]], latent[b[s:s + CHUNK]])
    return out


def click(cfg: WorldConfig, rng: np.random.Generator, latent: np.ndarray, quality: np.ndarray, users: Users,
          req_index: np.ndarray, req_user: np.ndarray, req_page: np.ndarray, trigger: np.ndarray,
          target: np.ndarray, n_requests: int) -> Clicks:
    """Click outcomes of impressions; req_index maps each impression to its request (0..n_requests-1)."""
    user = req_user[req_index]
    level = assign_levels(cfg, pair_cosine(latent, trigger[req_index], target))
    _, broad_t = intent_templates(cfg)
    lam = drift(cfg, req_page[req_index])
    q = (1.0 - lam) * users.intent[user, level] + lam * broad_t[level]
    request_effect = (cfg.request_sd * rng.standard_normal(n_requests)).astype(np.float32)
    logit = (cfg.click_bias + cfg.w_intent * np.log(cfg.n_levels * q)
             + cfg.w_affinity * affinity(latent, users.taste, user, target)
             + cfg.w_quality * quality[target] + users.bias[user] + request_effect[req_index])
    prob = 1.0 / (1.0 + np.exp(-logit))
    clicked = (rng.random(prob.shape[0]) < prob).astype(np.int8)
    return Clicks(level=level, prob=prob.astype(np.float32), clicked=clicked, request_effect=request_effect)


def planted_intent(cfg: WorldConfig, req_index: np.ndarray, level: np.ndarray, prob: np.ndarray,
                   n_requests: int) -> np.ndarray:
    """(R, n) float32: expected click share by level of each request (rows sum to 1)."""
    mass = np.bincount(req_index * cfg.n_levels + level, weights=prob, minlength=n_requests * cfg.n_levels)
    mass = mass.reshape(n_requests, cfg.n_levels)
    return (mass / mass.sum(axis=1, keepdims=True)).astype(np.float32)


def model_description(cfg: WorldConfig) -> dict:
    """Contents of truth/click_model.json."""
    spec_t, broad_t = intent_templates(cfg)
    return {
        "formula": "logit = click_bias + w_intent * log(n_levels * q[level]) + w_affinity * cos(latent[target], "
                   "taste[user]) + w_quality * quality[target] + user_bias[user] + request_effect[request]; "
                   "P(click) = sigmoid(logit); clicked ~ Bernoulli(P(click))",
        "words": "The click odds grow with the user's page-drifted intent for the trigger-target similarity level "
                 "(q = (1 - lambda) * intent_profile + lambda * broad_template, lambda = drift_max * "
                 "(1 - exp(-drift_rate * (page - 1)))), with the target's affinity to the user's long-term taste, "
                 "and with the target's quality; a per-user and a per-request Gaussian random effect and the "
                 "Bernoulli draw add noise.",
        "planted_intent": "truth/requests.parquet planted_intent[i] = sum of P(click) over the request's targets "
                          "in level i, divided by the sum over all levels",
        "parameters": {k: getattr(cfg, k) for k in ("click_bias", "w_intent", "w_affinity", "w_quality",
                                                     "user_bias_sd", "request_sd", "drift_max", "drift_rate",
                                                     "n_levels")},
        "specific_template": spec_t.tolist(),
        "broad_template": broad_t.tolist(),
    }
