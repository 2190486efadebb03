"""`search-items`: nearest items of a store item, a text or a picture, with scores and titles.

Text and picture queries are embedded with the store's own backend, model and settings (read from its
manifest; the model's weights hash must match); see `embedder.query`. The search itself is
`retrieval.search.search_store`.
"""
from __future__ import annotations

import argparse
import sys

from common.cli import default_of, make_parser, run

from .query import SearchConfig, search_items


def build_parser() -> argparse.ArgumentParser:
    p = make_parser("search-items", __doc__.split("\n")[0])
    p.add_argument("--store", required=True, help="embedding store folder written by embed-items")
    p.add_argument("--item-id", type=int, default=None, help="query: an item of the store (left out of the results)")
    p.add_argument("--text", default=None, help="query: a text, embedded with the store's model")
    p.add_argument("--image", default=None, help="query: a picture file (qwen-vl stores; may be combined with --text)")
    p.add_argument("-k", type=int, default=default_of(SearchConfig, "k"),
                   help="number of neighbours (0 with --min-score: all above it; default %(default)s)")
    p.add_argument("--min-score", type=float, default=None, help="only neighbours with cosine >= this")
    p.add_argument("--items", default=None,
                   help="items.parquet for titles (default: the items file recorded in the manifest, if present)")
    p.add_argument("--model", default=None, help="where the store's model is now, if it moved (hash-checked)")
    p.add_argument("--device", default=default_of(SearchConfig, "device"),
                   help="device for embedding a text/picture query (default %(default)s)")
    p.add_argument("--index-factory", default=None,
                   help="search with a fresh faiss index of this factory (e.g. HNSW32) instead of the "
                        "store's index.faiss or an exact Flat index")
    return p


def _search(args: argparse.Namespace) -> None:
    cfg = SearchConfig(store=args.store, item_id=args.item_id, text=args.text, image=args.image, k=args.k,
                       min_score=args.min_score, items=args.items, model=args.model, device=args.device,
                       index_factory=args.index_factory)
    hits = search_items(cfg)
    print(f"{'rank':>4}  {'item_id':>10}  {'score':>7}  title")
    for h in hits:
        print(f"{h.rank:>4}  {h.item_id:>10}  {h.score:7.4f}  {h.title if h.title is not None else ''}")
    if not hits:
        print("(no neighbours)")


def main(argv: list[str] | None = None) -> int:
    return run(build_parser, argv, _search)


if __name__ == "__main__":
    sys.exit(main())
