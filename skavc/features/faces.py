"""Mouth shape from face landmarks: arrays of Face Mesh points in, one value per frame out.

The points are MediaPipe Face Mesh's 468 landmarks (``skavc.encoders._faces.FaceLandmarker``),
in pixels; a frame without a face holds NaN. Distances are divided by the distance between the
outer eye corners, so that a face near the camera and one far away open their mouths alike.
"""

import numpy as np
from scipy.special import expit

from .audio import sound_presence, speech_envelope

#: Face Mesh indices: the inner lips at the centre (upper, lower), the mouth corners (right,
#: left) and the outer eye corners (right, left), the face's scale.
INNER_LIPS = (13, 14)
MOUTH_CORNERS = (61, 291)
EYE_CORNERS = (33, 263)


def _in_eye_corner_units(points, pair):
    """Distance between the landmarks ``pair`` over the eye-corner distance, per frame (T,)."""
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 3 or points.shape[1] != 468 or points.shape[2] not in (2, 3):
        raise ValueError(f"points must be Face Mesh landmarks of shape (T, 468, 2 or 3); got {points.shape}")

    def distance(a, b):
        return np.linalg.norm(points[:, a, :2] - points[:, b, :2], axis=-1)

    with np.errstate(invalid="ignore", divide="ignore"):
        return distance(*pair) / distance(*EYE_CORNERS)


def mouth_opening(points):
    """Gap between the inner lips in each frame, in units of the face's eye-corner distance.

    Parameters
    ----------
    points : ndarray of shape (T, 468, 2 or 3)
        Face Mesh landmarks (x, y[, z]) in pixels of one face per frame; NaN where a frame has
        no face.

    Returns
    -------
    opening : ndarray of shape (T,), float64
        About 0 with the lips closed, 0.3-0.6 wide open; NaN where there is no face.

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.features import mouth_opening
    >>> points = np.zeros((2, 468, 2))  # Face Mesh landmarks (x, y) in pixels, two frames
    >>> points[:, 263] = (40, 0)  # outer eye corners (33 and 263) 40 px apart
    >>> points[1, 14] = (0, 16)  # inner lips (13 and 14): together, then 16 px apart
    >>> mouth_opening(points)  # in eye-corner distances
    array([0. , 0.4])
    """
    return _in_eye_corner_units(points, INNER_LIPS)


def mouth_width(points):
    """Distance between the mouth corners in each frame, in eye-corner distances; as :func:`mouth_opening`.

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.features import mouth_width
    >>> points = np.zeros((1, 468, 2))  # Face Mesh landmarks (x, y) in pixels, one frame
    >>> points[:, 263] = (40, 0)  # outer eye corners (33 and 263) 40 px apart
    >>> points[:, 291] = (20, 0)  # mouth corners (61 and 291) 20 px apart
    >>> mouth_width(points)  # in eye-corner distances
    array([0.5])
    """
    return _in_eye_corner_units(points, MOUTH_CORNERS)


#: Face Mesh indices around the lips: the corners (61, 291), the top of the upper lip (0) and the
#: bottom of the lower lip (17).
_LIP_OUTLINE = (61, 291, 0, 17)


def mouth_boxes(points, margin=0.25):
    """The box around the lips in each frame, grown by ``margin`` of the mouth's width on every side.

    Parameters
    ----------
    points : ndarray of shape (T, 468, 2 or 3)
        Face Mesh landmarks in pixels.
    margin : float, default=0.25

    Returns
    -------
    boxes : ndarray of shape (T, 4), float64
        ``(x0, y0, x1, y1)`` in pixels; NaN where the face is not seen.

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.features import mouth_boxes
    >>> points = np.zeros((1, 468, 2))  # Face Mesh landmarks (x, y) in pixels, one frame
    >>> points[0, [61, 291, 0, 17]] = [(50, 80), (70, 80), (60, 75), (60, 85)]  # lip corners, top, bottom
    >>> mouth_boxes(points)  # (x0, y0, x1, y1) in pixels, grown by a quarter of the 20 px mouth width
    array([[45., 70., 75., 90.]])
    """
    lips = np.asarray(points, dtype=np.float64)[:, list(_LIP_OUTLINE), :2]
    low, high = lips.min(axis=1), lips.max(axis=1)
    grow = margin * (high[:, :1] - low[:, :1])
    return np.concatenate([low - grow, high + grow], axis=1)


