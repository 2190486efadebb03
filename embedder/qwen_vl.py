"""Qwen-VL backend: one vector per item from Qwen2-VL, Qwen2.5-VL or Qwen3-VL (and GME-style models).

The recipe (GME-Qwen2-VL, Qwen3-VL-Embedding, VLM2Vec, as read from their papers and model cards):
- one ChatML input per item: a system turn holding the instruction, a user turn with the picture
  placeholder first (`<|vision_start|><|image_pad|><|vision_end|>`, expanded by the processor to one
  pad per merged patch) and the item text after it, then the assistant prefix; GME appends
  `<|endoftext|>` and pools it (`append_eos=True`, our default). Items without a picture have no
  placeholder. We write the ChatML ourselves (it is what the Qwen chat templates render) so the input
  does not depend on a checkpoint's template version.
- `last_hidden_state` of the base model (`AutoModel` -> Qwen2VLModel / Qwen2_5_VLModel / Qwen3VLModel),
  pooled at the last real token found from the attention mask (either padding side), or the mean of
  all real tokens (`pooling="mean"`); L2 normalisation happens in `ItemEmbedder`.
- picture cost bounded by min_pixels / max_pixels (resize factor = patch * merge: 28 for Qwen2/2.5-VL,
  32 for Qwen3-VL; merged tokens per picture = H * W / factor^2).
- bf16 (fp16 where bf16 is missing) with SDPA on CUDA, fp32 on CPU, under `torch.inference_mode()`.

Position ids: when a batch holds pictures, the model computes 3-D M-RoPE positions from the attention
mask itself. For a text-only batch it would number padded positions too (left padding would then shift
every real token), so we pass positions counted over real tokens, which is what the model's own
`get_rope_index` gives for text.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from .items import BadPictureError, Item, load_picture, picture_size
from .model_files import load_base_model, model_identity, pick_device, resolve_model_dir
from .text import pool

FAMILIES = {"qwen2_vl": 28, "qwen2_5_vl": 28, "qwen3_vl": 32}  # model_type -> resize factor
DEFAULT_INSTRUCTION = "Represent the given product, its picture and its title, for finding similar products."
POOLING_MODES = ("last", "mean")
VISION_PLACEHOLDER = "<|vision_start|><|image_pad|><|vision_end|>"
REQUIRED_TOKENS = ("<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>")
EOS_TOKEN = "<|endoftext|>"


def chatml(text: str, instruction: str, has_picture: bool, append_eos: bool) -> str:
    """The embedding input of one item (system instruction, user turn: picture then text)."""
    user = (VISION_PLACEHOLDER if has_picture else "") + text
    prompt = (f"<|im_start|>system\n{instruction}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n"
              "<|im_start|>assistant\n")
    return prompt + EOS_TOKEN if append_eos else prompt


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """transformers' Qwen2-VL resize rule (sides multiples of `factor`, area within the bounds)."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize as hf_resize

    return hf_resize(height, width, factor=factor, min_pixels=min_pixels, max_pixels=max_pixels)


@dataclass
class _Prepared:
    item: Item
    text_tokens: int
    picture_tokens: int  # merged visual tokens; 0 when the item is embedded without a picture

    @property
    def cost(self) -> int:
        return self.text_tokens + self.picture_tokens


