"""Exact top-k inner-product search, chunked so that memory stays bounded.

:func:`top_k` scores queries against a database chunk by chunk (one BLAS
``sgemm`` per chunk of database rows) and keeps only the best ``k`` per query,
so memory stays bounded by the chunk size whatever the database size: the full
``n_queries x n_database`` score matrix is never formed.

Selection is threshold-based: after the first chunk every query knows the
score of its current ``k``-th best match, and later chunks only need a
vectorised comparison against that threshold (a few candidates pass) instead
of a partial sort of the whole chunk. A chunk where too many scores pass (the
first one, or an adversarial ordering) is cut down by a values-only
``np.partition`` to the chunk's own ``k``-th best, and massive ties by
``np.argpartition``, so the worst case is bounded by the partition cost.

The work is split between threads (database ranges, or queries when the
database is small), each running single-threaded BLAS; the per-thread results
are merged.

The cross-modal retrieval task built on it is :mod:`skavc.retrieval`; :class:`skavc.EmbeddingIndex`
searches its stored rows with it.
"""

import os
import threading

import numpy as np

from ._validation import check_int

__all__ = ["top_k"]

# Largest number of scores held at once per thread (float32: 8 MiB, plus a 2 MiB mask
# and an 8 MiB partition copy on dense chunks): queries go in blocks of this // chunk_size.
_SCORE_BUDGET = 1 << 21
# Scores per chunk the default chunk size aims at: about 4 MiB of float32 per thread
# keeps the product's output in cache on a busy machine (12% faster than 16 MiB at
# 1000 queries), while one query still gets large chunks (fewer Python steps).
_CHUNK_SCORES = 1 << 20
# A chunk whose threshold test lets through more than this many candidates per
# query (times k) is first cut down by a partition: gathering them all would cost more.
_DENSE_FACTOR = 4
# Fewer queries than this per thread are not worth a thread when the database is small.
_MIN_QUERIES_PER_THREAD = 64
# Nor are fewer multiply-adds than this (a few hundred microseconds of sgemm).
_MIN_WORK_PER_THREAD = 1 << 24


# -- input checks ----------------------------------------------------------------------
def check_k(k):
    """``top_k`` checked: an integer >= 1.

    Examples
    --------
    >>> from skavc.retrieval import check_k
    >>> check_k(5)
    5
    >>> check_k(0)
    Traceback (most recent call last):
        ...
    ValueError: top_k must be ...
    """
    return check_int(k, name="top_k", minimum=1)


def check_chunk_size(chunk_size):
    return None if chunk_size is None else check_int(chunk_size, name="chunk_size", minimum=1)


def _auto_chunk_size(n_queries):
    """Database rows per chunk: about ``_CHUNK_SCORES`` scores, between 1024 and 16384 rows."""
    return max(1024, min(16384, _CHUNK_SCORES // n_queries))


def check_queries(queries, name="queries"):
    """Queries as a finite, C-contiguous float32 array of shape (n_queries, dim)."""
    Q = np.asarray(queries)
    if Q.dtype == object or not (np.issubdtype(Q.dtype, np.floating) or np.issubdtype(Q.dtype, np.integer)):
        raise TypeError(f"{name} must be a numeric array of shape (n_queries, dim); got dtype {Q.dtype}")
    if Q.ndim == 1:
        raise ValueError(
            f"{name} must be 2-D (n_queries, dim); got a 1-D array of shape {Q.shape}. "
            f"Use {name}.reshape(1, -1) for a single query."
        )
    if Q.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_queries, dim); got shape {Q.shape}")
    if Q.shape[0] == 0:
        raise ValueError(f"{name} is empty: expected at least one query")
    Q = np.ascontiguousarray(Q, dtype=np.float32)
    if not np.isfinite(Q).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return Q


def check_database(database, name="database"):
    """Database as a 2-D floating array (kept as is: memory maps stay memory maps)."""
    if not isinstance(database, np.ndarray):
        database = np.asarray(database)
    if not np.issubdtype(database.dtype, np.floating):
        raise TypeError(f"{name} must be a floating-point array (float32 or float16); got dtype {database.dtype}")
    if database.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_items, dim); got shape {database.shape}")
    if database.shape[0] == 0:
        raise ValueError(f"{name} is empty: there is nothing to search")
    return database


def check_dims(queries, dim, what="database"):
    if queries.shape[1] != dim:
        raise ValueError(
            f"queries have dimension {queries.shape[1]} but the {what} has dimension {dim}: "
            "embeddings must come from the same model (embedding_dim)"
        )


