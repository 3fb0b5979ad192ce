"""Audio features: how loud, and how much new sound starts, over time.

Array in, array out, one job each (in the style of ``librosa.onset`` and ``librosa.feature``):

* :func:`audio_envelope`: RMS amplitude in a window centred on each of given times (the one
  RMS envelope: windows may overlap, leave gaps, or tile the signal as blocks).
* :func:`audio_changes`: the change of that envelope from one video frame to the next, the
  audio counterpart of :func:`skavc.features.frame_changes`.
* :func:`level_rises`: how much the level rises, in dB, from one video frame to the next (onsets
  of loud and quiet sounds alike, decays ignored).
* :func:`sound_presence`: how clearly the sound stands above the clip's own noise floor, per time.
* :func:`speech_envelope`: loudness of the speech band (1-3 kHz), what a speaking mouth follows.
* :func:`onset_envelope`: log-mel spectral flux, half-wave rectified (onset strength).

Conventions. Audio is a mono waveform; sample ``n`` is heard at ``n / sample_rate`` seconds on
the audio timeline. Amplitudes are in full-scale units (a full-scale sine has amplitude 1, RMS
``1 / sqrt(2)``); times and windows are in seconds.
"""

import numpy as np
from scipy import fft as sp_fft
from scipy.special import expit

from .._validation import check_audio, check_int, check_positive, check_real, check_sample_rate
from .time import rises

__all__ = [
    "SPEECH_BAND",
    "audio_changes",
    "audio_envelope",
    "edge_silence",
    "level_rises",
    "onset_envelope",
    "sound_presence",
    "speech_envelope",
]

_NOISE_FLOOR_FACTOR = 2.0    # onset envelope: log(M + factor * median_t(M)) per mel band
_ABS_FLOOR_DB = -80.0        # onset envelope: anything quieter is silence (dB re full-scale sine)
_PAD_QUANTILE = 0.1          # onset envelope: digital silence at either end takes this quantile's level
# Sound presence: the clip's noise floor is the RMS of its quietest 10 % of 20 ms blocks (at least
# -90 dBFS); a window is "sounding" half-way at 10 dB above it, a soft edge of 2 dB. A clip whose
# loud blocks (90th percentile) are within 10 dB of its floor has no quiet moments to learn the
# floor from (a motor running throughout, or room tone only): there the level is judged against
# -60 dBFS instead. Set before looking at real clips (the webcam's room tone is at -45 dBFS, so an
# absolute -50 dBFS gate calls it sound); checked on benchmarks/real_localization.py.
_FLOOR_BLOCK = 0.02
_FLOOR_QUANTILE = 0.1
_MIN_FLOOR_DB = -90.0
_PRESENCE_DB = 10.0
_PRESENCE_SOFTNESS_DB = 2.0
_STATIONARY_SPREAD_DB = 10.0
_STATIONARY_LEVEL_DB = -60.0


def audio_envelope(audio, sample_rate, times, window):
    """RMS of the audio in a window of ``window`` seconds centred on each of ``times``.

    Parameters
    ----------
    audio : ndarray of shape (n_samples,)
        Mono waveform (summed in float64).
    sample_rate : int
        Sampling rate in Hz.
    times : array-like of shape (n_times,)
        Window centres, seconds on the audio timeline.
    window : float
        Window length in seconds, > 0.

    Returns
    -------
    envelope : ndarray of shape (n_times,), float64, >= 0
        ``sqrt(mean(audio[lo:hi] ** 2))`` with ``lo, hi = round((t -+ window / 2) * sample_rate)``
        clipped to the signal: the window is cut at the ends of the audio (the mean is over the
        samples it holds), and a window wholly outside gives 0. Windows of one hop centred at
        ``(j + 0.5) * hop`` tile the signal as consecutive blocks. A full-scale sine gives
        ``1 / sqrt(2)``.

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.features import audio_envelope
    >>> sr = 16000; t = np.arange(sr) / sr
    >>> audio = np.sin(2 * np.pi * 440 * t) * (t >= 0.5)  # 0.5 s of silence, then a full-scale tone
    >>> audio_envelope(audio, sr, times=[0.25, 0.75], window=0.1).round(3)
    array([0.   , 0.707])
    """
    check_audio(audio, name="audio")
    audio = np.asarray(audio, dtype=np.float64)
    sample_rate = check_sample_rate(sample_rate, name="sample_rate")
    window = check_real(window, name="window", positive=True)
    times = np.asarray(times, dtype=np.float64)
    power = np.concatenate([[0.0], np.cumsum(audio**2)])
    n = audio.shape[0]
    half = 0.5 * window * sample_rate
    lo = np.clip(np.round(times * sample_rate - half).astype(int), 0, n)
    hi = np.clip(np.round(times * sample_rate + half).astype(int), 0, n)
    return np.sqrt(np.maximum(power[hi] - power[lo], 0.0) / np.maximum(hi - lo, 1))


