"""Cross-modal retrieval: the sounds that fit a picture and the pictures that fit a sound.

Queries are embedded with one modality's transform, the database holds (or is embedded into)
the other modality's embeddings, and the best matches come back as ``(index, score)`` tuples,
best first, where ``score`` is the cosine similarity. The search is exact
(:func:`top_k`, chunked, bounded memory); :class:`skavc.EmbeddingIndex` stores databases.

How a query is told from a batch: one query is an :class:`~skavc.AVClip`, a video path, an
``(audio, frames)`` tuple or one bare array (a 1-D waveform for audio queries, a 4-D
``(T, H, W, 3)`` frames array for visual ones); a list of queries (or a 2-D array of equal
length waveforms, a 5-D array of equal size frame stacks) is a batch and returns one result
list per query.

``AVCorrespondence.retrieve_visuals`` / ``retrieve_audio`` delegate to :func:`retrieve`.
"""

import os

import numpy as np

from ._clip import AVClip
from ._search import check_database, check_dims, check_k, search_segments, top_k
from .index import ApproximateIndex, EmbeddingIndex, ShardedIndex

__all__ = ["check_k", "format_matches", "retrieve", "split_queries", "top_k"]

def _is_pair(item):
    """A tuple ``(audio, frames)`` standing for one clip (frames: a 4-D array)."""
    return isinstance(item, tuple) and len(item) == 2 and np.ndim(item[1]) == 4


def split_queries(query, modality):
    """``(items, is_batch)``: the query items and whether the caller passed a batch.

    One query is an :class:`~skavc.AVClip`, a path, an ``(audio, frames)`` tuple, or a
    bare array (1-D waveform for audio, 4-D ``(T, H, W, 3)`` frames for visual).
    A batch is a list (or a tuple that is not a pair) of those, or for frames a
    5-D array ``(n, T, H, W, 3)``. A list of numbers is one waveform.

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.retrieval import split_queries
    >>> items, is_batch = split_queries(np.zeros(16000, np.float32), "audio")  # one waveform
    >>> len(items), is_batch
    (1, False)
    >>> items, is_batch = split_queries([np.zeros(8000), np.zeros(4000)], "audio")  # a batch
    >>> len(items), is_batch
    (2, True)
    """
    if isinstance(query, (AVClip, str, os.PathLike)) or _is_pair(query):
        return [query], False
    if isinstance(query, np.ndarray) and query.dtype != object:
        single_ndim = 1 if modality == "audio" else 4
        if query.ndim == single_ndim:
            return [query], False
        if query.ndim == single_ndim + 1:
            return list(query), True
        expected = "a 1-D waveform" if modality == "audio" else "frames of shape (T, H, W, 3)"
        raise ValueError(f"the query must be {expected} or a list of them; got an array of shape {query.shape}")
    if isinstance(query, (list, tuple, np.ndarray)):
        if len(query) == 0:
            raise ValueError("the batch of queries is empty")
        if modality == "audio" and np.isscalar(query[0]):
            return [np.asarray(query)], False
        return list(query), True
    raise TypeError(
        f"the query must be an AVClip, a path, an (audio, frames) pair, a {modality} array or a list of "
        f"those; got {type(query).__name__}"
    )


def format_matches(indices, scores, is_batch):
    """``(index, score)`` lists, best first, per query; one list for a single query. Ids of -1
    (an approximate index that found fewer than asked) are left out.

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.retrieval import format_matches
    >>> indices, scores = np.array([[2, 0]]), np.array([[0.9, 0.5]])  # (n_queries, k), best first
    >>> format_matches(indices, scores, is_batch=False)
    [(2, 0.9), (0, 0.5)]
    >>> format_matches(indices, scores, is_batch=True)
    [[(2, 0.9), (0, 0.5)]]
    """
    results = [
        [(int(i), float(s)) for i, s in zip(row_idx, row_val) if i >= 0]
        for row_idx, row_val in zip(indices.tolist(), scores.tolist())
    ]
    return results if is_batch else results[0]


def retrieve(query, database, k, *, modality, embed_query, embed_database):
    """Top-``k`` matches of ``query`` (one or a batch) in ``database``.

    Parameters
    ----------
    query : one query or a list of them, of ``modality`` (see the module docstring)
    database : ndarray of shape (n_items, embedding_dim), EmbeddingIndex, ApproximateIndex, ShardedIndex, or sequence of items
        Embeddings of the other modality, an index of them, or items to embed with
        ``embed_database``.
    k : int
    modality : {"audio", "visual"}
        The query's modality.
    embed_query, embed_database : callable(list) -> ndarray of shape (n, embedding_dim)
        The estimator's transforms of the query's modality and of the other one.

    Returns
    -------
    matches : list of (int, float), or a list of such lists for a batch

    Examples
    --------
    A database of three visual embeddings, and a stand-in for a fitted model's ``transform_audio``:

    >>> import numpy as np
    >>> from skavc.retrieval import retrieve
    >>> visual = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]], dtype=np.float32)
    >>> def embed_audio(items):
    ...     return np.tile(np.float32([0.0, 1.0]), (len(items), 1))
    >>> matches = retrieve(np.zeros(16000), visual, 2, modality="audio", embed_query=embed_audio, embed_database=None)
    >>> [(index, round(score, 2)) for index, score in matches]  # best first, cosine similarity
    [(2, 1.0), (1, 0.8)]
    >>> retrieve([np.zeros(16000)] * 2, visual, 1, modality="audio", embed_query=embed_audio, embed_database=None)
    [[(2, 1.0)], [(2, 1.0)]]
    """
    k = check_k(k)
    items, is_batch = split_queries(query, modality)
    Q = embed_query(items)
    if isinstance(database, (EmbeddingIndex, ApproximateIndex, ShardedIndex)):
        indices, scores = database.search(Q, top_k=k)
    elif isinstance(database, np.ndarray) and database.dtype != object and database.ndim == 2:
        D = check_database(database, name="the database")
        check_dims(Q, D.shape[1], what="database")
        indices, scores = search_segments(Q, [D], k)
    else:
        indices, scores = search_segments(Q, [embed_database(database)], k)
    return format_matches(indices, scores, is_batch)
