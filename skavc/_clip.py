"""The audio-visual clip: one mono waveform and the frames that go with it."""

from dataclasses import dataclass, field

import numpy as np

from ._validation import check_audio, check_frames, check_positive, check_sample_rate


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
    """

    audio: np.ndarray
    sample_rate: int
    frames: np.ndarray
    fps: float
    source: str = field(default=None)

    def __post_init__(self):
        self.audio = check_audio(self.audio, name="audio")
        self.frames = check_frames(self.frames, name="frames")
        self.sample_rate = check_sample_rate(self.sample_rate, name="sample_rate")
        self.fps = check_positive(self.fps, name="fps")

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
        return (
            f"AVClip(duration={self.duration:.3f}s, sample_rate={self.sample_rate}, "
            f"frames={self.frames.shape}, fps={self.fps:g}{src})"
        )
