"""Audio-visual synchronisation: how far the sound is ahead of (or behind) the picture.

Two estimators share one output, a *sync curve* (score per candidate offset, in units of its
chance level):

- "learned": a SyncNet-style head (:class:`SyncHead`) trained by
  ``AVCorrespondence.fit(sync=True)`` through :func:`fit_sync_head`;
- "signal": training-free, visual motion energy against audio onset strength with a
  whitened (GCC-PHAT-like) cross-correlation (:func:`signal_sync_curve`);
- "face": training-free, as "signal" with the mouth's opening (MediaPipe's face detector and
  Face Mesh landmarks: :func:`skavc.features.mouth_opening`) in place of the whole frame's
  motion (:func:`mouth_sync_curve`), for a speaking face;
- "naive": the baseline, raw energy envelopes and plain correlation (:func:`naive_sync_curve`).

Convention: offsets are in seconds, positive when the audio is AHEAD of the video (a sound is
heard before the picture shows its cause). The confidence (:func:`peak_offset`) is 0 for a flat
curve and reaches :data:`SYNC_CONFIDENCE_THRESHOLD` (0.5) at a peak 5 units above chance; how
that threshold was measured is in ``docs/benchmarks.md`` ("Synchronisation").

The task functions take an :class:`skavc._encoding.EncodingContext` and the fitted head as
arguments; ``AVCorrespondence.predict_offset`` and ``sync_curve`` delegate to them.
"""

import numpy as np
from scipy.special import expit
from sklearn.exceptions import NotFittedError

from .._encoding import clip_tracks  # lived here before _encoding: still importable from here
from .._validation import check_audio, check_option
from ..features import grid_times, resample_track  # likewise
from ..features import onset_envelope
from ._learned import SYNC_RATE, SyncHead, context_windows, diagonal_curve
from ._signal import (
    SYNC_CONFIDENCE_THRESHOLD,
    default_resolution,
    estimate_offset,
    motion_series,
    motion_sync_curve,
    mouth_sync_curve,
    speaking_face_curve,
    face_or_whole,
    naive_sync_curve,
    null_standardise,
    peak_offset,
    signal_sync_curve,
)
from ._timeline import SyncTimeline, combine_curves, fit_drift, sync_timeline

__all__ = [
    "METHODS",
    "SYNC_CONFIDENCE_THRESHOLD",
    "SOUND_SERIES_RESOLUTION",
    "SYNC_RATE",
    "SyncHead",
    "SyncTimeline",
    "clip_tracks",
    "combine_curves",
    "context_windows",
    "diagonal_curve",
    "estimate_offset",
    "fit_drift",
    "fit_sync_head",
    "fit_timing",
    "grid_times",
    "motion_series",
    "motion_sync_curve",
    "mouth_sync_curve",
    "speaking_face_curve",
    "face_or_whole",
    "naive_sync_curve",
    "null_standardise",
    "offsets_from_curves",
    "pair_evidence",
    "peak_evidence",
    "peak_offset",
    "resample_track",
    "resolve_method",
    "signal_sync_curve",
    "sound_series",
    "sync_curves",
    "sync_timeline",
    "timing_evidence",
    "timing_probability",
]

METHODS = ("auto", "learned", "signal", "face", "naive")


def resolve_method(method, sync_head):
    """The method ``"auto"`` falls back on ("learned" when there is a head, else "signal"), checked.

    ``"auto"`` itself stays "auto": :func:`sync_curves` then follows a speaking face's mouth
    where one is seen and this fallback elsewhere.

    Examples
    --------
    >>> from skavc.sync import resolve_method
    >>> resolve_method("auto", None), resolve_method("signal", None)
    ('auto', 'signal')
    >>> resolve_method("learned", None)  # no sync head fitted
    Traceback (most recent call last):
        ...
    sklearn.exceptions.NotFittedError: method='learned' needs a sync head: ...
    """
    check_option(method, name="method", options=METHODS)
    if method == "learned" and sync_head is None:
        raise NotFittedError(
            "method='learned' needs a sync head: a model fitted with sync=True first "
            "(AVCorrespondence(sync=True).fit(X)), or use method='signal'"
        )
    return method


