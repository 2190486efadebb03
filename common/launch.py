"""The console scripts' entry points: each imports its command's module, then runs its `main`.

A command's module imports heavy libraries (torch, transformers, pyarrow) for seconds before its
`main` can catch anything, so a Ctrl-C in that time would print the import's traceback. The entry
points live here, in a module that imports nothing heavy, and turn that Ctrl-C into one line too.
"""
from __future__ import annotations

import importlib
import sys

from common.cli import INTERRUPTED

COMMANDS = {  # console script -> module with main(argv)
    "simulate-tir": "simulate.cli",
    "embed-items": "embedder.cli",
    "search-items": "embedder.search_cli",
    "label-intents": "intent_labels.cli",
    "train-daian": "daian.cli",
    "tir-report": "report.cli",
}


def launch(command: str) -> int:
    try:
        main = importlib.import_module(COMMANDS[command]).main
    except KeyboardInterrupt:
        print(f"{command}: interrupted while starting; nothing was written", file=sys.stderr)
        return INTERRUPTED
    return main()


def simulate_tir() -> int:
    return launch("simulate-tir")


def embed_items() -> int:
    return launch("embed-items")


def search_items() -> int:
    return launch("search-items")


def label_intents() -> int:
    return launch("label-intents")


def train_daian() -> int:
    return launch("train-daian")


def tir_report() -> int:
    return launch("tir-report")
