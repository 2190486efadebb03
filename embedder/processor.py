"""A Qwen-VL processor for pictures and text only, which works without torchvision.

transformers' `Qwen2VLProcessor` / `Qwen3VLProcessor` require a video processor, and every Qwen video
processor needs torchvision. Item embedding needs no video: this subclass keeps the stock image-token
expansion (one `<|image_pad|>` per merged patch, `mm_token_type_ids` marking them) and drops the video
processor. The image processor is transformers' PIL one (`Qwen2VLImageProcessorPil`), also used for
Qwen3-VL (patch 16 instead of 14). Both facts are our reading of transformers 5.x.
"""
from __future__ import annotations

from transformers import AutoProcessor
from transformers.models.qwen2_vl.processing_qwen2_vl import Qwen2VLProcessor
from transformers.processing_utils import ProcessorMixin

IMAGE_TOKEN = "<|image_pad|>"
VIDEO_TOKEN = "<|video_pad|>"


class QwenVLImageTextProcessor(Qwen2VLProcessor):
    """`Qwen2VLProcessor` without a video processor: text plus pictures, `mm_token_type_ids` included."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        self.image_token = getattr(tokenizer, "image_token", None) or IMAGE_TOKEN
        self.video_token = getattr(tokenizer, "video_token", None) or VIDEO_TOKEN
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)


_REGISTERED = False


def register_processor() -> None:
    """Register the processor with `AutoProcessor` for the three Qwen-VL configs (idempotent), so
    folders saved with it load back through `AutoProcessor.from_pretrained`."""
    global _REGISTERED
    if _REGISTERED:
        return
    from transformers import Qwen2_5_VLConfig, Qwen2VLConfig, Qwen3VLConfig

    for config_class in (Qwen2VLConfig, Qwen2_5_VLConfig, Qwen3VLConfig):
        AutoProcessor.register(config_class, QwenVLImageTextProcessor, exist_ok=True)
    _REGISTERED = True
