"""Training-free localisation: cells whose change over time follows the audio's change.

Hershey and Movellan 2000, Kidron et al. 2005 ("Pixels that sound"): per cell of a grid of at
most 64 cells a side, the correlation over a sliding window (Gaussian, sd 1 s) between how much
the cell changes from frame to frame (camera shift compensated, frame median and a noise floor
removed) and how much the audio changes over the same interval (its RMS envelope's change plus
its level's rise in dB, each in units of its own spread). The features (cells, frame changes,
audio changes, level rises, sound presence) come from :mod:`skavc.features`.

The confidence is measured against the clip's own chance level: the same correlation with the
audio circularly shifted by several lags gives, per frame, the peak that unrelated audio reaches
over these very cells; a frame is confident when its peak stands well above that, and only
while the sound stands above the clip's noise floor (:func:`skavc.features.sound_presence`).
"""

import numpy as np
from scipy.special import expit

from .._validation import check_int
from ..features import (audio_changes, block_size, frame_changes, grey_blocks, level_rises, sound_presence,
                        window_weights, windowed_correlation)
from ._maps import shape_to_maps, upsample_bilinear

# Synchrony shape: a cell is half-way lit at this fraction of the frame's peak correlation ...
_SYNC_FRACTION = 0.62
# ... with a soft edge this wide (in fractions of the peak).
_SYNC_SOFTNESS = 0.05
# Synchrony confidence: how far the frame's peak correlation (smoothed over _PEAK_SMOOTH cells,
# as a Fisher z) stands above the peaks the same cells reach with the audio circularly shifted
# by _N_NULL lags spread over 20-80 % of the clip, in units of that null's spread (at least
# _NULL_MIN_SPREAD): logistic, 0.5 at _NULL_MARGIN spreads, soft edge _NULL_SOFTNESS. The
# absolute rule it replaced (0.5 at z = 3.8, fitted on generated clips) gave every frame of real
# video a confidence near 0 (real peaks reach z 1-3 with fewer independent frames); relative to
# the clip's own null, generated sources still score >= 0.5 in ~93 % of frames and off-screen
# audio in ~6 % (docs/benchmarks.md).
_N_NULL = 8
_NULL_MARGIN = 2.0
_NULL_SOFTNESS = 0.5
_NULL_MIN_SPREAD = 0.25
# Sound presence (the confidence's gate) is judged over this window around each frame: long
# enough to bridge the gaps between the hits of one sounding object, short against a pause.
_PRESENCE_WINDOW = 0.5
_PEAK_SMOOTH = 1.0


def _time_interp(n_frames, centres):
    """(n_frames, n_centres) weights interpolating per-window values linearly to every frame."""
    n = centres.size
    if n == 1:
        return np.ones((n_frames, 1))
    pos = np.interp(np.arange(n_frames), centres, np.arange(n, dtype=np.float64))
    lo = np.minimum(np.floor(pos).astype(int), n - 2)
    frac = pos - lo
    M = np.zeros((n_frames, n))
    M[np.arange(n_frames), lo] = 1 - frac
    M[np.arange(n_frames), lo + 1] = frac
    return M


def significance(rho, n_eff):
    """Fisher z statistic of a correlation from ``n_eff`` samples: about N(0, 1) without a link."""
    rho = np.clip(np.asarray(rho, dtype=np.float64), -0.999999, 0.999999)
    return np.arctanh(rho) * np.sqrt(np.maximum(np.asarray(n_eff, dtype=np.float64) - 3.0, 1.0))


def _audio_series(audio, sample_rate, n_frames, fps):
    """|RMS change| plus the level's rise in dB (:func:`level_rises`), each divided by its spread.

    The first follows loud events and their decays (what a pulsing picture shows), the second
    the onsets of quiet and loud sounds alike (a mouth opening, a footstep under music)."""
    series = np.zeros(n_frames)
    for x in (np.abs(audio_changes(audio, sample_rate, n_frames, fps)), level_rises(audio, sample_rate, n_frames, fps)):
        spread = x.std()
        if spread > 1e-12:  # silence adds nothing
            series += x / spread
    return series


def _smoothed_peaks(rho, n_eff):
    """Each frame's peak correlation after a light spatial blur, and its Fisher z: (T,), (T,)."""
    from scipy.ndimage import gaussian_filter

    smooth = gaussian_filter(np.asarray(rho, dtype=np.float64), (0, _PEAK_SMOOTH, _PEAK_SMOOTH), mode="nearest")
    peak = smooth.reshape(smooth.shape[0], -1).max(axis=1)
    return peak, significance(peak, n_eff)


