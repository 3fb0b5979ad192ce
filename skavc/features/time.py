"""Time axes: which frames to look at, and features moved between time grids.

* :func:`sample_frame_indices`: frames spread evenly over a clip.
* :func:`window_means`: time-resolved features averaged over a window around given times.
* :func:`grid_times` and :func:`resample_track`: a regular grid of step centres, and features
  interpolated onto it.
* :func:`window_weights` and :func:`windowed_correlation`: Gaussian windows over frames, and the
  correlation of series within each of them.

Conventions. Times are in seconds. Frame ``f`` shows the instant ``f / fps``; step ``j`` of a
feature track with ``rate`` steps per second is centred at ``(j + 0.5) / rate``.
"""

import numpy as np

from .._validation import check_int

__all__ = [
    "grid_times",
    "resample_track",
    "rises",
    "sample_frame_indices",
    "window_means",
    "window_weights",
    "windowed_correlation",
]


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

    Examples
    --------
    >>> from skavc.features import sample_frame_indices
    >>> sample_frame_indices(100, 4)
    array([12, 37, 62, 87])
    >>> sample_frame_indices(3, 5), sample_frame_indices(3, 5, repeat=True)
    (array([0, 1, 2]), array([0, 0, 1, 2, 2]))
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

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.features import window_means
    >>> features = np.arange(8.0).reshape(4, 2)  # 4 steps at 4 per second, centred at 0.125, 0.375, ... s
    >>> window_means(features, rate=4, times=np.array([0.25, 0.5]), window=0.5)  # steps 0-1, then 1-2
    array([[1., 2.],
           [3., 4.]])
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

    Examples
    --------
    >>> from skavc.features import grid_times
    >>> grid_times(1.0, rate=4)  # seconds
    array([0.125, 0.375, 0.625, 0.875])
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

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.features import resample_track
    >>> features, times = np.array([[0.0], [1.0], [2.0]]), np.array([0.0, 1.0, 2.0])
    >>> resample_track(features, times, grid=np.array([0.5, 1.5, 3.0]))  # (n_grid, n_features)
    array([[0.5],
           [1.5],
           [2. ]])
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

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.features import rises
    >>> rises(np.array([0.0, 2.0, 1.0, 4.0]))
    array([0., 2., 0., 3.])
    """
    x = np.asarray(x, dtype=np.float64)
    return np.maximum(np.diff(x, axis=-1, prepend=x[..., :1]), 0.0)


def windowed_correlation(x, a, weights):
    """Weighted Pearson correlation of every cell's series with one series (or several), per window.

    Parameters
    ----------
    x : ndarray of shape (T, n_cells)
    a : ndarray of shape (T,) or (K, T)
        One series, or K of them (the cells' statistics are then computed once for all).
    weights : ndarray of shape (n_windows, T)
        Non-negative weights of each window over time.

    Returns
    -------
    rho : ndarray of shape (n_windows, n_cells), or (K, n_windows, n_cells)
        0 where either series is constant within the window.
    n_eff : ndarray of shape (n_windows,)
        Effective number of samples per window, ``(sum w)^2 / sum w^2``.

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.features import window_weights, windowed_correlation
    >>> a = np.sin(np.arange(50) / 3.0)
    >>> x = np.stack([a, -a, np.cos(np.arange(50) / 7.0)], axis=1)  # 3 cells, 50 frames
    >>> rho, n_eff = windowed_correlation(x, a, window_weights(50, fps=25, window=0.5, hop=25)[1])
    >>> rho.shape, rho[0, :2].round(3)  # (n_windows, n_cells)
    ((3, 3), array([ 1., -1.]))
    """
    W = weights / np.maximum(weights.sum(axis=1, keepdims=True), 1e-12)
    n_eff = 1.0 / np.maximum((W**2).sum(axis=1), 1e-12)
    x = np.asarray(x, dtype=np.float64)
    a = np.asarray(a, dtype=np.float64)
    A = a[None] if a.ndim == 1 else a                                    # (K, T)
    mx, ex2 = W @ x, W @ (x * x)                                         # (n_windows, n_cells)
    ma, ea2 = A @ W.T, (A * A) @ W.T                                     # (K, n_windows)
    var_x = np.maximum(ex2 - mx**2, 0.0)
    var_a = np.maximum(ea2 - ma**2, 0.0)[..., None]
    K, n_windows = ma.shape
    cov = ((W[None] * A[:, None, :]).reshape(K * n_windows, -1) @ x).reshape(K, n_windows, -1)
    cov -= mx * ma[..., None]
    # Constant series (silence, a still picture) correlate with nothing: 0, not noise over noise.
    scale_x = np.maximum(np.sqrt(ex2.max(axis=1, keepdims=True)), 1e-12)
    scale_a = np.maximum(np.sqrt(ea2), 1e-12)[..., None]
    ok = (var_x > (1e-6 * scale_x) ** 2) & (var_a > (1e-6 * scale_a) ** 2)
    rho = np.clip(np.where(ok, cov / np.sqrt(np.where(ok, var_x * var_a, 1.0)), 0.0), -1.0, 1.0)
    return (rho[0] if a.ndim == 1 else rho), n_eff


def window_weights(n_frames, fps, window, hop):
    """Gaussian weights over frames of windows centred every ``hop`` frames.

    Parameters
    ----------
    n_frames : int
    fps : float
    window : float or None
        Standard deviation of the Gaussian in seconds; None weighs the whole clip equally.
    hop : int
        Frames between window centres.

    Returns
    -------
    centres : ndarray of shape (n_windows,)
        Frame index of each window's centre (the first and the last frame included).
    weights : ndarray of shape (n_windows, n_frames)
        Frame 0 has weight 0: it has no predecessor to change from.

    Examples
    --------
    >>> from skavc.features import window_weights
    >>> centres, weights = window_weights(50, fps=25, window=0.5, hop=25)
    >>> centres, weights.shape, float(weights[1, 25]), float(weights[:, 0].max())
    (array([ 0, 25, 49]), (3, 50), 1.0, 0.0)
    """
    centres = np.unique(np.append(np.arange(0, n_frames, max(1, hop)), n_frames - 1))
    t = np.arange(n_frames)
    if window is None:
        weights = np.ones((centres.size, n_frames))
    else:
        sigma = max(window * fps, 1e-6)
        weights = np.exp(-0.5 * ((t[None, :] - centres[:, None]) / sigma) ** 2)
    weights[:, 0] = 0.0
    return centres, weights
