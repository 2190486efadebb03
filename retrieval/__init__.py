"""Embedding stores and FAISS retrieval: `store` (load/write), `similarity` (known pairs), `index`
(choose/build/save FAISS indexes), `search` (top-k and range search in item ids)."""