def audio_changes(audio, sample_rate, n_frames, fps):
    """Change of the audio envelope between consecutive video frame times.

    Parameters
    ----------
    audio : ndarray of shape (n_samples,)
        Mono waveform.
    sample_rate : int
        Sampling rate in Hz.
    n_frames : int
        Number of video frames ``T``, >= 1.
    fps : float
        Frame rate; frame ``t`` shows the instant ``t / fps``.

    Returns
    -------
    changes : ndarray of shape (T,), float64
        ``changes[t]`` is the RMS over one frame period centred on ``t / fps`` minus the same
        at ``(t - 1) / fps`` (signed, full-scale units); ``changes[0] = 0``. The audio
        counterpart of :func:`skavc.features.frame_changes`.

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.features import audio_changes
    >>> sr = 16000; t = np.arange(sr) / sr
    >>> audio = np.sin(2 * np.pi * 440 * t) * (t >= 0.5)  # a tone starting at 0.5 s
    >>> changes = audio_changes(audio, sr, n_frames=25, fps=25)  # one value per video frame
    >>> changes.shape, int(np.argmax(changes)), round(float(changes.max()), 2)  # frame 13 (0.52 s), full-scale RMS
    ((25,), 13, 0.71)
    """
    env = _frame_envelope(audio, sample_rate, n_frames, fps)
    return np.diff(env, prepend=env[:1])


def _frame_envelope(audio, sample_rate, n_frames, fps):
    """RMS over one frame period centred on each video frame time ``t / fps``, (T,) (checked)."""
    n_frames = check_int(n_frames, name="n_frames", minimum=1)
    fps = check_positive(fps, name="fps")
    return audio_envelope(audio, sample_rate, np.arange(n_frames) / fps, 1.0 / fps)


def level_rises(audio, sample_rate, n_frames, fps, *, floor_db=_ABS_FLOOR_DB):
    """Rise of the audio level, in dB, between consecutive video frame times.

    Parameters
    ----------
    audio, sample_rate, n_frames, fps
        As in :func:`audio_changes`: the mono waveform (n_samples,), its rate in Hz, the
        number of video frames ``T`` (>= 1) and their rate (frame ``t`` shows ``t / fps``).
    floor_db : float, default=-80.0
        Levels below this (dB re an RMS of 1) count as this level, so that a rise out of
        digital silence is finite.

    Returns
    -------
    rises : ndarray of shape (T,), float64, >= 0
        ``max(L[t] - L[t - 1], 0)`` with ``L`` the level ``20 log10(RMS)`` over one frame period
        centred on each frame time (:func:`~skavc.features.audio_envelope`), floored at ``floor_db``;
        ``rises[0] = 0``. On a log scale a quiet onset weighs like a loud one, and a decay
        (which a picture rarely shows) not at all: the complement of :func:`audio_changes`.

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.features import level_rises
    >>> sr = 16000; t = np.arange(sr) / sr
    >>> audio = np.sin(2 * np.pi * 440 * t) * (t >= 0.5)  # a tone starting at 0.5 s
    >>> rises = level_rises(audio, sr, n_frames=25, fps=25)
    >>> rises.shape, int(np.argmax(rises)), round(float(rises.max()))  # frame 13 (0.52 s), dB
    ((25,), 13, 77)
    """
    floor_db = check_real(floor_db, name="floor_db")
    env = _frame_envelope(audio, sample_rate, n_frames, fps)
    level = 20.0 * np.log10(np.maximum(env, 10.0 ** (floor_db / 20.0)))
    return rises(level)


