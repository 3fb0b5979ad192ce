"""`EmbeddingIndex`: an exact, growable, savable index of embeddings for retrieval.

Saved as two files side by side: ``<name>.npy`` (the embeddings, a plain
NumPy array readable without pickle and memory-mappable) and ``<name>.json``
(dim, dtype, count, format version). Both are written to a temporary file and
moved into place with ``os.replace``, so a reader never sees half a file.
"""

import json
import os
from numbers import Integral
from pathlib import Path

import numpy as np

from ._search import check_chunk_size, check_dims, check_k, check_queries, search_segments
from ._validation import atomic_path, check_int

__all__ = ["ApproximateIndex", "EmbeddingIndex", "KINDS", "default_n_lists"]

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
        text = json.dumps(self._metadata(npy_path.name), indent=2).encode()
        _write_atomically(json_path, lambda f: f.write(text))
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
        index.train(E)
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
        if self.normalize:
            E = unit_rows(E)
        E = np.ascontiguousarray(E, dtype=np.float32)
        if self._dim is None:
            self._dim = E.shape[1]
        self._threads()
        if self._index is None:
            self._index = self._build(E)
        start = len(self)
        self._index.add(E)
        if self._vectors is not None:
            self._vectors.add(E)
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
        proposed = min(len(self), k * self.rerank) if self._vectors is not None else k
        scores, indices = self._index.search(Q, proposed)
        if self._vectors is not None:
            scores, indices = _rescored(Q, indices, self._vectors, k)
        scores = np.where(indices < 0, -np.inf, scores).astype(np.float32)
        return indices.astype(np.int64), scores

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
        data = _faiss().serialize_index(self._index)
        _write_atomically(index_path, lambda f: f.write(data.tobytes()))
        if self._vectors is not None:
            self._vectors.save(_vectors_path(index_path))
        from ._version import __version__

        meta = {"format": _ANN_FORMAT, "version": _ANN_FORMAT_VERSION, "kind": self.kind, "dim": self._dim,
                "count": len(self), "normalize": self.normalize, "index": index_path.name,
                "skavc_version": __version__,
                "parameters": {"hnsw_neighbours": self.hnsw_neighbours, "ef_construction": self.ef_construction,
                               "ef_search": self.ef_search, "n_lists": self.n_lists, "n_probe": self.n_probe,
                               "pq_bytes": self.pq_bytes, "rerank": self.rerank}}
        text = json.dumps(meta, indent=2).encode()
        _write_atomically(json_path, lambda f: f.write(text))
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
