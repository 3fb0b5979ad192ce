"""Training-free audio-visual synchronisation: the onsets heard against the motion seen.

Small pure functions, one job each, in the style of ``librosa``. The features come from
:mod:`skavc.features`:

* :func:`~skavc.features.motion_energy` (with :func:`~skavc.features.motion_energy_times`): how
  much the picture changes from one frame to the next, robust to camera shake, brightness
  changes and compression noise.
* :func:`~skavc.features.onset_envelope`: how much new sound starts in each short audio frame
  (log-mel spectral flux, half-wave rectified, with a per-band noise floor).

and this module turns them into a curve and an answer:

* :func:`signal_sync_curve`: the two brought onto one fine time grid and cross-correlated with
  partial spectral whitening (GCC-PHAT-like), one score per candidate offset.
  :func:`naive_sync_curve` is the baseline: RMS envelope against mean absolute frame difference,
  plain normalised cross-correlation.
* :func:`null_standardise`: a curve in units of its chance level (median and spread of the
  scores of unrelated alignments), so that its values mean the same for every clip.
* :func:`peak_offset`: the best offset, refined below the grid step by parabolic interpolation,
  and a confidence in [0, 1] from how far the peak stands above chance.
* :func:`estimate_offset`: all of the above in one call.
* :func:`mouth_sync_curve`: lip sync, the opening of a speaking mouth against the loudness of the
  speech band (:func:`~skavc.features.speech_envelope`), whitened the same way;
  :func:`speaking_face_curve` picks the face whose mouth goes with the sound, and
  :func:`face_or_whole` decides between the mouth and the whole frame for ``method="auto"``.

Convention (the same as :func:`skavc.datasets.make_av_clips`): an offset is in seconds and
POSITIVE when the AUDIO is AHEAD of the video, i.e. a sound is heard ``offset`` seconds before the
visual event that made it; audio sample ``n`` is heard at video time ``n / sample_rate + offset``.
Audio that lags the picture gives a negative offset. Frame ``f`` shows the instant ``f / fps``.

``benchmarks/bench_sync_signal.py`` measures accuracy and confidence on generated clips; the
defaults here and in the features (whitening exponent, noise floor, confidence scale) were
chosen on such clips, including harder ones (2 s, camera shake 3 px, audio noise 0.1, scene
cuts).
"""

import numpy as np
from scipy import fft as sp_fft

from .._validation import (check_audio, check_frames, check_option, check_paired_series, check_positive,
                           check_real, check_sample_rate)
from ..features import (audio_envelope, edge_silence, fill_gaps, motion_energy, motion_energy_times, mouth_opening,
                        mouth_boxes, mouth_darkness, onset_envelope, speech_envelope, track_points)
from ..features.faces import MIN_FACE_SHARE, MOUTH_LEAD
from ..features.video import _emphasise_rises, _mean_abs_frame_difference

__all__ = [
    "SYNC_CONFIDENCE_THRESHOLD",
    "estimate_offset",
    "motion_series",
    "motion_sync_curve",
    "naive_sync_curve",
    "null_standardise",
    "peak_offset",
    "signal_sync_curve",
    "speaking_face_curve",
    "face_or_whole",
]

#: Confidence at or above which a clip counts as synchronisable (see :func:`peak_offset`).
SYNC_CONFIDENCE_THRESHOLD = 0.5

_BETA = 0.6                  # partial whitening exponent of the cross-spectrum
_EPS = 1e-3                  # whitening regulariser, relative to the largest cross-spectrum bin
_TAPER = 0.25                # the spectral weight falls linearly to 0 over the top 25 % of fps / 2
_MIN_OVERLAP = 0.5           # offsets are searched only where audio and video overlap this much
# Confidence: 1 - exp(-max(z - _Z0, 0) / _Z_SCALE), z = the peak score in chance units.
_Z0 = 3.0
_Z_SCALE = 2.0 / np.log(2.0)  # confidence 0.5 at z = _Z0 + 2 = 5


# ---------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------


def _check_inputs(audio, sample_rate, frames, fps, max_offset, resolution):
    frames = check_frames(frames, name="frames")
    audio, sample_rate, fps, max_offset, resolution = _check_sound_and_search(
        audio, sample_rate, fps, max_offset, resolution)
    return audio, sample_rate, frames, fps, max_offset, resolution


def _check_sound_and_search(audio, sample_rate, fps, max_offset, resolution):
    """The checks every curve shares; ``resolution`` None becomes :func:`default_resolution`."""
    audio = check_audio(audio, name="audio")
    sample_rate = check_sample_rate(sample_rate, name="sample_rate")
    fps = check_positive(fps, name="fps")
    max_offset = check_real(max_offset, name="max_offset", positive=True)
    resolution = check_real(resolution, name="resolution", positive=True, allow_none=True)
    resolution = default_resolution(fps) if resolution is None else resolution
    return audio, sample_rate, fps, max_offset, resolution