def sound_presence(audio, sample_rate, times, window):
    """How clearly the sound stands above the clip's own noise floor, around each of ``times``.

    Parameters
    ----------
    audio : ndarray of shape (n_samples,)
        Mono waveform: the whole clip (its floor is estimated from it).
    sample_rate : int
        Sampling rate in Hz.
    times : array-like of shape (n_times,)
        Seconds on the audio timeline.
    window : float
        Seconds of audio around each time whose RMS is judged (:func:`~skavc.features.audio_envelope`).

    Returns
    -------
    presence : ndarray of shape (n_times,), float64 in [0, 1]
        ``expit((L - floor - 10) / 2)`` with ``L`` the window's level and ``floor`` the RMS of
        the clip's quietest 10 % of 20 ms blocks, both in dB (floor at least -90 dBFS): about 0
        at the clip's noise floor (room tone, hiss, digital silence), 1 from about 15 dB above
        it. A clip with no quiet moments (its 90th-percentile block within 10 dB of its floor)
        is judged against -60 dBFS instead, so a sound heard throughout counts as present.

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.features import sound_presence
    >>> sr = 16000; t = np.arange(sr) / sr
    >>> hiss = 0.001 * np.random.default_rng(0).standard_normal(sr)
    >>> audio = hiss + np.sin(2 * np.pi * 440 * t) * (t >= 0.5)  # a tone over the hiss from 0.5 s
    >>> sound_presence(audio, sr, times=[0.25, 0.75], window=0.1).round(1)
    array([0., 1.])
    """
    audio = check_audio(audio, name="audio")
    sample_rate = check_sample_rate(sample_rate, name="sample_rate")
    n = max(1, int(round(_FLOOR_BLOCK * sample_rate)))
    n_blocks = max(1, audio.size // n)  # one block of the whole clip when it is shorter
    span = n if audio.size >= n else audio.size
    block_rms = audio_envelope(audio, sample_rate, (np.arange(n_blocks) + 0.5) * span / sample_rate,
                               span / sample_rate)
    min_floor = 10.0 ** (_MIN_FLOOR_DB / 20.0)
    floor = max(float(np.quantile(block_rms, _FLOOR_QUANTILE)), min_floor)
    loud = max(float(np.quantile(block_rms, 1.0 - _FLOOR_QUANTILE)), min_floor)
    if 20.0 * np.log10(loud / floor) < _STATIONARY_SPREAD_DB:
        floor = 10.0 ** ((_STATIONARY_LEVEL_DB - _PRESENCE_DB) / 20.0)
    level = audio_envelope(audio, sample_rate, times, window)
    above = 20.0 * np.log10(np.maximum(level, 1e-12) / floor)
    return expit((above - _PRESENCE_DB) / _PRESENCE_SOFTNESS_DB)


def _stft_frames(sample_rate, hop_seconds, window_seconds):
    """``(hop, win, n_fft)`` in samples for frames every ``hop_seconds`` of ``window_seconds``."""
    hop = max(1, int(round(hop_seconds * sample_rate)))
    win = max(hop, 2, int(round(window_seconds * sample_rate)))
    return hop, win, int(2 ** np.ceil(np.log2(win)))


def _power_spectrogram(audio, hop, win, n_fft):
    """Centred STFT power (n_fft // 2 + 1, 1 + len // hop); a full-scale sine peaks near 1.

    Frame ``k`` is a Hann window of ``win`` samples centred on sample ``k * hop`` (the signal is
    zero-padded at both ends), zero-padded to ``n_fft`` points.
    """
    window = np.hanning(win + 2)[1:-1]
    n_frames = 1 + audio.size // hop
    padded = np.zeros((n_frames - 1) * hop + win)
    start = win // 2
    n = min(audio.size, padded.size - start)
    padded[start : start + n] = audio[:n]
    idx = np.arange(win)[None, :] + hop * np.arange(n_frames)[:, None]
    spec = sp_fft.rfft(padded[idx] * window, n=n_fft, axis=1)
    return (np.abs(spec) ** 2).T * (4.0 / window.sum() ** 2)


def edge_silence(audio, starts, stops):
    """Which spans of samples lie wholly in the exact zeros that lead or trail ``audio``.

    Such digital silence is the padding of a shifted or trimmed track: it says nothing about
    the recording, unlike zeros between two sounds, which do not count.

    Parameters
    ----------
    audio : ndarray of shape (n_samples,)
    starts, stops : array-like of shape (n_spans,)
        Sample positions: span ``i`` is ``[starts[i], stops[i])``; a point when they are equal.

    Returns
    -------
    padded : ndarray of shape (n_spans,), bool
        True where the span ends at or before the first non-zero sample or starts after the
        last. All True for all-zero audio. All False when padding would cover more than half
        of the spans: a few sounds recorded in silence (a lone click), whose silence is real.

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.features import edge_silence
    >>> audio = np.r_[np.zeros(100), np.ones(800), np.zeros(100)]  # 100 samples of digital silence at each end
    >>> edge_silence(audio, starts=[0, 300, 600, 950], stops=[100, 400, 700, 1000])  # spans of samples
    array([ True, False, False,  True])
    """
    starts, stops = np.asarray(starts), np.asarray(stops)
    nonzero = np.flatnonzero(audio)
    if nonzero.size == 0:
        return np.ones(starts.shape, dtype=bool)
    padded = (stops <= nonzero[0]) | (starts > nonzero[-1])
    return padded if padded.mean() <= 0.5 else np.zeros(starts.shape, dtype=bool)


def onset_envelope(audio, sample_rate, *, hop_seconds=0.01, window_seconds=None, n_mels=40):
    """Onset strength: log-mel spectral flux, half-wave rectified (as ``librosa.onset.onset_strength``).

    The power spectrogram (Hann window of ``window_seconds``, one frame every ``hop_seconds``,
    frame ``k`` centred on sample ``k * hop``) is pooled into ``n_mels`` mel bands and
    compressed as ``10 log10(M + 2 median_t(M))`` per band, with an absolute floor of -80 dB
    below a full-scale sine: a steady noise floor or hum then adds almost no flux, and silence
    none. Exact digital silence leading or trailing the audio (the padding of a shifted or
    trimmed track) takes the level of the recording's quietest frames (per band, 10th
    percentile) and is left out of the median, so the step into the recording is no onset.
    The envelope is the mean over bands of the positive increase from one frame to the
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
        ``n = 1 + n_samples // hop``; ``envelope[0] = 0``. Mean dB increase per band from frame
        ``k - 1`` to frame ``k``. All zeros for silence.
    times : ndarray of shape (n,)
        Seconds on the audio timeline, ``k * hop / sample_rate``: frame ``k``'s centre. The flux
        rises as soon as an onset enters the leading half of a window, which offsets the half
        hop by which a frame-to-frame difference lags: at these defaults the envelope is
        centred within about 2 ms of the true onsets of generated clips (3 ms attacks) and
        about 3-5 ms early for isolated clicks in silence.

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.features import onset_envelope
    >>> sr = 16000; t = np.arange(sr) / sr
    >>> audio = np.sin(2 * np.pi * 440 * t) * (t >= 0.5)  # a tone starting at 0.5 s
    >>> envelope, times = onset_envelope(audio, sr)  # one value every 10 ms
    >>> envelope.shape, round(float(times[np.argmax(envelope)]), 2)
    ((101,), 0.5)
    """
    audio = check_audio(audio, name="audio").astype(np.float64)
    sample_rate = check_sample_rate(sample_rate, name="sample_rate")
    hop_seconds = check_real(hop_seconds, name="hop_seconds", positive=True)
    window_seconds = check_real(window_seconds, name="window_seconds", positive=True, allow_none=True)
    if window_seconds is None:
        window_seconds = max(0.02, 2.0 * hop_seconds)
    n_mels = check_int(n_mels, name="n_mels", minimum=1)
    hop, win, n_fft = _stft_frames(sample_rate, hop_seconds, window_seconds)
    import librosa  # here, not at the top: importing it takes about a second and only this needs it

    power = _power_spectrogram(audio, hop, win, n_fft)
    mel = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, norm=None) @ power
    start = np.arange(mel.shape[1]) * hop - win // 2  # frame k's window: samples [start, start + win)
    padded = edge_silence(audio, start, start + win)
    if padded.any() and not padded.all():
        # Exact digital silence at either end is padding (a shifted or trimmed track), not a
        # quiet recording: at the -80 dB floor the step from it into the recording would be
        # the biggest "onset" of the clip and capture any alignment. It is given the level of
        # the recording's own quietest frames (per band, 10th percentile) instead, as if the
        # track had been padded with its own background noise.
        mel[:, padded] = np.quantile(mel[:, ~padded], _PAD_QUANTILE, axis=1)[:, None]
    mel = mel + _NOISE_FLOOR_FACTOR * np.median(mel[:, ~padded] if not padded.all() else mel,
                                                 axis=1, keepdims=True)
    log_mel = 10.0 * np.log10(np.maximum(mel, 10.0 ** (_ABS_FLOOR_DB / 10.0)))
    envelope = np.zeros(log_mel.shape[1])
    envelope[1:] = np.maximum(np.diff(log_mel, axis=1), 0.0).mean(axis=0)
    return envelope, np.arange(envelope.size) * hop / sample_rate


