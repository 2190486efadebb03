"""`embed-items`: embed items.parquet into an embedding store folder (see `embedder.store_builder`)."""
from __future__ import annotations

import argparse
import sys

from .encoder import BACKENDS, ON_BAD_IMAGE, EmbedderConfig
from .store_builder import BuildConfig, build_store_from_config


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="embed-items", description=__doc__)
    p.add_argument("--items", required=True, help="items.parquet (item_id, title, image, ...)")
    p.add_argument("--out", required=True, help="store folder to write (embeddings.npy, item_ids.npy, manifest.json)")
    p.add_argument("--images-root", default=None,
                   help="folder the `image` paths are relative to (default: the items file's folder)")
    p.add_argument("--text", default="auto", metavar="TEMPLATE",
                   help="what text each item is embedded with: a template over items.parquet's columns, "
                        "e.g. '{title}' or '{brand_name} {title}'; auto (default) puts the title behind its "
                        "category path, '{top_category_name} > {category_name}: {title}', when the file has "
                        "those name columns (category_name alone: '{category_name}: {title}'), else the "
                        "title alone")
    p.add_argument("--backend", choices=BACKENDS, default="text",
                   help="qwen-vl: picture + title with a Qwen-VL model; text: title with a BERT-style model")
    p.add_argument("--model", default=None,
                   help="model folder or hub id (default for text: the offline MiniLM; required for qwen-vl)")
    p.add_argument("--batch-size", type=int, default=64, help="items per forward pass")
    p.add_argument("--dtype", choices=("float32", "float16"), default="float32", help="stored vector dtype")
    p.add_argument("--index", default=None,
                   help="also build index.faiss: 'auto' (chosen by catalogue size) or a faiss factory string "
                        "such as Flat, HNSW32, IVF1024,Flat (default: no index; search builds an exact one)")
    p.add_argument("--on-bad-image", choices=ON_BAD_IMAGE, default="fail",
                   help="missing/corrupt/unsupported picture: fail naming the item (default), or embed the "
                        "item from its text and list it in the manifest")
    p.add_argument("--instruction", default=None, help="qwen-vl system instruction (default: a product instruction)")
    p.add_argument("--pooling", default=None,
                   help="qwen-vl: last (default) or mean; text: mean, cls, max, mean_sqrt_len, lasttoken "
                        "(default: the model folder's pooling config, else mean)")
    p.add_argument("--no-append-eos", action="store_true",
                   help="qwen-vl: do not append <|endoftext|> (GME appends it and pools it)")
    p.add_argument("--min-pixels", type=int, default=None, help="qwen-vl: lower bound of picture area after resize")
    p.add_argument("--max-pixels", type=int, default=None, help="qwen-vl: upper bound of picture area after resize")
    p.add_argument("--max-seq-length", type=int, default=None, help="text: truncation length in tokens")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1, ...")
    p.add_argument("--precision", choices=("auto", "float32", "bfloat16", "float16"), default="auto",
                   help="model dtype (auto: bf16 on CUDA, fp32 on CPU)")
    p.add_argument("--shard-size", type=int, default=4096, help="items per resumable shard")
    p.add_argument("--no-resume", action="store_true", help="discard shards of an interrupted run and start over")
    p.add_argument("--overwrite", action="store_true", help="replace an existing store at --out")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> BuildConfig:
    embedder = EmbedderConfig(
        backend=args.backend, model=args.model, pooling=args.pooling, instruction=args.instruction,
        append_eos=not args.no_append_eos, min_pixels=args.min_pixels, max_pixels=args.max_pixels,
        max_seq_length=args.max_seq_length, device=args.device, precision=args.precision)
    index = None if args.index in (None, "", "none") else args.index
    return BuildConfig(items=args.items, out=args.out, embedder=embedder, images_root=args.images_root,
                       text_template=args.text,
                       batch_size=args.batch_size, dtype=args.dtype, index=index, on_bad_image=args.on_bad_image,
                       shard_size=args.shard_size, resume=not args.no_resume, overwrite=args.overwrite,
                       show_progress_bar=not args.no_progress)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg = config_from_args(args)
        if cfg.embedder.backend == "text":  # text-only settings check before loading a model
            for flag in ("instruction", "min_pixels", "max_pixels"):
                if getattr(cfg.embedder, flag) is not None:
                    raise ValueError(f"--{flag.replace('_', '-')} applies to --backend qwen-vl only")
        out = build_store_from_config(cfg)
    except (ValueError, FileNotFoundError, FileExistsError, KeyError) as err:
        print(f"embed-items: error: {err}", file=sys.stderr)
        return 2
    print(f"embedding store written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
