"""One labelled split, tensorised once, and its batches.

`tensorise` turns a split into per-row tensors: every ragged list column becomes a padded int32
matrix of item table rows (`daian.data.columns.ragged_to_padded`). `TIRDataset[idx]` turns a tensor
of row indices into the `(features, targets)` dicts of `daian.models.base`; sequences are cut to the
longest real one in the batch.

Features never carry the label, the intent or has_intent: those are posterior information and
travel in `targets`, which only the training code reads.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import torch

from daian.data.columns import _np, ragged_to_padded
from daian.data.intent import leave_one_out_intent
from daian.data.tables import LookupTable

FEATURE_KEYS = ("user", "user_profile", "trigger", "target", "hist", "hist_mask", "hist_dt",
                "mm_seq", "mm_mask", "cat_seq", "cat_mask", "page", "tt_sim", "trigger_vec", "target_vec",
                "hist_vec", "mm_vec", "past_intent", "past_count")
TARGET_KEYS = ("label", "intent", "has_intent", "intent_loo", "has_intent_loo")


@dataclass
class TIRDataset:
    """One split, pre-tensorised; `dataset[idx]` with a LongTensor of rows gives (features, targets)."""

    columns: dict[str, torch.Tensor]  # per-row tensors (compact dtypes), see `tensorise`
    item_fields: torch.Tensor  # (R_item + 2, F) long: item table row -> ITEM_FIELDS indices
    user_fields: torch.Tensor  # (R_user + 2, 1 + P) long: user table row -> [user, profile...]
    item_vec: torch.Tensor  # (R_item + 2,) long: item table row -> row of the frozen store vectors
    meta: dict[str, np.ndarray] = field(default_factory=dict)  # request_id, user_id, item_id, clicked, ...

    def __len__(self) -> int:
        return int(self.columns["label"].shape[0])

    def __getitem__(self, idx: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        c = self.columns
        idx = torch.as_tensor(idx, dtype=torch.long)
        users = self.user_fields[c["user_row"][idx].long()]  # (B, 1 + P)
        hist_rows, mm_rows, cat_rows = (self._rows(key, idx) for key in ("hist", "mm", "cat"))  # (B, L)
        features = {
            "user": users[:, 0].contiguous(),
            "user_profile": users[:, 1:].contiguous(),
            "trigger": self.item_fields[c["trigger_row"][idx].long()],
            "target": self.item_fields[c["target_row"][idx].long()],
            "hist": self.item_fields[hist_rows],  # (B, L, F)
            "hist_mask": hist_rows != 0,
            "hist_dt": c["hist_dt"][idx, :hist_rows.shape[1]].long(),
            "mm_seq": self.item_fields[mm_rows],
            "mm_mask": mm_rows != 0,
            "cat_seq": self.item_fields[cat_rows],
            "cat_mask": cat_rows != 0,
            "page": c["page"][idx].long(),
            "tt_sim": c["tt_sim"][idx],
            "trigger_vec": self.item_vec[c["trigger_row"][idx].long()],
            "target_vec": self.item_vec[c["target_row"][idx].long()],
            "hist_vec": self.item_vec[hist_rows],
            "mm_vec": self.item_vec[mm_rows],
            "past_intent": c["past_intent"][idx],
            "past_count": c["past_count"][idx],
        }
        targets = {key: c[key][idx] for key in TARGET_KEYS}
        return features, targets

    def _rows(self, key: str, idx: torch.Tensor) -> torch.Tensor:
        """(B, L) item table rows of sequence `key`, cut to the batch's longest real one (>= 1)."""
        width = max(int(self.columns[f"{key}_len"][idx].max()), 1) if idx.numel() else 1
        return self.columns[f"{key}_rows"][idx, :width].long()

    def with_targets(self, **targets: torch.Tensor) -> "TIRDataset":
        """A copy sharing every feature tensor but with other targets (TARGET_KEYS; the leakage test's)."""
        unknown = sorted(set(targets) - set(TARGET_KEYS))
        if unknown:
            raise ValueError(f"not target columns: {unknown}; targets are {list(TARGET_KEYS)}")
        cols = dict(self.columns, **targets)
        return TIRDataset(cols, self.item_fields, self.user_fields, self.item_vec, dict(self.meta))