# -- selection ---------------------------------------------------------------------------
def _chunk_top(scores, k):
    """Column indices and scores of the ``k`` best entries of each row (unordered)."""
    if k >= scores.shape[1]:
        cols = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
        return cols, scores
    cols = np.argpartition(scores, -k, axis=1)[:, -k:]
    return cols, np.take_along_axis(scores, cols, axis=1)


def _merge(best_idx, best_val, rows, idx, val):
    """Keep the ``k`` best of the current best lists and new candidates, per query, sorted.

    Parameters
    ----------
    best_idx, best_val : ndarray of shape (n_queries, k)
        Current best database indices and scores, best first (-1 / -inf where unfilled).
    rows, idx, val : ndarray of shape (n_candidates,)
        Query row, database index and score of each new candidate.

    Returns
    -------
    best_idx, best_val : ndarray of shape (n_queries, k)
    """
    n, k = best_val.shape
    all_rows = np.concatenate([np.repeat(np.arange(n), k), rows])
    all_val = np.concatenate([best_val.ravel(), val])
    all_idx = np.concatenate([best_idx.ravel(), idx])
    # Stable sort by row, then by descending score: each row's k best lead its run.
    order = np.lexsort((-all_val, all_rows))
    # Every row has at least k entries (the padded best list), so its k best are contiguous.
    starts = np.searchsorted(all_rows[order], np.arange(n))
    take = order[starts[:, None] + np.arange(k)]
    return all_idx[take], all_val[take]


class _TopK:
    """Running top-k of a block of queries over successive chunks of scores.

    Scores come database-major, shape ``(chunk, n_queries)``: ``chunk @ queries.T``
    is the faster sgemm orientation when there are fewer queries than rows.
    """

    def __init__(self, n_queries, k):
        self.k = k
        self.idx = np.full((n_queries, k), -1, dtype=np.int64)
        self.val = np.full((n_queries, k), -np.inf, dtype=np.float32)
        self._pending = []  # (query rows, database indices, scores) not merged yet
        self._n_pending = 0

    def add_chunk(self, scores, offset, mask):
        """Fold scores of shape (chunk, n_queries) whose row 0 is database row ``offset``."""
        n, k = self.val.shape
        # Only scores above a query's current k-th best can enter its list.
        np.greater(scores, self.val[:, -1], out=mask)
        n_pass = np.count_nonzero(mask)
        if n_pass > _DENSE_FACTOR * n * k:
            # First chunk (thresholds still -inf) or an adversarial order: tighten each
            # query's threshold to the chunk's own k-th best, found by a values-only partition.
            np.greater_equal(scores, np.maximum(self.val[:, -1], _kth_largest(scores, k)), out=mask)
            n_pass = np.count_nonzero(mask)
            if n_pass > 2 * _DENSE_FACTOR * n * k:  # massive ties (duplicate rows)
                self._add_exact(scores, offset)
                return
        if n_pass == 0:
            return
        # flatnonzero is several times faster than 2-D nonzero on a mostly-False mask.
        flat = np.flatnonzero(mask)
        rows, queries = np.divmod(flat, n)
        self._pending.append((queries, rows + offset, scores.ravel()[flat]))
        self._n_pending += n_pass
        # Merging lazily keeps its cost proportional to the candidates; the thresholds
        # only tighten at a merge, which is soon enough as candidates grow rare.
        if self._n_pending >= n * k:
            self._flush()

    def _add_exact(self, scores, offset):
        self._flush()
        cols, val = _chunk_top(scores.T, self.k)
        n, m = cols.shape
        self.idx, self.val = _merge(
            self.idx, self.val, np.repeat(np.arange(n), m), (cols + offset).ravel(), np.ravel(val)
        )

    def _flush(self):
        if self._pending:
            rows, idx, val = (np.concatenate(parts) for parts in zip(*self._pending))
            self._pending, self._n_pending = [], 0
            self.idx, self.val = _merge(self.idx, self.val, rows, idx, val)

    def result(self):
        self._flush()
        return self.idx, self.val


def _kth_largest(scores, k):
    """Each column's ``k``-th largest value, shape (n_queries,); -inf when it has fewer rows."""
    m = scores.shape[0]
    if m < k:
        return np.full(scores.shape[1], -np.inf, dtype=scores.dtype)
    # A copy (partition works in place), with rows contiguous: partition is faster along them.
    values = np.array(scores.T, order="C", copy=True)
    values.partition(m - k, axis=1)
    return values[:, m - k]