def sync_curves(context, X, method, *, sync_head=None, max_offset=1.0):
    """Score of every candidate offset, per clip.

    Parameters
    ----------
    context : EncodingContext
    X : list of items (AVClip, (audio, frames) pairs or video paths)
    method : {"auto", "learned", "signal", "face", "naive"}
        As resolved by :func:`resolve_method`. "auto": the mouth of the face that speaks
        (:func:`speaking_face_curve`) when a face is seen in at least half of the frames and
        its mouth follows the sound (:func:`face_or_whole`); otherwise "learned" with a sync
        head, else "signal".
    sync_head : SyncHead or None
        Needed by "learned".
    max_offset : float
        Largest offset searched, seconds either way.

    Returns
    -------
    curves : list of (offsets, scores)
        Per clip, offsets (seconds, positive = audio ahead) and scores (chance units).

    Examples
    --------
    >>> from skavc import AVCorrespondence
    >>> from skavc.datasets import make_av_clips
    >>> from skavc.sync import sync_curves
    >>> context = AVCorrespondence()._context()  # as the estimator builds it
    >>> clips, truth = make_av_clips(n_clips=1, duration=2.0, offset_range=(0.2, 0.2), random_state=0)
    >>> (offsets, scores), = sync_curves(context, clips, "signal", max_offset=0.5)
    >>> offsets.shape, round(float(offsets[scores.argmax()]), 2), bool(scores.max() > 5)  # s, audio ahead
    ((101,), 0.19, True)
    """
    def whole_frame(clip, where):
        if method == "learned" or (method == "auto" and sync_head is not None):
            a_track, v_track, _ = context.track(clip, where, SYNC_RATE)
            return sync_head.curve(a_track, v_track, max_offset)
        curve = naive_sync_curve if method == "naive" else signal_sync_curve
        return curve(clip.audio, clip.sample_rate, clip.frames, clip.fps, max_offset=max_offset)

    def face(clip):
        # the mouth's opening (Face Mesh) in place of the whole frame's motion: what moves with
        # speech is the speaking face's mouth, not the head or the other faces
        return speaking_face_curve(clip.audio, clip.sample_rate, context.face_tracks(clip.frames), clip.n_frames,
                                   clip.fps, max_offset=max_offset, frames=clip.frames)

    def job(item, where):
        clip = context.clip(item, where)
        if method == "face":
            curve = face(clip)
            if curve is None:
                raise ValueError(f"{where}: no face seen in half of the frames; method='face' follows a speaking "
                                 "mouth: use method='signal' for anything else")
            return curve
        fallback = whole_frame(clip, where)
        return face_or_whole(face(clip), fallback) if method == "auto" else fallback

    return context.map(job, X, desc="sync")


def offsets_from_curves(curves):
    """Best offset (s) and confidence of each curve (:func:`peak_offset`), two arrays (n_clips,).

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.sync import offsets_from_curves
    >>> offsets = np.linspace(-0.5, 0.5, 101)
    >>> peaked, flat = 10 * np.exp(-((offsets - 0.12) / 0.03) ** 2), np.zeros(101)
    >>> best, confidence = offsets_from_curves([(offsets, peaked), (offsets, flat)])
    >>> best.round(2), confidence.round(2)  # seconds, positive = audio ahead; in [0, 1]
    (array([0.12, 0.  ]), array([0.91, 0.  ]))
    """
    results = [peak_offset(offsets, scores) for offsets, scores in curves]
    return (np.array([r[0] for r in results], dtype=np.float64),
            np.array([r[1] for r in results], dtype=np.float64))


