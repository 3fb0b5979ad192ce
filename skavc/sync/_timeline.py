"""Synchronisation over time: an offset per window of a long recording, the whole recording's, and its drift.

A long recording is read in windows (``skavc.io.iter_clips`` streams them from a file; an
in-memory clip is sliced), each window gets its own training-free sync curve, and the windows'
curves, all in chance units, are combined into the whole recording's (Stouffer: their sum over
the square root of their number, still in chance units when the windows are independent). The
per-window offsets show what one number per file cannot: a clock that drifts.
"""

from dataclasses import dataclass

import numpy as np
from scipy.stats import theilslopes

from .._validation import check_option, check_real
from ._signal import (SYNC_CONFIDENCE_THRESHOLD, face_or_whole, mouth_sync_curve, naive_sync_curve, peak_offset,
                      signal_sync_curve, speaking_face_curve)

#: A last window shorter than this share of the first is left out: what remains of a recording
#: after its last whole window (a few frames, often) cannot be synchronised on its own.
_SHORTEST_TAIL = 0.5


@dataclass(frozen=True)
class SyncTimeline:
    """Offsets of one recording, window by window, and as a whole.

    Attributes
    ----------
    starts : ndarray of shape (n_windows,)
        Seconds from the recording's first frame to each window's.
    durations : ndarray of shape (n_windows,)
        Each window's length in seconds.
    offsets : ndarray of shape (n_windows,)
        Each window's offset in seconds, positive = audio ahead of video.
    confidence : ndarray of shape (n_windows,)
        Each window's confidence in [0, 1] (:func:`~skavc.sync.peak_offset`); at or above
        :data:`~skavc.sync.SYNC_CONFIDENCE_THRESHOLD` the window's offset can be trusted.
    offset : float
        The whole recording's offset: the peak of the windows' combined curve.
    overall_confidence : float
        Its confidence, from the combined curve's peak (the same rule as a window's).
    curve : tuple of (offsets, scores)
        The combined curve, offsets in seconds and scores in chance units, shape (K,) each.
    drift : float
        Change of the offset per second of recording (s/s; 0.001 is 3.6 s an hour): the
        Theil-Sen line (the median of the slopes between windows, which a minority of wrong
        windows does not move) through the windows at or above the confidence threshold when
        there are 3 of them, else through all windows (``drift_trusted`` says which); NaN with
        fewer than 3 windows.
    drift_intercept : float
        The fitted line's offset at the recording's start (s): ``drift_intercept + drift * t``
        is its offset at ``t`` seconds; NaN with the drift.
    drift_interval : tuple of (float, float)
        95 % confidence interval of ``drift`` (s/s). A drift whose interval holds 0 is not
        shown to be there.
    drift_trusted : bool
        Whether the drift was fitted on trustworthy windows only (on real video they are rare:
        then all windows vote, and the interval says how far to believe them).
    fps : float
        The windows' frame rate.

    Examples
    --------
    A recording of 6 s with its audio 0.2 s ahead, read in three windows of 2 s
    (:func:`~skavc.sync.sync_timeline`):

    >>> from skavc import AVClip
    >>> from skavc.datasets import make_av_clips
    >>> from skavc.sync import sync_timeline
    >>> clips, truth = make_av_clips(n_clips=1, duration=6.0, offset_range=(0.2, 0.2), random_state=0)
    >>> audio, frames = clips[0].audio, clips[0].frames  # 16 kHz, 25 fps: 32000 samples and 50 frames a window
    >>> windows = [AVClip(audio[k * 32000:(k + 1) * 32000], 16000, frames[k * 50:(k + 1) * 50], 25.0, start=2.0 * k)
    ...            for k in range(3)]
    >>> timeline = sync_timeline(windows, max_offset=0.5)
    >>> timeline.centres, round(timeline.offset, 2), bool(timeline.overall_confidence > 0.5)
    (array([1., 3., 5.]), 0.2, True)
    """

    starts: np.ndarray
    durations: np.ndarray
    offsets: np.ndarray
    confidence: np.ndarray
    offset: float
    overall_confidence: float
    curve: tuple
    drift: float
    drift_intercept: float
    drift_interval: tuple
    drift_trusted: bool
    fps: float

    @property
    def centres(self):
        """Seconds from the recording's first frame to the middle of each window, (n_windows,)."""
        return self.starts + self.durations / 2