class QwenVLBackend:
    """Embeds items (text and optional picture) with a Qwen-VL checkpoint."""

    name = "qwen-vl"
    uses_pictures = True

    def __init__(self, model: str | Path, *, pooling: str | None = None, instruction: str | None = None,
                 append_eos: bool = True, min_pixels: int | None = None, max_pixels: int | None = None,
                 padding_side: str = "left", device: str = "auto", precision: str = "auto"):
        from transformers import AutoConfig

        from .processor import QwenVLImageTextProcessor, register_processor

        if model is None:
            raise ValueError("backend 'qwen-vl' needs a model (a local checkpoint folder or a hub id)")
        self.pooling = pooling or "last"
        if self.pooling not in POOLING_MODES:
            raise ValueError(f"qwen-vl pooling must be one of {POOLING_MODES}, got {self.pooling!r}")
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        self.instruction = instruction or DEFAULT_INSTRUCTION
        self.append_eos = append_eos
        self.model_name = str(model)
        self.model_dir = resolve_model_dir(model)
        config = AutoConfig.from_pretrained(self.model_dir)
        if config.model_type not in FAMILIES:
            raise ValueError(f"model {model}: model_type {config.model_type!r} is not a Qwen-VL family "
                             f"({', '.join(FAMILIES)})")
        self.family = config.model_type
        self.device = pick_device(device)
        self.tokenizer, self.model, self.dtype = load_base_model(self.model_dir, self.device, precision)
        self.tokenizer.padding_side = padding_side
        if self.tokenizer.pad_token is None:  # Qwen pads with <|endoftext|>; pads are masked out anyway
            self.tokenizer.pad_token = EOS_TOKEN if EOS_TOKEN in self.tokenizer.get_vocab() else "<|im_end|>"
        self.padding_side = padding_side
        self._check_tokens(config)
        self.image_processor = self._image_processor(config, min_pixels, max_pixels)
        register_processor()
        self.processor = QwenVLImageTextProcessor(self.image_processor, self.tokenizer)
        text_config = config.get_text_config()
        self.dim = int(text_config.hidden_size)
        self.identity = model_identity(self.model_name, self.model_dir)

    def _check_tokens(self, config) -> None:
        needed = REQUIRED_TOKENS + ((EOS_TOKEN,) if self.append_eos else ())
        vocab = self.tokenizer.get_vocab()
        missing = [t for t in needed if t not in vocab]
        if missing:
            raise ValueError(f"model {self.model_name}: tokenizer lacks the Qwen special tokens {missing}")
        if vocab["<|image_pad|>"] != config.image_token_id:
            raise ValueError(f"model {self.model_name}: tokenizer's <|image_pad|> id {vocab['<|image_pad|>']} "
                             f"differs from config.image_token_id {config.image_token_id}")

    def _image_processor(self, config, min_pixels: int | None, max_pixels: int | None):
        """The checkpoint's PIL image processor (defaults from the vision config when it has none),
        with the pixel bounds overridden when given; checked against the vision tower's shape."""
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

        vision = config.vision_config
        try:
            proc = Qwen2VLImageProcessorPil.from_pretrained(self.model_dir)
        except OSError:  # no preprocessor/processor config in the folder
            proc = Qwen2VLImageProcessorPil(patch_size=vision.patch_size, merge_size=vision.spatial_merge_size,
                                            temporal_patch_size=vision.temporal_patch_size)
        if proc.merge_size != vision.spatial_merge_size or proc.patch_size != vision.patch_size:
            raise ValueError(
                f"model {self.model_name}: image processor patch/merge {proc.patch_size}/{proc.merge_size} "
                f"do not match the vision tower's {vision.patch_size}/{vision.spatial_merge_size}")
        lo = min_pixels or proc.size["shortest_edge"]
        hi = max_pixels or proc.size["longest_edge"]
        if lo > hi:
            raise ValueError(f"min_pixels {lo} is larger than max_pixels {hi}")
        proc.size = {"shortest_edge": int(lo), "longest_edge": int(hi)}
        self.factor = proc.patch_size * proc.merge_size
        self.min_pixels, self.max_pixels = int(lo), int(hi)
        return proc

    def settings(self) -> dict:
        """How vectors are made, for the store manifest."""
        return {"backend": self.name, "model": dict(self.identity, family=self.family), "dim": self.dim,
                "pooling": self.pooling, "instruction": self.instruction, "append_eos": self.append_eos,
                "min_pixels": self.min_pixels, "max_pixels": self.max_pixels, "resize_factor": self.factor,
                "padding_side": self.padding_side,
                "precision": str(self.dtype).removeprefix("torch."), "uses_pictures": True}

    # --- preparation: token counts, picture sizes from headers ------------------------------------

    def picture_tokens(self, width: int, height: int) -> int:
        h, w = smart_resize(height, width, self.factor, self.min_pixels, self.max_pixels)
        return (h // self.factor) * (w // self.factor)

    def prepare(self, items: list[Item], on_bad_image: str = "fail") -> tuple[list[_Prepared], list[int]]:
        """Per item: token counts (the sort cost). Returns the prepared items and the positions of items
        whose picture failed and that are embedded from text alone (on_bad_image='text-only')."""
        prepared, text_only = [], []
        prompts = []
        for i, it in enumerate(items):
            if it.text and ("<|vision_start|>" in it.text or "<|image_pad|>" in it.text):
                raise ValueError(f"item {it.label}: text contains a Qwen vision token")
            tokens = 0
            if it.picture is not None:
                try:
                    tokens = self.picture_tokens(*picture_size(it))
                except BadPictureError:
                    if on_bad_image != "text-only" or not it.text:
                        raise
                    it, tokens = Item(text=it.text, item_id=it.item_id), 0
                    text_only.append(i)
            prepared.append(_Prepared(it, 0, tokens))
            prompts.append(chatml(it.text or "", self.instruction, tokens > 0, self.append_eos))
        lengths = self.tokenizer(prompts, padding=False, return_attention_mask=False)["input_ids"]
        for p, ids in zip(prepared, lengths):
            p.text_tokens = len(ids)
        return prepared, text_only

    def load_batch_pictures(self, batch: list[_Prepared],
                            on_bad_image: str) -> tuple[list[Image.Image | None], list[int]]:
        """Decode the batch's pictures; failures raise or (text-only) drop the picture of that item."""
        pictures, failed = [], []
        for j, p in enumerate(batch):
            if p.picture_tokens == 0:
                pictures.append(None)
                continue
            try:
                pictures.append(load_picture(p.item))
            except BadPictureError:
                if on_bad_image != "text-only" or not p.item.text:
                    raise
                pictures.append(None)
                failed.append(j)
        return pictures, failed

    # --- forward -----------------------------------------------------------------------------------

    def embed(self, batch: list[_Prepared], pictures: list[Image.Image | None]) -> torch.Tensor:
        """(B, D) float32 pooled vectors of one batch (not normalised)."""
        prompts = [chatml(p.item.text or "", self.instruction, pic is not None, self.append_eos)
                   for p, pic in zip(batch, pictures)]
        images = [pic for pic in pictures if pic is not None]
        enc = self.processor(text=prompts, images=images or None, padding=True, return_tensors="pt")
        inputs = {k: v.to(self.device) for k, v in enc.items() if k != "token_type_ids"}
        mask = inputs["attention_mask"]
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        else:  # text only: positions over real tokens, (3, B, T) for the three M-RoPE axes
            pos = (mask.long().cumsum(-1) - 1).clamp(min=0)
            inputs["position_ids"] = pos.unsqueeze(0).expand(3, -1, -1)
            inputs.pop("mm_token_type_ids", None)
        hidden = self.model(**inputs, use_cache=False).last_hidden_state
        return pool(hidden, mask, "lasttoken" if self.pooling == "last" else "mean")
