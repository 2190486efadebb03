"""Embedding throughput, each figure against a reference measured in the same run.

    python scripts/bench_embed.py                 # text backend vs sentence-transformers; tiny qwen-vl
    python scripts/bench_embed.py --gpu           # + a Qwen2-VL-2B-shaped random model, bf16, 448x448

1. Text backend (`ItemEmbedder("text")`, the offline MiniLM) against sentence-transformers' own `encode`
   on the same model folder, items, batch size and threads; runs are interleaved and the best of
   `--repeats` is kept for each. Goal: ratio >= 1.0. Also checks the vectors agree (cosine).
2. Tiny Qwen-VL checkpoints (embedder.tiny) on a tiny catalogue: items/s (pipeline overhead: picture
   decoding, processor, batching), with and without pictures.
3. --gpu: Qwen2-VL-2B's shape (text 1536 x 28 layers, vision 1280 x 32 layers) with random weights,
   saved and loaded through the user's path, bf16 + SDPA on CUDA, 448x448 pictures (256 visual tokens):
   items/s and achieved TFLOP/s against the GPU's dense bf16 peak. FLOPs are counted analytically from
   the config (matmuls and attention, 2 FLOPs per multiply-add) for the tokens actually processed.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch

WORDS = ("red blue green black white navy grey pink cotton linen wool silk leather denim slim classic "
         "summer winter sport casual shirt dress jeans shoes boots sneakers jacket coat bag backpack "
         "watch phone case charger lamp chair table mug kettle pan knife for men women kids size small "
         "medium large pack of two with pockets zip waterproof breathable lightweight premium").split()


def titles(n: int, seed: int = 0) -> list[str]:
    """Product-like titles of 3 to 30 words (a long tail of long titles, as in real catalogues)."""
    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.geometric(0.12, n) + 2, 3, 30)
    return [" ".join(rng.choice(WORDS, size=k)) for k in lengths]


def timed(fn) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t


def bench_text(n: int, batch_size: int, repeats: int, device: str) -> None:
    from sentence_transformers import SentenceTransformer

    from embedder import ItemEmbedder

    texts = titles(n)
    ours = ItemEmbedder("text", device=device)
    st = SentenceTransformer(str(ours.backend.model_dir), device=ours.backend.device)
    ours.encode(texts[:batch_size], batch_size=batch_size, show_progress_bar=False)  # warm-up
    st.encode(texts[:batch_size], batch_size=batch_size, show_progress_bar=False)
    t_ours, t_st = [], []
    for _ in range(repeats):  # interleaved, so load on a shared machine hits both alike
        t_ours.append(timed(lambda: ours.encode(texts, batch_size=batch_size, show_progress_bar=False)))
        t_st.append(timed(lambda: st.encode(texts, batch_size=batch_size, normalize_embeddings=True,
                                            show_progress_bar=False)))
    a = ours.encode(texts, batch_size=batch_size, show_progress_bar=False)
    b = st.encode(texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False)
    cos = (a * b).sum(1)
    print(f"[text] MiniLM, {n} titles, batch {batch_size}, device {ours.backend.device}, "
          f"torch threads {torch.get_num_threads()}")
    print(f"  ours                  best {n / min(t_ours):8.1f} items/s   median {n / statistics.median(t_ours):8.1f}")
    print(f"  sentence-transformers best {n / min(t_st):8.1f} items/s   median {n / statistics.median(t_st):8.1f}")
    print(f"  ratio ours / st: best {min(t_st) / min(t_ours):.3f}x, median "
          f"{statistics.median(t_st) / statistics.median(t_ours):.3f}x   (goal >= 1.0)")
    print(f"  cosine ours vs st: min {cos.min():.6f}")


def bench_tiny_qwen(n: int, batch_size: int, device: str) -> None:
    import pyarrow.parquet as pq

    from embedder import Item, ItemEmbedder
    from embedder.tiny import FAMILIES, build_tiny_qwen_vl, write_tiny_catalogue

    with tempfile.TemporaryDirectory() as tmp:
        items_path = write_tiny_catalogue(Path(tmp) / "data", n=n, no_picture_every=0)
        rows = pq.read_table(items_path).to_pylist()
        with_pic = [Item(r["title"], items_path.parent / r["image"], r["item_id"]) for r in rows]
        text_only = [Item(r["title"], None, r["item_id"]) for r in rows]
        print(f"[qwen-vl tiny] {n} items, batch {batch_size}, device {device}")
        for fam in FAMILIES:
            emb = ItemEmbedder("qwen-vl", str(build_tiny_qwen_vl(Path(tmp) / fam, fam)), device=device)
            emb.encode(with_pic[:batch_size], batch_size=batch_size, show_progress_bar=False)
            t_pic = timed(lambda: emb.encode(with_pic, batch_size=batch_size, show_progress_bar=False))
            t_txt = timed(lambda: emb.encode(text_only, batch_size=batch_size, show_progress_bar=False))
            print(f"  {fam:<11} with pictures {n / t_pic:8.1f} items/s   text only {n / t_txt:8.1f} items/s")


# --- GPU: a Qwen2-VL-2B-shaped random model ---------------------------------------------------------

PEAK_BF16_TFLOPS = {"H100 SXM": 989.0, "H100 NVL": 835.0, "H100 PCIe": 756.0, "H100": 989.0, "H200": 989.0,
                    "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0, "B200": 2250.0}


def peak_tflops(name: str) -> float | None:
    for key in sorted(PEAK_BF16_TFLOPS, key=len, reverse=True):
        if key in name:
            return PEAK_BF16_TFLOPS[key]
    return None


def qwen2vl_2b_config(scale: str):
    """Qwen2-VL-2B's published shape (or a small stand-in for a CPU dry run), special token ids of
    our tiny tokenizer."""
    from transformers import Qwen2VLConfig

    from embedder.tiny import SPECIAL_TOKENS

    full = scale == "full"
    text = dict(vocab_size=151936, hidden_size=1536 if full else 64, intermediate_size=8960 if full else 128,
                num_hidden_layers=28 if full else 2, num_attention_heads=12 if full else 4,
                num_key_value_heads=2, max_position_embeddings=32768, rms_norm_eps=1e-6,
                rope_parameters={"rope_type": "default", "rope_theta": 1e6,
                                 "mrope_section": [16, 24, 24] if full else [4, 2, 2]},
                bos_token_id=0, eos_token_id=2, pad_token_id=0)
    vision = dict(depth=32 if full else 2, embed_dim=1280 if full else 64, hidden_size=text["hidden_size"],
                  num_heads=16 if full else 4, mlp_ratio=4, patch_size=14, spatial_merge_size=2,
                  temporal_patch_size=2)
    return Qwen2VLConfig(text_config=text, vision_config=vision,
                         image_token_id=SPECIAL_TOKENS.index("<|image_pad|>"),
                         video_token_id=SPECIAL_TOKENS.index("<|video_pad|>"),
                         vision_start_token_id=SPECIAL_TOKENS.index("<|vision_start|>"),
                         vision_end_token_id=SPECIAL_TOKENS.index("<|vision_end|>"))


def qwen2vl_flops(cfg, patches: int, text_tokens: int) -> float:
    """Forward FLOPs of one item: vision tower over `patches`, merger, language model over `text_tokens`
    (visual tokens included). Matmuls only (norms, rotary, softmax are negligible), attention included."""
    v = cfg.vision_config
    d, p = v.embed_dim, patches
    patch_dim = v.in_channels * v.temporal_patch_size * v.patch_size ** 2
    vis = 2 * p * patch_dim * d
    vis += v.depth * (2 * p * d * 3 * d + 2 * p * d * d + 2 * 2 * p * d * v.mlp_ratio * d + 2 * 2 * p * p * d)
    merged, dm = p // v.spatial_merge_size ** 2, d * v.spatial_merge_size ** 2
    vis += 2 * merged * dm * dm + 2 * merged * dm * v.hidden_size
    t = cfg.text_config
    h, kv = t.hidden_size, t.num_key_value_heads * (t.hidden_size // t.num_attention_heads)
    per_layer = 2 * text_tokens * (h * h + 2 * h * kv + h * h + 3 * h * t.intermediate_size)
    per_layer += 2 * 2 * text_tokens * text_tokens * h
    return vis + t.num_hidden_layers * per_layer


def bench_gpu(n: int, batch_size: int, side: int, scale: str, device: str) -> None:
    from PIL import Image
    from transformers import AutoModel

    from embedder import Item, ItemEmbedder
    from embedder.processor import QwenVLImageTextProcessor, register_processor
    from embedder.tiny import tiny_tokenizer
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    cfg = qwen2vl_2b_config(scale)
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "qwen2vl-2b-random"
        t0 = time.perf_counter()
        with torch.device(device):
            model = AutoModel.from_config(cfg, dtype=dtype)
        model.save_pretrained(folder)
        register_processor()
        pixels = side * side
        QwenVLImageTextProcessor(Qwen2VLImageProcessorPil(min_pixels=pixels, max_pixels=pixels),
                                 tiny_tokenizer()).save_pretrained(folder)
        del model
        n_params = None
        emb = ItemEmbedder("qwen-vl", str(folder), device=device,
                           precision="bfloat16" if dtype == torch.bfloat16 else "float32")
        n_params = sum(p.numel() for p in emb.backend.model.parameters())
        print(f"[gpu] Qwen2-VL-2B-shaped random model ({n_params / 1e9:.2f} B params, scale={scale}), "
              f"built + saved + loaded in {time.perf_counter() - t0:.1f} s")
        rng = np.random.default_rng(0)
        pics = [Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)) for _ in range(8)]
        items = [Item(t, pics[i % len(pics)]) for i, t in enumerate(titles(n, seed=1))]
        emb.encode(items[:batch_size], batch_size=batch_size, show_progress_bar=False)  # warm-up
        seconds = timed(lambda: emb.encode(items, batch_size=batch_size, show_progress_bar=False))
        prepared, _ = emb.backend.prepare(items)
        patches = emb.backend.picture_tokens(side, side) * cfg.vision_config.spatial_merge_size ** 2
        flops = sum(qwen2vl_flops(cfg, patches, p.cost) for p in prepared)
        tflops = flops / seconds / 1e12
        name = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"
        peak = peak_tflops(name) if device.startswith("cuda") else None
        print(f"  device {name}, bf16={dtype == torch.bfloat16}, {n} items of {side}x{side} "
              f"({patches // 4} visual tokens) + title, batch {batch_size}")
        print(f"  {n / seconds:8.1f} items/s   {tflops:7.1f} TFLOP/s achieved"
              + (f"   {100 * tflops / peak:5.1f}% of the {peak:.0f} TFLOP/s dense bf16 peak" if peak else ""))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--items", type=int, default=2000, help="titles for the text benchmark")
    p.add_argument("--batch-size", type=int, default=64, help="batch size of the text benchmark")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repeats of the text benchmark")
    p.add_argument("--tiny-items", type=int, default=64, help="items for the tiny qwen-vl benchmark")
    p.add_argument("--device", default="auto", help="device for sections 1-2 (auto: cuda if available)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice; 1 gives steadier figures on a busy machine)")
    p.add_argument("--skip-text", action="store_true", help="skip section 1")
    p.add_argument("--skip-tiny", action="store_true", help="skip section 2")
    p.add_argument("--gpu", action="store_true", help="run section 3 (needs CUDA unless --gpu-scale small)")
    p.add_argument("--gpu-items", type=int, default=256, help="items for section 3")
    p.add_argument("--gpu-batch-size", type=int, default=32, help="batch size for section 3")
    p.add_argument("--gpu-side", type=int, default=448, help="picture side in pixels for section 3")
    p.add_argument("--gpu-scale", choices=("full", "small"), default="full",
                   help="small: a scaled-down model on any device, to check the section runs")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device
    device = "cpu" if device == "auto" else device
    if not args.skip_text:
        bench_text(args.items, args.batch_size, args.repeats, device)
    if not args.skip_tiny:
        bench_tiny_qwen(args.tiny_items, 16, device)
    if args.gpu:
        if not torch.cuda.is_available() and args.gpu_scale == "full":
            raise SystemExit("--gpu needs a CUDA device (use --gpu-scale small to dry-run on CPU)")
        bench_gpu(args.gpu_items, args.gpu_batch_size, args.gpu_side, args.gpu_scale,
                  "cuda" if torch.cuda.is_available() else "cpu")


if __name__ == "__main__":
    main()