def combine_curves(curves):
    """Windows' sync curves on one offset grid combined into one, still in chance units.

    Parameters
    ----------
    curves : list of (offsets, scores)
        Each in chance units (as :func:`~skavc.sync.signal_sync_curve` returns them), on one
        grid of offsets.

    Returns
    -------
    offsets, scores : ndarray of shape (K,)
        ``sum(scores) / sqrt(len(curves))``: one curve is returned as it is.

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.sync import combine_curves
    >>> offsets = np.linspace(-0.5, 0.5, 101)
    >>> window = 4 * np.exp(-((offsets - 0.1) / 0.03) ** 2)  # each window: a peak 4 units above chance
    >>> grid, scores = combine_curves([(offsets, window), (offsets, window)])
    >>> grid.shape, round(float(scores.max()), 2)  # two windows together: 4 * 2 / sqrt(2)
    ((101,), 5.66)
    """
    if not curves:
        raise ValueError("curves is empty: expected at least one (offsets, scores)")
    grid = np.asarray(curves[0][0], dtype=np.float64)
    for offsets, _ in curves[1:]:
        if np.shape(offsets) != grid.shape or not np.allclose(offsets, grid):
            raise ValueError("curves must share one grid of offsets (windows of one length and frame rate)")
    scores = np.sum([np.asarray(s, dtype=np.float64) for _, s in curves], axis=0) / np.sqrt(len(curves))
    return grid, scores


def fit_drift(centres, offsets, confidence, *, threshold=SYNC_CONFIDENCE_THRESHOLD):
    """The line of the offsets against time: robust, through the windows that can be trusted if
    there are enough of them, else through all.

    Theil-Sen (:func:`scipy.stats.theilslopes`): the median of the slopes between every two
    windows, so windows whose offsets are wrong (up to about a third of them) do not move it.

    Parameters
    ----------
    centres, offsets, confidence : ndarray of shape (n_windows,)
        Window centres (s), their offsets (s) and confidences in [0, 1].
    threshold : float
        With 3 or more windows at or above this confidence, only they are used.

    Returns
    -------
    drift, intercept : float
        Slope (s/s) and offset at time 0 (s); NaN with fewer than 3 windows or when they all
        sit at one time.
    interval : tuple of (float, float)
        95 % confidence interval of the slope (NaN with it).
    trusted : bool
        Whether only windows at or above ``threshold`` were used.

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.sync import fit_drift
    >>> centres = np.array([5.0, 15.0, 25.0, 35.0, 45.0])  # seconds
    >>> offsets = 0.1 + 0.001 * centres  # a clock that drifts by 1 ms a second
    >>> offsets[4] = 0.5  # and one wrong window
    >>> drift, intercept, interval, trusted = fit_drift(centres, offsets, np.full(5, 0.9))
    >>> round(drift, 4), round(intercept, 3), trusted
    (0.001, 0.1, True)
    """
    centres, offsets, confidence = (np.asarray(v, dtype=np.float64) for v in (centres, offsets, confidence))
    trusted = bool((confidence >= threshold).sum() >= 3)
    keep = confidence >= threshold if trusted else np.ones(centres.shape, dtype=bool)
    if keep.sum() < 3 or np.ptp(centres[keep]) == 0:
        return float("nan"), float("nan"), (float("nan"), float("nan")), trusted
    slope, intercept, low, high = theilslopes(offsets[keep], centres[keep], alpha=0.95)
    return float(slope), float(intercept), (float(low), float(high)), trusted


