"""What every CTR model in `daian.models` takes and returns.

A model sees only `features` (the inputs a serving system has when the request arrives). The click
label and the ground-truth intent (posterior information, built from the request's own clicks) travel
in a separate `targets` dict that only the training code reads; a stage that needs the true intent
inside the forward pass (DAIAN stage 2) passes it explicitly as `intent_override`. So nothing derived
from an evaluated request's clicks can reach a model at evaluation time. (`past_intent` is built
from the clicks of *earlier training* requests only, never from a request of the evaluated split.)

Feature batch (dict of tensors; B batch, L history length, T subsequence length, F item fields):
    user         (B,)        long   user index (0 pad, 1 unknown)
    user_profile (B, P)      long   one index per profile field (0 pad, 1 unknown)
    trigger      (B, F)      long   item fields of the trigger, in ITEM_FIELDS order
    target       (B, F)      long   item fields of the target
    hist         (B, L, F)   long   behaviour sequence, most recent first
    hist_mask    (B, L)      bool   True at real positions
    hist_dt      (B, L)      long   minutes before the request, clipped to max_dt, +1 (0 = pad)
    mm_seq       (B, T, F)   long   multimodal subsequence (history items similar to the trigger)
    mm_mask      (B, T)      bool
    cat_seq      (B, T, F)   long   category subsequence (history items in the trigger's category)
    cat_mask     (B, T)      bool
    page         (B,)        long   page number, clipped to max_page (1-based)
    tt_sim       (B,)        float  cosine of the trigger and target store vectors
    trigger_vec  (B,)        long   row of the trigger's frozen store vector (0 pad, 1 not in the store)
    target_vec   (B,)        long   row of the target's frozen store vector
    hist_vec     (B, L)      long   rows of the behaviour sequence's frozen store vectors
    mm_vec       (B, T)      long   rows of the multimodal subsequence's frozen store vectors
    past_intent  (B, n)      float  mean ground-truth intent of the user's earlier *training* requests
                                    (zeros without any; `daian.data.attach_past_intent`)
    past_count   (B,)        float  how many such requests
Targets (dict of tensors, training code only):
    label        (B,)        float  clicked (0/1)
    intent       (B, n)      float  ground-truth intent distribution (zeros where has_intent is False)
    has_intent   (B,)        bool   the request had at least one click
Item index 0 is padding, 1 unknown (an id the training split never showed). The frozen store
vectors, handed to the model's constructor, are indexed by store row, not by the item index: rows
0 and 1 are zeros, row r + 2 is the store's row r. So an item unseen in training shares the unknown
id embedding but keeps its own frozen vector.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

# Order of the item fields along the last axis of trigger/target/hist/mm_seq/cat_seq.
ITEM_FIELDS = ("item", "category", "top_category", "brand", "price_bucket")


@dataclass(frozen=True)
class FeatureSizes:
    """Vocabulary sizes the data stage measured; models size their embedding tables from these."""

    item_fields: dict[str, int]  # vocabulary size per ITEM_FIELDS entry (pad and unknown included)
    users: int  # user vocabulary size (pad and unknown included)
    profile_fields: dict[str, int]  # vocabulary size per user profile field, in user_profile order
    max_page: int  # pages above this are clipped to it
    max_dt: int  # minutes; hist_dt takes values 0..max_dt+1
    levels: int  # n, the number of similarity levels of the intent distribution

    def __post_init__(self) -> None:
        missing = [f for f in ITEM_FIELDS if f not in self.item_fields]
        if missing:
            raise ValueError(f"item_fields lacks {missing}")
        if self.levels < 2:
            raise ValueError(f"levels must be at least 2, got {self.levels}")


@dataclass
class ModelOutput:
    """A forward pass's result: the click logit plus what training may supervise."""

    logit: torch.Tensor  # (B,) click logit
    intent_pred: torch.Tensor | None = None  # (B, n) predicted intent distribution (softmax), if any
    # Self-supervised auxiliary losses computable from features alone, name -> (loss, weight).
    aux_losses: dict[str, tuple[torch.Tensor, float]] = field(default_factory=dict)
