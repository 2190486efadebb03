"""FAISS indexes over an embedding store: choose, build, save, load, top-k and range search.

Every index here uses the inner-product metric: store rows are L2-normalised, so inner product is
cosine similarity. An index holds store *rows* (0..N-1); `retrieval.search` maps rows to item ids.

The chooser follows the spirit of autofaiss (our reading of its rules, not its code):
- exact `Flat` while the catalogue is at most `exact_up_to` vectors (a few million) and fits in memory;
- beyond that, `HNSW32` when its graph fits (best recall per query time up to about ten million);
- `IVF{K}_HNSW32,Flat` (K ~ 4..16 sqrt(N), here 8 sqrt(N) rounded to a power of two) when the raw
  vectors fit but the graph does not;
- `OPQ{m}_{d'},IVF{K}_HNSW32,PQ{m}x8` (m bytes per vector) when only compressed codes fit the budget.

GPU: when the installed faiss has GPUs (`faiss.get_num_gpus() > 0`, i.e. faiss-gpu is installed), search
runs on a GPU copy of the index; range search and k above 2048 (the GPU limit) use the CPU copy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

GPU_MAX_K = 2048  # faiss GPU top-k limit
DEFAULT_EXACT_UP_TO = 2_000_000  # "Flat is right up to a few million vectors"
DEFAULT_EF_SEARCH = 128  # HNSW search breadth; faiss' default 16 gives poor recall at k=10
DEFAULT_EF_CONSTRUCTION = 80
HNSW_LINK_BYTES = 32 * 2 * 4  # HNSW32: about 2*M int32 links per vector on level 0
MIN_POINTS_PER_LIST = 39  # faiss k-means warns below 39 training points per centroid


def gpu_available() -> bool:
    """True when the installed faiss is a GPU build that sees at least one GPU."""
    return hasattr(faiss, "get_num_gpus") and faiss.get_num_gpus() > 0


def _ivf_lists(n: int) -> int:
    """Number of IVF lists: 8 sqrt(N) as a power of two, at most N / 39 so k-means can train."""
    k = 2 ** round(math.log2(max(1.0, 8.0 * math.sqrt(n))))
    while k > 1 and k * MIN_POINTS_PER_LIST > n:
        k //= 2
    return max(1, k)


def choose_index_factory(n: int, dim: int, memory_budget: int | None = None,
                         exact_up_to: int = DEFAULT_EXACT_UP_TO) -> str:
    """A faiss factory string for `n` vectors of `dim` floats within `memory_budget` bytes.

    `memory_budget=None` means unbounded. `exact_up_to=0` forces an approximate index (used to measure
    the recall the chooser would give on a small catalogue). Raises ValueError when even 4-byte PQ
    codes do not fit the budget.
    """
    if n <= 0 or dim <= 0:
        raise ValueError(f"n and dim must be positive, got n={n}, dim={dim}")
    if memory_budget is not None and memory_budget <= 0:
        raise ValueError(f"memory_budget must be positive bytes, got {memory_budget}")
    budget = math.inf if memory_budget is None else memory_budget
    flat_bytes = n * dim * 4
    if n <= exact_up_to and flat_bytes <= budget:
        return "Flat"
    k = _ivf_lists(n)
    if n <= 10_000_000 and flat_bytes + n * HNSW_LINK_BYTES <= budget:
        return "HNSW32"
    if flat_bytes + n * 8 <= budget:
        return f"IVF{k}_HNSW32,Flat" if n >= 1_000_000 else f"IVF{k},Flat"
    code_bytes = budget / n - 8  # 8 bytes per stored id
    for m in (256, 128, 96, 64, 48, 32, 24, 16, 12, 8, 4):
        if m <= code_bytes and m <= dim:
            d_out = min(dim, 4 * m) // m * m  # OPQ output dim: a multiple of m, at most 4m
            return f"OPQ{m}_{d_out},IVF{k}_HNSW32,PQ{m}x8"
    raise ValueError(
        f"memory budget {memory_budget} bytes is too small for {n} vectors: even 4-byte PQ codes "
        f"need {n * 12} bytes"
    )


def _as_float32(x: np.ndarray, name: str, dim: int | None = None) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n, d), got shape {x.shape}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{name} has dimension {x.shape[1]}, the index has {dim}")
    return np.ascontiguousarray(x, dtype=np.float32)


def build_index(vectors: np.ndarray, factory: str = "Flat", *, train_size: int | None = None,
                seed: int = 0, chunk: int = 1 << 16) -> faiss.Index:
    """Build a CPU inner-product index over `vectors` (N, d), rows in order (row i has id i).

    Untrained indexes (IVF, PQ, OPQ) are trained on a random sample of `train_size` rows (default: 256
    per IVF list, at least 10,000, at most all rows). HNSW gets efSearch=128 and IVF nprobe=K/16 (at
    least 8): faiss' defaults (16 and 1) give poor recall; both are stored in the saved index.
    """
    n = vectors.shape[0] if vectors.ndim == 2 else 0
    if vectors.ndim != 2 or n == 0:
        raise ValueError(f"vectors must be a non-empty 2-D array (N, d), got shape {vectors.shape}")
    dim = int(vectors.shape[1])
    try:
        index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as err:
        raise ValueError(f"invalid faiss index factory {factory!r} for dim {dim}: {err}") from None
    hnsw = _hnsw_of(index)
    if hnsw is not None:
        hnsw.efConstruction = DEFAULT_EF_CONSTRUCTION
    if not index.is_trained:
        ivf = _ivf_of(index)
        lists = ivf.nlist if ivf is not None else 1
        size = train_size or max(10_000, 256 * lists)
        rows = np.sort(np.random.default_rng(seed).permutation(n)[:size]) if size < n else np.arange(n)
        train = _as_float32(vectors[rows], "vectors")
        if ivf is not None and ivf.nlist > train.shape[0]:
            raise ValueError(f"{factory!r} needs at least {ivf.nlist} training vectors, got {train.shape[0]}")
        index.train(train)
    for s in range(0, n, chunk):  # chunks keep float16 / memory-mapped stores from a full float32 copy
        index.add(_as_float32(vectors[s:s + chunk], "vectors"))
    set_search_params(index)
    return index


def _hnsw_of(index: faiss.Index):
    idx = faiss.downcast_index(index)
    if isinstance(idx, faiss.IndexPreTransform):
        idx = faiss.downcast_index(idx.index)
    return idx.hnsw if hasattr(idx, "hnsw") else None


def _ivf_of(index: faiss.Index):
    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        return None


def set_search_params(index: faiss.Index, ef_search: int | None = None, nprobe: int | None = None) -> None:
    """Set HNSW efSearch and IVF nprobe (defaults: 128 and max(8, nlist/16), capped at nlist)."""
    hnsw = _hnsw_of(index)
    if hnsw is not None:
        hnsw.efSearch = ef_search or DEFAULT_EF_SEARCH
    ivf = _ivf_of(index)
    if ivf is not None:
        ivf.nprobe = min(ivf.nlist, nprobe or max(8, ivf.nlist // 16))
        quantizer_hnsw = _hnsw_of(ivf.quantizer)
        if quantizer_hnsw is not None:
            quantizer_hnsw.efSearch = max(DEFAULT_EF_SEARCH, 2 * ivf.nprobe)


def save_index(index: faiss.Index, path: str | Path) -> Path:
    """Write `index` (CPU or GPU) to `path` atomically (tmp file + rename)."""
    path = Path(path)
    cpu = faiss.index_gpu_to_cpu(index) if _is_gpu_index(index) else index
    tmp = path.with_name(path.name + ".tmp")
    faiss.write_index(cpu, str(tmp))
    tmp.replace(path)
    return path


def _is_gpu_index(index: faiss.Index) -> bool:
    return "Gpu" in type(faiss.downcast_index(index)).__name__


def load_index(path: str | Path) -> faiss.Index:
    """Read a CPU index written by `save_index`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no faiss index at {path}")
    try:
        return faiss.read_index(str(path))
    except RuntimeError as err:
        raise ValueError(f"{path}: not a readable faiss index ({err})") from None


