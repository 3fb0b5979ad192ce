"""Training-free audio-visual synchronisation: the onsets heard against the motion seen.

Small pure functions, one job each, in the style of ``librosa``:

* :func:`motion_energy` (with :func:`motion_energy_times`): how much the picture changes from one
  frame to the next, robust to camera shake, brightness changes and compression noise.
* :func:`onset_envelope`: how much new sound starts in each short audio frame (log-mel spectral
  flux, half-wave rectified, with a per-band noise floor).
* :func:`signal_sync_curve`: the two brought onto one fine time grid and cross-correlated with
  partial spectral whitening (GCC-PHAT-like), one score per candidate offset.
  :func:`naive_sync_curve` is the baseline: RMS envelope against mean absolute frame difference,
  plain normalised cross-correlation.
* :func:`null_standardise`: a curve in units of its chance level (median and spread of the
  scores of unrelated alignments), so that its values mean the same for every clip.
* :func:`peak_offset`: the best offset, refined below the grid step by parabolic interpolation,
  and a confidence in [0, 1] from how far the peak stands above chance.
* :func:`estimate_offset`: all of the above in one call.
* :func:`sync_accuracy`, :func:`sync_mean_absolute_error`: metrics for offset estimates.

Convention (the same as :func:`skavc.datasets.make_av_clips`): an offset is in seconds and
POSITIVE when the AUDIO is AHEAD of the video, i.e. a sound is heard ``offset`` seconds before the
visual event that made it; audio sample ``n`` is heard at video time ``n / sample_rate + offset``.
Audio that lags the picture gives a negative offset. Frame ``f`` shows the instant ``f / fps``.

``benchmarks/bench_sync_signal.py`` measures accuracy and confidence on generated clips; the
defaults here (whitening exponent, noise floor, confidence scale) were chosen on such clips,
including harder ones (2 s, camera shake 3 px, audio noise 0.1, scene cuts).
"""

import numbers

import numpy as np
from scipy import fft as sp_fft

from ._validation import check_audio, check_frames, check_positive, check_sample_rate

__all__ = [
    "SYNC_CONFIDENCE_THRESHOLD",
    "estimate_offset",
    "motion_energy",
    "motion_energy_times",
    "naive_sync_curve",
    "null_standardise",
    "onset_envelope",
    "peak_offset",
    "signal_sync_curve",
    "sync_accuracy",
    "sync_mean_absolute_error",
]

#: Confidence at or above which a clip counts as synchronisable (see :func:`peak_offset`).
SYNC_CONFIDENCE_THRESHOLD = 0.5

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601 grey
_CHUNK_VALUES = 1 << 24      # float32 values converted at once when shrinking frames (64 MB)
_ALIGN_CLIP = 10.0           # grey levels: per-pixel cap of the camera-alignment cost
_PREFER_STILL = 0.9          # the zero shift wins unless another explains a frame 10 % better
_NOISE_FLOOR_FACTOR = 2.0    # onset envelope: log(M + factor * median_t(M)) per mel band
_ABS_FLOOR_DB = -80.0        # onset envelope: anything quieter is silence (dB re full-scale sine)
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


def _is_int(value, minimum):
    return not isinstance(value, (bool, np.bool_)) and isinstance(value, numbers.Integral) and value >= minimum


