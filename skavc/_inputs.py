"""Turning what users pass as ``X`` into clips, one item at a time.

``X`` may hold :class:`~skavc.AVClip` objects, ``(audio, frames)`` pairs or video
paths, and, for single-modality calls, bare waveforms or frame arrays. Items
are resolved lazily, inside the (parallel) encoding jobs, so a corpus of
video files is never decoded into memory all at once.
"""

import os
from collections.abc import Sequence

import numpy as np

from ._clip import AVClip
from ._validation import check_audio, check_frames


def _is_one_pair(X):
    """``(audio, frames)`` itself rather than a sequence of items: a 1-D waveform and a 4-D frame array."""
    return (isinstance(X, tuple) and len(X) == 2 and all(isinstance(x, np.ndarray) for x in X)
            and X[0].ndim == 1 and X[1].ndim == 4)


def check_collection(X, *, name="X"):
    """Check that ``X`` is a non-empty sequence of items (not a feature table) and return it as a list.

    A pandas DataFrame of one column gives that column's items; a Series its values.
    """
    if isinstance(X, (str, os.PathLike, AVClip)):
        raise TypeError(f"{name} must be a sequence of clips; wrap a single clip or path in a list: [{name}]")
    if _is_one_pair(X):
        raise TypeError(f"{name} is one (audio, frames) pair; wrap it in a list: [(audio, frames)]")
    if hasattr(X, "columns") and hasattr(X, "iloc"):  # a DataFrame iterates over its column names
        if X.shape[1] != 1:
            raise ValueError(f"{name} is a DataFrame of {X.shape[1]} columns; pass one column of clips, "
                             f"paths or (audio, frames) pairs (e.g. df['clip']), or a list")
        X = X.iloc[:, 0]
    if hasattr(X, "tocsr") or hasattr(X, "todense"):
        raise TypeError(f"{name} is a sparse matrix: sparse input is not supported; pass a sequence of clips")
    if isinstance(X, np.ndarray) and X.dtype != object:
        if X.size == 0:
            raise ValueError(f"{name} is empty: expected at least one clip")
        raise TypeError(
            f"{name} must be a sequence of AVClip objects, (audio, frames) pairs or video paths; got "
            f"a numeric array of shape {X.shape}. skavc encodes raw clips, not feature tables."
        )
    if not isinstance(X, (Sequence, np.ndarray)):
        try:
            X = list(X)
        except TypeError:
            raise TypeError(
                f"{name} must be a sequence of AVClip objects, (audio, frames) pairs or video paths; "
                f"got {type(X).__name__}"
            ) from None
    if len(X) == 0:
        raise ValueError(f"{name} is empty: expected at least one clip")
    return list(X)


def pair_clips(audio, frames, *, sample_rate, fps):
    """Zip separate lists of waveforms and frame arrays into clips.

    Parameters
    ----------
    audio : sequence of ndarray of shape (n_samples,)
    frames : sequence of ndarray of shape (n_frames, height, width, 3)
    sample_rate : int
    fps : float

    Returns
    -------
    clips : list of AVClip

    Examples
    --------
    >>> import numpy as np
    >>> from skavc import pair_clips
    >>> audio = [np.zeros(16000, np.float32), np.zeros(8000, np.float32)]
    >>> frames = [np.zeros((25, 32, 32, 3), np.uint8), np.zeros((12, 32, 32, 3), np.uint8)]
    >>> [clip.n_frames for clip in pair_clips(audio, frames, sample_rate=16000, fps=25.0)]
    [25, 12]
    """
    audio, frames = list(audio), list(frames)
    if len(audio) != len(frames):
        raise ValueError(
            f"audio and frames must have the same number of samples; got {len(audio)} waveforms "
            f"and {len(frames)} frame arrays"
        )
    return [AVClip(a, sample_rate, f, fps) for a, f in zip(audio, frames)]


def _resample(audio, orig_sr, target_sr):
    """``audio`` from ``orig_sr`` to ``target_sr`` as every loader resamples (libsoxr HQ, :mod:`skavc.io`)."""
    if orig_sr == target_sr:
        return audio
    from .io import resample_audio

    return resample_audio(audio, orig_sr, target_sr)


def resolve_clip(item, *, sample_rate, fps, where):
    """One item of ``X`` as an :class:`~skavc.AVClip` with audio at ``sample_rate``.

    Parameters
    ----------
    item : AVClip, (audio, frames) pair or path
    sample_rate : int
        Rate the encoders expect; clip audio is resampled to it.
    fps : float
        Frame rate assumed for ``(audio, frames)`` pairs and kept when decoding files.
    where : str
        Name of the item for error messages, e.g. ``"X[3]"``.
    """
    if isinstance(item, AVClip):
        clip = item
    elif isinstance(item, (str, os.PathLike)):
        from .io import load_clip

        return load_clip(item, sample_rate=sample_rate)
    elif isinstance(item, (tuple, list)) and len(item) == 2:
        try:
            clip = AVClip(item[0], sample_rate, item[1], fps)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{where}: {exc}") from None
    else:
        raise TypeError(
            f"{where} must be an AVClip, an (audio, frames) pair or a video path; got {type(item).__name__}"
        )
    if clip.sample_rate != sample_rate:
        clip = AVClip(_resample(clip.audio, clip.sample_rate, sample_rate), sample_rate, clip.frames, clip.fps, clip.source,
                      start=clip.start)
    return clip


