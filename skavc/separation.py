"""Visually guided source separation: the sound of what you point at.

:func:`separate` takes a mixture and the frames of the source wanted (the *timing route*,
training-free): the mixture's magnitude spectrogram is factorised by NMF, each component's
activation is scored by how it follows the target's visual motion (motion-informed NMF, Parekh
et al. 2017; onset coincidence, Barzelay and Schechner 2007), and a soft (Wiener-like) mask built
from the components that follow the motion is applied to the mixture's STFT and inverted with the
mixture's phase.

Steps and constants (all times in seconds, independent of the sample rate):

1. STFT: Hann window of ``n_fft = 2 ** round(log2(0.064 * sample_rate))`` samples (1024 at
   16 kHz, 64 ms), hop ``n_fft // 4`` (256, 16 ms), centred frames (``scipy.signal.stft``
   with zero boundary padding), so frame ``m`` is centred on sample ``m * hop``.
2. NMF of the magnitude ``|X|`` (``sklearn.decomposition.NMF``, Kullback-Leibler divergence,
   multiplicative updates, ``init="nndsvda"``, ``random_state=0``, ``n_components`` (default
   16), ``max_iter=300``): ``|X| ~ W H``.
3. Visual motion: :func:`skavc.features.motion_energy` of the target frames (or, with
   ``region``, the camera-compensated :func:`skavc.features.frame_changes` averaged over the
   region's blocks), placed at :func:`skavc.features.motion_energy_times` and interpolated onto
   the STFT frame times. Two tracks: the motion itself and its positive rise (motion onsets).
4. Scores: each activation row of ``H`` (and its positive rise, the activation's onsets) is
   smoothed by a Gaussian of ``tolerance`` seconds (default 0.04: a video frame at 25 fps), and
   so are the motion tracks; a component's score is the mean of the Pearson correlations
   activation/motion and onset/onset. The *null* is the same score against the motion shifted
   circularly by every lag of at least ``min_shift`` seconds (0.25) from 0: a component
   follows the motion when its score stands out of its null, ``z = (score - mean(null)) /
   std(null)`` (pooled over components).
5. Soft assignment: ``w_k = sigmoid((z_k - 2) / 0.5)``; the target's estimated magnitude is
   ``V_t = W diag(w) H``, the rest's ``V_r = W diag(1 - w) H``, the mask
   ``M = V_t^2 / (V_t^2 + V_r^2)``.
6. Confidence: the best component's z against the null of the best component's z under the
   shifted motions, mapped to [0, 1] (:func:`_confidence`). The mask applied is
   ``g(c) * (t(c) * M + 1 - t(c))`` with the trust ``t(c)`` rising from 0 to 1 around
   ``c = 0.1`` and the gain ``g(c) = c * min(1, 2 c)`` (:func:`_no_harm`): the mask where
   there is evidence for it, a quieter copy of the mixture where there is none. BSS
   Eval's SDR does not see a gain, so a weakly guided separation scores as the mixture (it does
   no harm), and a target whose motion matches no component gives a near-silent output (at
   least 26 dB quieter than the mixture on the real mixtures) instead of a confident half of
   the mixture. On real videos mixed with unrelated real recordings the mask alone
   made 11 of 16 targets worse (down to -13 dB; ``benchmarks/real_separation.py``).
7. Inverse STFT with the mixture's phase, cut to the mixture's length; the residual is
   ``mixture - target`` exactly.

A speaking face (``face_tracks`` and ``speech_enhancer``, what :meth:`skavc.AVCorrespondence.separate`
passes): its voice is not found among NMF components, which split one voice across many and mix
voices with music, but by a pretrained speech enhancer (Conv-TasNet, ``skavc.encoders._speech``),
whose estimate is trusted as far as the face's mouth follows its loudness (:func:`separate_speech`,
:func:`mouth_evidence`), leaning to the mixture where it is not, as in step 6.

One picture of the target (no frames) is refused (:func:`check_not_picture`): the appearance
route, which separated by what things that look like the picture sound like (a simplified AV-NMF
after Gao and Grauman 2018, with NMF bases of training clips picked by their visual embedding),
was withdrawn. On real pictures with their real sounds (48 held-out qabcs mixtures,
``benchmarks/real_separation.py``) it gave -5.5 dB median, and +0.0 dB once its weak
confidence made it return the mixture: each real picture's sound was the only one of its kind
among the training clips, so no neighbour's spectra described it.

Documented behaviour on the edges: all-zero (or near-silent) audio gives zeros and confidence 0;
static frames (no motion) give zeros and confidence 0; a mixture too short for a chance level
(under about ``2 * min_shift`` = 0.5 s) gives zeros and confidence 0; frames longer than the audio are cut,
frames shorter than the audio by more than one frame raise ``ValueError``; the output is float32
and never NaN.
"""

import numbers
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import signal as sp_signal
from scipy.ndimage import gaussian_filter1d
from scipy.special import expit
from sklearn.decomposition import NMF
from sklearn.exceptions import ConvergenceWarning

from ._inputs import _resample
from ._validation import check_audio, check_frames, check_int, check_real, check_sample_rate
from .features import (MIN_FACE_SHARE, MOUTH_LEAD, block_size, fill_gaps, frame_changes, grey_blocks, motion_energy,
                       motion_energy_times, mouth_opening, mouth_speech_correlation, rises, speech_at_frames)

__all__ = [
    "SeparatedWindow",
    "check_not_picture",
    "crossfade_windows",
    "factorise",
    "mouth_evidence",
    "mouth_guide",
    "separate",
    "separate_speech",
    "separate_windows",
    "stft_settings",
    "wiener_mask",
]

