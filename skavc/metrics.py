"""Metrics for audio-visual models: retrieval recall (more arrive with sync and localisation)."""

import numpy as np


def recall_at_k(similarity, k=1):
    """Fraction of queries whose true match ranks in the top ``k``.

    Parameters
    ----------
    similarity : ndarray of shape (n_queries, n_items)
        ``similarity[i, j]`` scores query ``i`` against item ``j``; the true
        match of query ``i`` is item ``i``.
    k : int, default=1

    Returns
    -------
    recall : float in [0, 1]
    """
    S = np.asarray(similarity, dtype=np.float64)
    if S.ndim != 2 or S.shape[0] > S.shape[1] or S.shape[0] == 0:
        raise ValueError(f"similarity must be a 2-D array with n_queries <= n_items > 0; got shape {S.shape}")
    if int(k) < 1:
        raise ValueError(f"k must be >= 1; got {k!r}")
    n = S.shape[0]
    true_scores = S[np.arange(n), np.arange(n)]
    # Rank = number of items scoring strictly higher; ties count in the query's favour.
    rank = np.sum(S > true_scores[:, None], axis=1)
    return float(np.mean(rank < int(k)))


def cross_modal_recall(audio_embeddings, visual_embeddings, k=1):
    """Recall@k of audio->visual and visual->audio retrieval over paired rows.

    Parameters
    ----------
    audio_embeddings : ndarray of shape (n_clips, embedding_dim)
    visual_embeddings : ndarray of shape (n_clips, embedding_dim)
        Row ``i`` of each comes from clip ``i``.
    k : int, default=1

    Returns
    -------
    audio_to_visual, visual_to_audio : float
    """
    A = np.asarray(audio_embeddings)
    V = np.asarray(visual_embeddings)
    if A.shape != V.shape:
        raise ValueError(f"audio_embeddings and visual_embeddings must have the same shape; got {A.shape} and {V.shape}")
    S = A @ V.T
    return recall_at_k(S, k), recall_at_k(S.T, k)


# Synchronisation metrics live beside the estimate they score; exported here with the others.
from ._sync_signal import sync_accuracy, sync_mean_absolute_error  # noqa: E402

__all__ = ["cross_modal_recall", "recall_at_k", "sync_accuracy", "sync_mean_absolute_error"]
from ._localization_metrics import auc_ciou, ciou  # noqa: E402

__all__ += ["auc_ciou", "ciou"]