def default_resolution(fps):
    """Grid step (s) of the sync curves against frames at ``fps``: 10 ms, finer above 50 fps."""
    return min(0.01, 0.5 / fps)


def _check_curve(offsets, scores):
    offsets, scores = check_paired_series(offsets, scores, names=("offsets", "scores"))
    if np.any(np.diff(offsets) <= 0):
        raise ValueError("offsets must be strictly increasing")
    return offsets, scores


# ---------------------------------------------------------------------------
# Correlation
# ---------------------------------------------------------------------------


def _common_grid(audio, sample_rate, n_frames, fps, resolution):
    """Grid times (n,) over the span both modalities cover, one every ``resolution`` seconds."""
    duration = min(audio.size / sample_rate, n_frames / fps)
    n = max(1, int(np.floor(duration / resolution)))
    return (np.arange(n) + 0.5) * resolution


def _block_rms(audio, sample_rate, resolution):
    """Naive audio envelope: RMS over consecutive blocks of one grid step, timed at block centres."""
    hop = max(1, int(round(resolution * sample_rate)))
    times = (np.arange(int(np.ceil(audio.size / hop))) + 0.5) * hop / sample_rate
    return audio_envelope(audio, sample_rate, times, hop / sample_rate), times


def _compress(x):
    """log(1 + x / mean): tames single huge values (scene cuts, bangs) without a threshold."""
    scale = x.mean()
    return np.log1p(x / scale) if scale > 0 else np.zeros_like(x)


def _standardise(x):
    x = x - x.mean()
    s = x.std()
    if not s > 1e-12 * max(1.0, np.abs(x).max()):  # constant (or all-zero) input: no information
        return np.zeros_like(x)
    return x / s


def _standardise_known(x, known):
    """:func:`_standardise` over the ``known`` entries; the others are set to 0 (the mean)."""
    out = np.zeros_like(x)
    if known.any():
        out[known] = _standardise(x[known])
    return out