#: Percentile of the grey levels in the mouth's box that :func:`mouth_darkness` reads: the dark
#: inside of an open mouth fills more than a fifth of the box, closed lips and skin do not.
_DARK_PERCENTILE = 20


def mouth_darkness(frames, boxes):
    """How dark the mouth is in each frame: its open inside, seen in the pixels, not the landmarks.

    Where a face is too small for the landmarks to tell the lips apart (a 50-pixel webcam face),
    its mouth still darkens as it opens.

    Parameters
    ----------
    frames : ndarray of shape (T, H, W, 3), uint8
    boxes : ndarray of shape (T, 4)
        :func:`mouth_boxes` in pixels of ``frames``; NaN where the face is not seen.

    Returns
    -------
    darkness : ndarray of shape (T,), float64
        Minus the 20th percentile of the grey levels (0-255) in the box: higher when darker;
        NaN where the face is not seen or the box lies outside the frame.

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.features import mouth_darkness
    >>> frames = np.full((2, 64, 64, 3), 200, np.uint8)  # light skin
    >>> frames[1, 30:40, 25:40] = 20  # frame 1: the dark inside of an open mouth
    >>> mouth_darkness(frames, boxes=[[20, 25, 45, 45]] * 2)  # the same mouth box (pixels) in both frames
    array([-200.,  -20.])
    """
    frames = np.asarray(frames)
    boxes = np.asarray(boxes, dtype=np.float64)
    if frames.ndim != 4 or boxes.shape != (frames.shape[0], 4):
        raise ValueError(f"frames (T, H, W, 3) and boxes (T, 4) must have one row per frame; got {frames.shape} "
                         f"and {boxes.shape}")
    H, W = frames.shape[1:3]
    darkness = np.full(frames.shape[0], np.nan)
    for t in np.flatnonzero(np.isfinite(boxes).all(axis=1)):
        x0, y0 = max(int(boxes[t, 0]), 0), max(int(boxes[t, 1]), 0)
        x1, y1 = min(int(np.ceil(boxes[t, 2])), W), min(int(np.ceil(boxes[t, 3])), H)
        if x1 > x0 and y1 > y0:
            grey = frames[t, y0:y1, x0:x1].mean(axis=-1)
            darkness[t] = -np.percentile(grey, _DARK_PERCENTILE)
    return darkness


def track_points(frames, points, n_frames):
    """A face track's landmarks laid out over all the frames of its clip, NaN where it is not seen.

    Parameters
    ----------
    frames : array-like of int, shape (n,)
        Frame indices at which the track was seen.
    points : ndarray of shape (n, 468, 3)
        Its landmarks in those frames.
    n_frames : int

    Returns
    -------
    ndarray of shape (n_frames, 468, 3), float32

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.features import track_points
    >>> points = track_points([1, 3], np.ones((2, 468, 3)), n_frames=5)  # a face seen in frames 1 and 3
    >>> points.shape, points.dtype, np.isfinite(points[:, 0, 0])
    ((5, 468, 3), dtype('float32'), array([False,  True, False,  True, False]))
    """
    out = np.full((n_frames, *np.shape(points)[1:]), np.nan, dtype=np.float32)
    out[np.asarray(frames, dtype=np.intp)] = points
    return out


def fill_gaps(series):
    """A series with its NaN (frames without a face) filled by linear interpolation, the ends held.

    Parameters
    ----------
    series : array-like of shape (T,)

    Returns
    -------
    filled : ndarray of shape (T,), float64
        All NaN when ``series`` has no finite value.

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.features import fill_gaps
    >>> fill_gaps([1.0, np.nan, 3.0, np.nan])  # NaN: frames without a face
    array([1., 2., 3., 3.])
    """
    series = np.array(series, dtype=np.float64)
    known = np.isfinite(series)
    if known.any() and not known.all():
        series[~known] = np.interp(np.flatnonzero(~known), np.flatnonzero(known), series[known])
    return series


