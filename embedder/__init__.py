"""Item embeddings: a Qwen-VL (picture + title) or text backend behind one `encode` API,
`build_store`, which writes an embedding store folder (read by `retrieval.store.EmbeddingStore`),
and `query`, which embeds a `search-items` query like the store's items and hands the vector to
`retrieval.search`."""
from .encoder import EmbedderConfig, ItemEmbedder
from .items import BadPictureError, Item
from .store_builder import BuildConfig, build_store

__all__ = ["BadPictureError", "BuildConfig", "EmbedderConfig", "Item", "ItemEmbedder", "build_store"]
