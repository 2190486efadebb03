"""Is the embedding store made from this dataset's items? Its manifest says which file it embedded.

`embed-items` records the items file it read in the store manifest (`EmbeddingStore.recorded_items`
reads its path and sha256). A store embedded from another catalogue that happens to share the item ids (a shuffled or edited copy) would label every
impression with the wrong similarities, silently; so a recorded hash that differs from
DATA/items.parquet's is an error unless allowed knowingly. A store embedded from an in-memory
table records no file (its `sha256` hashes the items' content, not a file): it is accepted, with
a note in the labelled folder's manifest.
"""
from __future__ import annotations

import logging
from pathlib import Path

from retrieval.store import EmbeddingStore

log = logging.getLogger(__name__)
SHOW_HEX = 12  # how many hex digits of a hash an error shows


def check_store_items(store: EmbeddingStore, store_path: Path, items_path: Path, items_sha256: str,
                      allow_mismatch: bool) -> dict:
    """Compare the store's recorded items hash with `items_sha256` (of `items_path`); returns the
    manifest's record of the check. A mismatch raises ValueError unless `allow_mismatch`, which
    logs a warning (stderr) instead."""
    path, digest = store.recorded_items
    record = {"store_items_path": path, "store_items_sha256": digest, "data_items_sha256": items_sha256}
    if digest is None:
        return {"result": "not_recorded", **record,
                "note": "the store records no items file hash (built from an in-memory table or by "
                        "another tool): not checked against the dataset's items.parquet"}
    if digest == items_sha256:
        return {"result": "match", **record}
    message = (f"the store {store_path} was embedded from {path} (sha256 {digest[:SHOW_HEX]}), "
               f"not from {items_path} (sha256 {items_sha256[:SHOW_HEX]})")
    if not allow_mismatch:
        raise ValueError(f"{message}: its vectors may belong to other items. Rebuild the store with "
                         f"embed-items --items {items_path}, or pass allow_store_mismatch=True "
                         "(--allow-store-mismatch) to label with it anyway")
    log.warning("label-intents: %s; labelling anyway (--allow-store-mismatch)", message)
    return {"result": "mismatch_allowed", **record,
            "note": f"{message}; allowed by allow_store_mismatch (--allow-store-mismatch)"}
