"""Metrics for audio-visual models: retrieval recall, synchronisation error, localisation cIoU.

Localisation metrics: consensus IoU (cIoU) and its AUC, per frame.

Definitions follow LVS (Chen et al., "Localizing Visual Sounds the Hard Way",
CVPR 2021; ``Evaluator.cal_CIOU`` / ``cal_AUC`` in its code), which EZ-VSL and
later work reuse:

- a ground-truth map ``g`` holds per-pixel consensus weights in [0, 1] (on
  Flickr-SoundNet the fraction of annotators' boxes covering the pixel, halved
  and clipped; a plain boolean mask is the special case used here);
- the predicted map is binarised into ``p`` in {0, 1};
- ``cIoU = sum(p * g) / (sum(g) + sum(p * (g == 0)))``: the usual IoU for a
  binary ``g``, with pixels of partial consensus counting in the union only
  by their weight;
- "cIoU" as reported is the fraction of samples whose cIoU is >= 0.5, and
  "AUC" the area under the success curve ``t -> fraction(cIoU >= t)`` for
  ``t = 0, 0.05, ..., 1`` (trapezoid rule).

Two deliberate differences from LVS, both because skavc's maps are calibrated
and may say "nothing here":

- LVS min-max normalises each heat map and keeps its top half of pixels (a
  median threshold), so every image always gets a region covering half the
  frame. Here the map is binarised at a fixed ``threshold`` (default 0.5,
  :data:`skavc.localization.SOURCE_THRESHOLD`), so an unconfident map predicts
  nothing and scores 0 against a visible source.
- The unit is a video frame, not one image per clip; a frame whose mask is empty
  (no visible source) scores 1 when nothing is predicted and 0 otherwise.
"""

import numpy as np

from ._validation import check_paired_series, check_real