#: Seconds by which a speaking mouth's opening leads the speech-band loudness it goes with: the
#: lips open before the sound follows. The median of the nine real talking heads of
#: ``benchmarks/real_talk.py`` at the offset they were published with (their own values
#: -0.066..+0.039 s; ``benchmarks/real_talk.py`` reports each clip's with it left out).
MOUTH_LEAD = 0.025

#: Standard deviation (s) of the Gaussian window a face's speaking is judged over: with 1.0 s,
#: the speaking face of two side by side was found in 0.95 of speech frames on the real talking
#: heads, 0.97 with 1.5 s; longer windows blur turns between speakers.
SPEAKING_WINDOW = 1.5
#: Windowed correlation at which a face is as likely speaking as not, and the logistic's scale:
#: on those pairs the speaking face's correlation has median 0.39 (10th percentile 0.13), the
#: other face's median 0.0 (90th percentile 0.19).
_SPEAKING_RHO = 0.17
_SPEAKING_SOFTNESS = 0.05
#: How much less than the best face's a face's correlation may be and still count as speaking
#: (two people talking at once).
_RIVAL_MARGIN = 0.1
#: A face seen in fewer than this share of a clip's frames does not stand for the clip's sound
#: (lip sync, the voice to separate): its mouth would be guessed (held) over most of the clip.
MIN_FACE_SHARE = 0.5


def speech_at_frames(audio, sample_rate, n_frames, fps, *, lead=MOUTH_LEAD):
    """The speech-band loudness (:func:`~skavc.features.speech_envelope`) that goes with each frame's mouth.

    Parameters
    ----------
    audio : ndarray of shape (n_samples,)
    sample_rate : int
    n_frames : int
    fps : float
    lead : float, default=:data:`MOUTH_LEAD`
        Seconds the mouth leads its sound: frame ``f`` gets the loudness at ``f / fps + lead``.

    Returns
    -------
    speech : ndarray of shape (n_frames,), float64

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.features import speech_at_frames
    >>> sr = 16000; t = np.arange(sr) / sr
    >>> audio = np.sin(2 * np.pi * 2000 * t) * (t >= 0.5)  # a 2 kHz tone (in the speech band) from 0.5 s
    >>> speech = speech_at_frames(audio, sr, n_frames=25, fps=25)  # frame f: the loudness at f / 25 + 0.025 s
    >>> speech.shape, speech[10:15].round(2)  # frame 12 (0.48 s) hears the tone its lips lead
    ((25,), array([0.  , 0.  , 1.04, 1.22, 1.22]))
    """
    envelope, times = speech_envelope(audio, sample_rate)
    return np.interp(np.arange(n_frames) / fps + lead, times, envelope)


