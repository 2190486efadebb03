"""`ItemEmbedder`: the sentence-transformers-style `encode` API over the two backends.

    embedder = ItemEmbedder("text")                                   # offline MiniLM, 384-d
    embedder = ItemEmbedder("qwen-vl", model="Alibaba-NLP/gme-Qwen2-VL-2B-Instruct")
    vectors = embedder.encode(items, batch_size=32)                   # (N, d) float32, rows of norm 1

Inputs are ordered by cost (token count, pictures included), longest first, embedded in batches and
returned in their original order. `EmbedderConfig` is the one place settings live; a store manifest
records them, and `ItemEmbedder.from_manifest` rebuilds the same embedder to embed queries.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
from tqdm.auto import tqdm

from .items import as_items

BACKENDS = ("qwen-vl", "text")
ON_BAD_IMAGE = ("fail", "text-only")
QWEN_VL_ONLY = ("instruction", "min_pixels", "max_pixels")  # settings the text backend has no use for
PRECISIONS = ("auto", "float32", "bfloat16", "float16")  # model dtype; auto = bf16 on CUDA, fp32 on CPU


@dataclass
class EmbedderConfig:
    """Everything that decides the vectors (besides the items)."""

    backend: str = "text"  # "text" (BERT / sentence-transformers folder) or "qwen-vl"
    model: str | None = None  # folder or hub id; None = offline MiniLM for "text" (required for qwen-vl)
    pooling: str | None = None  # None = backend default (text: the folder's pooling config; qwen-vl: last)
    instruction: str | None = None  # qwen-vl system instruction; None = DEFAULT_INSTRUCTION
    append_eos: bool = True  # qwen-vl: append <|endoftext|> and pool it, as GME does
    min_pixels: int | None = None  # qwen-vl picture area bounds; None = the checkpoint's own
    max_pixels: int | None = None
    padding_side: str = "left"  # qwen-vl batch padding; pooling is correct for either side
    max_seq_length: int | None = None  # text: truncation length; None = the folder's config
    device: str = "auto"  # "auto" = cuda when available, else cpu
    precision: str = "auto"  # model dtype: auto = bf16 on CUDA, fp32 on CPU

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.backend == "qwen-vl" and not self.model:
            raise ValueError("backend 'qwen-vl' needs a model (a checkpoint folder or hub id)")
        for name in ("min_pixels", "max_pixels", "max_seq_length"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")


@dataclass
class EncodeResult:
    vectors: np.ndarray  # (N, d) float32
    text_only: list[int]  # positions of items embedded without their (bad) picture


class ItemEmbedder:
    """One vector per item (text and optional picture), L2-normalised by default."""

    def __init__(self, backend: str = "text", model: str | None = None, **settings: Any):
        self.config = EmbedderConfig(backend=backend, model=model, **settings)
        c = self.config
        if c.backend == "text":
            from .text import TextBackend

            for name in QWEN_VL_ONLY:
                if getattr(c, name) is not None:
                    raise ValueError(f"{name} applies to backend 'qwen-vl' only")
            self.backend = TextBackend(c.model, pooling=c.pooling, max_seq_length=c.max_seq_length,
                                       device=c.device, precision=c.precision)
        else:
            from .qwen_vl import QwenVLBackend

            self.backend = QwenVLBackend(c.model, pooling=c.pooling, instruction=c.instruction,
                                         append_eos=c.append_eos, min_pixels=c.min_pixels,
                                         max_pixels=c.max_pixels, padding_side=c.padding_side,
                                         device=c.device, precision=c.precision)

    @classmethod
    def from_config(cls, config: EmbedderConfig) -> "ItemEmbedder":
        return cls(**asdict(config))

    @classmethod
    def from_manifest(cls, manifest: dict, *, model: str | None = None, device: str = "auto") -> "ItemEmbedder":
        """The embedder a store was built with (same backend, model, pooling, instruction, pixel bounds,
        precision), for embedding queries. `model` overrides the recorded location (a moved folder);
        raises ValueError when the model found differs from the store's (weights hash or dim)."""
        try:
            backend, recorded = manifest["backend"], manifest["model"]
        except KeyError as err:
            raise ValueError(f"store manifest lacks {err}; it was not written by embed-items") from None
        settings = {"pooling": manifest.get("pooling"), "device": device,
                    "precision": manifest.get("precision", "auto")}
        if backend == "qwen-vl":
            settings.update(instruction=manifest.get("instruction"), append_eos=manifest.get("append_eos", True),
                            min_pixels=manifest.get("min_pixels"), max_pixels=manifest.get("max_pixels"),
                            padding_side=manifest.get("padding_side", "left"))
        elif manifest.get("max_seq_length"):
            settings["max_seq_length"] = manifest["max_seq_length"]
        recorded_path = recorded.get("path")
        if model:
            location = model
        elif recorded_path and Path(recorded_path).is_dir():
            location = recorded_path
        else:  # the folder moved or was a hub cache entry: fall back to the id the user gave
            location = recorded.get("id")
        embedder = cls(backend, location, **settings)
        found = embedder.backend.identity
        if recorded.get("weights_sha256") and found["weights_sha256"] != recorded["weights_sha256"]:
            raise ValueError(
                f"model mismatch: the store was built with {recorded.get('id')} (weights sha256 "
                f"{recorded['weights_sha256'][:12]}…) but {location} has weights sha256 "
                f"{found['weights_sha256'][:12]}…")
        if "dim" in manifest and embedder.dim != manifest["dim"]:
            raise ValueError(f"dimension mismatch: the store has dim {manifest['dim']} but model {location} "
                             f"gives {embedder.dim}")
        return embedder

    @property
    def dim(self) -> int:
        return self.backend.dim

    def settings(self) -> dict:
        """The manifest entries describing how vectors are made."""
        return dict(self.backend.settings(), device=self.backend.device)

    def encode(self, items: Iterable[Any] | str, batch_size: int = 32, normalize: bool = True,
               show_progress_bar: bool | None = None, on_bad_image: str = "fail") -> np.ndarray:
        """Embed items -> (N, d) float32 in input order. A bare string is one text item.

        Items: `Item`, dicts/objects with text|title and picture|image (path or PIL image), or strings.
        `on_bad_image`: 'fail' raises naming the item and file; 'text-only' embeds such items from
        their text (see `encode_items` to learn which).
        """
        return self.encode_items(items, batch_size, normalize, show_progress_bar, on_bad_image).vectors

    def encode_items(self, items: Iterable[Any] | str, batch_size: int = 32, normalize: bool = True,
                     show_progress_bar: bool | None = None, on_bad_image: str = "fail",
                     on_batch: Callable[[int], None] | None = None) -> EncodeResult:
        """`encode`, also returning the positions embedded without their picture. `on_batch(n)` is
        called after each batch of n items (for an outer progress bar)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if on_bad_image not in ON_BAD_IMAGE:
            raise ValueError(f"on_bad_image must be one of {ON_BAD_IMAGE}, got {on_bad_image!r}")
        items = as_items([items] if isinstance(items, str) else list(items))
        out = np.empty((len(items), self.dim), dtype=np.float32)
        if not items:
            return EncodeResult(out, [])
        if self.backend.uses_pictures:
            prepared, text_only = self.backend.prepare(items, on_bad_image)
        else:
            prepared, text_only = self.backend.prepare(items), []
        order = np.argsort([-p.cost for p in prepared], kind="stable")  # longest first
        show = show_progress_bar if show_progress_bar is not None else len(items) > 4 * batch_size
        bar = tqdm(total=len(items), desc="embedding", unit="item", disable=not show)
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                rows = order[start:start + batch_size]
                batch = [prepared[r] for r in rows]
                if self.backend.uses_pictures:
                    pictures, failed = self.backend.load_batch_pictures(batch, on_bad_image)
                    text_only += [int(rows[j]) for j in failed]
                    vecs = self.backend.embed(batch, pictures)
                else:
                    vecs = self.backend.embed(batch)
                if normalize:
                    vecs = torch.nn.functional.normalize(vecs, p=2, dim=1)
                out[rows] = vecs.cpu().numpy()
                bar.update(len(rows))
                if on_batch is not None:
                    on_batch(len(rows))
        bar.close()
        return EncodeResult(out, sorted(text_only))
