"""The tiny Qwen-VL checkpoint builder: shape constraints and loading through the user's path."""
import json

import pytest
import torch

from embedder.tiny import SPECIAL_TOKENS, build_tiny_qwen_vl, tiny_config

FAMILIES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")
MODEL_CLASSES = {"qwen2_vl": "Qwen2VLModel", "qwen2_5_vl": "Qwen2_5_VLModel", "qwen3_vl": "Qwen3VLModel"}


@pytest.mark.parametrize("family", FAMILIES)
def test_folder_loads_back_through_auto_classes(family, tiny_dirs):
    from transformers import AutoModel, AutoProcessor, AutoTokenizer

    folder = tiny_dirs[family]
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["model_type"] == family
    model = AutoModel.from_pretrained(folder)
    assert type(model).__name__ == MODEL_CLASSES[family]
    tok = AutoTokenizer.from_pretrained(folder)
    assert [tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == list(range(len(SPECIAL_TOKENS)))
    assert tok.convert_tokens_to_ids("<|image_pad|>") == cfg["image_token_id"]
    # special tokens are atomic when they appear in text
    ids = tok("<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>red shirt<|im_end|>")["input_ids"]
    assert ids[0] == 1 and ids[3:6] == [3, 5, 4]
    proc = AutoProcessor.from_pretrained(folder)
    vision = model.config.vision_config
    assert proc.image_processor.merge_size == vision.spatial_merge_size
    assert proc.image_processor.patch_size == vision.patch_size == (16 if family == "qwen3_vl" else 14)
    text = model.config.get_text_config()
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    assert sum(text.rope_parameters["mrope_section"]) == head_dim // 2


def test_lm_head_checkpoint_loads_base_weights(tiny_dirs):
    """qwen2_vl was saved as Qwen2VLForConditionalGeneration (like GME); AutoModel takes its base."""
    from safetensors.torch import load_file
    from transformers import AutoModel

    folder = tiny_dirs["qwen2_vl"]
    saved = load_file(folder / "model.safetensors")
    assert any(k.startswith("lm_head") for k in saved)
    model = AutoModel.from_pretrained(folder)
    key = next(k for k in saved if k.endswith("embed_tokens.weight"))  # saved in the released key layout
    torch.testing.assert_close(model.get_input_embeddings().weight, saved[key])


def test_seed_decides_weights_and_bad_sizes(tmp_path):
    a = build_tiny_qwen_vl(tmp_path / "a", "qwen2_vl", seed=3)
    b = build_tiny_qwen_vl(tmp_path / "b", "qwen2_vl", seed=3)
    c = build_tiny_qwen_vl(tmp_path / "c", "qwen2_vl", seed=4)
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    assert (a / "model.safetensors").read_bytes() != (c / "model.safetensors").read_bytes()
    with pytest.raises(ValueError, match="multiple of 32"):
        tiny_config("qwen2_vl", 100, hidden_size=48)
    with pytest.raises(ValueError, match="unknown Qwen-VL family"):
        tiny_config("llava", 100)