def fit_sync_head(context, X, *, epochs, rng, learning_rate=1e-3, alpha=1e-4, log=None):
    """Train a :class:`SyncHead` on the clips of ``X`` (their own timing is the truth).

    ``log(epoch, loss)`` as :func:`skavc._training.progress_logger` gives it.

    Examples
    --------
    >>> import numpy as np
    >>> from skavc import AVCorrespondence
    >>> from skavc.datasets import make_av_clips
    >>> from skavc.sync import fit_sync_head
    >>> context = AVCorrespondence()._context()  # as the estimator builds it
    >>> clips, truth = make_av_clips(n_clips=1, duration=1.0, random_state=0)
    >>> head = fit_sync_head(context, clips, epochs=2, rng=np.random.RandomState(0))
    >>> type(head).__name__, len(head.loss_curve_)  # one InfoNCE loss per epoch
    ('SyncHead', 2)
    """
    tracks = context.tracks(X, SYNC_RATE)
    return SyncHead(learning_rate=learning_rate, alpha=alpha).fit(
        [t[0] for t in tracks], [t[1] for t in tracks], epochs, rng, log
    )


def peak_evidence(curves):
    """Each curve's best score, in chance units (0 for a flat curve): the timing evidence, (n_clips,).

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.sync import peak_evidence
    >>> offsets = np.linspace(-0.5, 0.5, 101)  # seconds
    >>> peaked, flat = 10 * np.exp(-((offsets - 0.12) / 0.03) ** 2), np.zeros(101)
    >>> peak_evidence([(offsets, peaked), (offsets, flat)])  # chance units
    array([10.,  0.])
    """
    return np.array([float(np.max(scores)) if np.ptp(scores) > 0 else 0.0 for _, scores in curves])


#: The grid step at which :func:`sound_series` analyses a sound once: the one every picture at
#: up to 50 fps is searched with (:func:`~skavc.sync._signal.default_resolution`).
SOUND_SERIES_RESOLUTION = 0.01


def sound_series(audio, sample_rate):
    """A sound reduced once for :func:`pair_evidence` against many pictures: (audio, sample_rate, onsets).

    ``onsets`` is its ``onset_envelope`` at :data:`SOUND_SERIES_RESOLUTION`, most of the work of
    a sync curve; the picture's side is ``(motion_series(frames), fps)``.

    Examples
    --------
    >>> from skavc.datasets import make_av_clips
    >>> from skavc.sync import sound_series
    >>> clips, truth = make_av_clips(n_clips=1, duration=2.0, random_state=0)
    >>> audio, sample_rate, (envelope, times) = sound_series(clips[0].audio, clips[0].sample_rate)
    >>> audio.shape, sample_rate, envelope.shape, round(float(times[1] - times[0]), 3)  # onsets every 10 ms
    ((32000,), 16000, (201,), 0.01)
    """
    audio = check_audio(audio, name="audio")
    return audio, sample_rate, onset_envelope(audio, sample_rate, hop_seconds=SOUND_SERIES_RESOLUTION)


def pair_evidence(sound, picture, *, max_offset=1.0):
    """:func:`peak_evidence` of a :func:`sound_series` against a picture ``(motion_series(frames), fps)``.

    Examples
    --------
    >>> from skavc.datasets import make_av_clips
    >>> from skavc.sync import motion_series, pair_evidence, sound_series
    >>> clips, truth = make_av_clips(n_clips=2, duration=2.0, random_state=0)
    >>> sound = sound_series(clips[0].audio, clips[0].sample_rate)  # reduced once, for any number of pictures
    >>> own, other = (pair_evidence(sound, (motion_series(clip.frames), clip.fps)) for clip in clips)
    >>> bool(own > 5), bool(other < 5)  # chance units: its own frames stand out, another clip's do not
    (True, True)
    """
    audio, sample_rate, onsets = sound
    motion, fps = picture
    reuse = default_resolution(fps) == SOUND_SERIES_RESOLUTION  # else analysed again at a finer step
    curve = motion_sync_curve(audio, sample_rate, motion, fps, max_offset=max_offset,
                              onsets=onsets if reuse else None)
    return peak_evidence([curve])[0]


