"""Checkpoints: RUN/checkpoint/ written atomically every epoch, read back for resume and scoring.

    config.json          format, seed, the training config (recipe resolved) and model config, feature
                         sizes, store dim, progress, the recipe record (what it chose and why)
    model.safetensors    the weights (safetensors only: nothing executable is ever loaded)
    vocab.json           the vocabularies the data path fitted (daian.data.vocab)
    trainer_state.pt     stage, epoch, optimizer and scheduler states, loss history (tensors only)
    rng_state_K.pt       each process's RNG states, so a resumed run draws what an uninterrupted one would
"""
from __future__ import annotations

import dataclasses
import json
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from daian.data.vocab import Vocabularies
from daian.models.base import FeatureSizes
from daian.run_folder import CHECKPOINT, CHECKPOINT_CONFIG, CHECKPOINT_FORMATS, read_checkpoint_config

CHECKPOINT_FORMAT = CHECKPOINT_FORMATS[-1]
WEIGHTS, VOCAB, TRAINER_STATE = "model.safetensors", "vocab.json", "trainer_state.pt"


def _rng_state() -> dict:
    np_state = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()),
             "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                       "has_gauss": int(np_state[3]), "cached": float(np_state[4])}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _write_main_files(tmp: Path, *, model: nn.Module, config, seed: int, model_config, sizes: FeatureSizes,
                      vocabs: Vocabularies, store_dim: int, trainer_state: dict, recipe: dict | None = None) -> None:
    tmp.mkdir(parents=True)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(state, str(tmp / WEIGHTS))
    (tmp / CHECKPOINT_CONFIG).write_text(json.dumps({
        "format": CHECKPOINT_FORMAT, "seed": seed, "train": config.to_dict(),
        "model": model_config.to_dict(), "sizes": dataclasses.asdict(sizes), "store_dim": store_dim,
        "progress": {k: trainer_state[k] for k in ("stage", "stage_index", "epoch", "finished")},
        **({"recipe": recipe} if recipe is not None else {}),
    }, indent=2) + "\n")
    vocabs.save(tmp / VOCAB)
    torch.save(trainer_state, tmp / TRAINER_STATE)


def save_checkpoint(run_dir: Path, *, model: nn.Module, accelerator, **contents) -> Path:
    """Write RUN/checkpoint atomically (a temporary folder renamed into place); `contents` are
    config, seed, model_config, sizes, vocabs, store_dim, trainer_state (and the recipe record)."""
    final = run_dir / CHECKPOINT
    tmp = run_dir / f"{CHECKPOINT}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        _write_main_files(tmp, model=accelerator.unwrap_model(model), **contents)
    accelerator.wait_for_everyone()
    torch.save(_rng_state(), tmp / f"rng_state_{accelerator.process_index}.pt")  # every process its own
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        old = run_dir / f"{CHECKPOINT}.old"
        shutil.rmtree(old, ignore_errors=True)
        if final.exists():
            final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def find_checkpoint(run_dir: Path) -> Path | None:
    for name in (CHECKPOINT, f"{CHECKPOINT}.old"):
        path = Path(run_dir) / name
        if (path / TRAINER_STATE).is_file() and (path / WEIGHTS).is_file():
            return path
    return None


def saved_model_config(meta: dict):
    """The model config a checkpoint was built with (fields added since take their old values)."""
    from daian.models import registry

    first_format = meta["format"] == CHECKPOINT_FORMATS[0]  # one config held every model's fields
    return registry.config_from_dict(meta["model"], drop_unknown=first_format)


def load_weights(model: nn.Module, path: Path) -> None:
    model.load_state_dict(load_file(str(Path(path) / WEIGHTS), device="cpu"))


def load_checkpoint(path: str | Path, store: str | Path | None = None, device: str = "cpu"):
    """A checkpoint folder -> (model in eval mode, Vocabularies, config.json dict).

    The frozen store vectors are read from the embedding store (`store`, default the one the run
    trained with); features index them by store row (the `*_vec` features).
    """
    from daian.data import frozen_item_vectors
    from daian.models import build_model
    from retrieval.store import EmbeddingStore

    path = Path(path)
    meta = read_checkpoint_config(path)
    vocabs = Vocabularies.load(path / VOCAB)
    sizes = FeatureSizes(**meta["sizes"])
    emb_store = EmbeddingStore.load(store if store is not None else meta["train"]["store"])
    if emb_store.dim != int(meta["store_dim"]):
        raise ValueError(f"store {emb_store.path} has dim {emb_store.dim}, the checkpoint {meta['store_dim']}")
    model = build_model(saved_model_config(meta), sizes, frozen_item_vectors(emb_store))
    load_weights(model, path)
    return model.to(device).eval(), vocabs, meta


def vocabularies_of(run_dirs) -> Vocabularies | None:
    """The vocabularies of the first checkpoint found in `run_dirs` (a resumed run reuses them)."""
    for run_dir in run_dirs:
        ckpt = find_checkpoint(run_dir)
        if ckpt is not None:
            return Vocabularies.load(ckpt / VOCAB)
    return None