_WINDOW_SECONDS = 0.064      # STFT window: 1024 samples at 16 kHz
_HOP_FRACTION = 4            # hop = n_fft // 4
_NMF_MAX_ITER = 300
_ONSET_WEIGHT = 0.5          # score: weight of onset coincidence against motion/activation correlation
_ASSIGN_Z = 2.0              # z at which a component counts half as target
_ASSIGN_WIDTH = 0.5          # softness of the assignment sigmoid, in z units
_CONFIDENCE_Z = 2.5          # best-component z (against the null of best z's) at confidence 0.5
_CONFIDENCE_WIDTH = 0.5
_SILENCE_RMS = 1e-6          # full-scale RMS below which the mixture counts as silence
_MIN_SAMPLE_RATE = 1000


def stft_settings(sample_rate):
    """``(n_fft, hop)`` used at ``sample_rate``: a 64 ms Hann window (a power of two), hop a quarter.

    Examples
    --------
    >>> from skavc.separation import stft_settings
    >>> stft_settings(16000)  # samples: 64 ms and 16 ms
    (1024, 256)
    >>> stft_settings(44100)
    (2048, 512)
    """
    n_fft = int(2 ** round(np.log2(_WINDOW_SECONDS * sample_rate)))
    n_fft = max(n_fft, 16)
    return n_fft, n_fft // _HOP_FRACTION


def _stft(audio, n_fft, hop):
    _, _, X = sp_signal.stft(audio.astype(np.float64), nperseg=n_fft, noverlap=n_fft - hop, window="hann",
                             boundary="zeros", padded=True)
    return X


def _istft(X, n_fft, hop, n):
    _, y = sp_signal.istft(X, nperseg=n_fft, noverlap=n_fft - hop, window="hann", boundary=True)
    out = np.zeros(n)
    m = min(n, y.size)
    out[:m] = y[:m]
    return out


