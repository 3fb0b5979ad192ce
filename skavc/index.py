"""`EmbeddingIndex`: an exact, growable, savable index of embeddings for retrieval.

Saved as two files side by side: ``<name>.npy`` (the embeddings, a plain
NumPy array readable without pickle and memory-mappable) and ``<name>.json``
(dim, dtype, count, format version). Both are written to a temporary file and
moved into place with ``os.replace``, so a reader never sees half a file.
"""

import json
import os
import threading
from numbers import Integral
from pathlib import Path

import numpy as np

from ._search import check_chunk_size, check_dims, check_k, check_queries, search_segments
from ._validation import atomic_path, check_int

__all__ = ["ApproximateIndex", "EmbeddingIndex", "KINDS", "SHARD_KINDS", "ShardedIndex", "default_n_lists",
           "merge_top_k"]

_FORMAT = "skavc.EmbeddingIndex"
_FORMAT_VERSION = 1
_DTYPES = {"float32": np.dtype(np.float32), "float16": np.dtype(np.float16)}
_COPY_ROWS = 65536  # rows converted / written at a time, to bound temporary memory


def _check_dtype(dtype):
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in _DTYPES.values():
        raise ValueError(f"dtype must be 'float32' or 'float16'; got {dtype!r}")
    return dt


def _index_paths(path, data_suffix=".npy"):
    """``(data, json)`` paths of an index saved at ``path`` (with or without either suffix); the
    data file is ``.npy`` for :class:`EmbeddingIndex`, ``.faiss`` for :class:`ApproximateIndex`."""
    path = Path(path)
    if path.suffix in (data_suffix, ".json"):
        path = path.with_suffix("")
    return path.with_name(path.name + data_suffix), path.with_name(path.name + ".json")


def unit_rows(E):
    """Rows scaled to unit L2 norm (all-zero rows stay zero)."""
    norms = np.linalg.norm(E, axis=1, keepdims=True)
    return E / np.where(norms > 0, norms, 1).astype(E.dtype)


def _checked_embeddings(embeddings, dim):
    """``embeddings`` as a finite float32 array of shape (n, dim) (``dim`` None: any width)."""
    E = np.asarray(embeddings)
    if E.dtype == object or not (np.issubdtype(E.dtype, np.floating) or np.issubdtype(E.dtype, np.integer)):
        raise TypeError(f"embeddings must be a numeric array of shape (n, dim); got dtype {E.dtype}")
    if E.ndim != 2:
        hint = " Use embeddings.reshape(1, -1) for a single vector." if E.ndim == 1 else ""
        raise ValueError(f"embeddings must be 2-D (n, dim); got shape {E.shape}.{hint}")
    if dim is not None and E.shape[1] != dim:
        raise ValueError(f"embeddings have dimension {E.shape[1]} but the index has dimension {dim}")
    if E.shape[1] == 0:
        raise ValueError("embeddings have dimension 0")
    E = E.astype(np.float32, copy=False)
    bad = ~np.isfinite(E).all(axis=1)
    if bad.any():
        raise ValueError(
            f"embeddings contain NaN or infinite values in {int(bad.sum())} row(s), first at row "
            f"{int(np.argmax(bad))}"
        )
    return E


def _write_json(path, meta):
    """Write the metadata dict ``meta`` to ``path`` as indented JSON, atomically."""
    text = json.dumps(meta, indent=2).encode()
    _write_atomically(path, lambda f: f.write(text))