def _first_rows(mask: np.ndarray) -> list[int]:
    """The first few offending rows an error names."""
    return np.flatnonzero(mask)[:5].tolist()


def _id_columns(table: pa.Table, item_table: LookupTable, user_table: LookupTable,
                source: str) -> dict[str, np.ndarray]:
    """The user, trigger and target rows of the user and item tables."""
    item_rows = item_table.rows
    return {
        "user_row": user_table.rows(_np(table.column("user_id"), "user_id", source)),
        "trigger_row": item_rows(_np(table.column("trigger_item_id"), "trigger_item_id", source)),
        "target_row": item_rows(_np(table.column("item_id"), "item_id", source)),
    }


def _sequence_columns(table: pa.Table, item_table: LookupTable, *, max_hist: int, max_subseq: int,
                      max_dt: int, source: str) -> dict[str, np.ndarray]:
    """History and subsequences as padded item table rows with their lengths, and the history's
    bucketed time intervals (0 padding, 1 + min(dt, max_dt) at real positions)."""
    cols: dict[str, np.ndarray] = {}
    full_len = {}
    for name, key, width in (("hist_item_ids", "hist", max_hist), ("mm_subseq_item_ids", "mm", max_subseq),
                             ("cat_subseq_item_ids", "cat", max_subseq)):
        padded, full_len[key] = ragged_to_padded(table.column(name), width, item_table.rows, np.int32)
        cols[f"{key}_rows"] = padded
        cols[f"{key}_len"] = np.minimum(full_len[key], width).astype(np.int32)
    hist_n = full_len["hist"]
    dt, dt_n = ragged_to_padded(table.column("hist_dt_min"), max_hist, None, np.int64)
    if table.num_rows and not np.array_equal(np.minimum(dt_n, max_hist), np.minimum(hist_n, max_hist)):
        bad = np.minimum(dt_n, max_hist) != np.minimum(hist_n, max_hist)
        raise ValueError(f"{source}: hist_dt_min and hist_item_ids differ in length at rows "
                         f"{_first_rows(bad)}")
    if (dt < 0).any():
        raise ValueError(f"{source}: column 'hist_dt_min' is negative at rows "
                         f"{_first_rows((dt < 0).any(axis=1))} (history must precede the request)")
    in_hist = np.arange(max_hist)[None, :] < cols["hist_len"][:, None]
    cols["hist_dt"] = np.where(in_hist, np.minimum(dt, max_dt) + 1, 0).astype(np.int32)
    return cols


def _impression_columns(table: pa.Table, *, max_page: int, source: str) -> dict[str, np.ndarray]:
    """The page (capped at max_page), the trigger-target similarity and the click label."""
    page = _np(table.column("page"), "page", source).astype(np.int64)
    if (page < 1).any():
        raise ValueError(f"{source}: column 'page' < 1 at rows {_first_rows(page < 1)}")
    sim = _np(table.column("trigger_target_sim"), "trigger_target_sim", source).astype(np.float32)
    if not np.isfinite(sim).all():
        raise ValueError(f"{source}: column 'trigger_target_sim' is not finite at rows "
                         f"{_first_rows(~np.isfinite(sim))}")
    clicked = _np(table.column("clicked"), "clicked", source)
    if not np.isin(clicked, (0, 1)).all():
        raise ValueError(f"{source}: column 'clicked' not 0/1 at rows "
                         f"{_first_rows(~np.isin(clicked, (0, 1)))}")
    return {"page": np.minimum(page, max_page).astype(np.int32), "tt_sim": sim,
            "label": clicked.astype(np.float32)}