def _chunk_plan(segments, chunk_size):
    """``(segment, start, stop, global row)`` of every chunk of consecutive 2-D arrays."""
    plan, offset = [], 0
    for i, segment in enumerate(segments):
        n = segment.shape[0]
        plan.extend((i, lo, min(lo + chunk_size, n), offset + lo) for lo in range(0, n, chunk_size))
        offset += n
    return plan


class _Claims:
    """Hands out chunk numbers to threads one at a time, so a thread the OS
    deschedules (a loaded machine) does less of the work instead of holding up the rest."""

    def __init__(self, n):
        self._n = n
        self._next = 0
        self._lock = threading.Lock()

    def claim(self):
        with self._lock:
            i, self._next = self._next, self._next + 1
        return i if i < self._n else None


def _scan(QT, segments, chunks, claims, k, chunk_size):
    """Top-k of the queries (columns of ``QT``) over the chunks this thread claims."""
    state = _TopK(QT.shape[1], k)
    scores = np.empty((chunk_size, QT.shape[1]), dtype=np.float32)
    mask = np.empty(scores.shape, dtype=bool)
    upcast = None
    while (i := claims.claim()) is not None:
        seg, lo, hi, row = chunks[i]
        chunk = segments[seg][lo:hi]
        m = hi - lo  # leading rows of the buffers are contiguous views
        if chunk.dtype != np.float32 or not chunk.flags.c_contiguous:
            # float16 / float64 / strided: converted into one reused buffer, chunk by chunk.
            if upcast is None:
                upcast = np.empty((chunk_size, QT.shape[0]), dtype=np.float32)
            np.copyto(upcast[:m], chunk, casting="unsafe")
            chunk = upcast[:m]
        np.dot(chunk, QT, out=scores[:m])  # sgemm straight into the reused buffer
        state.add_chunk(scores[:m], row, mask[:m])
    return state.result()


def _search_block(Q, segments, chunks, k, chunk_size, n_threads):
    """Top-k of one block of queries, its chunks shared out between ``n_threads`` threads."""
    QT = np.ascontiguousarray(Q.T)
    claims = _Claims(len(chunks))
    if n_threads == 1:
        return _scan(QT, segments, chunks, claims, k, chunk_size)
    parts = list(_thread_pool().map(lambda _: _scan(QT, segments, chunks, claims, k, chunk_size), range(n_threads)))
    # Each thread's lists are padded with -1 / -inf where it saw fewer than k rows.
    idx, val = (np.concatenate(p, axis=1) for p in zip(*parts))
    best_idx = np.full((Q.shape[0], k), -1, dtype=np.int64)
    best_val = np.full((Q.shape[0], k), -np.inf, dtype=np.float32)
    rows = np.repeat(np.arange(Q.shape[0]), idx.shape[1])
    return _merge(best_idx, best_val, rows, idx.ravel(), val.ravel())