def _is_waveform(item):
    """A bare waveform: a non-4-D array, or a flat list of numbers."""
    if isinstance(item, np.ndarray):
        return item.ndim != 4
    return isinstance(item, list) and len(item) > 0 and np.isscalar(item[0])


def resolve_audio(item, *, sample_rate, input_rate, where):
    """One item as a waveform at ``sample_rate``: a clip, pair, path or bare 1-D array at ``input_rate``.

    A video file gives ``load_clip(path).audio`` without holding its frames
    (:func:`skavc.io.load_sampled` picking none).
    """
    if _is_waveform(item):
        return _resample(check_audio(item, name=where), input_rate, sample_rate)
    if isinstance(item, (str, os.PathLike)):
        from .io import load_sampled

        return load_sampled(item, lambda n_frames: np.zeros(0, dtype=int), sample_rate=sample_rate)[0]
    # The frame rate is irrelevant here: only the audio of the clip is used.
    return resolve_clip(item, sample_rate=sample_rate, fps=25.0, where=where).audio


def resolve_frames(item, *, sample_rate, where, frame_sampler=None):
    """One item as uint8 frames (T, H, W, 3): a clip, pair, path or bare frame array.

    With ``frame_sampler``, only the frames ``frame_sampler(T)`` picks: a video file is then
    decoded without its audio, holding only those frames (memory bounded by them, not by
    the file's length; :func:`skavc.io.load_sampled`).
    """
    if isinstance(item, np.ndarray) and item.ndim == 4:
        frames = check_frames(item, name=where)
    elif isinstance(item, np.ndarray):
        raise ValueError(f"{where} must be frames of shape (T, H, W, 3); got shape {item.shape}")
    elif frame_sampler is not None and isinstance(item, (str, os.PathLike)):
        from .io import _load_sampled

        return _load_sampled(item, frame_sampler, sample_rate=sample_rate, with_audio=False)[1]
    else:
        # The frame rate is irrelevant here: only the frames of the clip are used.
        frames = resolve_clip(item, sample_rate=sample_rate, fps=25.0, where=where).frames
    return frames if frame_sampler is None else frames[frame_sampler(frames.shape[0])]


def resolve_pair(item, *, sample_rate, fps, where, frame_sampler):
    """One item's audio at ``sample_rate`` and the frames ``frame_sampler`` picks from it.

    A video file is decoded with :func:`skavc.io.load_sampled`, which holds only the
    picked frames (as RGB) and the audio; other items go through :func:`resolve_clip`.
    """
    if isinstance(item, (str, os.PathLike)):
        from .io import load_sampled

        return load_sampled(item, frame_sampler, sample_rate=sample_rate)
    clip = resolve_clip(item, sample_rate=sample_rate, fps=fps, where=where)
    return clip.audio, clip.frames[frame_sampler(clip.n_frames)]


def clip_windows(clip, *, window, hop=None):
    """Consecutive windows of an in-memory clip, as :func:`skavc.io.iter_clips` reads them from a file.

    Parameters
    ----------
    clip : AVClip
    window : float
        Seconds per window (frames as :func:`skavc.io.window_frames` counts them); the last
        window holds what is left.
    hop : float or None, default=None
        Seconds from one window's start to the next (at most ``window``); None means ``window``.

    Yields
    ------
    window : AVClip
        The window's frames and the audio that plays with them (exactly ``round(n_frames *
        sample_rate / fps)`` samples, zero-padded where the clip's audio ends early), ``start``
        set on the clip's own clock; the last window is the first that reaches the end.
    """
    from .io import check_window, window_frames

    window, hop = check_window(window, hop)
    fps, rate = clip.fps, clip.sample_rate
    k = 0
    while True:
        first, stop = window_frames(k, hop, window, fps)
        if first >= clip.n_frames:
            return
        stop = max(first + 1, min(stop, clip.n_frames))
        a0, n_samples = int(round(first * rate / fps)), int(round((stop - first) * rate / fps))
        audio = clip.audio[a0 : a0 + n_samples]
        if audio.size < n_samples:
            audio = np.concatenate([audio, np.zeros(n_samples - audio.size, np.float32)])
        yield AVClip(audio, rate, clip.frames[first:stop], fps, clip.source, start=clip.start + first / fps,
                     check_quality=k == 0)
        if stop == clip.n_frames:
            return
        k += 1
