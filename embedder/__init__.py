"""Item embeddings: a Qwen-VL (picture + title) or text backend behind one `encode` API, and
`build_store`, which writes an embedding store folder (read by `retrieval.store.EmbeddingStore`)."""
from .encoder import EmbedderConfig, ItemEmbedder
from .items import BadPictureError, Item
from .store_builder import BuildConfig, build_store

__all__ = ["BadPictureError", "BuildConfig", "EmbedderConfig", "Item", "ItemEmbedder", "build_store"]
