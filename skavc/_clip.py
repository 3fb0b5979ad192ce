"""The audio-visual clip: one mono waveform and the frames that go with it."""

import warnings
from dataclasses import InitVar, dataclass, field

import numpy as np

from ._validation import check_audio, check_frames, check_positive, check_real, check_sample_rate


#: How far the audio's and the frames' durations may disagree, as a fraction of the longer: more
#: (and more than two frame periods) and they cannot cover one span of time, so the clip is refused.
#: Decoded files always agree to a sample (:func:`skavc.load_clip` pads or cuts the audio).
DURATION_TOLERANCE = 0.1
#: Below these a clip is merely poor and warns (:class:`ClipQualityWarning`): the visual encoder
#: sees 224 x 224 pixels, upsampled from anything smaller, and the audio encoders' shortest
#: analysis window is 0.1 s (Whisper's 20 ms steps are pooled; EfficientNet-mel's are 0.25 s).
MIN_FRAME_SIDE = 32
MIN_AUDIO_DURATION = 0.1


class ClipQualityWarning(UserWarning):
    """A clip skavc can encode, but whose embeddings and timing say little (tiny frames, one frame,
    a few samples of audio). Silence it with ``warnings.simplefilter("ignore", ClipQualityWarning)``.

    Examples
    --------
    >>> import warnings
    >>> import numpy as np
    >>> from skavc import AVClip, ClipQualityWarning
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     clip = AVClip(np.zeros(16000, np.float32), 16000, np.zeros((1, 16, 16, 3), np.uint8), 25.0)
    >>> [issubclass(w.category, ClipQualityWarning) for w in caught]  # one frame only; frames under 32 pixels
    [True, True]
    """


def check_durations(n_samples, sample_rate, n_frames, fps, *, where="the clip", warn=True):
    """Refuse audio and frames that cannot cover one span of time; warn on a clip that is merely poor.

    Parameters
    ----------
    n_samples, sample_rate : int
        Length of the audio and its rate (Hz).
    n_frames : int
    fps : float
    where : str
        Name of the clip in messages.
    warn : bool, default=True
        Whether a poor clip (one frame, audio under :data:`MIN_AUDIO_DURATION`) warns.

    Raises
    ------
    ValueError
        When there are two frames or more and the audio's duration (``n_samples / sample_rate``)
        and the frames' (``n_frames / fps``) differ by more than :data:`DURATION_TOLERANCE` of
        the longer and by more than two frame periods. One frame is a still picture: any
        length of audio goes with it (with a warning).
    """
    audio_seconds, frames_seconds = n_samples / sample_rate, n_frames / fps
    gap = abs(audio_seconds - frames_seconds)
    if n_frames > 1 and gap > max(2.0 / fps, DURATION_TOLERANCE * max(audio_seconds, frames_seconds)):
        raise ValueError(
            f"{where}: the audio lasts {audio_seconds:.3f} s ({n_samples} samples at {sample_rate} Hz) but the "
            f"frames {frames_seconds:.3f} s ({n_frames} frames at {fps:g} fps); they must cover the same span of "
            f"time (within {DURATION_TOLERANCE:.0%} of the longer). Check sample_rate and fps, or cut both to "
            "the same span")
    if not warn:
        return
    if n_frames == 1:
        warnings.warn(f"{where}: one frame only, a still picture without motion, so sync, localisation and "
                      "timing have nothing to go on", ClipQualityWarning, stacklevel=4)
    if audio_seconds < MIN_AUDIO_DURATION:
        warnings.warn(f"{where}: the audio lasts {1000 * audio_seconds:.1f} ms (under {MIN_AUDIO_DURATION:g} s), "
                      "so its embedding says little", ClipQualityWarning, stacklevel=4)


@dataclass(eq=False)
class AVClip:
    """A short video: mono audio and RGB frames covering the same span of time.

    Parameters
    ----------
    audio : ndarray of shape (n_samples,)
        Mono waveform, converted to float32. Must be finite and non-empty.
    sample_rate : int
        Sampling rate of ``audio`` in Hz.
    frames : ndarray of shape (n_frames, height, width, 3), dtype uint8
        RGB frames.
    fps : float
        Frame rate of ``frames`` in frames per second.
    source : str or None, default=None
        Where the clip came from (a file path), for messages only.
    start : float, default=0.0
        Seconds from the first video frame of the recording it was cut from to its own first
        frame (a window of a long video: :func:`skavc.io.iter_clips`); 0 for a whole recording.
    check_quality : bool, default=True
        Warn (:class:`ClipQualityWarning`) when the clip is poor. The windows of a long video
        after its first are built without (the first says what holds for all of them, and the
        last is often a few frames that its task leaves out).

    Raises
    ------
    ValueError
        When the audio and the frames cannot cover one span of time (:func:`~skavc._clip.check_durations`).

    Warns
    -----
    ClipQualityWarning
        For a clip skavc can encode but whose embeddings say little: one frame, frames
        smaller than ``MIN_FRAME_SIDE`` (32) pixels, audio shorter than 0.1 s.

    Examples
    --------
    >>> import numpy as np
    >>> from skavc import AVClip
    >>> clip = AVClip(np.zeros(32000, np.float32), 16000, np.zeros((50, 64, 64, 3), np.uint8), 25.0)
    >>> clip.duration, clip.n_frames
    (2.0, 50)
    """

    audio: np.ndarray
    sample_rate: int
    frames: np.ndarray
    fps: float
    source: str = field(default=None)
    start: float = 0.0
    check_quality: InitVar[bool] = True

    def __post_init__(self, check_quality):
        self.audio = check_audio(self.audio, name="audio")
        self.frames = check_frames(self.frames, name="frames")
        self.sample_rate = check_sample_rate(self.sample_rate, name="sample_rate")
        self.fps = check_positive(self.fps, name="fps")
        self.start = check_real(self.start, name="start", minimum=0.0)
        where = f"the clip from '{self.source}'" if self.source else "the clip"
        check_durations(self.audio.shape[0], self.sample_rate, self.frames.shape[0], self.fps, where=where,
                        warn=check_quality)
        if check_quality and min(self.frames.shape[1:3]) < MIN_FRAME_SIDE:
            warnings.warn(f"{where}: the frames are {self.frames.shape[2]}x{self.frames.shape[1]} pixels (under "
                          f"{MIN_FRAME_SIDE} on a side), so the visual encoder sees them upsampled to 224x224 and "
                          "its embedding says little", ClipQualityWarning, stacklevel=3)

    @property
    def duration(self):
        """Length of the audio in seconds."""
        return self.audio.shape[0] / self.sample_rate

    @property
    def n_frames(self):
        """Number of video frames."""
        return self.frames.shape[0]

    def __repr__(self):
        src = f", source={self.source!r}" if self.source else ""
        src += f", start={self.start:g}s" if self.start else ""
        return (
            f"AVClip(duration={self.duration:.3f}s, sample_rate={self.sample_rate}, "
            f"frames={self.frames.shape}, fps={self.fps:g}{src})"
        )
