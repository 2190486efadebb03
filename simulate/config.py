"""World configuration: one typed dataclass, the three presets, and `--set key=value` parsing.

Every number that shapes the simulated world lives here and is written to `world.json`, so a
dataset folder says exactly how it was made. The defaults are the `demo` preset.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass


@dataclass(frozen=True)
class WorldConfig:
    """All parameters of one simulated TIR world (see docs/simulator.md for the mechanisms)."""

    # --- randomness -------------------------------------------------------------------------
    seed: int = 0  # root of every random stream (SeedSequence); same config -> same bytes

    # --- catalogue --------------------------------------------------------------------------
    n_items: int = 20_000  # catalogue size
    n_top_categories: int = 16  # use the first K top categories of the vocabulary (1..16)
    brands_per_top: int = 12  # brands competing inside each top category
    brand_zipf: float = 1.1  # Zipf exponent of brand shares inside a top category
    quality_sd: float = 1.0  # spread of the latent item quality (enters the click model)
    popularity_sigma: float = 2.0  # log-normal spread of item popularity: the long tail, cold items
    popularity_quality: float = 0.5  # how much quality lifts log-popularity (good items get shown more)
    latent_dim: int = 64  # dimension of the planted item latent vectors
    w_top: float = 1.0  # weight of the top-category direction in an item's latent vector
    w_leaf: float = 1.1  # weight of the leaf-category direction
    w_related: float = 0.35  # weight of the complementary leaves' directions (toothbrush -> toothpaste)
    w_brand: float = 0.45  # weight of the brand direction
    w_colour: float = 0.45  # weight of the colour direction
    w_material: float = 0.35  # weight of the material direction
    w_style: float = 0.35  # weight of the style direction
    w_noise: float = 0.45  # weight of the item's own noise direction

    # --- similarity levels ------------------------------------------------------------------
    n_levels: int = 6  # equal-width similarity levels (DAIAN finds 6 best)
    level_min: float = -0.2  # latent cosine at the bottom edge of level 0 (lower values clip to 0)
    level_max: float = 1.0  # latent cosine at the top edge of the last level

    # --- users ------------------------------------------------------------------------------
    n_users: int = 10_000  # number of users
    broad_share: float = 0.35  # average share of broad-intent users (younger users explore more)
    intent_concentration: float = 30.0  # Dirichlet concentration of a user's profile around its template
    specific_template: tuple[float, ...] = (0.03, 0.05, 0.08, 0.14, 0.30, 0.40)  # specific intent over levels
    broad_template: tuple[float, ...] = (0.14, 0.22, 0.24, 0.18, 0.12, 0.10)  # broad intent over levels
    activity_sigma: float = 0.8  # log-normal spread of user activity (clicks and sessions per day)

    # --- behaviour stream -------------------------------------------------------------------
    start_ts: int = 1_767_225_600  # 2026-01-01 00:00:00 UTC, start of the history window
    history_days: int = 14  # days of behaviours before the first request day
    request_days: int = 8  # days with TIR requests (papers: train on 7, test on the 8th)
    clicks_per_day: float = 2.0  # mean organic clicks per user and day (before activity scaling)
    interest_share: float = 0.8  # share of organic clicks drawn from the user's long-term interests
    choice_candidates: int = 4  # popular candidates a user picks from when clicking inside a leaf
    taste_weight: float = 4.0  # how strongly taste (colour, style, brand...) decides among candidates
    cart_prob: float = 0.08  # probability a click is followed by an add-to-cart
    buy_prob: float = 0.25  # probability an add-to-cart is followed by a purchase

    # --- TIR sessions -----------------------------------------------------------------------
    session_prob: float = 0.12  # probability an organic click in the request days opens a TIR session
    continue_prob: float = 0.6  # probability of scrolling from page 1 to page 2
    continue_decay: float = 0.85  # each further page multiplies the odds of continuing by this
    max_pages: int = 10  # hard cap on pages per session
    page_size: int = 10  # targets exposed per page (duplicates and the trigger itself are dropped)
    target_mix: tuple[float, ...] = (0.35, 0.15, 0.2, 0.3)  # exposure: same leaf, related leaf, same top, anywhere

    # --- click model ------------------------------------------------------------------------
    click_bias: float = -4.5  # intercept of the click logit (sets the overall CTR to a few percent)
    w_intent: float = 1.0  # weight of log(n * drifted intent profile at the trigger-target level)
    w_affinity: float = 2.5  # weight of the target's affinity with the user's long-term taste
    w_quality: float = 0.4  # weight of the target's quality
    user_bias_sd: float = 0.4  # per-user random effect (some users click more)
    request_sd: float = 0.5  # per-request random effect (mood, context we do not model)
    drift_max: float = 0.8  # how far intent can drift toward the broad template on late pages
    drift_rate: float = 0.8  # speed of the drift: lambda(page) = drift_max * (1 - exp(-rate * (page - 1)))

    # --- output -----------------------------------------------------------------------------
    image_size: int = 64  # picture side in pixels
    write_images: bool = True  # draw one PNG per item (turn off for quick experiments only)
    users_per_block: int = 4096  # users simulated together; part of the seed derivation, bounds memory
    row_group_rows: int = 1_000_000  # Parquet row-group size of the behaviour and impression files

    def __post_init__(self) -> None:
        _positive_ints = ("n_items", "brands_per_top", "latent_dim", "n_levels", "n_users", "history_days",
                          "request_days", "choice_candidates", "max_pages", "page_size", "image_size",
                          "users_per_block", "row_group_rows")
        for name in _positive_ints:
            if getattr(self, name) < 1:
                raise ValueError(f"config field {name} must be >= 1, got {getattr(self, name)}")
        from .words import TOP_CATEGORIES

        if not 1 <= self.n_top_categories <= len(TOP_CATEGORIES):
            raise ValueError(f"config field n_top_categories must be in 1..{len(TOP_CATEGORIES)}, "
                             f"got {self.n_top_categories}")
        if self.n_levels < 2:
            raise ValueError(f"config field n_levels must be >= 2, got {self.n_levels}")
        for name in ("broad_share", "interest_share", "cart_prob", "buy_prob", "session_prob",
                     "continue_prob", "drift_max"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"config field {name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("quality_sd", "popularity_sigma", "activity_sigma", "user_bias_sd", "request_sd",
                     "drift_rate", "taste_weight", "clicks_per_day", "intent_concentration"):
            if getattr(self, name) < 0 or not math.isfinite(getattr(self, name)):
                raise ValueError(f"config field {name} must be finite and >= 0, got {getattr(self, name)}")
        if self.intent_concentration == 0:
            raise ValueError("config field intent_concentration must be > 0")
        if not 0.0 < self.continue_decay <= 1.0:
            raise ValueError(f"config field continue_decay must be in (0, 1], got {self.continue_decay}")
        if not self.level_min < self.level_max:
            raise ValueError(f"config fields level_min ({self.level_min}) must be < level_max ({self.level_max})")
        for name in ("specific_template", "broad_template"):
            t = getattr(self, name)
            if len(t) != self.n_levels or min(t) <= 0:
                raise ValueError(f"config field {name} must hold n_levels={self.n_levels} positive numbers, "
                                 f"got {t}")
        if len(self.target_mix) != 4 or min(self.target_mix) < 0 or sum(self.target_mix) <= 0:
            raise ValueError(f"config field target_mix must hold 4 non-negative numbers with a positive sum "
                             f"(same leaf, related leaf, same top, anywhere), got {self.target_mix}")
        if self.n_items < 2 * self.n_leaves():
            raise ValueError(f"config field n_items={self.n_items} is too small: need at least 2 items per leaf "
                             f"category ({2 * self.n_leaves()} for n_top_categories={self.n_top_categories})")

    def n_leaves(self) -> int:
        """Number of leaf categories in the first `n_top_categories` top categories."""
        from .words import TOP_CATEGORIES

        return sum(len(t["leaves"]) for t in TOP_CATEGORIES[: self.n_top_categories])

    def to_dict(self) -> dict:
        """Plain JSON-able dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