def mouth_speech_correlation(opening, speech, fps, *, window=SPEAKING_WINDOW):
    """How closely a mouth's opening follows the speech around each frame.

    Parameters
    ----------
    opening : ndarray of shape (T,)
        :func:`mouth_opening` per frame, NaN where the face is not seen (filled across gaps,
        ends held).
    speech : ndarray of shape (T,)
        :func:`speech_at_frames`.
    fps : float
    window : float, default=:data:`SPEAKING_WINDOW`
        Standard deviation in seconds of the Gaussian window around each frame.

    Returns
    -------
    rho : ndarray of shape (T,)
        Pearson correlation within each frame's window, in [-1, 1]; 0 where either is constant;
        NaN where the face is not seen at all. Where the face is seen in only part of the window
        (a face that comes and goes, a track of a few frames), the correlation counts for what so
        few frames can show: its Fisher z, ``arctanh(r) * sqrt(n - 3)`` over the ``n`` frames
        (Gaussian-weighted effective number) in which the face is seen, is read back as a
        correlation over the frames of the clip the window covers, so a face seen throughout
        keeps its Pearson correlation and a track of 3 frames or fewer gets 0.

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.features import mouth_speech_correlation
    >>> speech = np.sin(np.linspace(0, 6 * np.pi, 100)) ** 2  # 4 s at 25 fps: six syllables
    >>> follows = mouth_speech_correlation(0.4 * speech, speech, fps=25)  # a mouth opening with them
    >>> still = mouth_speech_correlation(np.full(100, 0.2), speech, fps=25)  # a mouth that does not move
    >>> follows.shape, round(float(follows.min()), 2), float(still.max())
    ((100,), 1.0, 0.0)
    """
    opening = np.asarray(opening, dtype=np.float64)
    speech = np.asarray(speech, dtype=np.float64)
    if opening.shape != speech.shape or opening.ndim != 1:
        raise ValueError(f"opening and speech must be series of one length; got {opening.shape} and {speech.shape}")
    rho = np.full(opening.shape, np.nan)
    seen = np.isfinite(opening)
    if not seen.any():
        return rho
    # Gaussian-weighted moments by filtering (O(T), a long clip's frames never meet in a T x T
    # matrix); frames without the face weigh 0, frames beyond the clip's ends count as absent
    from scipy.ndimage import gaussian_filter1d

    w = seen.astype(np.float64)
    x = np.where(seen, opening, 0.0)
    y = np.where(seen, speech, 0.0)

    sigma = max(window * fps, 1e-6)

    def smooth(v):
        return gaussian_filter1d(v, sigma=sigma, mode="constant", cval=0.0)

    total = np.maximum(smooth(w), 1e-12)
    mx, my = smooth(x) / total, smooth(y) / total
    var_x = np.maximum(smooth(x * x) / total - mx**2, 0.0)
    var_y = np.maximum(smooth(y * y) / total - my**2, 0.0)
    cov = smooth(x * y) / total - mx * my
    # a constant series (a still mouth, silence) correlates with nothing: 0, not noise over noise
    ok = (var_x > 1e-12 * max(1.0, float(np.max(x * x)))) & (var_y > 1e-12 * max(1.0, float(np.max(y * y))))
    r = np.clip(np.where(ok, cov / np.sqrt(np.where(ok, var_x * var_y, 1.0)), 0.0), -1.0, 1.0)
    n_seen = _effective_frames(w, sigma)
    n_clip = _effective_frames(np.ones_like(w), sigma)
    shrink = np.sqrt(np.maximum(n_seen - 3.0, 0.0) / np.maximum(n_clip - 3.0, 1e-12))
    r = np.tanh(np.arctanh(np.clip(r, -0.999999, 0.999999)) * np.minimum(shrink, 1.0))
    rho[seen] = r[seen]
    return rho


def _effective_frames(weights, sigma):
    """Per frame, the effective number ``(sum g w)^2 / sum (g w)^2`` of frames of 0/1 ``weights``
    in a Gaussian window ``g`` of ``sigma`` frames."""
    from scipy.ndimage import gaussian_filter1d

    radius = int(4.0 * sigma + 0.5)
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel /= kernel.sum()
    first = gaussian_filter1d(weights, sigma=sigma, mode="constant", cval=0.0)
    # g^2 is a Gaussian of sd sigma / sqrt(2) scaled by sum(g^2) (gaussian_filter1d normalises it)
    second = gaussian_filter1d(weights, sigma=sigma / np.sqrt(2.0), mode="constant", cval=0.0) * np.sum(kernel**2)
    return first**2 / np.maximum(second, 1e-12)