def sync_timeline(windows, *, method="signal", max_offset=1.0, face_tracks=None):
    """Offset per window of one recording, the whole recording's, and its drift.

    Parameters
    ----------
    windows : iterable of AVClip
        Consecutive windows of one recording, each with its ``start`` (seconds), one length
        but the last (``skavc.io.iter_clips`` gives them from a file without holding it).
    method : {"signal", "face", "auto", "naive"}, default="signal"
        The training-free curve of each window (:func:`~skavc.sync.signal_sync_curve`; "face":
        :func:`~skavc.sync.speaking_face_curve`, flat for a window without a face; "auto": of
        those two, :func:`~skavc.sync.face_or_whole`'s; or the baseline :func:`~skavc.sync.naive_sync_curve`).
    max_offset : float, default=1.0
        Largest offset searched, seconds either way (clipped to half a window).
    face_tracks : callable or None, default=None
        With "face" and "auto": frames (T, H, W, 3) -> the face tracks in them (``EncodingContext.face_tracks``).

    Returns
    -------
    timeline : SyncTimeline
        A last window shorter than half the first is left out (the few frames after the last whole
        window cannot be synchronised); one that searches a narrower range than the first (it
        is shorter than twice ``max_offset``) has its own offset but is left out of the whole
        recording's curve. A recording of one window gives that
        window's offset and confidence as the whole recording's, as :func:`peak_offset` of its
        curve does.

    Examples
    --------
    A recording of 4 s with its audio 0.2 s ahead, read in two windows of 2 s:

    >>> from skavc import AVClip
    >>> from skavc.datasets import make_av_clips
    >>> from skavc.sync import sync_timeline
    >>> clips, truth = make_av_clips(n_clips=1, duration=4.0, offset_range=(0.2, 0.2), random_state=0)
    >>> audio, frames = clips[0].audio, clips[0].frames  # 16 kHz, 25 fps: 32000 samples and 50 frames a window
    >>> windows = [AVClip(audio[k * 32000:(k + 1) * 32000], 16000, frames[k * 50:(k + 1) * 50], 25.0, start=2.0 * k)
    ...            for k in range(2)]
    >>> timeline = sync_timeline(windows, max_offset=0.5)
    >>> timeline.offsets.round(2), round(timeline.offset, 2)  # seconds, audio ahead: per window, and overall
    (array([0.19, 0.19]), 0.19)
    """
    check_option(method, name="method", options=("auto", "signal", "face", "naive"))
    max_offset = check_real(max_offset, name="max_offset", positive=True)
    if method in ("face", "auto") and face_tracks is None:
        raise ValueError(f"method={method!r} needs face_tracks, the faces tracked in the frames")

    def face_curve(audio, rate, frames, fps, max_offset):
        curve = speaking_face_curve(audio, rate, face_tracks(frames), len(frames), fps, max_offset=max_offset,
                                    frames=frames)
        if curve is None:  # no face in this window: a flat curve, no weight in the whole recording's
            curve = mouth_sync_curve(audio, rate, np.full((len(frames), 468, 3), np.nan), fps, max_offset=max_offset)
        return curve

    def either_curve(audio, rate, frames, fps, max_offset):
        return face_or_whole(
            speaking_face_curve(audio, rate, face_tracks(frames), len(frames), fps, max_offset=max_offset,
                                frames=frames),
            signal_sync_curve(audio, rate, frames, fps, max_offset=max_offset))

    curve_of = {"signal": signal_sync_curve, "naive": naive_sync_curve, "face": face_curve,
                "auto": either_curve}[method]
    starts, durations, peaks, curves, fps = [], [], [], [], None
    for clip in windows:
        if curves and clip.n_frames / clip.fps < _SHORTEST_TAIL * durations[0]:
            continue  # the recording's last fraction of a window: too short to sync on its own
        curve = curve_of(clip.audio, clip.sample_rate, clip.frames, clip.fps, max_offset=max_offset)
        starts.append(float(clip.start))
        durations.append(clip.n_frames / clip.fps)
        fps = clip.fps
        peaks.append(peak_offset(*curve))
        curves.append(curve)
    if not curves:
        raise ValueError("windows is empty: expected at least one clip")
    # a short tail may search a narrower range (max_offset is clipped to half a window): its own
    # offset stands, but only curves on the first window's grid are combined
    whole = [c for c in curves if c[0].shape == curves[0][0].shape and np.allclose(c[0], curves[0][0])]
    grid, scores = combine_curves(whole)
    offset, confidence = peak_offset(grid, scores)
    starts, durations = np.asarray(starts), np.asarray(durations)
    offsets = np.array([p[0] for p in peaks])
    window_confidence = np.array([p[1] for p in peaks])
    drift, intercept, interval, trusted = fit_drift(starts + durations / 2, offsets, window_confidence)
    return SyncTimeline(starts=starts, durations=durations, offsets=offsets, confidence=window_confidence,
                        offset=offset, overall_confidence=confidence, curve=(grid, scores), drift=drift,
                        drift_intercept=intercept, drift_interval=interval, drift_trusted=trusted, fps=fps)
