"""`embed-items`: embed items.parquet into an embedding store folder (see `embedder.store_builder`)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common.cli import default_of, make_parser, run
from retrieval.store import VECTOR_DTYPES

from .encoder import BACKENDS, ON_BAD_IMAGE, PRECISIONS, QWEN_VL_ONLY, EmbedderConfig
from .store_builder import SHARDS_DIR, BuildConfig, build_store_from_config


def build_parser() -> argparse.ArgumentParser:
    p = make_parser("embed-items", __doc__)
    p.add_argument("--items", required=True, help="items.parquet (item_id, title, image, ...)")
    p.add_argument("--out", required=True, help="store folder to write (embeddings.npy, item_ids.npy, manifest.json)")
    p.add_argument("--images-root", default=None,
                   help="folder the `image` paths are relative to (default: the items file's folder)")
    p.add_argument("--text", default=default_of(BuildConfig, "text_template"), metavar="TEMPLATE",
                   help="what text each item is embedded with: a template over items.parquet's columns, "
                        "e.g. '{title}' or '{brand_name} {title}'; auto puts the title behind its "
                        "category path, '{top_category_name} > {category_name}: {title}', when the file has "
                        "those name columns (category_name alone: '{category_name}: {title}'), else the "
                        "title alone (default %(default)s)")
    p.add_argument("--backend", choices=BACKENDS, default=default_of(EmbedderConfig, "backend"),
                   help="qwen-vl: picture + title with a Qwen-VL model; text: title with a BERT-style model "
                        "(default %(default)s)")
    p.add_argument("--model", default=None,
                   help="model folder or hub id (default for text: the offline MiniLM; required for qwen-vl)")
    p.add_argument("--batch-size", type=int, default=default_of(BuildConfig, "batch_size"),
                   help="items per forward pass (default %(default)s)")
    p.add_argument("--dtype", choices=VECTOR_DTYPES, default=default_of(BuildConfig, "dtype"),
                   help="stored vector dtype (default %(default)s)")
    p.add_argument("--index", default=None,
                   help="also build index.faiss: 'auto' (chosen by catalogue size) or a faiss factory string "
                        "such as Flat, HNSW32, IVF1024,Flat (default: no index; search builds an exact one)")
    p.add_argument("--on-bad-image", choices=ON_BAD_IMAGE, default=default_of(BuildConfig, "on_bad_image"),
                   help="missing/corrupt/unsupported picture (every backend; the text backend reads "
                        "the headers): fail naming the item, or embed the item from its text, list it in "
                        "the manifest and warn (default %(default)s)")
    p.add_argument("--instruction", default=None, help="qwen-vl system instruction (default: a product instruction)")
    p.add_argument("--pooling", default=None,
                   help="qwen-vl: last (default) or mean; text: mean, cls, max, mean_sqrt_len, lasttoken "
                        "(default: the model folder's pooling config, else mean)")
    p.add_argument("--no-append-eos", action="store_true",
                   help="qwen-vl: do not append <|endoftext|> (GME appends it and pools it)")
    p.add_argument("--min-pixels", type=int, default=None, help="qwen-vl: lower bound of picture area after resize")
    p.add_argument("--max-pixels", type=int, default=None, help="qwen-vl: upper bound of picture area after resize")
    p.add_argument("--max-seq-length", type=int, default=None, help="text: truncation length in tokens")
    p.add_argument("--device", default=default_of(EmbedderConfig, "device"),
                   help="auto (cuda if available), cpu, cuda, cuda:1, ... (default %(default)s)")
    p.add_argument("--precision", choices=PRECISIONS, default=default_of(EmbedderConfig, "precision"),
                   help="model dtype (auto: bf16 on CUDA, fp32 on CPU; default %(default)s)")
    p.add_argument("--shard-size", type=int, default=default_of(BuildConfig, "shard_size"),
                   help="items per resumable shard (default %(default)s)")
    p.add_argument("--no-resume", action="store_true", help="discard shards of an interrupted run and start over")
    p.add_argument("--overwrite", action="store_true", help="replace an existing store at --out")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


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


def _embed(args: argparse.Namespace) -> None:
    if args.backend == "text":  # flags the text backend cannot use fail before any item is read
        for flag in QWEN_VL_ONLY:
            if getattr(args, flag) is not None:
                raise ValueError(f"--{flag.replace('_', '-')} applies to --backend qwen-vl only")
    out = build_store_from_config(config_from_args(args),
                                  warn=lambda message: print(f"embed-items: warning: {message}", file=sys.stderr))
    print(f"embedding store written to {out}")


def _interrupted(args: argparse.Namespace) -> str:
    """After Ctrl-C: what was kept (the finished shards) and how to go on."""
    shards = Path(args.out) / SHARDS_DIR
    done = len(list(shards.glob("shard-*.npy"))) if shards.is_dir() else 0
    if not done:
        return "no shard was finished, nothing to resume; run the same command again to start"
    return (f"{done} finished shard(s) kept in {shards}; run the same command again to resume "
            "(--no-resume starts over)")


def main(argv: list[str] | None = None) -> int:
    return run(build_parser, argv, _embed, _interrupted)


if __name__ == "__main__":
    sys.exit(main())
