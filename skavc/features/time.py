"""Time axes: which frames to look at, and features moved between time grids.

* :func:`sample_frame_indices`: frames spread evenly over a clip.
* :func:`window_means`: time-resolved features averaged over a window around given times.
* :func:`grid_times` and :func:`resample_track`: a regular grid of step centres, and features
  interpolated onto it.

Conventions. Times are in seconds. Frame ``f`` shows the instant ``f / fps``; step ``j`` of a
feature track with ``rate`` steps per second is centred at ``(j + 0.5) / rate``.
"""

import numpy as np

from .._validation import check_int

__all__ = ["grid_times", "resample_track", "rises", "sample_frame_indices", "window_means"]


def sample_frame_indices(n_frames, n_samples, *, repeat=False):
    """``n_samples`` frame indices spread evenly over ``n_frames`` frames.

    Parameters
    ----------
    n_frames : int
        Frames in the clip, >= 0.
    n_samples : int
        Frames wanted, >= 1.
    repeat : bool, default=False
        What a clip with no more than ``n_samples`` frames gives: ``False``, every frame once
        (``arange(n_frames)``: fewer than ``n_samples`` indices); ``True``, always ``n_samples``
        indices, frames repeated as evenly as they come (for batches of a fixed shape).

    Returns
    -------
    indices : ndarray of shape (n,), int
        ``floor((i + 0.5) * n_frames / n_samples)`` for ``i = 0 .. n_samples - 1``: the frame
        under the centre of each of ``n_samples`` equal segments of the clip, ascending
        (``n = n_samples``, or ``n_frames`` when that is smaller and ``repeat`` is False). A
        clip without frames gives none.
    """
    n_frames = check_int(n_frames, name="n_frames", minimum=0)
    n_samples = check_int(n_samples, name="n_samples", minimum=1)
    if n_frames == 0 or (n_frames <= n_samples and not repeat):
        return np.arange(n_frames)
    return np.floor((np.arange(n_samples) + 0.5) * n_frames / n_samples).astype(int)


def window_means(features, rate, times, window):
    """Mean of time-resolved features over a window of ``window`` seconds centred on each time.

    Parameters
    ----------
    features : ndarray of shape (n_steps, n_features)
        Step ``j`` is centred at ``(j + 0.5) / rate`` seconds.
    rate : float
        Steps per second.
    times : ndarray of shape (n_times,)
    window : float
        Seconds; the window is cut at the ends of the clip, and always holds
        at least the step nearest to the time.

    Returns
    -------
    means : ndarray of shape (n_times, n_features)
    """
    features = np.asarray(features, dtype=np.float64)
    n = features.shape[0]
    csum = np.vstack([np.zeros((1, features.shape[1])), np.cumsum(features, axis=0)])
    lo = np.clip(np.ceil((times - 0.5 * window) * rate - 0.5).astype(int), 0, n - 1)
    hi = np.clip(np.floor((times + 0.5 * window) * rate - 0.5).astype(int) + 1, lo + 1, n)
    return (csum[hi] - csum[lo]) / (hi - lo)[:, None]


def grid_times(duration, rate):
    """Centres of the grid steps covering ``duration`` seconds, shape (n_steps,).

    Parameters
    ----------
    duration : float
        Seconds.
    rate : float
        Steps per second.

    Returns
    -------
    times : ndarray of shape (n_steps,)
        ``(j + 0.5) / rate`` for ``n_steps = max(1, floor(duration * rate))`` steps.
    """
    n = max(1, int(np.floor(duration * rate)))
    return (np.arange(n) + 0.5) / rate


def resample_track(features, times, grid):
    """Linearly interpolate per-time features onto ``grid`` (held constant beyond the ends).

    Parameters
    ----------
    features : ndarray of shape (n_times, n_features)
    times : ndarray of shape (n_times,), increasing
    grid : ndarray of shape (n_grid,)

    Returns
    -------
    resampled : ndarray of shape (n_grid, n_features)
    """
    if features.shape[0] == 1:
        return np.repeat(features, grid.shape[0], axis=0)
    pos = np.interp(grid, times, np.arange(times.shape[0], dtype=np.float64))
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, times.shape[0] - 1)
    w = (pos - lo)[:, None]
    return (1 - w) * features[lo] + w * features[hi]


def rises(x):
    """Increases of a series from each step to the next: ``max(x[..., t] - x[..., t - 1], 0)``, 0 at ``t = 0``.

    Parameters
    ----------
    x : ndarray of shape (..., T)
        Time along the last axis.

    Returns
    -------
    rises : ndarray of shape (..., T), float64, >= 0
        What starts (an onset, motion beginning) and not what fades.
    """
    x = np.asarray(x, dtype=np.float64)
    return np.maximum(np.diff(x, axis=-1, prepend=x[..., :1]), 0.0)
