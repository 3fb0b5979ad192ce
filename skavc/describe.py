"""What silent frames should sound like: sound-event names with scores, and when.

``expected_sounds`` gives, per clip, the AudioSet sound events (527 names, Google, CC BY 4.0)
that what the frames show would make, with scores, and the moments a sound is expected.

- **What**: the visual encoder's ImageNet-1k posteriors handed to the AudioSet names through the
  text space (:func:`skavc._text_space.transfer_matrix`): a dog's classes give "Dog", "Bark",
  "Howl"...; with a text map learnt from captions in ``fit``, its scores over the same names
  join as a product of experts.
- **When**: onsets of movement in the frames (:func:`skavc.features.motion_energy`, camera shake
  and flicker removed): local maxima of the motion's rise that stand out from the clip's own
  level, in seconds on the video's clock. Impacts, steps and gestures start there; a still
  picture gives none.

``describe_sentence`` turns one clip's result into the sentence ``describe_expected_audio``
returns, e.g. "Expected: dog (0.41), bark (0.22), howl (0.09); sound events likely near 0.4 s,
1.2 s, 2.9 s."
"""

import numpy as np
from scipy.signal import find_peaks

from ._text_space import ZERO_SHOT_TEMPERATURE, combine_experts, embed_texts, sharpen, transfer_matrix
from ._vocabularies import audioset_names
from ._validation import check_frames, check_positive, check_real
from .features import motion_energy, motion_energy_times, rises, sample_frame_indices

__all__ = ["EVENT_THRESHOLD", "describe_sentence", "expected_sounds", "motion_onsets"]

#: An onset is a local maximum of the motion's rise above this many robust standard deviations
#: (1.4826 MAD) over the clip's median rise, and above 1 grey level: small, steady motion
#: (drift, noise) never counts.
EVENT_THRESHOLD = 4.0
# Onsets closer than this (seconds) are one event.
_MIN_GAP = 0.2


def motion_onsets(frames, fps, *, threshold=EVENT_THRESHOLD, min_gap=_MIN_GAP):
    """Times (s) at which visible movement starts: the expected sound events.

    Parameters
    ----------
    frames : ndarray of shape (T, H, W, 3), uint8
    fps : float
    threshold : float
        In robust standard deviations of the motion's frame-to-frame rise.
    min_gap : float
        Seconds between two onsets, at least.

    Returns
    -------
    times : ndarray of shape (n_onsets,)
        Seconds on the video clock (frame ``f`` shows ``f / fps``), ascending.

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.datasets import make_av_clips
    >>> from skavc.describe import motion_onsets
    >>> clips, truth = make_av_clips(n_clips=1, duration=2.0, random_state=0)
    >>> times = motion_onsets(clips[0].frames, clips[0].fps)
    >>> times.round(2)  # seconds on the video clock
    array([0.34, 0.62, 0.94, 1.38])
    >>> bool(np.abs(times - truth.onsets[0][0]).max() < 0.05)  # the object's sound events
    True
    """
    frames = check_frames(frames, name="frames")
    fps = check_positive(fps, name="fps")
    threshold = check_real(threshold, name="threshold")
    min_gap = check_real(min_gap, name="min_gap", minimum=0.0)
    energy = motion_energy(frames)
    if energy.size < 3:
        return np.zeros(0)
    rise = rises(energy)
    level = np.median(rise)
    spread = 1.4826 * np.median(np.abs(rise - level))
    # Local maxima above the bar, the strongest kept where two are closer than min_gap; a zero
    # appended so that a rise in the last frame can count.
    peaks, _ = find_peaks(np.append(rise, 0.0), height=max(level + threshold * spread, 1.0),
                          distance=max(1, int(np.ceil(min_gap * fps - 1e-9))))
    return motion_energy_times(energy.size, fps)[peaks]