def _intent_columns(table: pa.Table, *, levels: int, source: str) -> dict[str, np.ndarray]:
    """The request's intent (N, levels), zeros where has_intent is false, and has_intent."""
    has_intent = _np(table.column("has_intent"), "has_intent", source).astype(bool)
    intent, intent_n = ragged_to_padded(table.column("intent"), levels, None, np.float32)
    bad = np.flatnonzero((intent_n != levels) & (has_intent | (intent_n != 0)))
    if bad.size:
        raise ValueError(f"{source}: column 'intent' must hold {levels} values (the manifest's levels); "
                         f"rows {bad[:5].tolist()} hold {intent_n[bad[:5]].tolist()}")
    sums = intent.sum(axis=1)
    bad = np.flatnonzero(has_intent & (np.abs(sums - 1.0) > 1e-3))
    if bad.size or (intent < 0).any():
        raise ValueError(f"{source}: column 'intent' is not a distribution at rows {bad[:5].tolist()}")
    return {"intent": np.where(has_intent[:, None], intent, 0.0).astype(np.float32), "has_intent": has_intent}


def _meta(table: pa.Table, source: str) -> dict[str, np.ndarray]:
    """Per-row ids the metrics and the predictions file need (never features)."""
    meta = {
        "request_id": _np(table.column("request_id"), "request_id", source).astype(np.int64),
        "user_id": table.column("user_id").to_numpy().astype(np.int64),
        "item_id": table.column("item_id").to_numpy().astype(np.int64),
        "clicked": table.column("clicked").to_numpy().astype(np.int8),
    }
    if "ts" in table.column_names:
        meta["ts"] = _np(table.column("ts"), "ts", source).astype(np.int64)
    return meta


DERIVED_COLUMNS = ("intent_loo", "has_intent_loo", "past_intent", "past_count")


def _derived_columns(table: pa.Table, cols: dict, meta: dict, *, levels: int, bin_edges: np.ndarray,
                     source: str) -> dict[str, np.ndarray]:
    """The leave-one-out and past intent: read from the columns `label-intents` writes, or, for a
    folder written before them, the leave-one-out intent from this table (a whole split) and a zero
    past intent until `attach_past_intent` fills it."""
    names = table.column_names
    if all(c in names for c in DERIVED_COLUMNS):
        loo, n_loo = ragged_to_padded(table.column("intent_loo"), levels, None, np.float32)
        past, n_past = ragged_to_padded(table.column("past_intent"), levels, None, np.float32)
        bad = np.flatnonzero((n_loo != levels) | (n_past != levels))
        if bad.size:
            raise ValueError(f"{source}: columns 'intent_loo' / 'past_intent' must hold {levels} values "
                             f"(the manifest's levels) at rows {bad[:5].tolist()}")
        return {"intent_loo": loo, "past_intent": past,
                "has_intent_loo": _np(table.column("has_intent_loo"), "has_intent_loo", source).astype(bool),
                "past_count": _np(table.column("past_count"), "past_count", source).astype(np.float32)}
    loo, has_loo = leave_one_out_intent(meta["request_id"], meta["clicked"].astype(np.int64), cols["intent"],
                                        cols["has_intent"], cols["tt_sim"], bin_edges)
    return {"intent_loo": loo, "has_intent_loo": has_loo,
            "past_intent": np.zeros((table.num_rows, levels), np.float32),
            "past_count": np.zeros(table.num_rows, np.float32)}


def tensorise(table: pa.Table, item_table: LookupTable, user_table: LookupTable, item_vec: np.ndarray, *,
              levels: int, bin_edges: np.ndarray, max_hist: int, max_subseq: int, max_page: int,
              max_dt: int, source: str = "labelled split") -> TIRDataset:
    """Turn one labelled split into a `TIRDataset` (all vectorised; ValueError names bad columns/rows)."""
    cols = _id_columns(table, item_table, user_table, source)
    cols |= _sequence_columns(table, item_table, max_hist=max_hist, max_subseq=max_subseq, max_dt=max_dt,
                              source=source)
    cols |= _impression_columns(table, max_page=max_page, source=source)
    cols |= _intent_columns(table, levels=levels, source=source)
    meta = _meta(table, source)
    cols |= _derived_columns(table, cols, meta, levels=levels, bin_edges=bin_edges, source=source)
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in cols.items()}
    return TIRDataset(tensors, torch.from_numpy(item_table.fields), torch.from_numpy(user_table.fields),
                      torch.from_numpy(np.asarray(item_vec, dtype=np.int64)), meta)