#: The band whose loudness follows the mouth's opening most closely: the second formant's
#: region (Chandrasekaran et al. 2009, PLoS Comput Biol 5(7) e1000436, find mouth area and the
#: 1-3 kHz envelope the most coherent pair). On the nine real talking heads of
#: ``benchmarks/real_talk.py`` the whole band (100 Hz-8 kHz) put two clips' lip sync 0.5 s out.
SPEECH_BAND = (1000.0, 3000.0)
_SPEECH_WINDOW = 0.032  # seconds: a few pitch periods, so the envelope does not ripple with the voice


def speech_envelope(audio, sample_rate, *, hop_seconds=0.01, band=SPEECH_BAND):
    """Loudness of the speech band over time: what a speaking mouth's opening follows.

    Parameters
    ----------
    audio : ndarray of shape (n_samples,)
        Mono waveform.
    sample_rate : int
        Sampling rate in Hz.
    hop_seconds : float, default=0.01
        Time between envelope values.
    band : (float, float), default=:data:`SPEECH_BAND`
        Lowest and highest frequency in Hz; the top is capped at the Nyquist frequency.

    Returns
    -------
    envelope : ndarray of shape (n,), float64, >= 0
        ``n = 1 + n_samples // hop``: root of the band's power in a 32 ms Hann window centred
        on each frame (linear, not in dB: the quiet frames between syllables vary far less
        than the syllables, as the lips between them). All zeros for silence.
    times : ndarray of shape (n,)
        Seconds on the audio timeline, ``k * hop / sample_rate``: frame ``k``'s centre.

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.features import speech_envelope
    >>> sr = 16000; t = np.arange(sr) / sr
    >>> in_band, times = speech_envelope(np.sin(2 * np.pi * 2000 * t), sr)  # 2 kHz: in the band
    >>> below, _ = speech_envelope(np.sin(2 * np.pi * 200 * t), sr)        # 200 Hz: below it
    >>> in_band.shape, times[:3], round(float(in_band[50]), 2), round(float(below[50]), 2)
    ((101,), array([0.  , 0.01, 0.02]), 1.22, 0.0)
    """
    audio = check_audio(audio, name="audio").astype(np.float64)
    sample_rate = check_sample_rate(sample_rate, name="sample_rate")
    hop_seconds = check_real(hop_seconds, name="hop_seconds", positive=True)
    low, high = (float(f) for f in band)
    if not 0.0 <= low < high:
        raise ValueError(f"band must be (low, high) in Hz with 0 <= low < high; got {band!r}")
    hop, win, n_fft = _stft_frames(sample_rate, hop_seconds, _SPEECH_WINDOW)
    power = _power_spectrogram(audio, hop, win, n_fft)
    freq = np.arange(power.shape[0]) * sample_rate / n_fft
    envelope = np.sqrt(power[(freq >= low) & (freq <= high)].sum(axis=0))
    return envelope, np.arange(envelope.size) * hop / sample_rate