__all__ = ["auc_ciou", "ciou", "cross_modal_recall", "frame_ciou", "recall_at_k", "separation_scores", "si_sdr",
           "sync_accuracy", "sync_mean_absolute_error"]


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

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.metrics import recall_at_k
    >>> similarity = np.array([[0.9, 0.1, 0.0], [0.8, 0.5, 0.1], [0.0, 0.2, 0.7]])
    >>> recall_at_k(similarity, k=1), recall_at_k(similarity, k=2)
    (0.6666666666666666, 1.0)
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

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.metrics import cross_modal_recall
    >>> rng = np.random.default_rng(0)
    >>> audio = rng.standard_normal((4, 8))
    >>> visual = audio + 0.1 * rng.standard_normal((4, 8))  # row i of each from clip i
    >>> cross_modal_recall(audio, visual, k=1)
    (1.0, 1.0)
    """
    A = np.asarray(audio_embeddings)
    V = np.asarray(visual_embeddings)
    if A.shape != V.shape:
        raise ValueError(f"audio_embeddings and visual_embeddings must have the same shape; got {A.shape} and {V.shape}")
    S = A @ V.T
    return recall_at_k(S, k), recall_at_k(S.T, k)


# -- synchronisation ----------------------------------------------------------------


def sync_accuracy(y_true, y_pred, tolerance):
    """Fraction of offset estimates within ``tolerance`` seconds of the truth.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_clips,)
        True and estimated offsets in seconds.
    tolerance : float
        Largest accepted ``|y_pred - y_true|`` in seconds, >= 0 (e.g. ``1 / fps`` for
        "within one frame"). Errors within 1e-9 s of it count as accepted.

    Returns
    -------
    accuracy : float in [0, 1]

    Examples
    --------
    >>> from skavc.metrics import sync_accuracy
    >>> sync_accuracy([0.0, 0.1, -0.2], [0.02, 0.1, 0.0], tolerance=1 / 25)  # within one frame at 25 fps
    0.6666666666666666
    """
    y_true, y_pred = check_paired_series(y_true, y_pred, names=("y_true", "y_pred"))
    tolerance = check_real(tolerance, name="tolerance")
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0; got {tolerance!r}")
    return float(np.mean(np.abs(y_pred - y_true) <= tolerance + 1e-9))


def sync_mean_absolute_error(y_true, y_pred):
    """Mean ``|y_pred - y_true|`` in seconds over clips.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_clips,)
        True and estimated offsets in seconds.

    Returns
    -------
    error : float >= 0

    Examples
    --------
    >>> from skavc.metrics import sync_mean_absolute_error
    >>> round(sync_mean_absolute_error([0.0, 0.1, -0.2], [0.02, 0.1, 0.0]), 3)  # seconds
    0.073
    """
    y_true, y_pred = check_paired_series(y_true, y_pred, names=("y_true", "y_pred"))
    return float(np.mean(np.abs(y_pred - y_true)))


# -- localisation ---------------------------------------------------------------------


#: IoU thresholds of the success curve behind :func:`auc_ciou` (LVS: 0, 0.05, ..., 1).
IOU_THRESHOLDS = np.linspace(0.0, 1.0, 21)


def _as_clip_list(x, name):
    if isinstance(x, np.ndarray):
        if x.ndim == 2:
            return [x[None]]
        if x.ndim == 3:
            return [x]
        raise ValueError(f"{name} must be (T, H, W) or (H, W) arrays, or a list of them; got shape {x.shape}")
    out = [np.asarray(item) for item in x]
    for item in out:
        if item.ndim not in (2, 3):
            raise ValueError(f"{name} must be (T, H, W) or (H, W) arrays, or a list of them; got an item of shape {item.shape}")
    return [item if item.ndim == 3 else item[None] for item in out]


def frame_ciou(maps, masks, threshold=0.5):
    """Consensus IoU of every frame.

    Parameters
    ----------
    maps : ndarray of shape (T, H, W), or a list of them (one per clip)
        Predicted maps; a pixel is predicted when its value is >= ``threshold``.
    masks : same structure and shapes as ``maps``
        Ground truth: boolean masks or consensus weights in [0, 1].
    threshold : float, default=0.5

    Returns
    -------
    ciou : ndarray of shape (n_frames_total,)
        Frames of all clips in order, each in [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.metrics import frame_ciou
    >>> masks = np.zeros((3, 4, 4), bool); masks[:, 1:3, 1:3] = True
    >>> maps = np.zeros((3, 4, 4)); maps[0, 1:3, 1:3] = 1.0; maps[1, 1:3, 1:4] = 1.0
    >>> frame_ciou(maps, masks).round(3)  # exact, 2 pixels too many, nothing predicted
    array([1.   , 0.667, 0.   ])
    """
    maps, masks = _as_clip_list(maps, "maps"), _as_clip_list(masks, "masks")
    if len(maps) != len(masks):
        raise ValueError(f"maps and masks must hold as many clips; got {len(maps)} and {len(masks)}")
    out = []
    for i, (m, g) in enumerate(zip(maps, masks)):
        if m.shape != g.shape:
            raise ValueError(f"maps[{i}] and masks[{i}] must have the same shape; got {m.shape} and {g.shape}")
        p = (m >= threshold).reshape(m.shape[0], -1).astype(np.float64)
        g = g.reshape(g.shape[0], -1).astype(np.float64)
        inter = np.sum(p * g, axis=1)
        union = np.sum(g, axis=1) + np.sum(p * (g == 0), axis=1)
        # Nothing to find and nothing found is a correct frame; 0 / 0 otherwise undefined.
        out.append(np.where(union > 0, inter / np.where(union > 0, union, 1.0), 1.0))
    return np.concatenate(out)


def ciou(maps, masks, threshold=0.5, iou_threshold=0.5):
    """cIoU as reported by LVS / EZ-VSL: fraction of frames with cIoU >= ``iou_threshold``, and the mean.

    Parameters
    ----------
    maps : ndarray of shape (T, H, W), or a list of them (one per clip)
    masks : same structure and shapes as ``maps``
        Boolean masks or consensus weights in [0, 1].
    threshold : float, default=0.5
        Map value from which a pixel is predicted (fixed, not per map: see the module notes).
    iou_threshold : float, default=0.5

    Returns
    -------
    ciou : float in [0, 1]
        Fraction of frames whose cIoU is >= ``iou_threshold``.
    mean_ciou : float in [0, 1]
        Mean cIoU over frames.

    Examples
    --------
    >>> import numpy as np
    >>> masks = np.zeros((2, 4, 4), bool); masks[:, 1:3, 1:3] = True
    >>> ciou(masks.astype(float), masks)
    (1.0, 1.0)
    >>> ciou(np.zeros((2, 4, 4)), masks)
    (0.0, 0.0)
    """
    values = frame_ciou(maps, masks, threshold)
    return float(np.mean(values >= iou_threshold)), float(np.mean(values))


def auc_ciou(maps, masks, threshold=0.5, iou_thresholds=IOU_THRESHOLDS):
    """Area under the cIoU success curve: fraction of frames with cIoU >= t, over t in [0, 1].

    Parameters
    ----------
    maps : ndarray of shape (T, H, W), or a list of them (one per clip)
    masks : same structure and shapes as ``maps``
    threshold : float, default=0.5
        Map binarisation threshold.
    iou_thresholds : ndarray of shape (n_thresholds,), default=IOU_THRESHOLDS
        Increasing, from 0 to 1 (LVS: 21 steps of 0.05).

    Returns
    -------
    auc : float in [0, 1]

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.metrics import auc_ciou
    >>> masks = np.zeros((3, 4, 4), bool); masks[:, 1:3, 1:3] = True
    >>> maps = np.zeros((3, 4, 4)); maps[0, 1:3, 1:3] = 1.0; maps[1, 1:3, 1:4] = 1.0
    >>> round(auc_ciou(maps, masks), 3)  # frames of cIoU 1, 0.667 and 0
    0.567
    """
    values = frame_ciou(maps, masks, threshold)
    t = np.asarray(iou_thresholds, dtype=np.float64)
    success = np.mean(values[None, :] >= t[:, None], axis=1)
    return float(np.sum(np.diff(t) * 0.5 * (success[1:] + success[:-1])))


# ---------------------------------------------------------------------------
# Source separation: BSS Eval through mir_eval, and scale-invariant SDR
# ---------------------------------------------------------------------------


def _as_sources(x, name):
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"{name} must have shape (n_sources, n_samples) or (n_samples,); got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite samples")
    return arr


def separation_scores(reference_sources, estimated_sources):
    """SDR, SIR and SAR (dB) of estimated sources, BSS Eval v3 through ``mir_eval``.

    Calls :func:`mir_eval.separation.bss_eval_sources` with ``compute_permutation=False``
    (estimate ``i`` is scored against reference ``i``); nothing is re-implemented here. Needs
    the ``separation`` extra (``pip install skavc[separation]``).

    Parameters
    ----------
    reference_sources : ndarray of shape (n_sources, n_samples) or (n_samples,)
        Clean sources; none may be all zero (BSS Eval is undefined for a silent reference).
    estimated_sources : ndarray of the same shape
        Estimates. An all-zero estimate (which ``mir_eval`` refuses) scores ``-inf`` on all
        three, so that a separator that returns silence gets the worst score, not an error;
        the other estimates' scores do not depend on it (each estimate is decomposed alone).

    Returns
    -------
    sdr, sir, sar : ndarray of shape (n_sources,)

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.metrics import separation_scores
    >>> rng = np.random.default_rng(0)
    >>> reference = rng.standard_normal((2, 8000))
    >>> sdr, sir, sar = separation_scores(reference, reference + 0.1 * rng.standard_normal((2, 8000)))
    >>> sdr.shape, bool(np.all(sdr > 15))  # dB
    ((2,), True)
    """
    try:
        from mir_eval.separation import bss_eval_sources
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("separation_scores needs mir_eval: pip install 'skavc[separation]' "
                          "(or pip install 'mir_eval>=0.7')") from exc
    import warnings

    ref = _as_sources(reference_sources, "reference_sources")
    est = _as_sources(estimated_sources, "estimated_sources")
    if ref.shape != est.shape:
        raise ValueError(f"reference_sources and estimated_sources must have the same shape; "
                         f"got {ref.shape} and {est.shape}")
    if np.any(np.all(ref == 0, axis=1)):
        raise ValueError("reference_sources holds an all-zero source: SDR is undefined against silence")
    silent = np.all(est == 0, axis=1)
    if np.any(silent):
        est = est.copy()
        est[silent] = np.random.RandomState(0).standard_normal((int(silent.sum()), est.shape[1]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # mir_eval 0.8 deprecates the module, not the maths
        sdr, sir, sar, _ = bss_eval_sources(ref, est, compute_permutation=False)
    for values in (sdr, sir, sar):
        values[silent] = -np.inf
    return sdr, sir, sar


def si_sdr(reference, estimate):
    """Scale-invariant SDR in dB (Le Roux et al., "SDR - half-baked or well done?", ICASSP 2019).

    ``alpha = <s_hat, s> / ||s||^2``, ``SI-SDR = 10 log10(||alpha s||^2 / ||alpha s - s_hat||^2)``
    (no mean removal: remove the means first if the signals may carry a DC offset).

    Parameters
    ----------
    reference : ndarray of shape (n_samples,) or (n_sources, n_samples)
    estimate : ndarray of the same shape

    Returns
    -------
    si_sdr : float, or ndarray of shape (n_sources,) for 2-D input
        ``-inf`` for a silent (or orthogonal) estimate, ``inf`` for a perfect one.

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.metrics import si_sdr
    >>> rng = np.random.default_rng(0)
    >>> reference = rng.standard_normal(16000)
    >>> estimate = reference + 0.1 * rng.standard_normal(16000)  # noise 20 dB below the signal
    >>> round(si_sdr(reference, estimate), 1), round(si_sdr(reference, 3 * estimate), 1)  # dB, scale ignored
    (20.0, 20.0)
    """
    ref = np.asarray(reference, dtype=np.float64)
    est = np.asarray(estimate, dtype=np.float64)
    if ref.shape != est.shape or ref.ndim not in (1, 2) or ref.size == 0:
        raise ValueError(f"reference and estimate must have the same shape (n_samples,) or (n_sources, n_samples); "
                         f"got {ref.shape} and {est.shape}")
    energy = np.sum(ref * ref, axis=-1)
    if np.any(energy == 0):
        raise ValueError("reference is all zero: SI-SDR is undefined against silence")
    alpha = np.sum(est * ref, axis=-1) / energy
    target = alpha[..., None] * ref
    noise = target - est
    with np.errstate(divide="ignore"):
        out = 10 * np.log10(np.sum(target * target, axis=-1)) - 10 * np.log10(np.sum(noise * noise, axis=-1))
    return float(out) if ref.ndim == 1 else out