@dataclass
class SearchIndex:
    """A CPU index plus, when faiss has GPUs, a GPU copy for top-k search.

    `search` returns (scores, rows), each (Q, k), best first; rows of missing neighbours are -1.
    `range_search` returns, per query, the rows and scores with score >= min_score, best first.
    """

    cpu: faiss.Index
    gpu: faiss.Index | None = None

    @classmethod
    def wrap(cls, index: faiss.Index, use_gpu: bool | None = None) -> "SearchIndex":
        """Wrap a CPU index; `use_gpu=None` uses a GPU copy exactly when `gpu_available()`."""
        use_gpu = gpu_available() if use_gpu is None else use_gpu
        if use_gpu and not gpu_available():
            raise ValueError("use_gpu=True but the installed faiss sees no GPU (install faiss-gpu-cu12)")
        gpu = faiss.index_cpu_to_all_gpus(index) if use_gpu else None
        return cls(cpu=index, gpu=gpu)

    @property
    def dim(self) -> int:
        return int(self.cpu.d)

    @property
    def ntotal(self) -> int:
        return int(self.cpu.ntotal)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        q = _as_float32(queries, "queries", self.dim)
        k_eff = min(k, self.ntotal)
        index = self.gpu if self.gpu is not None and k_eff <= GPU_MAX_K else self.cpu
        scores, rows = index.search(q, k_eff)
        if k_eff < k:  # fewer vectors than k: pad so the shape is always (Q, k)
            scores = np.pad(scores, ((0, 0), (0, k - k_eff)), constant_values=-np.inf)
            rows = np.pad(rows, ((0, 0), (0, k - k_eff)), constant_values=-1)
        return scores, rows

    def range_search(self, queries: np.ndarray, min_score: float) -> list[tuple[np.ndarray, np.ndarray]]:
        q = _as_float32(queries, "queries", self.dim)
        # Inner-product range search keeps results with score > radius; faiss has no GPU range search.
        lims, scores, rows = self.cpu.range_search(q, float(np.nextafter(np.float32(min_score), -np.inf)))
        out = []
        for i in range(q.shape[0]):
            s, r = scores[lims[i]:lims[i + 1]], rows[lims[i]:lims[i + 1]]
            order = np.lexsort((r, -s))
            out.append((r[order].astype(np.int64), s[order]))
        return out