PRESETS: dict[str, WorldConfig] = {
    # Tests: builds in seconds and still has every mechanism.
    "tiny": WorldConfig(n_items=500, n_users=200, n_top_categories=8, brands_per_top=5,
                        session_prob=0.15, users_per_block=64),
    # `make demo`: about 20k items, 10k users, >= 300k impressions.
    "demo": WorldConfig(),
    # Scale test: >= 10M impressions, simulated block by block with bounded memory.
    "large": WorldConfig(n_items=100_000, n_users=300_000, brands_per_top=30),
}


def _field_types() -> dict[str, typing.Any]:
    return typing.get_type_hints(WorldConfig)


def _convert(key: str, raw: typing.Any, kind: typing.Any) -> typing.Any:
    """Convert a `--set` value (usually a string) to the field's type, or raise ValueError naming it."""
    try:
        if kind is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true/false")
        if kind is int:
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError("expected an integer")
            return int(raw) if not isinstance(raw, str) else int(raw.strip().replace("_", ""))
        if kind is float:
            if isinstance(raw, bool):
                raise ValueError("expected a number")
            value = float(raw)
            if not math.isfinite(value):
                raise ValueError("expected a finite number")
            return value
        if typing.get_origin(kind) is tuple:
            parts = raw.split(",") if isinstance(raw, str) else list(raw)
            return tuple(_convert(key, p, float) for p in parts)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"bad value for config key {key!r}: {raw!r} ({exc})") from None
    raise TypeError(f"unsupported config field type for {key!r}: {kind}")


def parse_set_args(pairs: typing.Iterable[str]) -> dict[str, str]:
    """['key=value', ...] -> {key: value} (values stay strings; `resolve_config` converts them)."""
    out: dict[str, str] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"bad --set argument {pair!r}: expected key=value")
        key, value = pair.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def resolve_config(preset: str, seed: int = 0, overrides: dict | None = None) -> WorldConfig:
    """Preset + seed + overrides -> validated WorldConfig. Unknown preset/key or bad value -> ValueError."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(sorted(PRESETS))}")
    types = _field_types()
    values: dict[str, typing.Any] = {"seed": _convert("seed", seed, int)}
    for key, raw in (overrides or {}).items():
        if key not in types:
            raise ValueError(f"unknown config key {key!r}; known keys: {', '.join(sorted(types))}")
        values[key] = _convert(key, raw, types[key])
    try:
        return dataclasses.replace(PRESETS[preset], **values)
    except ValueError as exc:
        raise ValueError(f"bad config for preset {preset!r}: {exc}") from None


__all__ = ["WorldConfig", "PRESETS", "resolve_config", "parse_set_args"]
