"""Vocabularies: raw int64 ids -> dense embedding indices, fitted on the training split.

Index 0 is padding, 1 is "unknown" (an id the training split never showed), 2.. are the fitted ids
in sorted order. Lookups are a `searchsorted` over the sorted ids, so mapping millions of ids is one
vectorised call. `Vocabularies` bundles every table the data stage needs (items, users, item side
information, user profile fields, the price-bucket edges) and is saved beside a checkpoint as
`vocab.json`, so evaluation and serving map ids exactly as training did.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PAD = 0
UNKNOWN = 1
VOCAB_FORMAT = "daian-vocab/1"


@dataclass
class Vocab:
    """A sorted set of raw ids; `lookup` maps ids to 2.. and anything else to UNKNOWN."""

    ids: np.ndarray  # (K,) int64, sorted, unique

    def __post_init__(self) -> None:
        self.ids = np.asarray(self.ids, dtype=np.int64)
        if self.ids.ndim != 1:
            raise ValueError(f"vocabulary ids must be 1-D, got shape {self.ids.shape}")
        if self.ids.size > 1 and not (np.diff(self.ids) > 0).all():
            raise ValueError("vocabulary ids must be sorted and unique")

    @classmethod
    def fit(cls, values: np.ndarray) -> "Vocab":
        return cls(np.unique(np.asarray(values, dtype=np.int64)))

    def __len__(self) -> int:
        """Embedding table size: the fitted ids plus padding and unknown."""
        return int(self.ids.size) + 2

    def lookup(self, values: np.ndarray) -> np.ndarray:
        """Raw ids (any shape) -> int64 indices; ids outside the vocabulary -> UNKNOWN."""
        values = np.asarray(values, dtype=np.int64)
        if self.ids.size == 0:
            return np.full(values.shape, UNKNOWN, dtype=np.int64)
        pos = np.searchsorted(self.ids, values)
        pos_c = np.minimum(pos, self.ids.size - 1)
        found = self.ids[pos_c] == values
        return np.where(found, pos_c + 2, UNKNOWN).astype(np.int64)

    def raw(self, index: np.ndarray) -> np.ndarray:
        """Indices >= 2 -> raw ids (the inverse of `lookup` on known ids)."""
        index = np.asarray(index, dtype=np.int64)
        if (index < 2).any():
            raise ValueError("indices 0 (pad) and 1 (unknown) have no raw id")
        return self.ids[index - 2]


@dataclass
class Vocabularies:
    """Every id mapping of one training run; written as vocab.json beside the model weights."""

    item: Vocab  # item ids seen in the train split (targets, triggers, histories)
    user: Vocab  # user ids seen in the train split
    category: Vocab  # leaf categories of the train split's items
    top_category: Vocab
    brand: Vocab
    price_edges: np.ndarray  # (K-1,) interior quantile edges; bucket = 2 + #edges <= price
    profile: dict[str, Vocab] = field(default_factory=dict)  # user profile field -> codes, in feature order

    @property
    def price_size(self) -> int:
        return int(self.price_edges.size) + 3  # pad, unknown, then one bucket per interval

    def price_bucket(self, prices: np.ndarray) -> np.ndarray:
        """Prices -> bucket index (2..); NaN -> UNKNOWN."""
        prices = np.asarray(prices, dtype=np.float64)
        bucket = np.searchsorted(self.price_edges, prices, side="right") + 2
        return np.where(np.isnan(prices), UNKNOWN, bucket).astype(np.int64)

    def to_json(self) -> dict:
        return {
            "format": VOCAB_FORMAT,
            "item": self.item.ids.tolist(),
            "user": self.user.ids.tolist(),
            "category": self.category.ids.tolist(),
            "top_category": self.top_category.ids.tolist(),
            "brand": self.brand.ids.tolist(),
            "price_edges": self.price_edges.tolist(),
            "profile_fields": list(self.profile),
            "profile": {k: v.ids.tolist() for k, v in self.profile.items()},
        }

    @classmethod
    def from_json(cls, data: dict, source: str = "vocab.json") -> "Vocabularies":
        if data.get("format") != VOCAB_FORMAT:
            raise ValueError(f"{source}: format {data.get('format')!r}, expected {VOCAB_FORMAT!r}")
        try:
            return cls(
                item=Vocab(np.asarray(data["item"], np.int64)),
                user=Vocab(np.asarray(data["user"], np.int64)),
                category=Vocab(np.asarray(data["category"], np.int64)),
                top_category=Vocab(np.asarray(data["top_category"], np.int64)),
                brand=Vocab(np.asarray(data["brand"], np.int64)),
                price_edges=np.asarray(data["price_edges"], np.float64),
                profile={k: Vocab(np.asarray(data["profile"][k], np.int64))
                         for k in data["profile_fields"]},
            )
        except KeyError as exc:
            raise ValueError(f"{source}: missing key {exc}") from exc

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_json()))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Vocabularies":
        path = Path(path)
        return cls.from_json(json.loads(path.read_text()), source=str(path))