def null_standardise(scores):
    """Express an agreement curve in units of its own chance level.

    Most offsets of a curve that spans much more than the true peak are chance alignments, so
    the median and the scaled median absolute deviation (1.4826 MAD) of the curve estimate the
    level and spread of scores between unrelated signals, robustly to the peak itself. The
    curve is shifted and divided by them.

    Parameters
    ----------
    scores : array-like of shape (K,)
        Agreement at each of many offsets (ideally every offset with enough overlap, not just
        the few near the expected answer).

    Returns
    -------
    z : ndarray of shape (K,)
        ``(scores - median) / (1.4826 MAD)``: chance alignments have median 0 and spread about 1;
        a true alignment stands several units above. If the MAD is 0 the standard deviation is
        used; a constant curve gives all zeros (no NaN).

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.sync import null_standardise
    >>> scores = 0.1 * np.sin(np.arange(200.0))  # chance alignments
    >>> scores[100] = 2.0  # and one true one
    >>> z = null_standardise(scores)
    >>> round(float(np.median(z)), 2), round(float(z[100]), 1)
    (0.0, 18.9)
    >>> null_standardise([0.3, 0.3, 0.3])  # a constant curve
    array([0., 0., 0.])
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size == 0 or not np.all(np.isfinite(scores)):
        raise ValueError("scores must be a non-empty array of finite values")
    centred = scores - np.median(scores)
    tiny = 1e-12 * max(1.0, np.abs(scores).max())
    spread = 1.4826 * np.median(np.abs(centred))
    if not spread > tiny:
        spread = centred.std()
    if not spread > tiny:
        return np.zeros_like(scores)
    return centred / spread


def _whitened_correlation(a, m, max_lag, cutoff):
    """Partially whitened cross-correlation ``c[L] ~ sum_t a[t] m[t + L]``, L in -max_lag..max_lag.

    The cross-spectrum ``X = conj(A) M`` is divided by ``(|X| + _EPS max|X|) ** _BETA`` and weighted
    by a taper that is 1 below ``0.75 cutoff`` and falls linearly to 0 at ``cutoff`` (cycles per
    sample). Scores are scaled so that the whitened correlation of a signal with itself is 1
    at lag 0, then divided by ``sqrt(overlap fraction)`` so that, for unrelated signals, every
    lag has about the same spread.
    """
    n = a.size
    nfft = sp_fft.next_fast_len(2 * n)
    X = np.conj(sp_fft.rfft(a, nfft)) * sp_fft.rfft(m, nfft)
    mag = np.abs(X)
    lags = np.arange(-max_lag, max_lag + 1)
    if not mag.max() > 0:
        return lags, np.zeros(lags.size)
    freq = np.arange(X.size) / nfft
    weight = np.clip((cutoff - freq) / (_TAPER * cutoff), 0.0, 1.0) / (mag + _EPS * mag.max()) ** _BETA
    r = sp_fft.irfft(X * weight, nfft)[lags % nfft]
    return lags, r / np.sqrt((n - np.abs(lags)) / n)


def _pearson_per_lag(a, m, max_lag):
    """Pearson correlation of ``a[t]`` and ``m[t + L]`` over their overlap, for each lag L."""
    n = a.size
    nfft = sp_fft.next_fast_len(2 * n)
    lags = np.arange(-max_lag, max_lag + 1)
    cross = sp_fft.irfft(np.conj(sp_fft.rfft(a, nfft)) * sp_fft.rfft(m, nfft), nfft)[lags % nfft]
    a0, a1 = np.maximum(0, -lags), n - np.maximum(0, lags)  # a[a0:a1] pairs with m[m0:m1]
    m0, m1 = np.maximum(0, lags), n - np.maximum(0, -lags)
    count = (a1 - a0).astype(np.float64)

    def window_sums(x, lo, hi):
        c1 = np.concatenate([[0.0], np.cumsum(x)])
        c2 = np.concatenate([[0.0], np.cumsum(x * x)])
        return c1[hi] - c1[lo], c2[hi] - c2[lo]

    sa, saa = window_sums(a, a0, a1)
    sm, smm = window_sums(m, m0, m1)
    cov = cross - sa * sm / count
    var = np.maximum(saa - sa * sa / count, 0.0) * np.maximum(smm - sm * sm / count, 0.0)
    ok = var > 1e-12 * count**2
    r = np.zeros(lags.size)
    r[ok] = cov[ok] / np.sqrt(var[ok])
    return lags, np.clip(r, -1.0, 1.0)


def signal_sync_curve(audio, sample_rate, frames, fps, *, max_offset=1.0, resolution=None):
    """Audio-visual agreement for every candidate offset, without any training.

    The :func:`~skavc.features.onset_envelope` of the audio and the
    :func:`~skavc.features.motion_energy` of the frames (plus its positive frame-to-frame increase, so that
    motion onsets weigh more than fading motion, as the audio flux counts only increases) are
    interpolated (linearly, at their exact timestamps)
    onto one grid of step ``resolution`` over the span both cover, log-compressed
    (``log(1 + x / mean(x))``, so a scene cut or a single bang cannot dominate), standardised,
    and cross-correlated with partial spectral whitening: the cross-spectrum is divided by its
    magnitude to the power 0.6 (GCC-PHAT would use 1; 0.5-0.7 measured best) and restricted to
    frequencies below half the frame rate, which the video can represent.

    :func:`naive_sync_curve` is the baseline without any of this.

    Parameters
    ----------
    audio : ndarray of shape (n_samples,)
        Mono waveform.
    sample_rate : int
        Its sampling rate in Hz.
    frames : ndarray of shape (T, H, W, 3), dtype uint8
        RGB frames; frame ``f`` shows the instant ``f / fps``.
    fps : float
        Frame rate (any: 25, 29.97, 30, 50, ...).
    max_offset : float, default=1.0
        Largest ``|offset|`` searched, in seconds. It is clipped to half the span covered by both
        the audio and the frames (``min(duration_audio, T / fps) / 2``), so that every score
        compares at least half the clip; read the offsets actually searched from the output.
    resolution : float or None, default=None
        Grid step in seconds, also the onset envelope's hop. ``None``: ``min(0.01, 0.5 / fps)``,
        finer than the frame rate (the peak is refined further by :func:`peak_offset`).

    Returns
    -------
    offsets : ndarray of shape (K,)
        Candidate offsets in seconds, ``-L..L`` times ``resolution``, ascending; positive = audio
        ahead of video.
    scores : ndarray of shape (K,)
        Agreement at each offset, higher where audio and video agree, in units of the chance
        level (:func:`null_standardise` over every offset with at least half the clip
        overlapping, also those beyond ``max_offset``): unrelated audio and video score about
        0 +- 1 everywhere, a matched clip typically 6-15 at its offset, so the scores mean the
        same whatever ``max_offset``. All zeros when either side carries no information
        (silence, static frames).

    Examples
    --------
    >>> from skavc.datasets import make_av_clips
    >>> from skavc.sync import signal_sync_curve
    >>> clips, truth = make_av_clips(n_clips=1, duration=2.0, offset_range=(-0.3, 0.3), random_state=0)
    >>> clip = clips[0]
    >>> offsets, scores = signal_sync_curve(clip.audio, clip.sample_rate, clip.frames, clip.fps, max_offset=0.5)
    >>> offsets.shape, float(offsets[0]), float(offsets[-1])  # seconds, every 10 ms
    ((101,), -0.5, 0.5)
    >>> best = offsets[scores.argmax()]  # positive: the audio is ahead of the picture
    >>> bool(abs(best - truth.offsets[0]) < 0.05), bool(scores.max() > 5)  # chance units
    (True, True)
    """
    return _agreement_curve(audio, sample_rate, frames, fps, max_offset, resolution, naive=False)


def naive_sync_curve(audio, sample_rate, frames, fps, *, max_offset=1.0, resolution=None):
    """Baseline agreement curve: raw energy envelopes and plain normalised cross-correlation.

    The audio RMS envelope (blocks of ``resolution`` seconds) against the mean absolute
    difference of consecutive full-size grey frames, both on the grid of
    :func:`signal_sync_curve`, scored by the Pearson correlation over their overlap at each lag.
    No camera or brightness compensation, no compression, no whitening. Parameters and returns
    as :func:`signal_sync_curve` (the Pearson correlations are standardised the same way).

    Examples
    --------
    >>> from skavc.datasets import make_av_clips
    >>> from skavc.sync import naive_sync_curve
    >>> clips, truth = make_av_clips(n_clips=1, duration=2.0, offset_range=(0.2, 0.2), random_state=0)
    >>> clip = clips[0]  # its audio 0.2 s ahead of its frames
    >>> offsets, scores = naive_sync_curve(clip.audio, clip.sample_rate, clip.frames, clip.fps, max_offset=0.5)
    >>> offsets.shape, round(float(offsets[scores.argmax()]), 1), bool(scores.max() > 3)  # s, audio ahead; chance units
    ((101,), 0.2, True)
    """
    return _agreement_curve(audio, sample_rate, frames, fps, max_offset, resolution, naive=True)


def _agreement_curve(audio, sample_rate, frames, fps, max_offset, resolution, naive):
    """The curve of :func:`signal_sync_curve`, or of :func:`naive_sync_curve` when ``naive``."""
    audio, sample_rate, frames, fps, max_offset, resolution = _check_inputs(
        audio, sample_rate, frames, fps, max_offset, resolution)
    if not naive:
        return _motion_curve(audio, sample_rate, motion_series(frames), fps, max_offset, resolution)
    grid = _common_grid(audio, sample_rate, frames.shape[0], fps, resolution)
    all_lags, max_lag = _lag_range(grid.size, max_offset, resolution)
    env, env_times = _block_rms(audio, sample_rate, resolution)
    a = np.interp(grid, env_times, env)
    m = np.interp(grid, motion_energy_times(frames.shape[0], fps), _mean_abs_frame_difference(frames))
    lags, scores = _pearson_per_lag(a, m, all_lags)
    keep = np.abs(lags) <= max_lag
    return lags[keep] * resolution, null_standardise(scores)[keep]


def _lag_range(n_grid, max_offset, resolution):
    # Every offset with enough overlap is scored: they are the chance level the curve is
    # standardised against. Only those within max_offset are returned.
    all_lags = int(np.floor((1.0 - _MIN_OVERLAP) * n_grid))
    return all_lags, int(min(np.floor(max_offset / resolution + 1e-9), all_lags))


def motion_series(frames):
    """The visual side of :func:`signal_sync_curve`: motion energy with its rises emphasised, (T,).

    With :func:`motion_sync_curve` it gives the same curve as the frames themselves, so that
    a clip's frames can be reduced to this series once and paired with many sounds.

    Examples
    --------
    >>> from skavc.datasets import make_av_clips
    >>> from skavc.sync import motion_series
    >>> clips, truth = make_av_clips(n_clips=1, duration=2.0, random_state=0)
    >>> motion = motion_series(clips[0].frames)  # 50 frames at 25 fps
    >>> motion.shape, bool(motion.min() >= 0)  # one value per frame, never negative
    ((50,), True)
    """
    return _emphasise_rises(motion_energy(frames))


def motion_sync_curve(audio, sample_rate, motion, fps, *, max_offset=1.0, resolution=None, onsets=None):
    """:func:`signal_sync_curve` from the frames' :func:`motion_series` (T,) instead of the frames.

    ``onsets``, when given, is this sound's ``onset_envelope(audio, sample_rate,
    hop_seconds=resolution)`` (envelope, times), computed once for a sound that is paired with
    many motion series (most of a curve's time goes into it).

    Examples
    --------
    >>> from skavc.datasets import make_av_clips
    >>> from skavc.sync import motion_series, motion_sync_curve, signal_sync_curve
    >>> clips, truth = make_av_clips(n_clips=1, duration=2.0, offset_range=(0.2, 0.2), random_state=0)
    >>> clip = clips[0]  # its audio 0.2 s ahead of its frames
    >>> motion = motion_series(clip.frames)  # the frames reduced once, for any number of sounds
    >>> offsets, scores = motion_sync_curve(clip.audio, clip.sample_rate, motion, clip.fps, max_offset=0.5)
    >>> offsets.shape, round(float(offsets[scores.argmax()]), 2), bool(scores.max() > 5)  # s, audio ahead
    ((101,), 0.19, True)
    >>> same = signal_sync_curve(clip.audio, clip.sample_rate, clip.frames, clip.fps, max_offset=0.5)[1]
    >>> bool((scores == same).all())  # the curve of the frames themselves
    True
    """
    audio, sample_rate, fps, max_offset, resolution = _check_sound_and_search(
        audio, sample_rate, fps, max_offset, resolution)
    motion = np.asarray(motion, dtype=np.float64)
    if motion.ndim != 1 or motion.size < 1:
        raise ValueError(f"motion must be a non-empty 1-D series (motion_series(frames)); got shape {motion.shape}")
    if onsets is not None:
        hop = max(1, int(round(resolution * sample_rate)))  # onset_envelope's: n = 1 + n_samples // hop
        n = 1 + audio.size // hop
        if (len(onsets) != 2 or not len(onsets[0]) == len(onsets[1]) == n
                or (n > 1 and not np.isclose(onsets[1][1] - onsets[1][0], hop / sample_rate))):
            raise ValueError(f"onsets must be onset_envelope(audio, sample_rate, hop_seconds={resolution:g}) "
                             "of this audio: (envelope, times)")
    return _motion_curve(audio, sample_rate, motion, fps, max_offset, resolution, onsets)


#: Grey levels (0-255) the mouth's darkness must vary by (standard deviation over the clip) to
#: count as a cue: an open mouth darkens its box by tens of levels, a still one by under 1.
_MIN_DARKNESS_SPREAD = 2.0


def mouth_sync_curve(audio, sample_rate, points, fps, *, max_offset=1.0, resolution=None, frames=None):
    """Lip sync: the mouth's opening against the loudness of the speech band.

    The opening between the inner lips (:func:`skavc.features.mouth_opening`, frames without a
    face filled) and the 1-3 kHz envelope (:func:`skavc.features.speech_envelope`) rise and fall
    together, syllable by syllable: a level against a level, where the whole-frame method
    pairs changes with onsets. They are cross-correlated with the same partial whitening as
    :func:`signal_sync_curve`, each frame's opening taken :data:`~skavc.features.MOUTH_LEAD` later (the lips
    move before the sound they make). With ``frames``, the darkness of the mouth's box
    (:func:`skavc.features.mouth_darkness`) is a second cue, and the curve that peaks higher is
    returned: the landmarks read the lips of a face of 100 pixels and more, the pixels still
    show a small face's mouth opening (on the real talking set the webcam clip's 50-pixel face
    is synchronised only by the darkness, four studio faces only by the landmarks).

    Parameters
    ----------
    audio, sample_rate, fps, max_offset, resolution
        As in :func:`signal_sync_curve`.
    points : ndarray of shape (T, 468, 2 or 3)
        Face Mesh landmarks of the speaking face in each frame, NaN where it is not seen
        (:func:`skavc.features.track_points` of one of ``EncodingContext.face_tracks``).
    frames : ndarray of shape (T, H, W, 3), uint8, or None, default=None
        The frames the points were found in, for the second cue.

    Returns
    -------
    offsets, scores : ndarray of shape (K,)
        As :func:`signal_sync_curve` (seconds, positive = audio ahead; chance units); all
        scores 0 when no frame shows a face.

    Examples
    --------
    A mouth opening and closing syllable by syllable (4 s at 25 fps) and a voice as loud as it is
    open, heard 0.2 s early:

    >>> import numpy as np
    >>> from skavc.sync import mouth_sync_curve
    >>> opening = np.repeat(np.random.default_rng(0).random(25), 4)
    >>> points = np.zeros((100, 468, 3))  # Face Mesh landmarks: eye corners (33, 263), inner lips (13, 14)
    >>> points[:, 263, 0], points[:, 14, 1] = 1.0, opening
    >>> loudness = np.interp(np.arange(64000) / 16000 + 0.2, np.arange(100) / 25, opening)
    >>> audio = np.random.default_rng(1).standard_normal(64000) * loudness  # 16 kHz
    >>> offsets, scores = mouth_sync_curve(audio, 16000, points, 25.0, max_offset=0.5)
    >>> offsets.shape, round(float(offsets[scores.argmax()]), 1), bool(scores.max() > 5)  # s, audio ahead
    ((101,), 0.2, True)
    """
    audio, sample_rate, fps, max_offset, resolution = _check_sound_and_search(
        audio, sample_rate, fps, max_offset, resolution)
    cues = [mouth_opening(points)]
    if frames is not None:
        darkness = mouth_darkness(frames, mouth_boxes(points))
        # a mouth that does not open leaves only the noise of its box's edges: no second cue
        # (a second chance curve would only raise the chance peak the confidence is read against)
        known = np.isfinite(darkness)
        if known.any() and darkness[known].std() >= _MIN_DARKNESS_SPREAD:
            cues.append(darkness)
    grid = _common_grid(audio, sample_rate, cues[0].size, fps, resolution)
    all_lags, max_lag = _lag_range(grid.size, max_offset, resolution)
    envelope, times = speech_envelope(audio, sample_rate, hop_seconds=resolution)
    at = np.floor(grid * sample_rate)
    a = _standardise_known(np.interp(grid, times, envelope), ~edge_silence(audio, at, at + 1))
    best = None
    for cue in cues:
        cue = fill_gaps(cue) if np.isfinite(cue).any() else np.zeros(cue.shape)
        # each frame's cue is placed MOUTH_LEAD later than the frame, where the sound it goes
        # with is heard: a clip in sync then peaks at 0, on the same offsets as the other curves
        m = _standardise(np.interp(grid, np.arange(cue.size) / fps + MOUTH_LEAD, cue))
        lags, scores = _whitened_correlation(a, m, all_lags, cutoff=0.5 * fps * resolution)
        keep = np.abs(lags) <= max_lag
        curve = lags[keep] * resolution, null_standardise(scores)[keep]
        if best is None or curve[1].max() > best[1].max():
            best = curve
    return best


def speaking_face_curve(audio, sample_rate, tracks, n_frames, fps, *, max_offset=1.0, frames=None):
    """Lip sync with several faces: the :func:`mouth_sync_curve` of the face whose mouth goes with the sound.

    Parameters
    ----------
    audio, sample_rate, fps, max_offset
        As in :func:`signal_sync_curve`.
    tracks : sequence of face tracks
        Each with ``frames`` (n,) and ``points`` (n, 468, 3) (``EncodingContext.face_tracks``).
    n_frames : int
        Frames of the clip.
    frames : ndarray of shape (n_frames, H, W, 3), uint8, or None, default=None
        The clip's frames, for the mouth's darkness (:func:`mouth_sync_curve`).

    Returns
    -------
    curve : (offsets, scores) or None
        The curve with the highest peak among faces seen in at least half of the frames (the
        speaking face's: another face's mouth does not follow this sound); None when there is
        no such face.

    Examples
    --------
    Two faces, one saying what is heard 0.2 s early (as in :func:`mouth_sync_curve`), one whose
    lips move with other words:

    >>> import numpy as np
    >>> from types import SimpleNamespace
    >>> from skavc.sync import speaking_face_curve
    >>> opening = np.repeat(np.random.default_rng(0).random(25), 4)  # 4 s at 25 fps
    >>> points = np.zeros((100, 468, 3))  # Face Mesh landmarks: eye corners (33, 263), inner lips (13, 14)
    >>> points[:, 263, 0], points[:, 14, 1] = 1.0, opening
    >>> loudness = np.interp(np.arange(64000) / 16000 + 0.2, np.arange(100) / 25, opening)
    >>> audio = np.random.default_rng(1).standard_normal(64000) * loudness  # 16 kHz
    >>> faces = [SimpleNamespace(frames=np.arange(100), points=p) for p in (points[::-1], points)]
    >>> offsets, scores = speaking_face_curve(audio, 16000, faces, 100, 25.0, max_offset=0.5)
    >>> round(float(offsets[scores.argmax()]), 1), bool(scores.max() > 5)  # the speaker's: s, audio ahead
    (0.2, True)
    """
    best = None
    for track in tracks:
        if len(track.frames) < MIN_FACE_SHARE * n_frames:
            continue
        curve = mouth_sync_curve(audio, sample_rate, track_points(track.frames, track.points, n_frames), fps,
                                 max_offset=max_offset, frames=frames)
        if best is None or curve[1].max() > best[1].max():
            best = curve
    return best


def face_or_whole(face, whole):
    """The curve "auto" reads: the speaking face's mouth where it follows the sound, else the whole frame's.

    Parameters
    ----------
    face : (offsets, scores) or None
        :func:`speaking_face_curve` (None: no face seen long enough).
    whole : (offsets, scores)
        The whole frame's curve (:func:`signal_sync_curve` or a learned head's), in chance units.

    Returns
    -------
    (offsets, scores)
        ``face`` when its peak stands above what chance alignments reach (the confidence's
        zero, z = 3: the mouth moves with the sound, so this is a face speaking) or at least as
        high as the whole frame's; ``whole`` otherwise (no face, or a face that is not the
        one heard: a voice-over, a listener).

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.sync import face_or_whole
    >>> offsets = np.linspace(-0.5, 0.5, 101)  # seconds
    >>> whole = (offsets, 6 * np.exp(-((offsets - 0.1) / 0.03) ** 2))  # peaks 6 units above chance
    >>> mouth = (offsets, 8 * np.exp(-((offsets - 0.12) / 0.03) ** 2))  # a mouth that follows the sound
    >>> listener = (offsets, 2 * np.exp(-((offsets + 0.3) / 0.03) ** 2))  # one that does not (z < 3)
    >>> face_or_whole(mouth, whole) is mouth, face_or_whole(listener, whole) is whole
    (True, True)
    >>> face_or_whole(None, whole) is whole  # no face seen in half of the frames
    True
    """
    if face is not None and (face[1].max() >= _Z0 or face[1].max() >= whole[1].max()):
        return face
    return whole


def _motion_curve(audio, sample_rate, motion, fps, max_offset, resolution, onsets=None):
    grid = _common_grid(audio, sample_rate, motion.size, fps, resolution)
    all_lags, max_lag = _lag_range(grid.size, max_offset, resolution)
    a, m = _signal_series(audio, sample_rate, motion, fps, grid, resolution, onsets)
    lags, scores = _whitened_correlation(a, m, all_lags, cutoff=0.5 * fps * resolution)
    keep = np.abs(lags) <= max_lag
    return lags[keep] * resolution, null_standardise(scores)[keep]


def _onset_cut_edge(resolution):
    """Seconds at the start of the audio whose onset values the track's cut edge makes: the
    frames whose window (``onset_envelope``'s default, ``max(0.02, 2 resolution)``) reaches
    before the first sample, plus the flux from the last of them into the first full window."""
    return max(0.02, 2.0 * resolution) / 2.0 + resolution


def _signal_series(audio, sample_rate, motion, fps, grid, resolution, onsets=None):
    """The signal method's audio onset and visual motion series on ``grid``, compressed and standardised."""
    env, env_times = onset_envelope(audio, sample_rate, hop_seconds=resolution) if onsets is None else onsets
    a = np.interp(grid, env_times, env)
    m = np.interp(grid, motion_energy_times(motion.size, fps), motion)
    # Exact digital silence leading or trailing the audio is padding (a shifted or trimmed
    # track): it says nothing about when things move, so it is set to the mean (0 after
    # standardising) instead of reading as "no sound here", which otherwise pulls the
    # peak towards the alignment that lays the padding over the least motion.
    at = np.floor(grid * sample_rate)  # the sample at each grid time
    # The first envelope frames' windows reach before the first sample (zeros there), so an
    # audio track that starts mid-sound rises into its first full window: an "onset" made by
    # the cut, not by the recording, that would pull every estimate towards the alignment of
    # the two tracks' starts. Those frames are unknown, like padding.
    cut_edge = grid < _onset_cut_edge(resolution)
    a = _standardise_known(_compress(a), ~edge_silence(audio, at, at + 1) & ~cut_edge)
    return a, _standardise(_compress(m))


# ---------------------------------------------------------------------------
# Reading a curve
# ---------------------------------------------------------------------------


def _parabolic_vertex(x, y):
    """Abscissa of the vertex of the parabola through three points, or x[1] if not a maximum."""
    (x0, x1, x2), (y0, y1, y2) = x, y
    d0, d2 = x0 - x1, x2 - x1
    s0, s2 = (y0 - y1) / d0, (y2 - y1) / d2  # slopes from the middle point
    curvature = (s2 - s0) / (d2 - d0)
    if not curvature < 0:
        return x1
    vertex = x1 - 0.5 * (s0 * d2 - s2 * d0) / ((s2 - s0))
    return float(np.clip(vertex, x0, x2))


def peak_offset(offsets, scores):
    """The best offset, refined below the grid step, and how much to trust it.

    Parameters
    ----------
    offsets : array-like of shape (K,)
        Candidate offsets in seconds, strictly increasing (as returned by
        :func:`signal_sync_curve`).
    scores : array-like of shape (K,)
        Agreement at each offset, higher is better, in units of the chance level (median 0,
        spread 1 for chance alignments) as :func:`signal_sync_curve` and
        :func:`naive_sync_curve` return them; bring other curves (a learned head's) to these
        units with :func:`null_standardise` over a wide range of offsets first.

    Returns
    -------
    offset : float
        Seconds, positive = audio ahead of video: the highest score's offset moved to the vertex
        of the parabola through it and its two neighbours (sub-grid, hence sub-frame, precision;
        not moved at either end of the curve). For a flat curve (silence, static frames),
        ``0.0`` (or the candidate nearest to 0 when 0 is outside the searched range).
    confidence : float in [0, 1]
        ``1 - exp(-max(z - 3, 0) * ln(2) / 2)`` with ``z`` the peak score: 0 up to ``z = 3``
        (where the best of about 200 chance alignments typically lands), 0.5 at ``z = 5``,
        0.75 at ``z = 7``, 0.94 at ``z = 11``. A flat curve gives exactly 0.
        :data:`SYNC_CONFIDENCE_THRESHOLD` = 0.5 separates synchronisable clips from the rest
        (silence, static frames, audio without a visible source): on generated 4 s clips
        95 % of matched clips score above it with the whitened curve and 95 % of clips with
        another clip's audio below it.

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.sync import peak_offset
    >>> offsets = np.linspace(-0.5, 0.5, 101)  # seconds, a grid step of 10 ms
    >>> scores = 10 * np.exp(-((offsets - 0.123) / 0.03) ** 2)  # a peak 10 units above chance
    >>> offset, confidence = peak_offset(offsets, scores)
    >>> round(offset, 3), round(confidence, 2)  # refined below the grid step
    (0.123, 0.91)
    >>> peak_offset(offsets, np.zeros(101))  # a flat curve: no evidence
    (0.0, 0.0)
    """
    offsets, scores = _check_curve(offsets, scores)
    if not np.ptp(scores) > 1e-12 * max(1.0, np.abs(scores).max()):
        return float(offsets[np.argmin(np.abs(offsets))]) + 0.0, 0.0
    i = int(np.argmax(scores))
    offset = float(offsets[i])
    if 0 < i < scores.size - 1:
        offset = _parabolic_vertex(offsets[i - 1 : i + 2], scores[i - 1 : i + 2])
    confidence = 1.0 - np.exp(-max(scores[i] - _Z0, 0.0) / _Z_SCALE)
    return offset + 0.0, float(confidence)


def estimate_offset(audio, sample_rate, frames, fps, *, max_offset=1.0, method="signal"):
    """Audio-visual offset of one clip and its confidence, without any training.

    Parameters
    ----------
    audio, sample_rate, frames, fps, max_offset
        As :func:`signal_sync_curve`.
    method : {"signal", "naive"}, default="signal"
        ``"signal"``: :func:`signal_sync_curve` (onset flux against compensated motion energy,
        whitened). ``"naive"``: :func:`naive_sync_curve`.

    Returns
    -------
    offset : float
        Seconds, positive = audio ahead of video (a sound is heard before its visual event);
        to re-synchronise, delay the audio by ``offset``.
    confidence : float in [0, 1]
        See :func:`peak_offset`; below :data:`SYNC_CONFIDENCE_THRESHOLD` the clip is probably
        not synchronisable (silence, no motion, or no visible source of the sound).

    Examples
    --------
    >>> from skavc.datasets import make_av_clips
    >>> from skavc.sync import SYNC_CONFIDENCE_THRESHOLD, estimate_offset
    >>> clips, truth = make_av_clips(n_clips=1, duration=2.0, offset_range=(-0.3, 0.3), random_state=0)
    >>> clip = clips[0]
    >>> offset, confidence = estimate_offset(clip.audio, clip.sample_rate, clip.frames, clip.fps, max_offset=0.5)
    >>> round(float(truth.offsets[0]), 2)  # seconds: the audio is ahead of the picture
    0.16
    >>> bool(abs(offset - truth.offsets[0]) < 0.05), confidence >= SYNC_CONFIDENCE_THRESHOLD
    (True, True)
    """
    check_option(method, name="method", options=("signal", "naive"))
    curve = signal_sync_curve if method == "signal" else naive_sync_curve
    return peak_offset(*curve(audio, sample_rate, frames, fps, max_offset=max_offset))