def timing_evidence(context, X, partners, *, max_offset=1.0):
    """Sync evidence of each clip's sound against its own frames and against another clip's.

    Parameters
    ----------
    context : EncodingContext
    X : list of items (AVClip, (audio, frames) pairs or video paths)
    partners : ndarray of shape (n_clips,), int
        Whose frames each clip's sound is also scored against.
    max_offset : float

    Returns
    -------
    own, partnered : ndarray of shape (n_clips,)
        :func:`peak_evidence` of sound ``i`` with frames ``i`` and with frames ``partners[i]``.
        Each clip is decoded once and only its sound and its frames' :func:`motion_series`
        are kept, so a large ``X`` of videos never sits in memory decoded.

    Examples
    --------
    >>> import numpy as np
    >>> from skavc import AVCorrespondence
    >>> from skavc.datasets import make_av_clips
    >>> from skavc.sync import timing_evidence
    >>> context = AVCorrespondence()._context()  # as the estimator builds it
    >>> clips, truth = make_av_clips(n_clips=2, duration=2.0, random_state=0)
    >>> own, partnered = timing_evidence(context, clips, np.array([1, 0]))  # each sound with the other's frames
    >>> own.shape, bool((own > 5).all() and (partnered < 5).all())  # chance units
    ((2,), True)
    """
    def reduce(item, where):
        clip = context.clip(item, where)
        return sound_series(clip.audio, clip.sample_rate), (motion_series(clip.frames), clip.fps)

    series = context.map(reduce, X, desc="sync series")

    def peak(pair, where):
        return pair_evidence(series[pair[0]][0], series[pair[1]][1], max_offset=max_offset)

    n = len(series)
    pairs = [(i, i) for i in range(n)] + [(i, int(j)) for i, j in enumerate(partners)]
    peaks = np.asarray(context.map(peak, pairs, desc="sync pairs"), dtype=np.float64)
    return peaks[:n], peaks[n:]


def fit_timing(cosines, peaks, same_event):
    """How the semantic cosine and the sync evidence combine into P(one event), by logistic regression.

    Parameters
    ----------
    cosines, peaks : ndarray of shape (n_pairs,)
        Cosine of a pair's audio and visual embeddings; the peak of its training-free sync curve
        (:func:`peak_evidence`).
    same_event : ndarray of shape (n_pairs,), bool
        Whether the audio and the frames come from the same clip.

    Returns
    -------
    coefficients : ndarray of shape (3,)
        Weights of the cosine and of the peak, and the intercept (:func:`timing_probability`).
        Fitted on the pairs given, so the probability is calibrated for their mix of same and
        different events (``class_weight="balanced"``: as if 1:1) and for their cosines; in
        ``AVCorrespondence.fit`` those are the training clips' own, so it is optimistic on new clips.

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.sync import fit_timing
    >>> rng = np.random.default_rng(0)
    >>> same = np.arange(200) % 2 == 0  # pairs of a clip's own sound and frames, and of two clips'
    >>> cosines = np.where(same, 0.6, 0.2) + 0.1 * rng.standard_normal(200)
    >>> peaks = np.where(same, 8.0, 2.0) + 2.0 * rng.standard_normal(200)  # chance units
    >>> coefficients = fit_timing(cosines, peaks, same)
    >>> coefficients.shape, bool(coefficients[0] > 0 and coefficients[1] > 0)  # both make one event likelier
    ((3,), True)
    """
    from sklearn.linear_model import LogisticRegression

    features = np.column_stack([cosines, peaks])
    model = LogisticRegression(C=1.0, class_weight="balanced").fit(features, np.asarray(same_event, dtype=int))
    return np.r_[model.coef_[0], model.intercept_]


def timing_probability(coefficients, cosines, peaks):
    """P(the sound and the frames are one event) from :func:`fit_timing`'s coefficients, (n,).

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.sync import timing_probability
    >>> coefficients = np.array([4.0, 0.5, -4.0])  # weights of the cosine and of the peak, and the intercept
    >>> timing_probability(coefficients, [0.6, 0.2], [8.0, 2.0]).round(2)  # a matched pair, an unrelated one
    array([0.92, 0.1 ])
    """
    return expit(coefficients[0] * np.asarray(cosines) + coefficients[1] * np.asarray(peaks) + coefficients[2])