def expected_sounds(context, X, *, text_encoder, n_visual_frames, top_k=5, text_map=None, text_weight=0.5,
                    embed=None):
    """Per clip, the expected sound-event names with scores and the times of expected events.

    Parameters
    ----------
    context : EncodingContext
    X : list of items: AVClip, (audio, frames) pairs, paths, frame arrays (T, H, W, 3) or images (H, W, 3)
        Only the frames are used (the audio may be absent or silent).
    text_encoder : text encoder
    n_visual_frames : int
        Frames whose classifier posteriors are averaged.
    top_k : int
    text_map : TextMap or None
        Learnt from captions in ``fit``; needs ``embed``.
    text_weight : float
        Its weight against the frames' classes (learnt in ``fit``).
    embed : callable or None
        Pooled visual features (n, Fv) -> visual embeddings in the shared space the text map
        reads (silent frames stand in for the clip: the space puts matching sound beside them).

    Returns
    -------
    results : list of dict
        Per clip ``{"sounds": [(name, score), ...] (best first, top_k), "times": [seconds, ...]}``.

    Examples
    --------
    >>> from skavc import AVCorrespondence
    >>> from skavc.datasets import make_av_clips
    >>> from skavc.describe import expected_sounds
    >>> (clip,), _ = make_av_clips(n_clips=1, duration=1.0, random_state=0)
    >>> model = AVCorrespondence()  # what its expected_sounds method passes, before any fit
    >>> (result,) = expected_sounds(model._context(), [clip.frames], text_encoder=model._text_encoder(),
    ...                             n_visual_frames=4, top_k=3)
    >>> len(result["sounds"]), sorted(result)
    (3, ['sounds', 'times'])
    """
    names = audioset_names()

    def job(item, where):
        frames, fps = context.frames(item[None] if _is_image(item) else item, where)
        idx = sample_frame_indices(frames.shape[0], n_visual_frames)
        # One graph run gives both, cached under the same key as classify_scene's frames.
        features, posteriors = (x.mean(axis=0) for x in context.encode_frames_and_class_posteriors(frames[idx]))
        return posteriors, features, motion_onsets(frames, fps)

    results = context.map(job, X, desc="describe")
    P = np.stack([r[0] for r in results])
    name_embeddings = embed_texts(text_encoder, names)
    scores = sharpen(P @ transfer_matrix(embed_texts(text_encoder, context.class_names), name_embeddings),
                     ZERO_SHOT_TEMPERATURE)
    if text_map is not None:
        Z = embed(np.stack([r[1] for r in results]))
        scores = combine_experts(scores, text_map.predict_proba(Z, name_embeddings), weights=[1 - text_weight, text_weight])
    out = []
    for row, (_, _, times) in zip(scores, results):
        best = np.argsort(row)[::-1][:top_k]
        out.append({"sounds": [(names[k], float(row[k])) for k in best], "times": [float(t) for t in times]})
    return out


def _is_image(item):
    return isinstance(item, np.ndarray) and item.ndim == 3 and item.shape[-1] == 3


def describe_sentence(result, max_times=6):
    """One readable sentence from one clip's :func:`expected_sounds` result.

    Examples
    --------
    >>> from skavc.describe import describe_sentence
    >>> describe_sentence({"sounds": [("Dog", 0.41), ("Bark", 0.22)], "times": [0.4, 1.2]})
    'Expected: dog (0.41), bark (0.22); sound events likely near 0.4 s, 1.2 s.'
    >>> describe_sentence({"sounds": [("Wind", 0.3)], "times": []})
    'Expected: wind (0.30); no visible movement marks a moment.'
    """
    sounds = ", ".join(f"{name.lower()} ({score:.2f})" for name, score in result["sounds"])
    times = result["times"]
    if not times:
        when = "no visible movement marks a moment"
    else:
        shown = ", ".join(f"{t:.1f} s" for t in times[:max_times])
        more = f" and {len(times) - max_times} more" if len(times) > max_times else ""
        when = f"sound events likely near {shown}{more}"
    return f"Expected: {sounds}; {when}."
