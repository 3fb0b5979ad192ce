"""Who is speaking: every face followed through the frames, and whether its mouth speaks the sound.

Active speaker detection without training. The faces come from MediaPipe's detector and Face Mesh
(``EncodingContext.face_tracks``: detected every few frames, followed between by their
landmarks); a face speaks in a frame when its mouth's opening rises and falls with the loudness
of the speech band over the seconds around it and a sound is heard
(:func:`skavc.features.tracks_speaking`). A face beside it whose lips move with words that are
not heard does not follow this sound, so it reads low.

:func:`find_speakers` takes an :class:`skavc._encoding.EncodingContext` and the clips,
:func:`speakers_windows` the windows of one long recording; ``AVCorrespondence.speakers`` and
``AVCorrespondence.speakers_windows`` delegate to them.
"""

from dataclasses import dataclass

import numpy as np

from .features import tracks_speaking

__all__ = ["SpeakerTrack", "SPEAKING_THRESHOLD", "find_speakers", "speaker_tracks", "speakers_windows"]

#: A face whose probability of speaking is at or above this counts as speaking in that frame.
SPEAKING_THRESHOLD = 0.5


@dataclass(frozen=True)
class SpeakerTrack:
    """One face followed through a clip, and when it speaks.

    Attributes
    ----------
    track : int
        The face's number within its clip (increasing in order of first appearance).
    frames : ndarray of shape (n,), int
        Frames in which the face is seen.
    boxes : ndarray of shape (n, 4), float
        Its box ``(x0, y0, x1, y1)`` in pixels of the frames, in each of them.
    speaking : ndarray of shape (n,), float in [0, 1]
        Probability that it speaks in each of them; >= :data:`SPEAKING_THRESHOLD`: speaking.

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.speakers import SpeakerTrack
    >>> face = SpeakerTrack(track=0, frames=np.array([3, 4, 5, 6]), boxes=np.tile([10.0, 20.0, 50.0, 70.0], (4, 1)),
    ...                     speaking=np.array([0.1, 0.7, 0.9, 0.4]))
    >>> face.speaking_frames()  # frames with a probability of speaking >= 0.5
    array([4, 5])
    >>> face.speaking_frames(threshold=0.95).size
    0
    """

    track: int
    frames: np.ndarray
    boxes: np.ndarray
    speaking: np.ndarray

    def speaking_frames(self, threshold=SPEAKING_THRESHOLD):
        """The frames in which the face speaks, (m,) int."""
        return self.frames[self.speaking >= threshold]


def speaker_tracks(audio, sample_rate, tracks, n_frames, fps):
    """:class:`SpeakerTrack` of each face track of one clip.

    Parameters
    ----------
    audio : ndarray of shape (n_samples,)
    sample_rate : int
    tracks : sequence of face tracks
        ``EncodingContext.face_tracks`` of the clip's frames.
    n_frames : int
    fps : float

    Returns
    -------
    list of SpeakerTrack

    Examples
    --------
    Two faces seen for 4 s at 25 fps (Face Mesh landmarks: eye corners 33 and 263, inner lips 13
    and 14), one saying what is heard, one whose lips move with other words:

    >>> import numpy as np
    >>> from types import SimpleNamespace
    >>> from skavc.speakers import speaker_tracks
    >>> opening = np.repeat(np.random.default_rng(0).random(25), 4)  # the mouth's opening, syllable by syllable
    >>> points = np.zeros((100, 468, 3))
    >>> points[:, 263, 0], points[:, 14, 1] = 1.0, opening
    >>> loudness = np.interp(np.arange(64000) / 16000, np.arange(100) / 25, opening)
    >>> voice = np.random.default_rng(1).standard_normal(64000) * loudness  # 16 kHz
    >>> box = np.tile([10.0, 10.0, 50.0, 60.0], (100, 1))  # (x0, y0, x1, y1) in each frame
    >>> faces = [SimpleNamespace(track=0, frames=np.arange(100), boxes=box, points=points),
    ...          SimpleNamespace(track=1, frames=np.arange(100), boxes=box + 60, points=points[::-1])]
    >>> [(face.track, face.speaking.shape, face.speaking_frames().size)
    ...  for face in speaker_tracks(voice, 16000, faces, 100, 25.0)]  # frames in which each speaks
    [(0, (100,), 83), (1, (100,), 0)]
    """
    speaking = tracks_speaking(audio, sample_rate, tracks, n_frames, fps)
    return [SpeakerTrack(track=int(t.track), frames=np.asarray(t.frames), boxes=np.asarray(t.boxes, dtype=np.float64),
                         speaking=np.asarray(p, dtype=np.float64)) for t, p in zip(tracks, speaking)]


def find_speakers(context, X):
    """The faces of each clip and when each speaks.

    Parameters
    ----------
    context : EncodingContext
    X : list of items (AVClip, (audio, frames) pairs or video paths)

    Returns
    -------
    speakers : list of list of SpeakerTrack
        Per clip, its faces (an empty list when none is seen).

    Examples
    --------
    >>> from skavc import AVCorrespondence
    >>> from skavc.datasets import make_av_clips
    >>> from skavc.speakers import find_speakers
    >>> context = AVCorrespondence()._context()  # as the estimator builds it
    >>> clips, truth = make_av_clips(n_clips=2, duration=2.0, random_state=0)
    >>> find_speakers(context, clips)  # per clip, its faces: generated clips show none
    [[], []]
    """
    def job(item, where):
        clip = context.clip(item, where)
        return speaker_tracks(clip.audio, clip.sample_rate, context.face_tracks(clip.frames), clip.n_frames, clip.fps)

    return context.map(job, X, desc="speakers")


def speakers_windows(context, windows):
    """The faces of a long recording and when each speaks, one window at a time.

    One tracker follows the faces from window to window, so a face keeps its number across
    windows; each window's speaking is judged on that window's sound alone.

    Parameters
    ----------
    context : EncodingContext
    windows : iterable of AVClip
        Consecutive windows of one recording, without overlap (``EncodingContext.windows``),
        read one at a time.

    Yields
    ------
    clip : AVClip
        The window (``clip.start``: seconds from the recording's first frame).
    speakers : list of SpeakerTrack
        Its faces; ``frames`` index the window's frames.

    Examples
    --------
    >>> from skavc import AVClip, AVCorrespondence
    >>> from skavc.datasets import make_av_clips
    >>> from skavc.speakers import speakers_windows
    >>> context = AVCorrespondence()._context()  # as the estimator builds it
    >>> clips, truth = make_av_clips(n_clips=1, duration=2.0, random_state=0)
    >>> audio, frames = clips[0].audio, clips[0].frames  # 16 kHz, 25 fps
    >>> windows = (AVClip(audio[k * 16000:(k + 1) * 16000], 16000, frames[k * 25:(k + 1) * 25], 25.0, start=float(k))
    ...            for k in range(2))  # two windows of 1 s, read one at a time
    >>> [(clip.start, speakers) for clip, speakers in speakers_windows(context, windows)]  # no face is seen
    [(0.0, []), (1.0, [])]
    """
    from .encoders._faces import gather_tracks

    tracker = context.face_tracker()
    for clip in windows:
        tracks = gather_tracks(tracker.update(clip.frames))
        yield clip, speaker_tracks(clip.audio, clip.sample_rate, tracks, clip.n_frames, clip.fps)
        del clip, tracks