def synchrony_correlation(audio, sample_rate, frames, fps, *, max_size=64, window=1.0, hop=0.2,
                          max_shift=1, noise_floor=2.0, n_null=_N_NULL):
    """Per frame and grid cell, how well the cell's change follows the audio's change.

    Parameters
    ----------
    audio : ndarray of shape (n_samples,)
    sample_rate : int
    frames : ndarray of shape (T, H, W, 3), uint8
    fps : float
    max_size : int
        Cells along the longer frame side (at most).
    window : float or None
        Gaussian window (standard deviation, seconds) of the correlation around
        each frame; None correlates over the whole clip.
    hop : float
        Seconds between the window centres; frames in between are interpolated.
    max_shift : int
        Largest camera shift compensated between frames, in cells (found to a fraction of a
        cell: :func:`skavc.features.estimate_shifts`).
    noise_floor : float
        Grey levels of change treated as noise.
    n_null : int, default=8
        Circular shifts of the audio (spread over 20-80 % of the clip) that give the chance
        level, >= 2.

    Returns
    -------
    rho : ndarray of shape (T, h, w)
        Pearson correlation of ``|frame change|`` with the audio's change (``|RMS change|`` and
        the level's rise in dB, each in units of its spread).
    n_eff : ndarray of shape (T,)
        Effective number of frames behind each frame's correlation.
    cell : int
        Cell side in pixels.
    null_z : ndarray of shape (n_shifts, T)
        Per shifted copy of the audio, the Fisher z of each frame's smoothed peak correlation:
        what unrelated audio reaches over these cells. ``n_shifts = n_null``, fewer (at least
        2) on clips too short for ``n_null`` distinct shifts.

    Examples
    --------
    >>> from skavc.datasets import make_av_clips
    >>> from skavc.localization import synchrony_correlation
    >>> clips, truth = make_av_clips(n_clips=1, duration=2.0, random_state=0)
    >>> clip = clips[0]
    >>> rho, n_eff, cell, null_z = synchrony_correlation(clip.audio, clip.sample_rate, clip.frames, clip.fps)
    >>> rho.shape, n_eff.shape, cell, null_z.shape  # 50 frames of 64 x 64 cells of 2 pixels; 8 shifted audios
    ((50, 64, 64), (50,), 2, (8, 50))
    >>> on_cells = truth.source_masks[0][:, ::cell, ::cell]  # the sounding object's cells
    >>> round(float(rho[on_cells].mean()), 1), round(float(rho[~on_cells].mean()), 1)
    (0.9, 0.1)
    """
    n_null = check_int(n_null, name="n_null", minimum=2)
    T, H, W, _ = frames.shape
    k = block_size(H, W, max_size)
    grey = grey_blocks(frames, k)
    h, w = grey.shape[1:]
    if T < 3:
        return np.zeros((T, h, w)), np.zeros(T), k, np.zeros((n_null, T))
    # Magnitudes: a sounding object may brighten or darken, grow or shrink as it is heard.
    x = np.abs(frame_changes(grey, max_shift=max_shift, noise_floor=noise_floor)).reshape(T, -1)
    a = _audio_series(audio, sample_rate, T, fps)
    centres, weights = window_weights(T, fps, window, int(round(hop * fps)))
    M = _time_interp(T, centres)
    lags = np.unique(np.round(np.linspace(0.2, 0.8, n_null) * T).astype(int))  # distinct on short clips
    series = np.stack([a] + [np.roll(a, lag) for lag in lags])
    rho, n_eff = windowed_correlation(x, series, weights)  # the audio, then its shifted copies
    n_eff = M @ n_eff
    null_z = np.stack([_smoothed_peaks((M @ shifted).reshape(T, h, w), n_eff)[1] for shifted in rho[1:]])
    return (M @ rho[0]).reshape(T, h, w), n_eff, k, null_z


def synchrony_shape_confidence(rho, n_eff, null_z):
    """Turn per-cell correlations into a shape and a per-frame confidence.

    Parameters
    ----------
    rho : ndarray of shape (T, h, w)
    n_eff : ndarray of shape (T,)
    null_z : ndarray of shape (n_null, T)
        The chance level from :func:`synchrony_correlation`; ``n_null >= 2``.

    Returns
    -------
    shape : ndarray of shape (T, h, w), in [0, 1]
        Logistic in ``rho / peak``: 0.5 at :data:`_SYNC_FRACTION` of the frame's peak.
    confidence : ndarray of shape (T,), in [0, 1]
        Logistic in how many spreads of the null the frame's peak z stands above the null's mean
        at that frame (0.5 at 2 spreads); 0 where the peak correlation is not positive.
    """
    peak, z = _smoothed_peaks(rho, n_eff)
    null_z = np.asarray(null_z, dtype=np.float64)
    if null_z.ndim != 2 or null_z.shape[0] < 2 or null_z.shape[1] != peak.size:
        raise ValueError(f"null_z must have shape (n_null >= 2, {peak.size}); got {null_z.shape}")
    level = null_z.mean(axis=0)
    spread = max(float((null_z - level).std()), _NULL_MIN_SPREAD)
    confidence = np.where(peak > 0, expit(((z - level) / spread - _NULL_MARGIN) / _NULL_SOFTNESS), 0.0)
    relative = rho / np.maximum(peak, 1e-12)[:, None, None]
    shape = np.where(peak[:, None, None] > 0, expit((relative - _SYNC_FRACTION) / _SYNC_SOFTNESS), 0.0)
    return shape, confidence


