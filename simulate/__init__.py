"""A simulated trigger-induced recommendation (TIR) world with its planted truth.

`simulate_world(preset, out, seed=0, overrides=None, overwrite=False)` writes a dataset folder
(items, users, behaviours, impressions, pictures, world.json, truth/); `PRESETS` holds the named
configurations (tiny, demo, large). See docs/simulator.md.
"""
from .config import PRESETS, WorldConfig, resolve_config
from .world import simulate_world

__all__ = ["simulate_world", "PRESETS", "WorldConfig", "resolve_config"]