def _check_real(value, name, *, positive=False, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {value!r}")
    value = float(value)
    if not np.isfinite(value) or (positive and value <= 0):
        raise ValueError(f"{name} must be a finite number{' > 0' if positive else ''}; got {value!r}")
    return value


def _check_inputs(audio, sample_rate, frames, fps, max_offset, resolution):
    audio = check_audio(audio, name="audio")
    sample_rate = check_sample_rate(sample_rate, name="sample_rate")
    frames = check_frames(frames, name="frames")
    fps = check_positive(fps, name="fps")
    max_offset = _check_real(max_offset, "max_offset", positive=True)
    resolution = _check_real(resolution, "resolution", positive=True, allow_none=True)
    if resolution is None:
        resolution = min(0.01, 0.5 / fps)
    return audio, sample_rate, frames, fps, max_offset, resolution


def _check_curve(offsets, scores):
    offsets = np.asarray(offsets, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    if offsets.ndim != 1 or offsets.size == 0:
        raise ValueError(f"offsets must be a non-empty 1-D array; got shape {offsets.shape}")
    if scores.shape != offsets.shape:
        raise ValueError(f"scores must have the shape of offsets {offsets.shape}; got {scores.shape}")
    if not (np.all(np.isfinite(offsets)) and np.all(np.isfinite(scores))):
        raise ValueError("offsets and scores must be finite (no NaN or infinity)")
    if np.any(np.diff(offsets) <= 0):
        raise ValueError("offsets must be strictly increasing")
    return offsets, scores


# ---------------------------------------------------------------------------
# Visual side
# ---------------------------------------------------------------------------


def _grey_small(frames, max_size):
    """Greyscale frames area-averaged to at most ``max_size`` pixels a side: (T, h, w) float32."""
    T, H, W, _ = frames.shape
    k = max(1, int(np.ceil(max(H, W) / max_size)))
    h, w = max(H // k, 1), max(W // k, 1)
    kh, kw = H // h, W // w
    out = np.empty((T, h, w), dtype=np.float32)
    chunk = max(1, _CHUNK_VALUES // (H * W * 3))
    for t0 in range(0, T, chunk):
        grey = frames[t0 : t0 + chunk, : h * kh, : w * kw].astype(np.float32) @ _LUMA
        out[t0 : t0 + chunk] = grey.reshape(-1, h, kh, w, kw).mean(axis=(2, 4))
    return out


def _vertex_offset(c_minus, c0, c_plus):
    """Sub-sample position (in [-0.5, 0.5]) of the minimum of a parabola through three costs."""
    curvature = c_minus - 2.0 * c0 + c_plus
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = np.where(curvature > 0, 0.5 * (c_minus - c_plus) / curvature, 0.0)
    return np.clip(delta, -0.5, 0.5)


def _aligned_difference(cur, prev, r):
    """``cur - prev`` after the global shift (``|dy|, |dx| <= r``) that best aligns them.

    The whole-pixel shift is chosen per frame by a truncated-L1 cost over the interior (a
    moving object covering part of the frame cannot outvote the background), refined to a
    fraction of a pixel by a parabola through the neighbouring costs and applied by bilinear
    interpolation; then the median of the difference (a global brightness change) is removed.
    Returns (n, h - 2r - 2, w - 2r - 2).
    """
    n, h, w = cur.shape
    m = r + 1  # one more pixel of margin for the sub-pixel interpolation

    def view(frames, dy, dx):
        return frames[..., m + dy : h - m + dy, m + dx : w - m + dx]

    inner = view(cur, 0, 0)
    if r == 0:
        d = inner - view(prev, 0, 0)
        return d - np.median(d.reshape(n, -1), axis=1)[:, None, None]
    side = 2 * r + 1
    costs = np.empty((side, side, n))
    for iy in range(side):
        for ix in range(side):
            d = (inner - view(prev, iy - r, ix - r)).reshape(n, -1)
            d -= d.mean(axis=1, keepdims=True)
            costs[iy, ix] = np.minimum(np.abs(d), _ALIGN_CLIP).mean(axis=1)
    biased = costs.copy()
    biased[r, r] *= _PREFER_STILL
    best = np.argmin(biased.reshape(side * side, n), axis=0)
    iy, ix = np.divmod(best, side)
    frames_ = np.arange(n)
    fy = np.zeros(n)
    fx = np.zeros(n)
    ok = (iy > 0) & (iy < side - 1)
    fy[ok] = _vertex_offset(costs[iy[ok] - 1, ix[ok], frames_[ok]], costs[iy[ok], ix[ok], frames_[ok]],
                            costs[iy[ok] + 1, ix[ok], frames_[ok]])
    ok = (ix > 0) & (ix < side - 1)
    fx[ok] = _vertex_offset(costs[iy[ok], ix[ok] - 1, frames_[ok]], costs[iy[ok], ix[ok], frames_[ok]],
                            costs[iy[ok], ix[ok] + 1, frames_[ok]])
    d = np.empty_like(inner)
    for t in range(n):  # one bilinear blend of four shifted views per frame
        dy, dx = iy[t] - r, ix[t] - r
        sy, sx = int(np.sign(fy[t])), int(np.sign(fx[t]))
        ay, ax = abs(fy[t]), abs(fx[t])
        p = prev[t]
        shifted = ((1 - ay) * (1 - ax) * view(p, dy, dx) + ay * (1 - ax) * view(p, dy + sy, dx)
                   + (1 - ay) * ax * view(p, dy, dx + sx) + ay * ax * view(p, dy + sy, dx + sx))
        d[t] = inner[t] - shifted
    return d - np.median(d.reshape(n, -1), axis=1)[:, None, None]


def motion_energy(frames, *, max_size=64, threshold=2.0, max_shift=3):
    """Visual change energy between consecutive frames, robust for real video.

    Each frame is converted to grey (BT.601 luma) and area-averaged so that its larger side is at
    most ``max_size`` pixels. For every pair of consecutive frames the global shift of at most
    ``max_shift`` (small-image) pixels that best aligns them, found to a fraction of a pixel, is
    removed (camera shake and slow pans), then the median difference (a global brightness change: exposure,
    flicker, fades), and what remains above ``threshold`` grey levels (compression and sensor
    noise) is averaged over the frame's interior.

    Parameters
    ----------
    frames : ndarray of shape (T, H, W, 3), dtype uint8
        RGB frames.
    max_size : int, default=64
        Largest side of the greyscale images compared, in pixels.
    threshold : float, default=2.0
        Per-pixel change, in grey levels (0-255), below which a change counts as noise.
    max_shift : int, default=3
        Largest global shift searched, in small-image pixels per frame (at the default
        ``max_size`` about 5 % of the frame). ``0`` disables the camera compensation.

    Returns
    -------
    energy : ndarray of shape (T,), float64, >= 0
        ``energy[t]`` is the change from frame ``t - 1`` to frame ``t`` (mean grey levels per
        pixel above ``threshold``); ``energy[0] = 0``. A change seen at frame ``t`` happened
        some time between the instants ``(t - 1) / fps`` and ``t / fps``, so its unbiased
        timestamp is the midpoint ``(t - 0.5) / fps``: see :func:`motion_energy_times`.
        Static frames give all zeros.
    """
    frames = check_frames(frames, name="frames")
    if not _is_int(max_size, 1):
        raise ValueError(f"max_size must be an integer >= 1; got {max_size!r}")
    if not _is_int(max_shift, 0):
        raise ValueError(f"max_shift must be an integer >= 0; got {max_shift!r}")
    threshold = _check_real(threshold, "threshold")
    if threshold < 0:
        raise ValueError(f"threshold must be >= 0; got {threshold!r}")
    grey = _grey_small(frames, int(max_size))
    T, h, w = grey.shape
    energy = np.zeros(T, dtype=np.float64)
    if T < 2:
        return energy
    r = int(max(0, min(max_shift, (h - 4) // 4, (w - 4) // 4)))  # keep at least half the frame
    chunk = max(1, _CHUNK_VALUES // (h * w * 4))
    for t0 in range(1, T, chunk):
        t1 = min(t0 + chunk, T)
        d = _aligned_difference(grey[t0:t1], grey[t0 - 1 : t1 - 1], r)
        energy[t0:t1] = np.maximum(np.abs(d) - threshold, 0.0).reshape(t1 - t0, -1).mean(axis=1)
    return energy


def motion_energy_times(n_frames, fps):
    """Timestamps of :func:`motion_energy` values, in seconds on the video timeline.

    Parameters
    ----------
    n_frames : int
        Number of frames ``T``.
    fps : float
        Frame rate; frame ``f`` shows the instant ``f / fps``.

    Returns
    -------
    times : ndarray of shape (T,)
        ``(t - 0.5) / fps``: the midpoint of the interval in which the change from frame
        ``t - 1`` to frame ``t`` happened (``times[0]``, half a frame before the clip, carries
        the value 0).
    """
    fps = check_positive(fps, name="fps")
    return (np.arange(int(n_frames)) - 0.5) / fps


def _emphasise_rises(energy):
    """``energy`` plus its frame-to-frame increase: motion that starts weighs more than motion that
    fades. The audio onset envelope counts only increases, so without this a visible decay
    after each event (a flash fading over the next frames) pulls the estimate late; on
    generated clips it removes a bias of +2 ms (25 fps) and on decaying flashes of up to
    0.1 frame."""
    return energy + np.concatenate([[0.0], np.maximum(np.diff(energy), 0.0)])


def _mean_abs_frame_difference(frames):
    """Naive visual envelope: mean |grey difference| of consecutive full-size frames, (T,)."""
    T = frames.shape[0]
    out = np.zeros(T)
    prev = frames[0].astype(np.float32) @ _LUMA
    for t in range(1, T):
        cur = frames[t].astype(np.float32) @ _LUMA
        out[t] = np.abs(cur - prev).mean()
        prev = cur
    return out


# ---------------------------------------------------------------------------
# Audio side
# ---------------------------------------------------------------------------


def _power_spectrogram(audio, hop, win, n_fft):
    """Centred STFT power (n_fft // 2 + 1, 1 + len // hop); a full-scale sine peaks near 1."""
    window = np.hanning(win + 2)[1:-1]
    n_frames = 1 + audio.size // hop
    padded = np.zeros((n_frames - 1) * hop + win)
    start = win // 2
    n = min(audio.size, padded.size - start)
    padded[start : start + n] = audio[:n]
    idx = np.arange(win)[None, :] + hop * np.arange(n_frames)[:, None]
    spec = sp_fft.rfft(padded[idx] * window, n=n_fft, axis=1)
    return (np.abs(spec) ** 2).T * (4.0 / window.sum() ** 2)


def onset_envelope(audio, sample_rate, *, hop_seconds=0.01, window_seconds=None, n_mels=40):
    """Onset strength: log-mel spectral flux, half-wave rectified (as ``librosa.onset.onset_strength``).

    The power spectrogram (Hann window of ``window_seconds``, one frame every ``hop_seconds``,
    frame ``k`` centred on sample ``k * hop``) is pooled into ``n_mels`` mel bands and
    compressed as ``10 log10(M + 2 median_t(M))`` per band, with an absolute floor of -80 dB
    below a full-scale sine: a steady noise floor or hum then adds almost no flux, and silence
    none. The envelope is the mean over bands of the positive increase from one frame to the
    next.

    Parameters
    ----------
    audio : ndarray of shape (n_samples,)
        Mono waveform.
    sample_rate : int
        Sampling rate in Hz.
    hop_seconds : float, default=0.01
        Time between envelope values.
    window_seconds : float or None, default=None
        Analysis window length; ``None``: ``max(0.02, 2 * hop_seconds)``.
    n_mels : int, default=40
        Mel bands.

    Returns
    -------
    envelope : ndarray of shape (n,), float64, >= 0
        ``n = 1 + n_samples // hop``; ``envelope[0] = 0``. All zeros for silence.
    times : ndarray of shape (n,)
        Seconds on the audio timeline, ``k * hop / sample_rate``: frame ``k``'s centre. The flux
        rises as soon as an onset enters the leading half of a window, which offsets the half
        hop by which a frame-to-frame difference lags: at these defaults the envelope is
        centred within about 2 ms of the true onsets of generated clips (3 ms attacks) and
        about 3-5 ms early for isolated clicks in silence.
    """
    import librosa  # imported here: it is slow to import and only this function needs it

    audio = check_audio(audio, name="audio").astype(np.float64)
    sample_rate = check_sample_rate(sample_rate, name="sample_rate")
    hop_seconds = _check_real(hop_seconds, "hop_seconds", positive=True)
    window_seconds = _check_real(window_seconds, "window_seconds", positive=True, allow_none=True)
    if window_seconds is None:
        window_seconds = max(0.02, 2.0 * hop_seconds)
    if not _is_int(n_mels, 1):
        raise ValueError(f"n_mels must be an integer >= 1; got {n_mels!r}")
    hop = max(1, int(round(hop_seconds * sample_rate)))
    win = max(hop, 2, int(round(window_seconds * sample_rate)))
    n_fft = int(2 ** np.ceil(np.log2(win)))
    power = _power_spectrogram(audio, hop, win, n_fft)
    mel = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=int(n_mels), norm=None) @ power
    mel = mel + _NOISE_FLOOR_FACTOR * np.median(mel, axis=1, keepdims=True)
    log_mel = 10.0 * np.log10(np.maximum(mel, 10.0 ** (_ABS_FLOOR_DB / 10.0)))
    envelope = np.zeros(log_mel.shape[1])
    envelope[1:] = np.maximum(np.diff(log_mel, axis=1), 0.0).mean(axis=0)
    return envelope, np.arange(envelope.size) * hop / sample_rate


def _rms_envelope(audio, sample_rate, hop_seconds):
    """Naive audio envelope: RMS over consecutive blocks of one hop, timed at block centres."""
    hop = max(1, int(round(hop_seconds * sample_rate)))
    n = int(np.ceil(audio.size / hop))
    padded = np.zeros(n * hop)
    padded[: audio.size] = audio
    env = np.sqrt((padded.reshape(n, hop) ** 2).mean(axis=1))
    return env, (np.arange(n) + 0.5) * hop / sample_rate


# ---------------------------------------------------------------------------
# Correlation
# ---------------------------------------------------------------------------


def _common_grid(audio, sample_rate, frames, fps, resolution):
    """Grid times (n,) over the span both modalities cover, one every ``resolution`` seconds."""
    duration = min(audio.size / sample_rate, frames.shape[0] / fps)
    n = max(1, int(np.floor(duration / resolution)))
    return (np.arange(n) + 0.5) * resolution


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


def signal_sync_curve(audio, sample_rate, frames, fps, *, max_offset=1.0, resolution=None, whiten=True):
    """Audio-visual agreement for every candidate offset, without any training.

    With ``whiten=True`` (the default): the :func:`onset_envelope` of the audio and the
    :func:`motion_energy` of the frames (plus its positive frame-to-frame increase, so that
    motion onsets weigh more than fading motion, as the audio flux counts only increases) are
    interpolated (linearly, at their exact timestamps)
    onto one grid of step ``resolution`` over the span both cover, log-compressed
    (``log(1 + x / mean(x))``, so a scene cut or a single bang cannot dominate), standardised,
    and cross-correlated with partial spectral whitening: the cross-spectrum is divided by its
    magnitude to the power 0.6 (GCC-PHAT would use 1; 0.5-0.7 measured best) and restricted to
    frequencies below half the frame rate, which the video can represent.

    With ``whiten=False`` it is :func:`naive_sync_curve`.

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
    whiten : bool, default=True
        ``False`` gives the naive baseline.

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
    """
    audio, sample_rate, frames, fps, max_offset, resolution = _check_inputs(
        audio, sample_rate, frames, fps, max_offset, resolution)
    if not isinstance(whiten, (bool, np.bool_)):
        raise TypeError(f"whiten must be True or False; got {whiten!r}")
    grid = _common_grid(audio, sample_rate, frames, fps, resolution)
    # Every offset with enough overlap is scored: they are the chance level the curve is
    # standardised against. Only those within max_offset are returned.
    all_lags = int(np.floor((1.0 - _MIN_OVERLAP) * grid.size))
    max_lag = int(min(np.floor(max_offset / resolution + 1e-9), all_lags))
    if whiten:
        env, env_times = onset_envelope(audio, sample_rate, hop_seconds=resolution)
        motion = _emphasise_rises(motion_energy(frames))
    else:
        env, env_times = _rms_envelope(audio, sample_rate, resolution)
        motion = _mean_abs_frame_difference(frames)
    a = np.interp(grid, env_times, env)
    m = np.interp(grid, motion_energy_times(frames.shape[0], fps), motion)
    if whiten:
        a = _standardise(_compress(a))
        m = _standardise(_compress(m))
        lags, scores = _whitened_correlation(a, m, all_lags, cutoff=0.5 * fps * resolution)
    else:
        lags, scores = _pearson_per_lag(a, m, all_lags)
    keep = np.abs(lags) <= max_lag
    return lags[keep] * resolution, null_standardise(scores)[keep]


def naive_sync_curve(audio, sample_rate, frames, fps, *, max_offset=1.0, resolution=None):
    """Baseline agreement curve: raw energy envelopes and plain normalised cross-correlation.

    The audio RMS envelope (blocks of ``resolution`` seconds) against the mean absolute
    difference of consecutive full-size grey frames, both on the grid of
    :func:`signal_sync_curve`, scored by the Pearson correlation over their overlap at each lag.
    No camera or brightness compensation, no compression, no whitening. Parameters and returns
    as :func:`signal_sync_curve` (the Pearson correlations are standardised the same way).
    """
    return signal_sync_curve(audio, sample_rate, frames, fps, max_offset=max_offset,
                             resolution=resolution, whiten=False)


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


def estimate_offset(audio, sample_rate, frames, fps, *, max_offset=1.0, method="gcc"):
    """Audio-visual offset of one clip and its confidence, without any training.

    Parameters
    ----------
    audio, sample_rate, frames, fps, max_offset
        As :func:`signal_sync_curve`.
    method : {"gcc", "naive"}, default="gcc"
        ``"gcc"``: :func:`signal_sync_curve` (onset flux against compensated motion energy,
        whitened). ``"naive"``: :func:`naive_sync_curve`.

    Returns
    -------
    offset : float
        Seconds, positive = audio ahead of video (a sound is heard before its visual event);
        to re-synchronise, delay the audio by ``offset``.
    confidence : float in [0, 1]
        See :func:`peak_offset`; below :data:`SYNC_CONFIDENCE_THRESHOLD` the clip is probably
        not synchronisable (silence, no motion, or no visible source of the sound).
    """
    if method not in ("gcc", "naive"):
        raise ValueError(f"method must be 'gcc' or 'naive'; got {method!r}")
    offsets, scores = signal_sync_curve(audio, sample_rate, frames, fps, max_offset=max_offset,
                                        whiten=method == "gcc")
    return peak_offset(offsets, scores)


# ---------------------------------------------------------------------------
# Metrics (to move to skavc.metrics)
# ---------------------------------------------------------------------------


def _check_offsets_pair(y_true, y_pred):
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.ndim != 1 or y_true.size == 0:
        raise ValueError(f"y_true must be a non-empty 1-D array of offsets; got shape {y_true.shape}")
    if y_pred.shape != y_true.shape:
        raise ValueError(f"y_pred must have the shape of y_true {y_true.shape}; got {y_pred.shape}")
    if not (np.all(np.isfinite(y_true)) and np.all(np.isfinite(y_pred))):
        raise ValueError("y_true and y_pred must be finite")
    return y_true, y_pred


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
    """
    y_true, y_pred = _check_offsets_pair(y_true, y_pred)
    tolerance = _check_real(tolerance, "tolerance")
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
    """
    y_true, y_pred = _check_offsets_pair(y_true, y_pred)
    return float(np.mean(np.abs(y_pred - y_true)))