def synchrony_cells(audio, sample_rate, frames, fps, **kwargs):
    """Training-free shape (on the grid of cells) and confidence of one clip's source.

    Parameters
    ----------
    audio : ndarray of shape (n_samples,)
    sample_rate : int
    frames : ndarray of shape (T, H, W, 3), uint8
    fps : float
    **kwargs
        Passed to :func:`synchrony_correlation`.

    Returns
    -------
    shape : ndarray of shape (T, h, w), float32 in [0, 1]
    confidence : ndarray of shape (T,)
        :func:`~skavc.localization._synchrony.synchrony_shape_confidence`'s, times the sound's presence over the half second
        around each frame (:func:`skavc.features.sound_presence`): silence is never confident.
    cell : int
        Cell side in pixels.

    Examples
    --------
    >>> from skavc.datasets import make_av_clips
    >>> from skavc.localization import synchrony_cells
    >>> clips, truth = make_av_clips(n_clips=1, duration=2.0, random_state=0)
    >>> clip = clips[0]
    >>> shape, confidence, cell = synchrony_cells(clip.audio, clip.sample_rate, clip.frames, clip.fps)
    >>> shape.shape, shape.dtype, cell  # 50 frames of 64 x 64 cells of 2 pixels, in [0, 1]
    ((50, 64, 64), dtype('float32'), 2)
    >>> confidence.shape, float((confidence >= 0.5).mean())  # one per frame: most frames sound
    ((50,), 0.94)
    """
    rho, n_eff, k, null_z = synchrony_correlation(audio, sample_rate, frames, fps, **kwargs)
    shape, confidence = synchrony_shape_confidence(rho, n_eff, null_z)
    presence = sound_presence(audio, sample_rate, np.arange(frames.shape[0]) / fps, _PRESENCE_WINDOW)
    return shape.astype(np.float32), confidence * presence, k


def synchrony_evidence(audio, sample_rate, frames, fps, **kwargs):
    """Training-free shape and confidence of one clip's source, from audio-visual synchrony.

    Parameters
    ----------
    audio : ndarray of shape (n_samples,)
    sample_rate : int
    frames : ndarray of shape (T, H, W, 3), uint8
    fps : float
    **kwargs
        Passed to :func:`synchrony_correlation`.

    Returns
    -------
    shape : ndarray of shape (T, H, W), float32 in [0, 1]
        Bilinearly resized from the cell grid.
    confidence : ndarray of shape (T,)

    Examples
    --------
    >>> from skavc.datasets import make_av_clips
    >>> from skavc.localization import synchrony_evidence
    >>> clips, truth = make_av_clips(n_clips=1, duration=2.0, random_state=0)
    >>> clip, on_source = clips[0], truth.source_masks[0]  # the sounding object's pixels
    >>> shape, confidence = synchrony_evidence(clip.audio, clip.sample_rate, clip.frames, clip.fps)
    >>> shape.shape, shape.dtype, confidence.shape  # (T, H, W) in [0, 1]; one confidence per frame
    ((50, 128, 128), dtype('float32'), (50,))
    >>> round(float(shape[on_source].mean()), 1), round(float(shape[~on_source].mean()), 1)
    (1.0, 0.1)
    """
    shape, confidence, k = synchrony_cells(audio, sample_rate, frames, fps, **kwargs)
    return upsample_bilinear(shape, frames.shape[1:3], cell=k), confidence


def synchrony_maps(audio, sample_rate, frames, fps, refine=True, **kwargs):
    """Training-free source maps of one clip (no estimator needed).

    Parameters
    ----------
    audio : ndarray of shape (n_samples,)
    sample_rate : int
    frames : ndarray of shape (T, H, W, 3), uint8
    fps : float
    refine : bool, default=True
        Sharpen the shape with the colour refinement (:func:`skavc.localization.shape_to_maps`).
    **kwargs
        Passed to :func:`synchrony_correlation`.

    Returns
    -------
    maps : ndarray of shape (T, H, W), float32 in [0, 1]
    confidence : ndarray of shape (T,)

    Examples
    --------
    >>> from skavc.datasets import make_av_clips
    >>> from skavc.localization import synchrony_maps
    >>> clips, truth = make_av_clips(n_clips=1, duration=2.0, random_state=0)
    >>> clip = clips[0]
    >>> maps, confidence = synchrony_maps(clip.audio, clip.sample_rate, clip.frames, clip.fps)
    >>> maps.shape, confidence.shape  # (T, H, W) in [0, 1], one confidence per frame
    ((50, 128, 128), (50,))
    >>> on_source = truth.source_masks[0]  # the sounding object's pixels
    >>> round(float(maps[on_source].mean()), 1), round(float(maps[~on_source].mean()), 1)
    (0.9, 0.0)
    """
    shape, confidence, k = synchrony_cells(audio, sample_rate, frames, fps, **kwargs)
    maps = shape_to_maps(frames, shape, confidence, cell=k, refine=refine)
    return maps, frame_peaks(maps)


def frame_peaks(maps):
    """Each frame's largest map value, (T,) float64."""
    return maps.reshape(maps.shape[0], -1).max(axis=1).astype(np.float64)
