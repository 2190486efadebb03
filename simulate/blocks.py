"""Simulate one block of users end to end: users, organic behaviours, TIR requests, clicks.

A block is the unit of randomness (its stream is derived from the world seed and the block index)
and of memory: the large preset runs block after block and never holds more than one in memory.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from .catalogue import Catalogue
from .clicks import click, planted_intent
from .config import WorldConfig
from .histories import ACTIONS, Pools, follow_ups, organic_clicks
from .latent import Directions
from .requests import draw_targets, make_sessions
from .sampling import stream
from .users import make_users
from .writer import (BEHAVIORS_SCHEMA, IMPRESSIONS_SCHEMA, TRUTH_IMPRESSIONS_SCHEMA, TRUTH_REQUESTS_SCHEMA,
                     TRUTH_USERS_SCHEMA, USERS_SCHEMA, list_column, ragged_list_column)

SEED_BLOCK = 6  # component key of the per-block behaviour stream


@dataclass
class WorldParts:
    """Everything blocks share (built once per world)."""

    cfg: WorldConfig
    cat: Catalogue
    dirs: Directions
    latent: np.ndarray  # (N, d) float32
    pools: Pools
    group_pref: np.ndarray


@dataclass
class BlockTables:
    """Arrow tables of one block, rows already in their final order."""

    users: pa.Table
    truth_users: pa.Table
    behaviors: pa.Table
    impressions: pa.Table
    truth_requests: pa.Table
    truth_impressions: pa.Table
    n_requests: int


def simulate_block(parts: WorldParts, block: int, first_request_id: int) -> BlockTables:
    """Users block*users_per_block .. (+users_per_block) and all their behaviours and requests."""
    cfg, cat = parts.cfg, parts.cat
    first = block * cfg.users_per_block
    count = min(cfg.users_per_block, cfg.n_users - first)
    users = make_users(cfg, cat, parts.dirs, parts.group_pref, first, count, block)
    rng = stream(cfg.seed, SEED_BLOCK, block)

    o_user, o_item, o_ts = organic_clicks(cfg, rng, parts.pools, parts.latent, users)
    req = make_sessions(cfg, rng, o_user, o_item, o_ts)
    n_req = req.page.shape[0]
    targets, keep = draw_targets(cfg, rng, cat, parts.pools, req.trigger)
    req_index = np.nonzero(keep)[0]
    position = np.cumsum(keep, axis=1, dtype=np.int32)[keep]
    target = targets[keep]
    clicks = click(cfg, rng, parts.latent, cat.quality, users, req_index, req.user_rows, req.page,
                   req.trigger, target, n_req)
    intent = planted_intent(cfg, req_index, clicks.level, clicks.prob, n_req)

    # Behaviours: organic clicks, clicks on TIR pages (same ts as the request), carts and buys after both.
    c = clicks.clicked.astype(bool)
    i_user, i_item, i_ts = req.user_rows[req_index[c]], target[c], req.ts[req_index[c]]
    all_user = np.concatenate([o_user, i_user])
    all_item = np.concatenate([o_item, i_item])
    all_ts = np.concatenate([o_ts, i_ts])
    f_user, f_item, f_ts, f_act = follow_ups(cfg, rng, all_user, all_item, all_ts)
    b_user = np.concatenate([all_user, f_user])
    b_item = cat.item_ids[np.concatenate([all_item, f_item])]
    b_ts = np.concatenate([all_ts, f_ts])
    b_act = np.concatenate([np.zeros(all_user.shape[0], np.int8), f_act])
    order = np.lexsort((b_item, b_act, b_ts, b_user))
    actions = pa.DictionaryArray.from_arrays(pa.array(b_act[order]), pa.array(list(ACTIONS))).cast(pa.string())
    behaviors = pa.table({"user_id": users.user_ids[b_user[order]], "item_id": b_item[order],
                          "ts": b_ts[order].astype(np.int64), "action": actions}, schema=BEHAVIORS_SCHEMA)

    request_ids = first_request_id + np.arange(n_req, dtype=np.int64)
    impressions = pa.table({
        "request_id": request_ids[req_index], "user_id": users.user_ids[req.user_rows[req_index]],
        "ts": req.ts[req_index], "trigger_item_id": cat.item_ids[req.trigger[req_index]],
        "page": req.page[req_index], "position": position, "item_id": cat.item_ids[target],
        "clicked": clicks.clicked}, schema=IMPRESSIONS_SCHEMA)
    truth_impressions = pa.table({"request_id": request_ids[req_index], "position": position,
                                  "level": clicks.level, "click_prob": clicks.prob},
                                 schema=TRUTH_IMPRESSIONS_SCHEMA)
    truth_requests = pa.table({"request_id": request_ids, "planted_intent": list_column(intent, pa.float32()),
                               "request_effect": clicks.request_effect}, schema=TRUTH_REQUESTS_SCHEMA)
    return BlockTables(users=_users_table(users), truth_users=_truth_users_table(users),
                       behaviors=behaviors, impressions=impressions, truth_requests=truth_requests,
                       truth_impressions=truth_impressions, n_requests=n_req)


def _users_table(users) -> pa.Table:
    return pa.table({"user_id": users.user_ids, "gender": users.gender, "age_level": users.age_level,
                     "city_id": users.city_id}, schema=USERS_SCHEMA)


def _truth_users_table(users) -> pa.Table:
    interest = users.leaf_weight >= 0.05  # leaves carrying at least 5% of the user's interest
    rows, leaves = np.nonzero(interest)
    return pa.table({
        "user_id": users.user_ids,
        "user_type": pa.array(np.where(users.broad, "broad", "specific").tolist(), pa.string()),
        "intent_profile": list_column(users.intent.astype(np.float32), pa.float32()),
        "interest_category_ids": ragged_list_column(leaves.astype(np.int64) + 1, interest.sum(axis=1),
                                                    pa.int64()),
        "taste": list_column(users.taste, pa.float32()),
        "click_bias": users.bias.astype(np.float32),
    }, schema=TRUTH_USERS_SCHEMA)