def _search_queries(Q, segments, chunks, k, chunk_size, n_threads):
    """Top-k of all queries, in blocks that bound the scores held at once."""
    block = max(1, _SCORE_BUDGET // chunk_size)
    parts = [_search_block(Q[q0 : q0 + block], segments, chunks, k, chunk_size, n_threads)
             for q0 in range(0, Q.shape[0], block)]
    return tuple(np.concatenate(p, axis=0) for p in zip(*parts)) if len(parts) > 1 else parts[0]


class _SingleThreadedBlas:
    """Context limiting BLAS to one thread while any search runs (re-entrant across threads).

    Our threads split the work; BLAS threads on top would oversubscribe the cores,
    and OpenBLAS synchronising its threads on every chunk-sized product costs more
    than it gains (10x slower on a loaded 2-core machine). The first search to enter
    sets the limit and the last to leave restores it, so concurrent searches from
    several user threads cannot leave BLAS limited.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._depth = 0
        self._limiter = None
        self._controller = None

    def __enter__(self):
        with self._lock:
            if self._depth == 0:
                if self._controller is None:  # inspecting the loaded libraries costs ms: once
                    from threadpoolctl import ThreadpoolController

                    self._controller = ThreadpoolController()
                self._limiter = self._controller.limit(limits=1, user_api="blas")
            self._depth += 1

    def __exit__(self, *exc):
        with self._lock:
            self._depth -= 1
            if self._depth == 0:
                self._limiter.restore_original_limits()
                self._limiter = None


_single_threaded_blas = _SingleThreadedBlas()
_pool = (None, None)  # (pid, ThreadPoolExecutor): threads do not survive a fork


def _thread_pool():
    global _pool
    pid, pool = _pool
    if pid != os.getpid():
        from concurrent.futures import ThreadPoolExecutor

        from joblib import cpu_count

        pool = ThreadPoolExecutor(max(1, cpu_count()), thread_name_prefix="skavc-search")
        _pool = (os.getpid(), pool)
    return pool


def _n_workers(n_queries, n_db, dim, n_threads):
    """Threads worth using: small searches stay on one, dispatching costs more than it saves."""
    if n_threads is None:
        from joblib import cpu_count

        n_threads = cpu_count()
    return max(1, min(n_threads, n_queries * n_db * dim // _MIN_WORK_PER_THREAD))


def search_segments(Q, segments, k, chunk_size=None, n_threads=None):
    """Exact top-k of checked float32 queries over consecutive database segments.

    Threads share out the chunks of the database (each thread keeps its own
    running top-k, merged at the end); a database of one chunk is shared by
    all and the queries are split instead. Every thread runs single-threaded
    BLAS, so products and threshold tests all run in parallel.
    """
    n_db = sum(s.shape[0] for s in segments)
    k = min(k, n_db)
    if chunk_size is None:
        chunk_size = _auto_chunk_size(Q.shape[0])
    chunk_size = max(1, min(chunk_size, n_db))
    chunks = _chunk_plan(segments, chunk_size)
    n_threads = _n_workers(Q.shape[0], n_db, Q.shape[1], n_threads)
    with _single_threaded_blas:
        if n_threads == 1 or len(chunks) > 1:
            return _search_queries(Q, segments, chunks, k, chunk_size, n_threads)
        parts = min(n_threads, Q.shape[0] // _MIN_QUERIES_PER_THREAD)
        if parts < 2:
            return _search_queries(Q, segments, chunks, k, chunk_size, 1)
        bounds = [Q.shape[0] * i // parts for i in range(parts + 1)]
        results = list(_thread_pool().map(
            lambda b: _search_queries(Q[b[0] : b[1]], segments, chunks, k, chunk_size, 1), zip(bounds, bounds[1:])
        ))
    return tuple(np.concatenate(p, axis=0) for p in zip(*results))


def top_k(queries, database, top_k=10, chunk_size=None, n_threads=None):
    """Exact maximum inner-product search: the ``top_k`` best database rows per query.

    With L2-normalised rows (skavc embeddings are) the inner product is the
    cosine similarity.

    Parameters
    ----------
    queries : array-like of shape (n_queries, dim)
        Query vectors (computed in float32).
    database : ndarray of shape (n_items, dim), float32 or float16
        Vectors searched; may be a memory map (read chunk by chunk). Other
        floating dtypes are converted to float32 chunk by chunk. Rows must be finite.
    top_k : int, default=10
        Matches returned per query. More than ``n_items`` returns all items.
    chunk_size : int or None, default=None
        Database rows scored per matrix product; None picks about ``2**20 /
        n_queries`` (1024 to 16384). Queries go in blocks of at most
        ``2**21 // chunk_size``, so temporary memory per thread is at most about
        ``9 * chunk_size * min(n_queries, 2**21 // chunk_size)`` bytes (scores, a
        mask, and a copy partitioned on dense chunks: 18 MiB), plus
        ``4 * chunk_size * dim`` for databases that are not float32.
    n_threads : int or None, default=None
        Threads splitting the database (each with single-threaded BLAS); None
        means the number of CPUs (``joblib.cpu_count()``).

    Returns
    -------
    indices : ndarray of shape (n_queries, min(top_k, n_items)), int64
        Database rows, best match first.
    scores : ndarray of shape (n_queries, min(top_k, n_items)), float32
        Their inner products with the query, descending.

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.retrieval import top_k
    >>> db = np.eye(4, dtype=np.float32)
    >>> idx, scores = top_k(np.array([[0.1, 0.9, 0.0, 0.3]]), db, top_k=2)
    >>> idx.tolist(), [round(float(s), 2) for s in scores[0]]
    ([[1, 3]], [0.9, 0.3])
    """
    k = check_k(top_k)
    chunk_size = check_chunk_size(chunk_size)
    if n_threads is not None:
        n_threads = check_int(n_threads, name="n_threads", minimum=1)
    Q = check_queries(queries)
    D = check_database(database)
    check_dims(Q, D.shape[1])
    return search_segments(Q, [D], k, chunk_size, n_threads)