def _write_atomically(path, write):
    """Call ``write(file)`` on a temporary file beside ``path``, flush it to disk, then rename it over ``path``."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())


class EmbeddingIndex:
    """Exact top-k search over embeddings, grown in batches and saved to disk.

    Search is exhaustive (:func:`skavc.retrieval.top_k`: chunked matrix
    products, bounded memory), so results are exact; at 10^6 x 128 float32 a
    batch of 100 queries takes well under a second on two cores.

    Parameters
    ----------
    dim : int or None, default=None
        Embedding width; None takes it from the first :meth:`add`.
    dtype : {"float32", "float16"}, default="float32"
        Storage type. float16 halves memory and disk (scores are still
        computed in float32, chunk by chunk) at about 3 significant digits.
    normalize : bool, default=True
        Scale added embeddings and queries to unit L2 norm, so scores are
        cosine similarities. All-zero rows stay zero.

    Examples
    --------
    >>> import numpy as np
    >>> from skavc import EmbeddingIndex
    >>> index = EmbeddingIndex()
    >>> index.add(np.eye(3)).tolist()
    [0, 1, 2]
    >>> indices, scores = index.search(np.array([[0.0, 2.0, 0.1]]), top_k=2)
    >>> indices.tolist()
    [[1, 2]]
    """

    def __init__(self, dim=None, dtype="float32", normalize=True):
        if dim is not None:
            dim = check_int(dim, name="dim", minimum=1)
        self._dim = dim
        self._dtype = _check_dtype(dtype)
        self.normalize = bool(normalize)
        self._base = None  # loaded (possibly memory-mapped, read-only) embeddings
        self._buffer = None  # embeddings added in memory, grown by doubling
        self._n_buffer = 0

    # -- properties ---------------------------------------------------------------------
    @property
    def dim(self):
        """Embedding width (None until the first :meth:`add` when not given)."""
        return self._dim

    @property
    def dtype(self):
        """Storage dtype, ``numpy.float32`` or ``numpy.float16``."""
        return self._dtype

    def __len__(self):
        return (0 if self._base is None else self._base.shape[0]) + self._n_buffer

    def __repr__(self):
        return (
            f"EmbeddingIndex(dim={self._dim}, dtype={self._dtype.name!r}, "
            f"normalize={self.normalize}, count={len(self)})"
        )

    def _segments(self):
        parts = [self._base, None if self._buffer is None else self._buffer[: self._n_buffer]]
        return [p for p in parts if p is not None and p.shape[0] > 0]

    def _rows(self, ids):
        """The stored rows ``ids`` (m,) as (m, dim) float32, read where they are (file or memory)."""
        out = np.empty((len(ids), self._dim), dtype=np.float32)
        start = 0
        for segment in self._segments():
            inside = (ids >= start) & (ids < start + segment.shape[0])
            out[inside] = segment[ids[inside] - start]
            start += segment.shape[0]
        return out

    # -- adding -------------------------------------------------------------------------
    def _reserve(self, n_new):
        """Room for ``n_new`` more rows in the in-memory buffer (capacity doubles when full)."""
        needed = self._n_buffer + n_new
        capacity = 0 if self._buffer is None else self._buffer.shape[0]
        if needed > capacity:
            grown = np.empty((max(needed, 2 * capacity, 1024), self._dim), dtype=self._dtype)
            if self._n_buffer:
                grown[: self._n_buffer] = self._buffer[: self._n_buffer]
            self._buffer = grown

    def add(self, embeddings):
        """Append a batch of embeddings.

        Parameters
        ----------
        embeddings : array-like of shape (n, dim)
            Finite vectors, e.g. from ``transform_visual`` or ``transform_audio``.

        Returns
        -------
        ids : ndarray of shape (n,), int64
            Their positions in the index: what :meth:`search` returns.
        """
        E = _checked_embeddings(embeddings, self._dim)
        if self._dim is None:
            self._dim = E.shape[1]
        start = len(self)
        self._reserve(E.shape[0])
        for lo in range(0, E.shape[0], _COPY_ROWS):
            part = E[lo : lo + _COPY_ROWS]
            if self.normalize:
                part = unit_rows(part)
            at = self._n_buffer + lo
            self._buffer[at : at + part.shape[0]] = part  # casts to the storage dtype
        self._n_buffer += E.shape[0]
        return np.arange(start, start + E.shape[0], dtype=np.int64)

    # -- searching ----------------------------------------------------------------------
    def search(self, queries, top_k=10, chunk_size=None, n_threads=None):
        """The ``top_k`` stored embeddings with the largest inner product with each query.

        Parameters
        ----------
        queries : array-like of shape (n_queries, dim)
            Normalised first when the index normalises.
        top_k : int, default=10
            Matches per query; more than ``len(self)`` returns all, sorted.
        chunk_size : int or None, default=None
            Stored rows scored per matrix product; None adapts it to the number
            of queries (see :func:`skavc.retrieval.top_k`).
        n_threads : int or None, default=None
            Threads splitting the index; None means the number of CPUs.

        Returns
        -------
        indices : ndarray of shape (n_queries, min(top_k, len(self))), int64
            Ids of the matches, best first.
        scores : ndarray of shape (n_queries, min(top_k, len(self))), float32
            Inner products (cosine similarities when normalising), descending.
        """
        k = check_k(top_k)
        chunk_size = check_chunk_size(chunk_size)
        if n_threads is not None:
            n_threads = check_int(n_threads, name="n_threads", minimum=1)
        if len(self) == 0:
            raise ValueError("the index is empty: add embeddings before searching")
        Q = check_queries(queries)
        check_dims(Q, self._dim, what="index")
        if self.normalize:
            Q = unit_rows(Q)
        return search_segments(Q, self._segments(), k, chunk_size, n_threads)

    # -- persistence --------------------------------------------------------------------
    def _metadata(self, npy_name):
        from ._version import __version__

        return {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "dim": self._dim,
            "dtype": self._dtype.name,
            "count": len(self),
            "normalize": self.normalize,
            "embeddings": npy_name,
            "skavc_version": __version__,
        }

    def _write_npy(self, f):
        """Stream the embeddings into an open file as one ``.npy`` array, chunk by chunk."""
        header = {"descr": np.lib.format.dtype_to_descr(self._dtype), "fortran_order": False,
                  "shape": (len(self), self._dim)}
        np.lib.format.write_array_header_1_0(f, header)
        for segment in self._segments():
            for lo in range(0, segment.shape[0], _COPY_ROWS):
                f.write(np.ascontiguousarray(segment[lo : lo + _COPY_ROWS], dtype=self._dtype).tobytes())

    def save(self, path):
        """Write the index as ``<path>.npy`` (embeddings) and ``<path>.json`` (metadata).

        Each file is written to a temporary file and moved into place
        atomically; the metadata goes last and :meth:`load` checks the two
        agree. Saving over the files a memory-mapped index was loaded from is safe.

        Parameters
        ----------
        path : str or os.PathLike
            Base path; a ``.npy`` or ``.json`` suffix is dropped.

        Returns
        -------
        npy_path, json_path : pathlib.Path
        """
        if self._dim is None:
            raise ValueError("the index has no dimension yet: add embeddings (or pass dim=) before saving")
        npy_path, json_path = _index_paths(path)
        npy_path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(npy_path, self._write_npy)
        _write_json(json_path, self._metadata(npy_path.name))
        return npy_path, json_path

    @classmethod
    def load(cls, path, mmap=True):
        """Read an index written by :meth:`save` (no pickle involved).

        Parameters
        ----------
        path : str or os.PathLike
            Base path given to :meth:`save` (either file's path works too).
        mmap : bool, default=True
            Memory-map the embeddings read-only (``np.load(mmap_mode="r")``):
            loading is instant and the OS pages rows in as searches read them.
            Later :meth:`add` calls go to memory; the file is not modified.

        Returns
        -------
        index : EmbeddingIndex
        """
        npy_path, json_path = _index_paths(path)
        meta = _read_metadata(json_path)
        if not npy_path.is_file():
            raise FileNotFoundError(f"index embeddings {npy_path} are missing (the metadata {json_path} exists)")
        index = cls(dim=meta["dim"], dtype=meta["dtype"], normalize=meta["normalize"])
        # A zero-row array cannot be memory-mapped.
        mmap_mode = "r" if mmap and meta["count"] > 0 else None
        try:
            E = np.load(npy_path, mmap_mode=mmap_mode, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise ValueError(f"{npy_path} is not a readable .npy array (corrupt or truncated?): {exc}") from None
        expected = (meta["count"], meta["dim"])
        if E.shape != expected or E.dtype != index.dtype:
            raise ValueError(
                f"{npy_path} holds a {E.dtype} array of shape {E.shape} but its metadata {json_path} "
                f"says {index.dtype.name} {expected}: the files do not belong together"
            )
        index._base = E
        return index


def _read_metadata(json_path, fmt=_FORMAT, version=_FORMAT_VERSION, files="path.npy"):
    """The checked metadata dict of a saved index (``fmt``: whose; ``files``: what it saves beside)."""
    owner = fmt.split(".")[-1]
    if not json_path.is_file():
        raise FileNotFoundError(f"no index metadata at {json_path}: {owner}.save(path) writes {files} and path.json")
    try:
        meta = json.loads(json_path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{json_path} is not valid index metadata (corrupt or truncated?): {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        raise ValueError(f"{json_path} is not {owner} metadata (no 'format': {fmt!r})")
    if meta.get("version") != version:
        raise ValueError(
            f"{json_path} has index format version {meta.get('version')!r}; this skavc reads version "
            f"{version} (written by another skavc version?)"
        )
    for key in ("dim", "count"):
        value = meta.get(key)
        if key == "dim" and value is None and meta.get("count") == 0:
            continue  # an empty sharded index whose width comes with its first add
        if isinstance(value, bool) or not isinstance(value, Integral) or value < (1 if key == "dim" else 0):
            raise ValueError(f"{json_path}: {key!r} must be a {'positive' if key == 'dim' else 'non-negative'} "
                             f"integer; got {value!r}")
    if fmt == _FORMAT and meta.get("dtype") not in _DTYPES:
        raise ValueError(f"{json_path}: dtype must be 'float32' or 'float16'; got {meta.get('dtype')!r}")
    meta["normalize"] = bool(meta.get("normalize", True))
    return meta


# ---------------------------------------------------------------------------------------------
# Approximate search (faiss)
# ---------------------------------------------------------------------------------------------

_ANN_FORMAT = "skavc.ApproximateIndex"
_ANN_FORMAT_VERSION = 1
#: What :class:`ApproximateIndex` builds: a graph (HNSW, the vectors kept whole) or inverted lists
#: of product-quantised codes (IVF-PQ, ``pq_bytes`` bytes a vector).
KINDS = ("hnsw", "ivfpq")
#: Embeddings IVF-PQ needs in its first :meth:`ApproximateIndex.add` to train its codebooks (256
#: centroids of 8 bits per sub-vector) and its lists (faiss asks for 39 points a list).
_IVFPQ_MIN_TRAIN = 256
_POINTS_PER_LIST = 39
_TRAIN_POINTS_PER_LIST = 256
_INSTALL = "pip install 'skavc[ann]' (faiss-cpu)"
#: Queries whose candidates' vectors are gathered at once when re-ranking (256 queries x 100
#: candidates x 128 float32: 13 MB).
_RESCORE_QUERIES = 256


def _faiss():
    try:
        import faiss
    except ImportError:
        raise ImportError(f"ApproximateIndex runs on faiss, which is not installed: {_INSTALL}") from None
    return faiss


def default_n_lists(n):
    """IVF lists for ``n`` training embeddings: about ``4 sqrt(n)``, at most ``n / 39`` (faiss's
    minimum of training points a list), at least 1.

    Examples
    --------
    >>> from skavc.index import default_n_lists
    >>> default_n_lists(1_000_000), default_n_lists(10_000), default_n_lists(300)
    (4000, 256, 7)
    """
    return int(max(1, min(round(4 * np.sqrt(n)), n // _POINTS_PER_LIST)))


class ApproximateIndex:
    """Approximate top-k search over embeddings (faiss): an HNSW graph or IVF-PQ.

    A sibling of :class:`EmbeddingIndex` with its interface (``add``, ``search``, ``save``,
    ``load``, ``len``) for corpora where exact search is too slow (HNSW) or too large for memory
    (IVF-PQ keeps ``pq_bytes`` bytes a vector instead of ``4 * dim``). Scores are inner products
    of unit vectors, cosine similarities as :class:`EmbeddingIndex` gives them: exact for the
    items HNSW returns, estimated from the codes by IVF-PQ (exact with ``rerank``). Needs ``faiss-cpu``
    (``pip install 'skavc[ann]'``).

    Parameters
    ----------
    kind : {"hnsw", "ivfpq"}, default="hnsw"
        The structure (:data:`KINDS`).
    dim : int or None, default=None
        Embedding width; None takes it from the first :meth:`add`.
    normalize : bool, default=True
        Scale added embeddings and queries to unit L2 norm.
    hnsw_neighbours : int, default=32
        HNSW: links per node (faiss's ``M``); more: better recall, more memory.
    ef_construction : int, default=80
        HNSW: candidates kept while linking a new node.
    ef_search : int, default=64
        HNSW: candidates kept while searching (at least ``top_k``): recall against speed.
    n_lists : int or None, default=None
        IVF-PQ: inverted lists; None: :func:`default_n_lists` of the first :meth:`add`.
    n_probe : int, default=16
        IVF-PQ: lists searched per query: recall against speed.
    pq_bytes : int or None, default=None
        IVF-PQ: bytes per stored vector (sub-quantisers of 8 bits); must divide ``dim``.
        None: ``dim // 4`` (32 at 128 dimensions: 16x smaller than float32).
    rerank : int, default=0
        IVF-PQ: when >= 1, the codes propose ``rerank * top_k`` candidates and the vectors,
        kept beside the codes in float16 (an :class:`EmbeddingIndex`, memory-mapped once
        loaded), give their exact cosines and order: recall rises from the codes' bound, and
        scores are exact; memory holds the codes, disk the vectors. 0: the codes alone.
    n_threads : int or None, default=None
        Threads of faiss's searches; None: all cores.

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.index import ApproximateIndex
    >>> rng = np.random.default_rng(0)
    >>> index = ApproximateIndex("hnsw")
    >>> index.add(rng.normal(size=(1000, 16))).shape
    (1000,)
    >>> indices, scores = index.search(index.reconstruct([7, 8]), top_k=3)
    >>> indices[:, 0].tolist(), bool(np.allclose(scores[:, 0], 1.0, atol=1e-5))
    ([7, 8], True)
    """

    def __init__(self, kind="hnsw", dim=None, *, normalize=True, hnsw_neighbours=32, ef_construction=80,
                 ef_search=64, n_lists=None, n_probe=16, pq_bytes=None, rerank=0, n_threads=None):
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}; got {kind!r}")
        self.kind = kind
        self._dim = None if dim is None else check_int(dim, name="dim", minimum=1)
        self.normalize = bool(normalize)
        self.hnsw_neighbours = check_int(hnsw_neighbours, name="hnsw_neighbours", minimum=2)
        self.ef_construction = check_int(ef_construction, name="ef_construction", minimum=1)
        self.ef_search = check_int(ef_search, name="ef_search", minimum=1)
        self.n_lists = None if n_lists is None else check_int(n_lists, name="n_lists", minimum=1)
        self.n_probe = check_int(n_probe, name="n_probe", minimum=1)
        self.pq_bytes = None if pq_bytes is None else check_int(pq_bytes, name="pq_bytes", minimum=1)
        self.rerank = check_int(rerank, name="rerank", minimum=0)
        if self.rerank and kind != "ivfpq":
            raise ValueError(f"rerank applies to kind='ivfpq' (HNSW's scores are exact already); got kind={kind!r}")
        self.n_threads = None if n_threads is None else check_int(n_threads, name="n_threads", minimum=1)
        self._index = None  # the faiss index, made at the first add (or load)
        # the vectors IVF-PQ re-ranks with (rerank >= 1): float16, beside the codes
        self._vectors = EmbeddingIndex(dim=self._dim, dtype="float16", normalize=False) if self.rerank else None

    @property
    def dim(self):
        """Embedding width (None until the first :meth:`add` when not given)."""
        return self._dim

    def __len__(self):
        return 0 if self._index is None else int(self._index.ntotal)

    def __repr__(self):
        return f"ApproximateIndex(kind={self.kind!r}, dim={self._dim}, count={len(self)})"

    def _build(self, E):
        """The empty faiss index for embeddings like ``E`` (trained on them for IVF-PQ)."""
        faiss = _faiss()
        if self.kind == "hnsw":
            index = faiss.IndexHNSWFlat(self._dim, self.hnsw_neighbours, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = self.ef_construction
            return index
        pq_bytes = self.pq_bytes or max(1, self._dim // 4)
        if self._dim % pq_bytes:
            raise ValueError(f"pq_bytes must divide dim ({self._dim}); got pq_bytes={pq_bytes}")
        if E.shape[0] < _IVFPQ_MIN_TRAIN:
            raise ValueError(f"kind='ivfpq' trains on its first add, which needs at least {_IVFPQ_MIN_TRAIN} "
                             f"embeddings; got {E.shape[0]} (use kind='hnsw' or EmbeddingIndex for small corpora)")
        n_lists = self.n_lists or default_n_lists(E.shape[0])
        quantiser = faiss.IndexFlatIP(self._dim)
        index = faiss.IndexIVFPQ(quantiser, self._dim, n_lists, pq_bytes, 8, faiss.METRIC_INNER_PRODUCT)
        index.own_fields = True
        quantiser.this.disown()  # the IVF index frees its quantiser
        # k-means uses at most 256 points a list (faiss's max_points_per_centroid), drawn at random:
        # draw them here, so that only they are normalised and copied.
        sample = E
        if E.shape[0] > _TRAIN_POINTS_PER_LIST * n_lists:
            rows = np.random.default_rng(0).choice(E.shape[0], _TRAIN_POINTS_PER_LIST * n_lists, replace=False)
            sample = E[np.sort(rows)]
        index.train(np.ascontiguousarray(unit_rows(sample) if self.normalize else sample, dtype=np.float32))
        return index

    def _threads(self):
        _faiss().omp_set_num_threads(self.n_threads or os.cpu_count() or 1)

    def add(self, embeddings):
        """Append a batch of embeddings (IVF-PQ: the first batch also trains it).

        Parameters
        ----------
        embeddings : array-like of shape (n, dim)

        Returns
        -------
        ids : ndarray of shape (n,), int64
            Their positions in the index: what :meth:`search` returns.
        """
        E = _checked_embeddings(embeddings, self._dim)
        if self._dim is None:
            self._dim = E.shape[1]
        self._threads()
        if self._index is None:
            self._index = self._build(E)
        start = len(self)
        for lo in range(0, E.shape[0], _COPY_ROWS):  # normalised a block at a time: bounded extra memory
            block = np.ascontiguousarray(unit_rows(E[lo : lo + _COPY_ROWS]) if self.normalize
                                         else E[lo : lo + _COPY_ROWS], dtype=np.float32)
            self._index.add(block)
            if self._vectors is not None:
                self._vectors.add(block)
        return np.arange(start, start + E.shape[0], dtype=np.int64)

    def reconstruct(self, ids):
        """The stored vectors of ``ids`` (n,) as (n, dim) float32 (IVF-PQ: decoded from the codes)."""
        if self._index is None:
            raise ValueError("the index is empty: add embeddings first")
        ids = np.asarray(ids, dtype=np.int64)
        if ids.ndim != 1 or (ids.size and (ids.min() < 0 or ids.max() >= len(self))):
            raise ValueError(f"ids must be a 1-D array of positions in [0, {len(self)}); got {ids!r}")
        if self.kind == "ivfpq":
            self._index.make_direct_map()
        return self._index.reconstruct_batch(ids) if ids.size else np.empty((0, self._dim), np.float32)

    def search(self, queries, top_k=10):
        """The ``top_k`` stored embeddings with the largest inner product with each query, approximately.

        Parameters
        ----------
        queries : array-like of shape (n_queries, dim)
            Normalised first when the index normalises.
        top_k : int, default=10
            Matches per query; more than ``len(self)`` asks for all.

        Returns
        -------
        indices : ndarray of shape (n_queries, min(top_k, len(self))), int64
            Ids of the matches, best first; -1 where the search found fewer (IVF-PQ with few
            lists probed), with score -inf.
        scores : ndarray of shape (n_queries, min(top_k, len(self))), float32
            Inner products (cosine similarities when normalising), descending.
        """
        k = check_k(top_k)
        if len(self) == 0:
            raise ValueError("the index is empty: add embeddings before searching")
        Q = check_queries(queries)
        check_dims(Q, self._dim, what="index")
        if self.normalize:
            Q = unit_rows(Q)
        k = min(k, len(self))
        self._threads()
        if self.kind == "hnsw":
            self._index.hnsw.efSearch = max(self.ef_search, k)
        else:
            self._index.nprobe = min(self.n_probe, self._index.nlist)
        Q = np.ascontiguousarray(Q, dtype=np.float32)
        reranks = self._vectors is not None and self.rerank > 0  # rerank may be set to 0 after a build
        proposed = min(len(self), k * self.rerank) if reranks else k
        scores, indices = self._index.search(Q, proposed)
        if reranks:
            scores, indices = _rescored(Q, indices, self._vectors, k)
        scores = np.where(indices < 0, -np.inf, scores).astype(np.float32)
        return indices.astype(np.int64), scores

    def _parameters(self):
        """The keyword parameters saved with the index (``n_threads`` belongs to the machine, not the file)."""
        return {"hnsw_neighbours": self.hnsw_neighbours, "ef_construction": self.ef_construction,
                "ef_search": self.ef_search, "n_lists": self.n_lists, "n_probe": self.n_probe,
                "pq_bytes": self.pq_bytes, "rerank": self.rerank}

    def _emptied(self):
        """A copy holding no vectors, with the same parameters and (IVF-PQ) the same trained lists
        and codebooks, so that its codes estimate scores as this index's do."""
        empty = ApproximateIndex(self.kind, self._dim, normalize=self.normalize, n_threads=self.n_threads,
                                 **self._parameters())
        if self._index is not None:
            empty._index = _faiss().clone_index(self._index)
            empty._index.reset()
        return empty

    # -- persistence --------------------------------------------------------------------
    def save(self, path):
        """Write the index as ``<path>.faiss`` (faiss's own binary format, no pickle) and
        ``<path>.json`` (the parameters), each atomically, the metadata last.

        Returns
        -------
        index_path, json_path : pathlib.Path
        """
        if self._index is None:
            raise ValueError("the index is empty: add embeddings before saving")
        index_path, json_path = _index_paths(path, ".faiss")
        index_path.parent.mkdir(parents=True, exist_ok=True)
        # faiss writes the file itself: serialising to memory first would hold a second copy of
        # the index (an HNSW graph over 10^7 x 128 is 7.7 GB).
        with atomic_path(index_path) as tmp:
            _faiss().write_index(self._index, tmp)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        if self._vectors is not None:
            self._vectors.save(_vectors_path(index_path))
        from ._version import __version__

        meta = {"format": _ANN_FORMAT, "version": _ANN_FORMAT_VERSION, "kind": self.kind, "dim": self._dim,
                "count": len(self), "normalize": self.normalize, "index": index_path.name,
                "skavc_version": __version__, "parameters": self._parameters()}
        _write_json(json_path, meta)
        return index_path, json_path

    @classmethod
    def load(cls, path, mmap=False):
        """Read an index written by :meth:`save`.

        Parameters
        ----------
        path : str or os.PathLike
            Base path given to :meth:`save` (either file's path works too).
        mmap : bool, default=False
            Memory-map the file (``faiss.IO_FLAG_MMAP``: IVF-PQ's lists stay on disk until read).
            :meth:`save` replaces files atomically, so saving over a mapped index is safe; the
            file must not be changed in place while it is mapped.

        Returns
        -------
        index : ApproximateIndex
        """
        faiss = _faiss()
        index_path, json_path = _index_paths(path, ".faiss")
        meta = _read_metadata(json_path, _ANN_FORMAT, _ANN_FORMAT_VERSION, files="path.faiss")
        if not index_path.is_file():
            raise FileNotFoundError(f"index file {index_path} is missing (the metadata {json_path} exists)")
        index = cls(meta["kind"], meta["dim"], normalize=meta["normalize"], **meta["parameters"])
        try:
            index._index = faiss.read_index(str(index_path), faiss.IO_FLAG_MMAP if mmap else 0)
        except RuntimeError as exc:
            raise ValueError(f"{index_path} is not a readable faiss index (corrupt or truncated?): {exc}") from None
        if index._index.ntotal != meta["count"] or index._index.d != meta["dim"]:
            raise ValueError(f"{index_path} holds {index._index.ntotal} vectors of dimension {index._index.d} but "
                             f"its metadata {json_path} says {meta['count']} of {meta['dim']}: the files do not "
                             "belong together")
        if index.rerank:
            index._vectors = EmbeddingIndex.load(_vectors_path(index_path), mmap=True)
            if len(index._vectors) != meta["count"]:
                raise ValueError(f"the re-ranking vectors beside {index_path} hold {len(index._vectors)} rows, not "
                                 f"{meta['count']}: the files do not belong together")
        return index


def _vectors_path(index_path):
    """Base path of the float16 vectors an IVF-PQ index re-ranks with, beside its ``.faiss`` file."""
    return index_path.with_name(index_path.stem + ".vectors")


def _rescored(Q, candidates, vectors, k):
    """The best ``k`` of each query's ``candidates`` (n_queries, m) by exact inner product with
    their stored ``vectors`` (an :class:`EmbeddingIndex`): ``(scores, indices)``, -1 padded."""
    valid = candidates >= 0
    scores = np.full(candidates.shape, -np.inf, dtype=np.float32)
    for lo in range(0, Q.shape[0], _RESCORE_QUERIES):  # the gathered rows of a few queries at a time
        part = slice(lo, lo + _RESCORE_QUERIES)
        ids = np.where(valid[part], candidates[part], 0)
        rows = vectors._rows(ids.ravel()).reshape(*ids.shape, -1)
        scores[part] = np.where(valid[part], np.einsum("qmd,qd->qm", rows, Q[part]), -np.inf)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(candidates, order, axis=1)


# ---------------------------------------------------------------------------------------------
# Shards (searched in parallel on a dask cluster)
# ---------------------------------------------------------------------------------------------

_SHARDED_FORMAT = "skavc.ShardedIndex"
_SHARDED_FORMAT_VERSION = 1
_MANIFEST = "index.json"
#: What each shard of a :class:`ShardedIndex` is: an exact :class:`EmbeddingIndex` or an
#: :class:`ApproximateIndex` of one of :data:`KINDS`.
SHARD_KINDS = ("exact",) + KINDS
#: The trained, empty IVF-PQ index every new IVF-PQ shard starts from (one set of lists and
#: codebooks, so that all shards' code-estimated scores are comparable when merged).
_TRAINED = "trained"
#: ApproximateIndex parameters that act at search time: changed in ``ShardedIndex.index_params``
#: they apply to the next search, without a rebuild.
_SEARCH_SETTINGS = ("ef_search", "n_probe", "rerank")

# Shards a process has opened, by path, with the metadata file's (inode, mtime) they were read
# at: a dask worker keeps its shards loaded (memory-mapped) between searches and reopens one only
# when it has been rewritten.
_open_shards = {}
_open_shards_lock = threading.Lock()


def _new_shard(kind, dim, params):
    """An empty shard index: an :class:`EmbeddingIndex` for ``"exact"``, else an :class:`ApproximateIndex`."""
    return EmbeddingIndex(dim=dim, **params) if kind == "exact" else ApproximateIndex(kind, dim, **params)


def _open_shard(path, kind):
    """The shard saved at ``path``, from this process's cache unless its files have changed."""
    meta = os.stat(_index_paths(path)[1])
    stamp = (meta.st_ino, meta.st_mtime_ns)  # save() replaces the file: a new inode
    with _open_shards_lock:
        cached = _open_shards.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
    # Exact and IVF-PQ shards are memory-mapped (pages read as searches need them); HNSW graphs
    # are read whole (faiss cannot map them).
    shard = (EmbeddingIndex if kind == "exact" else ApproximateIndex).load(path, mmap=kind != "hnsw")
    with _open_shards_lock:
        _open_shards[path] = (stamp, shard)
    return shard


def _worker_threads():
    """The threads of the dask worker running this task (what it was started with, e.g.
    ``--nthreads``), or None outside a worker: several workers on one machine then share its
    cores instead of each taking all of them."""
    try:
        from distributed import get_worker

        return get_worker().state.nthreads
    except (ImportError, ValueError, AttributeError):
        return None


def _search_shard(path, kind, queries, top_k, settings=None):
    """``(indices, scores)`` of one shard (a task on a dask worker, or a call in this process);
    ``settings``: search-time parameters of approximate shards (``ef_search``, ``n_probe``, ``rerank``)."""
    shard = _open_shard(path, kind)
    threads = _worker_threads()
    if kind == "exact":
        return shard.search(queries, top_k=top_k, n_threads=threads)
    for name, value in (settings or {}).items():
        setattr(shard, name, value)
    if threads is not None:
        shard.n_threads = threads
    return shard.search(queries, top_k=top_k)


def _append_to_shard(path, kind, params, embeddings, trained_path):
    """Append ``embeddings`` to the shard at ``path`` (created when missing) and save it; the
    shard's new length. IVF-PQ shards start from the index saved at ``trained_path``; the first
    one trains it and saves it there."""
    if _index_paths(path)[1].is_file():
        shard = (EmbeddingIndex if kind == "exact" else ApproximateIndex).load(path, mmap=kind == "exact")
    elif kind == "ivfpq" and _index_paths(trained_path)[1].is_file():
        shard = ApproximateIndex.load(trained_path)
    else:
        shard = _new_shard(kind, embeddings.shape[1], params)
    trains = kind == "ivfpq" and len(shard) == 0 and shard._index is None
    shard.add(embeddings)
    if trains:
        shard._emptied().save(trained_path)
    shard.save(path)
    return len(shard)


def merge_top_k(results, offsets, top_k):
    """One top-k from the top-k of each shard.

    Parameters
    ----------
    results : list of (indices, scores)
        Each shard's search result: arrays of shape (n_queries, k_shard), best first, ids local
        to the shard (-1 where a shard found fewer, with score -inf).
    offsets : sequence of int
        The global id of each shard's first row.
    top_k : int
        Matches kept per query.

    Returns
    -------
    indices : ndarray of shape (n_queries, min(top_k, sum of k_shard)), int64
        Global ids, best first; ties keep shard order, so exact shards give what one exact
        index over all rows gives.
    scores : ndarray of the same shape, float32

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.index import merge_top_k
    >>> first = (np.array([[0, 1]]), np.array([[0.9, 0.2]]))
    >>> second = (np.array([[1, 0]]), np.array([[0.5, 0.1]]))
    >>> merge_top_k([first, second], offsets=[0, 100], top_k=2)[0].tolist()
    [[0, 101]]
    """
    indices = np.concatenate([np.where(i >= 0, i + offset, -1) for (i, _), offset in zip(results, offsets)], axis=1)
    scores = np.concatenate([s for _, s in results], axis=1).astype(np.float32, copy=False)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :top_k]
    return np.take_along_axis(indices, order, axis=1).astype(np.int64), np.take_along_axis(scores, order, axis=1)


class ShardedIndex:
    """An index split into shard files, each searched on its own (in parallel on a dask cluster)
    with the same queries, the top k merged.

    For corpora past what one machine holds or searches fast enough: each shard is an
    :class:`EmbeddingIndex` (``kind="exact"``) or an :class:`ApproximateIndex` saved in
    ``directory``; a manifest (``index.json``) lists them. With a ``client``, each shard's search
    is a task on one worker (always the same one, which keeps the shard open, memory-mapped,
    between searches) and only each shard's top k travels back. Exact shards give exactly what
    one :class:`EmbeddingIndex` over all rows gives. Ids are global: a shard's rows follow the
    previous shard's. Accepted by ``retrieve_visuals`` / ``retrieve_audio`` like the other indexes.

    Parameters
    ----------
    directory : str or os.PathLike
        Where the shards and the manifest are written (created if needed); it must not hold a
        sharded index already (:meth:`load` opens one). With a cluster, every worker must read it
        at the same path (shared storage).
    kind : {"exact", "hnsw", "ivfpq"}, default="exact"
        What each shard is (:data:`SHARD_KINDS`).
    dim : int or None, default=None
        Embedding width; None takes it from the first :meth:`add`.
    shard_size : int, default=1_000_000
        Most rows a shard holds: :meth:`add` fills the last shard, then starts new ones.
    client : distributed.Client or None, default=None
        The dask client whose workers search (and build) the shards; None: this process, one
        shard after another (each with all cores). Not saved; set it again after :meth:`load`.
    **index_params
        Passed to every shard's index: ``dtype`` and ``normalize`` for exact shards, the
        :class:`ApproximateIndex` parameters for the others. IVF-PQ shards share the lists and
        codebooks the first shard trains (saved as ``trained.faiss``), so their estimated
        scores are comparable. The search-time ones (``ef_search``, ``n_probe``, ``rerank``)
        can be changed later in the ``index_params`` attribute and apply to the next search
        (``rerank`` only where the shards were built with it).

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from skavc.index import EmbeddingIndex, ShardedIndex
    >>> E = np.random.default_rng(0).normal(size=(2500, 16))
    >>> sharded = ShardedIndex(tempfile.mkdtemp(), shard_size=1000)
    >>> int(sharded.add(E)[-1]), len(sharded.shards)
    (2499, 3)
    >>> single = EmbeddingIndex()
    >>> _ = single.add(E)
    >>> bool((sharded.search(E[:5], top_k=3)[0] == single.search(E[:5], top_k=3)[0]).all())
    True
    """

    def __init__(self, directory, kind="exact", *, dim=None, shard_size=1_000_000, client=None, **index_params):
        if kind not in SHARD_KINDS:
            raise ValueError(f"kind must be one of {SHARD_KINDS}; got {kind!r}")
        self.directory = Path(directory)
        self.kind = kind
        self.shard_size = check_int(shard_size, name="shard_size", minimum=1)
        self.client = client
        self.index_params = dict(index_params)
        self._counts = []  # rows in each shard, in order
        self._dim = None if dim is None else check_int(dim, name="dim", minimum=1)
        # Fail now on parameters the shards would refuse (a typo in index_params, a bad value).
        try:
            _new_shard(kind, self._dim, self.index_params)
        except TypeError as exc:
            raise TypeError(f"index_params do not fit kind={kind!r}: {exc}") from None
        manifest = self.directory / _MANIFEST
        if manifest.exists():
            raise FileExistsError(f"{self.directory} already holds a sharded index: open it with "
                                  "ShardedIndex.load(directory), or choose an empty directory")
        self.directory.mkdir(parents=True, exist_ok=True)
        self._write_manifest()

    # -- properties ---------------------------------------------------------------------
    @property
    def dim(self):
        """Embedding width (None until the first :meth:`add` when not given)."""
        return self._dim

    @property
    def shards(self):
        """Base paths of the shards' files, in id order."""
        return [self.directory / f"shard-{i:05d}" for i in range(len(self._counts))]

    @property
    def offsets(self):
        """Global id of each shard's first row."""
        return [int(x) for x in np.cumsum([0] + self._counts[:-1])] if self._counts else []

    def __len__(self):
        return int(sum(self._counts))

    def __repr__(self):
        return (f"ShardedIndex({str(self.directory)!r}, kind={self.kind!r}, dim={self._dim}, "
                f"count={len(self)}, shards={len(self._counts)})")

    # -- where shards run ----------------------------------------------------------------
    def _workers(self):
        return sorted(self.client.scheduler_info()["workers"])

    def _run(self, func, calls):
        """``func(*args)`` for each ``(shard_number, args)`` in ``calls``: tasks on the worker that
        owns each shard when there is a client, else calls here in turn."""
        if self.client is None:
            return [func(*args) for _, args in calls]
        workers = self._workers()
        futures = [self.client.submit(func, *args, workers=[workers[i % len(workers)]], allow_other_workers=True,
                                      pure=False)
                   for i, args in calls]
        return self.client.gather(futures)

    # -- adding -------------------------------------------------------------------------
    def add(self, embeddings):
        """Append a batch of embeddings: the last shard is filled up to ``shard_size``, then new
        shards are started; each shard written is saved (atomically) before the manifest.

        Parameters
        ----------
        embeddings : array-like of shape (n, dim)

        Returns
        -------
        ids : ndarray of shape (n,), int64
            Their global positions: what :meth:`search` returns.
        """
        E = _checked_embeddings(embeddings, self._dim)
        if self._dim is None:
            self._dim = E.shape[1]
        start = len(self)
        trained = str(self.directory / _TRAINED)
        done = 0
        while done < E.shape[0]:
            if not self._counts or self._counts[-1] >= self.shard_size:
                self._counts.append(0)
            shard = len(self._counts) - 1
            part = E[done : done + self.shard_size - self._counts[shard]]
            args = (str(self.shards[shard]), self.kind, self.index_params, part, trained)
            (self._counts[shard],) = self._run(_append_to_shard, [(shard, args)])
            done += part.shape[0]
            self._write_manifest()
        return np.arange(start, start + E.shape[0], dtype=np.int64)

    # -- searching ----------------------------------------------------------------------
    def search(self, queries, top_k=10):
        """The ``top_k`` best matches of each query over all shards.

        Parameters
        ----------
        queries : array-like of shape (n_queries, dim)
        top_k : int, default=10

        Returns
        -------
        indices : ndarray of shape (n_queries, min(top_k, len(self))), int64
            Global ids, best first (-1 where approximate shards found fewer, score -inf).
        scores : ndarray of shape (n_queries, min(top_k, len(self))), float32
            As the shards give them: cosine similarities when normalising.
        """
        k = check_k(top_k)
        if len(self) == 0:
            raise ValueError("the index is empty: add embeddings before searching")
        Q = check_queries(queries)
        check_dims(Q, self._dim, what="index")
        settings = {name: self.index_params[name] for name in _SEARCH_SETTINGS if name in self.index_params}
        calls = [(i, (str(path), self.kind, Q, k, settings)) for i, path in enumerate(self.shards)]
        results = self._run(_search_shard, calls)
        return merge_top_k(results, self.offsets, min(k, len(self)))

    # -- persistence --------------------------------------------------------------------
    def _write_manifest(self):
        from ._version import __version__

        meta = {"format": _SHARDED_FORMAT, "version": _SHARDED_FORMAT_VERSION, "kind": self.kind,
                "dim": self._dim, "count": len(self), "shard_size": self.shard_size,
                "index_params": self.index_params, "shard_counts": self._counts, "skavc_version": __version__}
        _write_json(self.directory / _MANIFEST, meta)

    @classmethod
    def load(cls, directory, client=None):
        """Open a sharded index from its directory (no pickle involved; shards open when searched).

        Parameters
        ----------
        directory : str or os.PathLike
        client : distributed.Client or None, default=None
            As in the constructor.

        Returns
        -------
        index : ShardedIndex
        """
        directory = Path(directory)
        manifest = directory / _MANIFEST
        if not manifest.is_file():
            raise FileNotFoundError(f"no sharded index in {directory}: its manifest {manifest} is missing "
                                    "(ShardedIndex(directory, ...) creates one)")
        meta = _read_metadata(manifest, _SHARDED_FORMAT, _SHARDED_FORMAT_VERSION)
        index = cls.__new__(cls)
        index.directory, index.kind, index.client = directory, meta.get("kind"), client
        index.shard_size, index.index_params = meta.get("shard_size"), meta.get("index_params")
        index._dim, index._counts = meta["dim"], meta.get("shard_counts")
        if index.kind not in SHARD_KINDS or not isinstance(index.index_params, dict) or not (
                isinstance(index._counts, list) and sum(index._counts) == meta["count"]):
            raise ValueError(f"{manifest} is not a consistent ShardedIndex manifest (kind, index_params, "
                             "shard_counts)")
        missing = [p for p in index.shards if not _index_paths(p)[1].is_file()]
        if missing:
            raise FileNotFoundError(f"{len(missing)} shard(s) listed in {manifest} are missing, first {missing[0]}")
        return index
