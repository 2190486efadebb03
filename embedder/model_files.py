"""Where a model lives and how it is identified in a store manifest.

A model is named by a local folder or a Hugging Face hub id. Hub ids resolve to their local snapshot
(`huggingface_hub.snapshot_download`, which honours `HF_HUB_OFFLINE=1` and the cache). A model is
identified by the id the user gave, the hub revision when there is one, and the SHA-256 of its weight
files, so that a store built with one checkpoint is never queried with another.
"""
from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def resolve_model_dir(model: str | Path) -> Path:
    """The local folder of `model` (a folder, or a hub id resolved through the hub cache)."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path.resolve()
    if path.exists():
        raise ValueError(f"model {model}: expected a folder (config.json, weights, tokenizer), got a file")
    if str(model).startswith((".", "/", "~")) or str(model).count("/") > 1:
        raise FileNotFoundError(f"model folder not found: {model}")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id=str(model)))
    except Exception as err:  # offline with nothing cached, unknown repo, no network
        raise FileNotFoundError(f"model {model!r} is neither a local folder nor an available hub "
                                f"model ({type(err).__name__}: {err})") from None


def hub_revision(model_dir: Path) -> str | None:
    """The commit of a hub-cache snapshot folder (…/snapshots/<commit>), else None."""
    return model_dir.name if model_dir.parent.name == "snapshots" else None


def weights_sha256(model_dir: Path) -> str:
    """SHA-256 over the weight files of a model folder (sorted names, then contents)."""
    files = sorted(p for p in model_dir.iterdir() if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no weight files ({', '.join(WEIGHT_SUFFIXES)}) in {model_dir}")
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        with open(f, "rb") as fh:
            while block := fh.read(1 << 22):
                h.update(block)
    return h.hexdigest()


def model_identity(model: str | Path, model_dir: Path) -> dict:
    """The manifest's `model` entry."""
    return {"id": str(model), "path": str(model_dir), "revision": hub_revision(model_dir),
            "weights_sha256": weights_sha256(model_dir)}


@contextlib.contextmanager
def quiet_transformers():
    """Silence transformers' load report (e.g. an unused `lm_head` when loading the base model) and its
    weight-loading progress bar; both are restored afterwards."""
    from transformers.utils import logging as hf_logging

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def pick_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but torch sees no CUDA device")
    return device


def pick_dtype(precision: str, device: str):
    """Model precision: 'auto' = bf16 on CUDA (fp16 where bf16 is unsupported), fp32 on CPU."""
    import torch

    table = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if precision == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if precision not in table:
        raise ValueError(f"precision must be 'auto' or one of {list(table)}, got {precision!r}")
    return table[precision]


def load_base_model(model_dir: Path, device: str, precision: str):
    """Tokenizer and base model (`AutoModel`, sdpa attention) of a folder, on `device` in the chosen
    precision, in eval mode; returns (tokenizer, model, dtype)."""
    from transformers import AutoModel, AutoTokenizer

    dtype = pick_dtype(precision, device)
    with quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModel.from_pretrained(model_dir, dtype=dtype, attn_implementation="sdpa")
    return tokenizer, model.to(device).eval(), dtype
