"""`ModelConfig`: what every model's config class shares (name, ablation, save and load one way).

Each model brings its own typed config next to its code (`DINConfig` in `din.py`, `DEI2NConfig`
and `DAIANConfig` extending it where they share fields), with its paper's values as defaults, a
one-line comment per field, and its checks in `validate()`. A saved config (a checkpoint's
config.json "model" entry) is `to_dict()`: the fields plus the model's registry `name`;
`from_dict` reads it back, unknown keys being an error.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass
class ModelConfig:
    """The fields and rules every model config has; a model's config class extends it."""

    name: ClassVar[str] = ""  # the registry name of the model this config builds
    ablations: ClassVar[tuple[str, ...]] = ()  # the model's ablation switches
    # Fields added after checkpoints were first written, with the value models were built with
    # before the field existed: a saved config without the key gets that value, not today's default.
    before_field: ClassVar[dict[str, Any]] = {}

    ablation: str | None = None  # one of the model's ablations (train-daian --ablation); None = the full model

    def __post_init__(self) -> None:
        if self.ablation in ("", "none"):
            self.ablation = None
        if self.ablation is not None and self.ablation not in self.ablations:
            valid = list(self.ablations) or "none (this model has no ablations)"
            raise ValueError(f"unknown ablation {self.ablation!r} for {self.name}; valid: {valid}")
        hints = {f.name: str(f.type) for f in dataclasses.fields(self)}
        for key, hint in hints.items():  # lists from JSON or the CLI become the declared tuples
            if "tuple[" in hint and isinstance(getattr(self, key), list):
                setattr(self, key, tuple(getattr(self, key)))
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the field that is out of range (subclasses extend it)."""

    @classmethod
    def data_settings(cls, levels: int, edges) -> dict[str, Any]:
        """Settings the labelled data decides unless the user sets them (`levels` similarity
        levels with their n + 1 `edges`); a model that reads the intent levels overrides this."""
        return {}

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with the model's name (tuples become lists); `from_dict` reads it back."""
        out = {"name": self.name, **dataclasses.asdict(self)}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, drop_unknown: bool = False) -> "ModelConfig":
        """Build from a saved dict; unknown keys raise unless `drop_unknown` (a checkpoint of the
        first format stored every model's fields in one config). A key the dict lacks because it
        was saved before the field existed takes the value models had then (`before_field`)."""
        data = dict(data)
        name = data.pop("name", cls.name)
        if name != cls.name:
            raise ValueError(f"a saved {name!r} config cannot build {cls.name!r}")
        known = cls.field_names()
        unknown = sorted(set(data) - known)
        if unknown and not drop_unknown:
            raise ValueError(f"unknown {cls.__name__} keys {unknown}; valid: {sorted(known)}")
        before: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            before.update(vars(klass).get("before_field", {}))
        values = {**{k: v for k, v in before.items() if k in known},
                  **{k: v for k, v in data.items() if k in known}}
        return cls(**values)


def check_positive(**values: Any) -> None:
    """Each value must be an int >= 1; ValueError names the first that is not."""
    for key, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{key} must be a positive integer, got {value!r}")


def check_widths(**values: Any) -> None:
    """Each value must be a non-empty tuple of positive ints (MLP hidden widths)."""
    for key, value in values.items():
        if not value or any(not isinstance(h, int) or h < 1 for h in value):
            raise ValueError(f"{key} must be a non-empty tuple of positive ints, got {value!r}")


def check_choice(key: str, value: Any, choices) -> None:
    if value not in choices:
        raise ValueError(f"{key} must be one of {list(choices)}, got {value!r}")