def factorise(V, n_components):
    """KL-NMF of a magnitude spectrogram ``V`` (F, M): bases ``W`` (F, K) and activations ``H`` (K, M).

    ``sklearn.decomposition.NMF`` (Kullback-Leibler, multiplicative updates, ``init="nndsvda"``,
    ``random_state=0``, 300 iterations); ``K = min(n_components, min(F, M) - 1)`` (at least 1).

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.separation import factorise
    >>> V = np.random.default_rng(0).random((513, 40))  # frequency bins x STFT frames
    >>> W, H = factorise(V, 8)
    >>> W.shape, H.shape, bool((W >= 0).all() and (H >= 0).all())
    ((513, 8), (8, 40), True)
    >>> factorise(V[:, :5], 8)[1].shape  # K is capped by the spectrogram's size
    (4, 5)
    """
    K = min(n_components, max(1, min(V.shape) - 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        nmf = NMF(n_components=K, beta_loss="kullback-leibler", solver="mu", init="nndsvda",
                  random_state=0, max_iter=_NMF_MAX_ITER)
        # sklearn factorises the (frames, bins) matrix: V.T ~ H.T @ W.T
        H = nmf.fit_transform(V.T).T
    return nmf.components_.T, H


def wiener_mask(W, H, weights):
    """Soft mask ``V_t^2 / (V_t^2 + V_r^2)`` of the components weighted by ``weights`` (K,) in [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.separation import wiener_mask
    >>> rng = np.random.default_rng(0)
    >>> W, H = rng.random((5, 3)), rng.random((3, 8))  # 3 components, 5 bins, 8 frames
    >>> mask = wiener_mask(W, H, np.array([1.0, 0.0, 0.0]))  # the target is the first component
    >>> mask.shape, bool(mask.min() >= 0 and mask.max() <= 1)
    ((5, 8), True)
    >>> bool(np.allclose(wiener_mask(W, H, np.ones(3)), 1.0))  # every component: the whole mixture
    True
    """
    return _soft_mask((W * weights) @ H, (W * (1.0 - weights)) @ H)


def _soft_mask(Vt, Vr):
    """``Vt^2 / (Vt^2 + Vr^2)``: the target's share of the power, from two magnitude estimates."""
    return Vt ** 2 / np.maximum(Vt ** 2 + Vr ** 2, 1e-20)


# ---------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------


def check_not_picture(target, *, name):
    """``target`` as an array, refused with a ValueError naming ``name`` when it is one picture (H, W, 3).

    A separation follows what moves with the target's sound, so it needs frames (T, H, W, 3);
    the route that separated by one picture's appearance was withdrawn (module docstring).

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.separation import check_not_picture
    >>> check_not_picture(np.zeros((50, 64, 64, 3), np.uint8), name="target_frames").shape
    (50, 64, 64, 3)
    >>> check_not_picture(np.zeros((64, 64, 3), np.uint8), name="target_frames")
    Traceback (most recent call last):
        ...
    ValueError: target_frames is one picture of shape (64, 64, 3): ...
    """
    arr = np.asarray(target)
    if arr.ndim == 3 and arr.shape[-1] == 3:
        raise ValueError(
            f"{name} is one picture of shape {arr.shape}: separation follows what moves with the target's sound "
            "and needs frames (T, H, W, 3) aligned with the mixture (a video of the target: its motion, or its "
            "speaking face). Separating by one picture's appearance was withdrawn: on real pictures with their "
            "sounds it did not separate (+0.0 dB median, docs/benchmarks.md)")
    return arr


def _check_region(region, frames):
    """``None``, a box (x0, y0, x1, y1) in pixels, or a (T, H, W) non-negative weight mask."""
    T, H, W, _ = frames.shape
    if region is None:
        return None
    arr = np.asarray(region)
    if arr.ndim == 1:
        if arr.size != 4 or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in arr.tolist()):
            raise ValueError(f"region must be a box (x0, y0, x1, y1) in pixels or a (T, H, W) weight mask; "
                             f"got {region!r}")
        x0, y0, x1, y1 = (int(round(float(v))) for v in arr)
        x0, y0 = max(x0, 0), max(y0, 0)
        x1, y1 = min(x1, W), min(y1, H)
        if x1 - x0 < 1 or y1 - y0 < 1:
            raise ValueError(f"region box {tuple(arr.tolist())} does not overlap the {W}x{H} frames "
                             "(expected x0 < x1, y0 < y1 in pixels)")
        mask = np.zeros((H, W), dtype=np.float32)
        mask[y0:y1, x0:x1] = 1.0
        return np.broadcast_to(mask, (T, H, W))
    if arr.ndim == 2:
        arr = np.broadcast_to(arr, (T,) + arr.shape)
    if arr.ndim != 3 or arr.shape[1:] != (H, W) or arr.shape[0] < T:
        raise ValueError(f"region mask must have shape (T, H, W) = ({T}, {H}, {W}) like the frames (or (H, W)); "
                         f"got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) and arr.dtype != bool:
        raise TypeError(f"region mask must be numeric weights; got dtype {arr.dtype}")
    arr = arr[:T].astype(np.float32)
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError("region mask must hold finite weights >= 0")
    if not np.any(arr > 0):
        raise ValueError("region mask is zero everywhere: nothing to point at")
    return arr


def _check_coverage(n_frames, fps, n_samples, sample_rate):
    """Frames must cover the audio to within one frame; return how many frames are used."""
    duration = n_samples / sample_rate
    covered = n_frames / fps
    if covered < duration - 1.0 / fps - 1e-9:
        raise ValueError(
            f"target_frames cover {covered:.3f} s ({n_frames} frames at {fps:g} fps) but mixed_audio lasts "
            f"{duration:.3f} s: the frames must cover the mixture to within one frame "
            f"(trim the audio or pass frames for all of it)"
        )
    return min(n_frames, int(np.ceil(duration * fps)) + 1)


# ---------------------------------------------------------------------------
# Motion and scores
# ---------------------------------------------------------------------------


def _region_motion(frames, weights):
    """Camera-compensated block change averaged over the region's weights, (T,)."""
    k = block_size(frames.shape[1], frames.shape[2])
    grey = grey_blocks(frames, k)
    T, h, w = grey.shape
    wb = weights[:, : h * k, : w * k].reshape(T, h, k, w, k).mean(axis=(2, 4))
    changes = np.abs(frame_changes(grey))
    total = wb.sum(axis=(1, 2))
    energy = (changes * wb).sum(axis=(1, 2)) / np.maximum(total, 1e-12)
    energy[total <= 0] = 0.0
    if T > 1:
        energy[0] = energy[1]  # no frame before the first: as motion_energy
    return energy


def _standardise(x):
    x = x - x.mean(axis=-1, keepdims=True)
    sd = np.sqrt((x * x).mean(axis=-1, keepdims=True))
    return np.where(sd > 0, x / np.where(sd > 0, sd, 1.0), 0.0)


def _scores(acts, motion, sigma, shifts):
    """Scores (K,) of each activation against the motion, and (n_shifts, K) against shifted motion."""
    a = _standardise(gaussian_filter1d(acts, sigma, axis=-1, mode="nearest"))
    ao = _standardise(gaussian_filter1d(rises(acts), sigma, axis=-1, mode="nearest"))
    m = _standardise(gaussian_filter1d(motion, sigma, mode="nearest"))
    mo = _standardise(gaussian_filter1d(rises(motion), sigma, mode="nearest"))
    lags = np.concatenate([[0], shifts]).astype(int)
    s = ((1 - _ONSET_WEIGHT) * _circular_correlation(a, m, lags)
         + _ONSET_WEIGHT * _circular_correlation(ao, mo, lags)) / acts.shape[-1]   # (L, K)
    return s[0], s[1:]


def _circular_correlation(x, y, lags):
    """``sum_t x[k, t] * y[(t - s) mod M]`` for each lag ``s``, (L, K): the rows of ``x`` against
    ``y`` circularly shifted by ``s`` (``np.roll(y, s)``), all lags at once by FFT."""
    M = x.shape[-1]
    c = np.fft.irfft(np.fft.rfft(x, axis=-1) * np.conj(np.fft.rfft(y)), n=M, axis=-1)
    return c[:, lags % M].T


def _result(audio, target, confidence, return_residual, details=None):
    """``target`` (float32, never NaN), then the residual (``audio - target``, so the two sum to the
    mixture), the confidence and the details, each when asked for (not None)."""
    target = np.nan_to_num(target).astype(np.float32)
    out = [target]
    if return_residual:
        out.append(audio - target)
    out += [x for x in (confidence, details) if x is not None]
    return out[0] if len(out) == 1 else tuple(out)


def _confidence(z_best):
    """[0, 1] from the best component's z against the null of best z's."""
    return float(expit((z_best - _CONFIDENCE_Z) / _CONFIDENCE_WIDTH))


#: The speech route's confidence: how far the correlation of the mouth's opening with the speech
#: estimate's loudness stands above the same correlation with the opening circularly shifted by
#: at least _SPEECH_MIN_SHIFT seconds, in units of that null's spread: 0.5 at _SPEECH_Z, soft edge
#: _SPEECH_WIDTH. On the real talking heads of ``benchmarks/real_separation.py`` (6 s mixtures),
#: the speaker's voice mixed with unrelated recordings reaches z 2-9 (median 3.7), and the same
#: frames over two unrelated recordings at most 2.0: confidence 0.08 there, and the output of an
#: absent voice >= 26 dB quieter than the mixture (:func:`_no_harm`).
_SPEECH_Z = 3.0
_SPEECH_WIDTH = 0.4
_SPEECH_MIN_SHIFT = 0.5


def mouth_guide(mixed_audio, sample_rate, tracks, n_frames, fps):
    """The opening of the mouth that follows the mixture's speech, per frame: a :func:`separate` guide.

    Parameters
    ----------
    mixed_audio : ndarray of shape (n_samples,)
        The mixture, starting with the first frame.
    sample_rate : int
    tracks : sequence of face tracks
        Each with ``frames`` (n,) and ``points`` (n, 468, 3) (``EncodingContext.face_tracks``
        of the target's frames).
    n_frames : int
    fps : float

    Returns
    -------
    guide : ndarray of shape (n_frames,) or None
        :func:`~skavc.features.mouth_opening` of the face, among those seen in at least half the
        frames, whose mouth follows the mixture's speech band most closely on average
        (:func:`~skavc.features.mouth_speech_correlation`), its gaps filled, delayed by
        :data:`~skavc.features.MOUTH_LEAD` (the lips open before the sound) so that frame ``f``
        holds the opening that goes with the sound at ``f / fps``. None without such a face.

    Examples
    --------
    Two faces seen for 4 s at 25 fps (Face Mesh landmarks: eye corners 33 and 263, inner lips 13
    and 14), one saying what is heard, one whose lips move with other words:

    >>> import numpy as np
    >>> from types import SimpleNamespace
    >>> from skavc.separation import mouth_guide
    >>> opening = np.repeat(np.random.default_rng(0).random(25), 4)  # the mouth's opening, syllable by syllable
    >>> points = np.zeros((100, 468, 3))
    >>> points[:, 263, 0], points[:, 14, 1] = 1.0, opening
    >>> loudness = np.interp(np.arange(64000) / 16000, np.arange(100) / 25, opening)
    >>> voice = np.random.default_rng(1).standard_normal(64000) * loudness  # 16 kHz
    >>> faces = [SimpleNamespace(frames=np.arange(100), points=p) for p in (points[::-1], points)]
    >>> guide = mouth_guide(voice, 16000, faces, 100, 25.0)
    >>> guide.shape, bool(np.corrcoef(guide, opening)[0, 1] > 0.8)  # the speaker's mouth, one value per frame
    ((100,), True)
    """
    speech = speech_at_frames(np.asarray(mixed_audio, dtype=np.float64), sample_rate, n_frames, fps)
    best, best_rho = None, -np.inf
    for track in tracks:
        if len(track.frames) < MIN_FACE_SHARE * n_frames:
            continue
        opening = np.full(n_frames, np.nan)
        opening[np.asarray(track.frames, dtype=np.intp)] = mouth_opening(track.points)
        rho = np.nanmean(mouth_speech_correlation(opening, speech, fps))
        if rho > best_rho:
            best, best_rho = opening, rho
    if best is None:
        return None
    times = np.arange(n_frames) / fps
    return np.interp(times - MOUTH_LEAD, times, fill_gaps(best))


def mouth_evidence(speech, sample_rate, guide, fps, *, min_shift=_SPEECH_MIN_SHIFT):
    """How clearly a speech estimate's loudness follows a mouth, in units of chance.

    Parameters
    ----------
    speech : ndarray of shape (n_samples,)
        The speech estimate, starting with the first frame.
    sample_rate : int
    guide : ndarray of shape (T,)
        The mouth's opening per frame, aligned with the sound (:func:`mouth_guide`).
    fps : float
    min_shift : float, default=0.5
        Smallest circular shift (s) of the opening in the chance level.

    Returns
    -------
    z : float
        Pearson correlation of the opening with the speech band's loudness
        (:func:`~skavc.features.speech_at_frames`) over the whole clip, less its mean over every
        circular shift of the opening by at least ``min_shift``, over their standard deviation;
        0 for a silent estimate, a still mouth or a clip too short for two shifts.

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.separation import mouth_evidence
    >>> opening = np.repeat(np.random.default_rng(0).random(25), 4)  # a mouth's opening: 4 s at 25 fps
    >>> loudness = np.interp(np.arange(64000) / 16000, np.arange(100) / 25, opening)
    >>> voice, other = np.random.default_rng(1).standard_normal((2, 64000))  # 16 kHz
    >>> bool(mouth_evidence(voice * loudness, 16000, opening, 25.0) > 3)  # the mouth's voice: well above chance
    True
    >>> bool(mouth_evidence(other, 16000, opening, 25.0) < 3)  # a sound it does not make
    True
    """
    T = guide.size
    loudness = speech_at_frames(speech, sample_rate, T, fps, lead=0.0)
    step = max(1, int(round(min_shift * fps)))
    shifts = np.arange(step, T - step + 1)
    if shifts.size < 2 or np.ptp(loudness) <= 1e-12 or np.ptp(guide) <= 1e-12:
        return 0.0
    rho = _circular_correlation(_standardise(loudness)[None], _standardise(guide),
                                np.concatenate([[0], shifts]))[:, 0] / T
    null = rho[1:]
    return float((rho[0] - null.mean()) / max(null.std(), 1e-6))


def separate_speech(mixed_audio, sample_rate, guide, fps, enhancer):
    """The voice of a speaking face: a speech enhancer's estimate, trusted as far as the mouth follows it.

    Parameters
    ----------
    mixed_audio : ndarray of shape (n_samples,)
    sample_rate : int
    guide : ndarray of shape (T,)
        The face's mouth opening, aligned with the sound (:func:`mouth_guide`).
    fps : float
    enhancer : object with ``enhance(audio) -> speech`` at 16 kHz
        ``skavc.encoders._speech.SpeechEnhancer`` (``EncodingContext.speech_enhancer``).

    Returns
    -------
    target : ndarray of shape (n_samples,), float64
        ``g(c) * (t(c) * speech + (1 - t(c)) * mixture)`` (:func:`_no_harm`): the speech estimate
        where the mouth follows it, a quieter copy of the mixture where it does not (never worse
        than the mixture; an absent voice comes out quiet).
    confidence : float
        ``c = expit((z - 3) / 0.4)`` with ``z`` = :func:`mouth_evidence`.

    Examples
    --------
    A mouth opening and closing for 4 s at 25 fps, its voice (16 kHz) as loud as it is open, and music:

    >>> import numpy as np
    >>> from skavc import AVCorrespondence
    >>> from skavc.separation import separate_speech
    >>> opening = np.repeat(np.random.default_rng(0).random(25), 4)  # the guide (mouth_guide), one value per frame
    >>> loudness = np.interp(np.arange(64000) / 16000, np.arange(100) / 25, opening)
    >>> voice = np.random.default_rng(1).standard_normal(64000) * loudness
    >>> music = 0.5 * np.sin(2 * np.pi * 440 * np.arange(64000) / 16000)
    >>> enhancer = AVCorrespondence()._context().speech_enhancer()  # as the estimator builds it
    >>> target, confidence = separate_speech(voice + music, 16000, opening, 25.0, enhancer)
    >>> target.shape, bool(confidence > 0.5)
    ((64000,), True)
    >>> bool(np.corrcoef(target, voice)[0, 1] > 0.5), bool(abs(np.corrcoef(target, music)[0, 1]) < 0.1)
    (True, True)
    """
    from .encoders._speech import SAMPLE_RATE

    n = mixed_audio.size
    speech = _resample(enhancer.enhance(_resample(mixed_audio, sample_rate, SAMPLE_RATE)), SAMPLE_RATE,
                       sample_rate)
    speech = np.pad(speech[:n], (0, max(0, n - speech.size)))
    confidence = float(expit((mouth_evidence(speech, sample_rate, guide, fps) - _SPEECH_Z) / _SPEECH_WIDTH))
    return _no_harm(speech, confidence, mixed_audio), confidence


#: Confidence from which a separation's estimate is trusted over the mixture (half-way, with a
#: soft edge of _TRUSTED_SOFTNESS): the motion route's best component 1.4 null spreads above
#: chance. Present targets of generated clips score 0.17-1.0 (bench_separation.py, 40 targets);
#: the real masks that made their targets worse, 0.01-0.05 (benchmarks/real_separation.py).
_TRUSTED = 0.1
_TRUSTED_SOFTNESS = 0.015


def _no_harm(estimate, confidence, whole=1.0):
    """``g(c) * (t(c) * estimate + (1 - t(c)) * whole)``: ``t(c) = expit((c - 0.1) / 0.015)``,
    ``g(c) = c * min(1, 2 c)``.

    The estimate (a mask, or a signal with ``whole`` the mixture) where there is evidence for it
    (:data:`_TRUSTED`), the mixture itself where there is none: BSS Eval's SDR does not see a
    gain, so an unguided separation scores as the mixture and is never worse than it. The gain
    says how sure the separation is: about ``c`` from 0.5 up, ``2 c^2`` below, so that an absent
    target comes out >= 26 dB quieter than the mixture on the real mixtures of
    ``benchmarks/real_separation.py`` (with the gain ``c`` alone, one came out 16.8 dB quieter).
    """
    trust = expit((confidence - _TRUSTED) / _TRUSTED_SOFTNESS)
    return confidence * min(1.0, 2.0 * confidence) * (trust * estimate + (1.0 - trust) * whole)


# ---------------------------------------------------------------------------
# The task
# ---------------------------------------------------------------------------


def separate(mixed_audio, sample_rate, target_frames, fps, *, region=None, guide=None, face_tracks=None,
             speech_enhancer=None, return_residual=False, return_confidence=False, n_components=16, tolerance=0.04,
             min_shift=0.25, return_details=False):
    """The sound of the source that moves like ``target_frames``, taken out of ``mixed_audio``.

    Parameters
    ----------
    mixed_audio : array-like of shape (n_samples,)
        Mono mixture, any rate (the STFT is sized in seconds: :func:`stft_settings`).
    sample_rate : int
        Rate of ``mixed_audio`` in Hz (>= 1000). The output has the same rate and length.
    target_frames : ndarray of shape (T, H, W, 3), uint8
        Frames aligned with the mixture (frame ``f`` shows the instant ``f / fps``) in which the
        target moves when it sounds: the target alone, or full frames with ``region``. They must
        cover the mixture to within one frame; frames beyond the end of the audio are ignored.
        One picture (H, W, 3) is refused (:func:`check_not_picture`).
    fps : float
        Frame rate of ``target_frames``.
    region : None, (x0, y0, x1, y1) or ndarray of shape (T, H, W) or (H, W), default=None
        Where the target is in the frames: a box in pixels (``x1``, ``y1`` exclusive) or
        non-negative weights per pixel (a ``localize`` map). Only the motion inside it counts.
    guide : None or array-like of shape (T,), default=None
        What moves with the target's sound, one value per frame, in place of the frames' motion:
        a speaking face's mouth opening (:func:`mouth_guide`), which follows speech far more
        closely than the motion of the frames around it.
    face_tracks : None or callable, default=None
        ``face_tracks(frames) -> tracks`` (``EncodingContext.face_tracks``): without ``guide`` and
        ``region``, a face seen in at least half the frames guides the separation by its mouth
        (:func:`mouth_guide`); the frames' motion guides it otherwise.
    speech_enhancer : None or object with ``enhance(audio) -> speech`` at 16 kHz, default=None
        ``EncodingContext.speech_enhancer()``: with it, a face that guides by its mouth is taken
        to be speaking, and its voice is the speech enhancer's estimate, trusted as far as the
        mouth follows it (:func:`separate_speech`) instead of the NMF components that follow it.
    return_residual : bool, default=False
        Also return ``mixed_audio - target`` (exactly: the two sum to the mixture).
    return_confidence : bool, default=False
        Also return the confidence in [0, 1] that the target is heard in the mixture. Where it
        is low the output is a quieter copy of the mixture (see Returns), never a confident guess.
    n_components : int, default=16
        NMF components.
    tolerance : float, default=0.04
        Seconds of Gaussian smoothing (sd) applied to activations and motion before they are
        compared: how far an audio onset may be from the motion's and still count.
    min_shift : float, default=0.25
        Smallest circular shift, in seconds, of the motion in the chance (null) scores.
    return_details : bool, default=False
        Also return a dict with the NMF (``W``, ``H``), the scores, z's, weights and the mask.

    Returns
    -------
    target : ndarray of shape (n_samples,), float32
        ``g(c) * (t(c) * m + 1 - t(c)) * mixture`` in the STFT domain (:func:`_no_harm`), ``m``
        the soft mask and ``c`` the confidence: the mask where there is evidence for it, the
        mixture itself, quieter, where there is none. A separation without evidence does no harm (the
        mixture's content, quieter: a target absent from the mixture came out >= 26 dB quieter
        on real mixtures) instead of keeping a wrong half of the mixture.
    residual : ndarray of shape (n_samples,), float32
        With ``return_residual``.
    confidence : float
        With ``return_confidence``.
    details : dict
        With ``return_details``.

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.datasets import make_av_clips
    >>> from skavc.separation import separate
    >>> clips, truth = make_av_clips(n_clips=1, duration=2.0, n_sources=2, random_state=0)
    >>> clip, (first, second) = clips[0], truth.sources[0]  # a mixture of two sounding objects
    >>> target, confidence = separate(clip.audio, clip.sample_rate, truth.source_frames[0][0], clip.fps,
    ...                               n_components=8, return_confidence=True)  # the first object's frames
    >>> target.shape, target.dtype, confidence > 0.5
    ((32000,), dtype('float32'), True)
    >>> bool(np.corrcoef(target, first)[0, 1] > 0.9), bool(abs(np.corrcoef(target, second)[0, 1]) < 0.1)
    (True, True)
    """
    audio = check_audio(mixed_audio, name="mixed_audio")
    sample_rate = check_sample_rate(sample_rate, name="sample_rate", minimum=_MIN_SAMPLE_RATE)
    fps = check_real(fps, name="fps", positive=True)
    arr = check_not_picture(target_frames, name="target_frames")
    frames = check_frames(arr, name="target_frames")
    n_components = check_int(n_components, name="n_components", minimum=1)
    tolerance = check_real(tolerance, name="tolerance", minimum=0.0)
    min_shift = check_real(min_shift, name="min_shift", positive=True)
    weights = _check_region(region, frames)
    n_used = _check_coverage(frames.shape[0], fps, audio.size, sample_rate)
    frames = frames[:n_used]
    if weights is not None:
        weights = weights[:n_used]
    if guide is not None:
        guide = np.asarray(guide, dtype=np.float64)
        if guide.shape != (arr.shape[0],):
            raise ValueError(f"guide must have one value per frame of target_frames, shape ({arr.shape[0]},); "
                             f"got {guide.shape}")
        if not np.isfinite(guide).all():
            raise ValueError("guide must be finite (fill the frames without a face first: skavc.features.fill_gaps)")
        guide = guide[:n_used]
    elif face_tracks is not None and weights is None:
        guide = mouth_guide(audio, sample_rate, face_tracks(frames), frames.shape[0], fps)
        if guide is not None and speech_enhancer is not None and np.any(audio):
            target, confidence = separate_speech(audio, sample_rate, guide, fps, speech_enhancer)
            return _result(audio, target, confidence if return_confidence else None, return_residual,
                           {"route": "speech", "guide": guide} if return_details else None)

    n = audio.size
    n_fft, hop = stft_settings(sample_rate)
    details = {"n_fft": n_fft, "hop": hop}
    target, confidence = np.zeros(n), 0.0
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    if guide is not None:
        motion, motion_times = guide - guide.min(), np.arange(guide.size) / fps
    else:
        motion = motion_energy(frames) if weights is None else _region_motion(frames, weights)
        motion_times = motion_energy_times(frames.shape[0], fps)
    if rms > _SILENCE_RMS and np.any(motion > 0) and n >= 2:
        X = _stft(audio, n_fft, hop)
        V = np.abs(X)
        times = np.arange(V.shape[1]) * hop / sample_rate
        track = np.interp(times, motion_times, motion)
        Wf, H = factorise(V, n_components)
        M = V.shape[1]
        step = max(1, int(round(min_shift * sample_rate / hop)))
        shifts = np.arange(step, M - step + 1)
        sigma = max(tolerance * sample_rate / hop, 1e-3)
        if shifts.size >= 2 and np.any(H.sum(axis=1) > 0):
            score, null = _scores(H, track, sigma, shifts)
            mu, sd = null.mean(), null.std()
            sd = sd if sd > 1e-12 else 1.0
            z = (score - mu) / sd
            z_null_best = ((null - mu) / sd).max(axis=1)
            zb_mu, zb_sd = z_null_best.mean(), max(z_null_best.std(), 1e-6)
            z_best = (z.max() - zb_mu) / zb_sd
            confidence = _confidence(z_best)
            w = expit((z - _ASSIGN_Z) / _ASSIGN_WIDTH)
            mask = _no_harm(wiener_mask(Wf, H, w), confidence)
            target = _istft(mask * X, n_fft, hop, n)
            details.update(W=Wf, H=H, scores=score, z=z, z_best=z_best, weights=w, mask=mask, track=track)
    return _result(audio, target, confidence if return_confidence else None, return_residual,
                   details if return_details else None)


# ---------------------------------------------------------------------------
# Long recordings: a window at a time
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SeparatedWindow:
    """A finished piece of a long separation: the pieces in order make the whole target.

    Attributes
    ----------
    start : float
        Seconds from the mixture's first sample to the piece's.
    target : ndarray of shape (n_samples,), float32
        The target's sound over the piece (crossfaded with the neighbouring windows where
        they overlap), at ``sample_rate``.
    residual : ndarray of shape (n_samples,), float32
        The rest of the mixture over the piece: ``target + residual`` is the mixture (the
        crossfade's weights sum to 1).
    confidence : float
        The confidence, in [0, 1], of the window the piece comes from that the target is heard
        in the mixture there (as :func:`separate` gives it).
    sample_rate : int
        Rate of ``target`` (the mixture's).

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.separation import SeparatedWindow
    >>> piece = SeparatedWindow(start=2.0, target=np.zeros(8000, np.float32), residual=np.ones(8000, np.float32),
    ...                         confidence=0.9, sample_rate=16000)
    >>> piece.start, piece.duration  # seconds from the mixture's start; the piece's length
    (2.0, 0.5)
    """

    start: float
    target: np.ndarray
    residual: np.ndarray
    confidence: float
    sample_rate: int

    @property
    def duration(self):
        """The piece's length in seconds."""
        return self.target.size / self.sample_rate


def crossfade_windows(windows, sample_rate, *, hop):
    """Overlapping windows' outputs joined into finished, consecutive pieces.

    Where window ``k`` and ``k + 1`` overlap, the output goes from the first to the second
    along complementary squared-sine ramps (their weights sum to 1, so a signal both windows
    give alike passes unchanged), and nothing else of either is changed.

    Parameters
    ----------
    windows : iterable of (target, residual, confidence)
        Each window's target and residual (ndarray of shape (n_k,) each) and confidence, in
        order; window ``k`` starts at sample ``round(k * hop * sample_rate)`` and reaches at
        least as far as the one before.
    sample_rate : int
    hop : float
        Seconds from one window's start to the next.

    Yields
    ------
    piece : SeparatedWindow
        One per window: from where the window starts (window 0: sample 0) to where the next
        one starts, the crossfade with the previous window at its head.

    Examples
    --------
    Two windows of 1 s that start 0.5 s apart, at 100 Hz:

    >>> import numpy as np
    >>> from skavc.separation import crossfade_windows
    >>> windows = [(np.ones(100), np.zeros(100), 0.9), (np.ones(100), np.zeros(100), 0.8)]
    >>> pieces = list(crossfade_windows(windows, 100, hop=0.5))
    >>> [(piece.start, piece.duration, piece.confidence) for piece in pieces]
    [(0.0, 0.5, 0.9), (0.5, 1.0, 0.8)]
    >>> bool(np.allclose(np.concatenate([piece.target for piece in pieces]), 1.0))  # the ramps sum to 1
    True
    """
    held, held_at, held_confidence = None, 0, 0.0  # the last window's outputs not yet given out

    def piece(outputs, at, confidence):
        target, residual = outputs.astype(np.float32)
        return SeparatedWindow(at / sample_rate, target, residual, confidence, sample_rate)

    for k, (target, residual, confidence) in enumerate(windows):
        outputs = np.stack([target, residual]).astype(np.float64)  # crossfaded alike
        start = int(round(k * hop * sample_rate))
        if held is not None:
            n_held = held.shape[1]
            keep = min(max(start - held_at, 0), n_held)  # the last window alone, up to this start
            n_shared = min(n_held - keep, outputs.shape[1])
            ramp = np.sin(0.5 * np.pi * (np.arange(n_shared) + 0.5) / max(n_shared, 1)) ** 2
            shared = held[:, keep : keep + n_shared] * (1.0 - ramp) + outputs[:, :n_shared] * ramp
            yield piece(held[:, :keep], held_at, held_confidence)
            outputs = np.concatenate([shared, outputs[:, n_shared:]], axis=1)
        held, held_at, held_confidence = outputs, start, float(confidence)
    if held is not None:
        yield piece(held, held_at, held_confidence)


_TARGET_TOO_SHORT = ("the target's frames end before the mixture does: they must cover the mixture (trim the "
                     "mixture, or give the whole video)")


def _paired(mixture_windows, target_windows, hop, sample_rate):
    """Mixture windows with the target's, in order, until the mixture ends.

    Where the target's windows end first, the mixture's later samples (window ``k`` starts at
    sample ``round(k * hop * sample_rate)``) join the last pair, for :func:`separate` to judge:
    a frame's worth (an audio encoder's padding) passes, more is refused; past
    :data:`_LONGEST_TAIL` seconds, here and now.
    """
    mixtures, targets = enumerate(mixture_windows), iter(target_windows)
    pending, target = next(mixtures, None), next(targets, None)
    while pending is not None:
        k, mixture = pending
        if target is None:
            raise ValueError(_TARGET_TOO_SHORT)
        pending, following = next(mixtures, None), next(targets, None)
        if following is None and pending is not None:
            mixture, pending = _with_rest(mixture, k, pending, mixtures, hop, sample_rate)
            if pending is not None:
                raise ValueError(_TARGET_TOO_SHORT)
        yield mixture, target
        target = following


def _with_rest(mixture, k, pending, mixtures, hop, sample_rate):
    """Window ``k``'s mixture with the new samples of the windows after it, up to
    :data:`_LONGEST_TAIL` seconds more; and the first window not taken (None: all were)."""
    start = round(k * hop * sample_rate)
    parts, end = [mixture], start + mixture.size
    while pending is not None and end - start - mixture.size <= _LONGEST_TAIL * sample_rate:
        j, later = pending
        later_start = round(j * hop * sample_rate)
        parts.append(later[end - later_start :])
        end = later_start + later.size
        pending = next(mixtures, None)
    return np.concatenate(parts), pending


#: Seconds of mixture past the target's last window gathered into it before the target is refused
#: as too short (a frame, an audio encoder's padding, are what it is for).
_LONGEST_TAIL = 1.0


def separate_windows(mixture_windows, sample_rate, target_windows, *, hop, region=None, region_size=None,
                     face_tracks=None, speech_enhancer=None, n_components=16, tolerance=0.04, min_shift=0.25):
    """:func:`separate` over a long mixture, a window at a time, the windows crossfaded.

    Each window is separated on its own (its own NMF, its own chance level and confidence),
    so memory follows the window, not the mixture's length, and a recording whose sources
    change over time is followed. A mixture no longer than one window gives :func:`separate`'s
    output exactly.

    Parameters
    ----------
    mixture_windows : iterable of ndarray of shape (n_samples,)
        The mixture's windows, in order (:func:`skavc.io.iter_audio` reads them from a file):
        window ``k`` starts at sample ``round(k * hop * sample_rate)``.
    sample_rate : int
        Rate of the mixture (>= 1000 Hz).
    target_windows : iterable of (ndarray of shape (T, H, W, 3), float)
        The frames (and their rate) of the target over the same windows
        (:func:`skavc.io.iter_clips`, with the same ``window`` and ``hop``): they must cover
        the mixture.
    hop : float
        Seconds from one window's start to the next; the windows overlap by their length less
        ``hop``, over which they are crossfaded (:func:`crossfade_windows`).
    region : None or (x0, y0, x1, y1), default=None
        Where the target is, a box in pixels of frames of ``region_size``.
    region_size : None or (int, int), default=None
        ``(height, width)`` the ``region`` box is measured in; None: the windows' frames. The
        box is scaled to each window's frames (a video decoded smaller keeps its box).
    face_tracks, speech_enhancer, n_components, tolerance, min_shift
        As in :func:`separate`, window by window (a face speaking in a window makes its voice that
        window's target).

    Yields
    ------
    piece : SeparatedWindow
        One per window, in order: concatenated, they are the target's sound over the whole
        mixture, at ``sample_rate``.

    Examples
    --------
    A mixture of two sounding objects, 3 s, in windows of 2 s that start 1 s apart:

    >>> import numpy as np
    >>> from skavc.datasets import make_av_clips
    >>> from skavc.separation import separate_windows
    >>> clips, truth = make_av_clips(n_clips=1, duration=3.0, n_sources=2, random_state=0)
    >>> mixture, (first, second), frames = clips[0].audio, truth.sources[0], truth.source_frames[0][0]
    >>> mixtures = [mixture[:32000], mixture[16000:]]  # 16 kHz
    >>> targets = [(frames[:50], 25.0), (frames[25:], 25.0)]  # the first object's frames, over the same windows
    >>> pieces = list(separate_windows(mixtures, 16000, targets, hop=1.0, n_components=8))
    >>> [(piece.start, piece.duration, bool(piece.confidence > 0.5)) for piece in pieces]
    [(0.0, 1.0, True), (1.0, 2.0, True)]
    >>> target = np.concatenate([piece.target for piece in pieces])
    >>> bool(np.corrcoef(target, first)[0, 1] > 0.9), bool(abs(np.corrcoef(target, second)[0, 1]) < 0.1)
    (True, True)
    """
    hop = check_real(hop, name="hop", positive=True)

    def each():
        for mixture, (frames, fps) in _paired(mixture_windows, target_windows, hop, sample_rate):
            box = _scaled_box(region, region_size, frames.shape[1:3])
            yield separate(mixture, sample_rate, frames, fps, region=box, face_tracks=face_tracks,
                           speech_enhancer=speech_enhancer, return_residual=True, return_confidence=True,
                           n_components=n_components, tolerance=tolerance, min_shift=min_shift)

    return crossfade_windows(each(), sample_rate, hop=hop)


def _scaled_box(region, region_size, size):
    """A box measured on frames of ``region_size`` (height, width), on frames of ``size``."""
    if region is None or region_size is None or tuple(region_size) == tuple(size):
        return region
    if np.asarray(region).ndim != 1:
        raise ValueError("region must be a box (x0, y0, x1, y1) when the frames are read a window at a time")
    (height, width), (h, w) = region_size, size
    x0, y0, x1, y1 = (float(v) for v in region)
    return (x0 * w / width, y0 * h / height, x1 * w / width, y1 * h / height)