def speaking_probability(rho, presence, rival=None):
    """Probability that a face is speaking in each frame, from :func:`mouth_speech_correlation`.

    Parameters
    ----------
    rho : ndarray of shape (T,)
        :func:`mouth_speech_correlation` (NaN: face not seen).
    presence : ndarray of shape (T,)
        How clearly sound is heard in each frame, in [0, 1]
        (:func:`~skavc.features.sound_presence`): a face cannot be speaking in silence.
    rival : ndarray of shape (T,) or None, default=None
        The highest correlation of the other faces in each frame (NaN or None: no other face).
        A face whose mouth follows the sound clearly less than another's is not the one
        speaking: two real speakers side by side, the silent one's lips still move with words
        of their own, which now and then correlate with the sound by chance.

    Returns
    -------
    probability : ndarray of shape (T,), in [0, 1]
        ``expit((rho - 0.17) / 0.05) * presence``, times ``expit((rho - rival + 0.1) / 0.05)``
        with a rival; 0 where the face is not seen. Calibrated on the real talking heads of
        ``benchmarks/real_talk.py`` (each face beside another, the sound of one): a face whose
        mouth follows the sound reads above 0.5 in most speech frames, the other face below it.

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.features import speaking_probability
    >>> rho = np.array([0.6, 0.0, 0.6, np.nan])  # mouth-speech correlations; NaN: the face is not seen
    >>> speaking_probability(rho, presence=[1, 1, 0, 1]).round(2)  # frame 2 is silent
    array([1.  , 0.03, 0.  , 0.  ])
    >>> speaking_probability([0.6, 0.4], [1, 1], rival=[np.nan, 0.7]).round(2)  # frame 1: another face follows better
    array([1.  , 0.02])
    """
    rho = np.asarray(rho, dtype=np.float64)
    seen = np.isfinite(rho)
    rho = np.where(seen, rho, -1.0)
    probability = np.where(seen, expit((rho - _SPEAKING_RHO) / _SPEAKING_SOFTNESS), 0.0)
    if rival is not None:
        rival = np.nan_to_num(np.asarray(rival, dtype=np.float64), nan=-np.inf)
        probability *= expit((rho - rival + _RIVAL_MARGIN) / _SPEAKING_SOFTNESS)
    return probability * np.clip(np.asarray(presence, dtype=np.float64), 0.0, 1.0)


def tracks_speaking(audio, sample_rate, tracks, n_frames, fps):
    """Each face track's probability of speaking in each frame it is seen (active speakers).

    Parameters
    ----------
    audio : ndarray of shape (n_samples,)
        The clip's sound, starting with its first frame.
    sample_rate : int
    tracks : sequence of face tracks
        Each with ``frames`` (n,) and ``points`` (n, 468, 3) (``EncodingContext.face_tracks``).
    n_frames : int
    fps : float

    Returns
    -------
    probabilities : list of ndarray of shape (n,)
        Per track, :func:`speaking_probability` in the frames it is seen: its mouth against the
        speech of the frames around (:data:`SPEAKING_WINDOW`), gated by how clearly a sound is
        heard (:func:`~skavc.features.sound_presence` over each frame's span).

    Examples
    --------
    >>> import numpy as np
    >>> from types import SimpleNamespace as Track
    >>> from skavc.features import tracks_speaking
    >>> t = np.arange(48000) / 16000; audio = np.sin(2 * np.pi * t) ** 2 * np.sin(4000 * np.pi * t)  # 3 s of syllables
    >>> points = np.zeros((2, 75, 468, 3)); points[:, :, 263, 0] = 100  # two faces, 75 frames at 25 fps
    >>> points[0, :, 14, 1] = 50 * np.sin(2 * np.pi * np.arange(75) / 25) ** 2  # face 0's lips move with the syllables
    >>> probs = tracks_speaking(audio, 16000, [Track(frames=range(75), points=p) for p in points], n_frames=75, fps=25)
    >>> [p.shape for p in probs], [round(float(p.mean()), 2) for p in probs]  # per face, per frame it is seen
    ([(75,), (75,)], [0.78, 0.0])
    """
    if not tracks:
        return []
    speech = speech_at_frames(audio, sample_rate, n_frames, fps)
    presence = sound_presence(audio, sample_rate, np.arange(n_frames) / fps + MOUTH_LEAD, 1.0 / fps)
    rho = np.empty((len(tracks), n_frames))  # NaN where a face is not seen
    for i, track in enumerate(tracks):
        opening = np.full(n_frames, np.nan)
        opening[np.asarray(track.frames, dtype=np.intp)] = mouth_opening(track.points)
        rho[i] = mouth_speech_correlation(opening, speech, fps)
    seen = np.where(np.isnan(rho), -np.inf, rho)
    out = []
    for i, track in enumerate(tracks):
        others = np.delete(seen, i, axis=0)
        rival = others.max(axis=0) if len(others) else np.full(n_frames, -np.inf)
        rival = np.where(np.isfinite(rival), rival, np.nan)  # no other face in that frame
        out.append(speaking_probability(rho[i], presence, rival)[np.asarray(track.frames, dtype=np.intp)])
    return out
