"""Read and write real video files as :class:`~skavc.AVClip` objects (PyAV + librosa).

Time model used by :func:`load_clip`
------------------------------------
Every time in a file is measured on the container's clock. The clip's time
origin is the **first frame of the video stream**; ``start`` is relative to
it. The audio is cut from the same clock, so audio and video keep whatever
offset the file itself has:

* if the audio stream starts later than the video stream, the missing
  beginning is filled with zeros (silence);
* if it starts earlier, the samples before the first video frame are dropped;
* if it ends earlier than the video, the end is filled with zeros; samples
  after the last video frame are dropped.

So a file whose content is in sync gives an :class:`AVClip` whose audio
sample ``i`` plays while frame ``floor(i * fps / sample_rate)`` is shown,
i.e. an AV offset of 0. The length of the clip is set by the video; the audio
always holds exactly ``round(n_frames * sample_rate / fps)`` samples.

(Over 500 lines: reading and writing share the time model above and the stream handling,
which one module keeps in one place.)
"""

import math
import os
from fractions import Fraction

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from ._clip import AVClip
from ._validation import (atomic_path, check_encoder_settings, check_output_path, check_positive, check_sample_rate,
                          pcm_to_float)

__all__ = ["load_audio", "load_clip", "load_sampled", "save_clip"]

# Extra audio (seconds) decoded on each side of the requested span so the
# resampler's edge transients fall outside the samples we keep.
_AUDIO_MARGIN = 0.05
# When ``start`` is beyond this (seconds), seek instead of decoding from the
# beginning; we seek this much earlier than needed so the keyframe, the
# nearest-frame candidate before ``start`` and the interleaved audio are all
# decoded.
_SEEK_MIN_START = 2.0
_SEEK_LEAD = 1.0


# --------------------------------------------------------------------------- #
# argument checks
# --------------------------------------------------------------------------- #
def _check_path_in(path):
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike; got {type(path).__name__}")
    path = os.fsdecode(os.fspath(path))
    if not os.path.exists(path):
        raise FileNotFoundError(f"video file not found: '{path}'")
    if os.path.isdir(path):
        raise IsADirectoryError(f"expected a video file, got a directory: '{path}'")
    return path


def _check_frame_size(frame_size):
    if frame_size is None:
        return None
    try:
        h, w = frame_size
        ok = all(int(v) == v and v > 0 for v in (h, w))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"frame_size must be None or a pair of positive ints (height, width); got {frame_size!r}")
    return int(h), int(w)


def _check_sample_rate(sample_rate):
    return None if sample_rate is None else check_sample_rate(sample_rate, name="sample_rate")


# --------------------------------------------------------------------------- #
# decoding helpers
# --------------------------------------------------------------------------- #
def _audio_to_mono(frame):
    """Return one decoded AudioFrame as a float mono array (channel mean)."""
    arr = frame.to_ndarray()
    n_ch = frame.layout.nb_channels
    if not frame.format.is_planar:  # packed: (1, n * ch), channels interleaved
        arr = arr.reshape(-1, n_ch).T
    arr = pcm_to_float(arr, name="the decoded audio")  # FFmpeg's s16, s32 and u8 are integer PCM
    return arr.mean(axis=0) if arr.shape[0] > 1 else arr[0]


def _native_fps(stream):
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and rate > 0:
            return float(rate)
    return None


def _decode(container, path, vstream, astream, origin, start, max_duration, seek_to, fps_guess):
    """Demux once; return the video frames around [t_lo, t_hi) and the audio.

    ``origin`` is the time of the clip's zero; ``None`` means "the first
    decoded video frame" (only valid when not seeking).

    Returns
    -------
    t_lo, t_hi : float
        The requested span on the file's clock.
    vframes : list of (time, av.VideoFrame)
        Frames from the last one before ``t_lo`` (a nearest-frame candidate)
        to the first ones after ``t_hi``, in presentation order.
    last_vdur : float or None
        Duration (s) of the last decoded frame, when the file says.
    audio : (t0, ndarray) or None
        Mono audio at the stream's rate and the time of its first sample,
        limited to the span of interest plus a margin.
    audio_rate : int or None
    audio_seen : bool
        Whether the audio stream produced any sample at all.
    """
    if seek_to is not None:
        # Seek on the video stream: lands on the keyframe at or before seek_to.
        container.seek(max(0, int(math.floor(seek_to / vstream.time_base))), stream=vstream, backward=True)
    frame_dt = 1.0 / fps_guess if fps_guess else 0.04

    def span(origin):
        t_lo = origin + start
        t_hi = t_lo + max_duration if max_duration is not None else math.inf
        # audio kept: the span plus margins for the resampler and for the
        # nearest first frame being up to a frame before t_lo
        return t_lo, t_hi, t_lo - _AUDIO_MARGIN - frame_dt, t_hi + _AUDIO_MARGIN + frame_dt

    if origin is not None:
        t_lo, t_hi, a_lo, a_hi = span(origin)
    else:  # unknown until the first video frame: keep all audio until then
        t_lo = t_hi = None
        a_lo, a_hi = -math.inf, math.inf

    vframes, prev = [], None
    last_vdur = None
    v_done = False
    a_chunks, a_t0, a_next, a_rate, a_seen = [], None, None, None, False
    a_done = astream is None
    last_vt = None

    streams = [s for s in (vstream, astream) if s is not None]
    try:
        for packet in container.demux(*streams):
            is_video = packet.stream is vstream
            if (is_video and v_done) or (not is_video and a_done):
                continue
            for frame in packet.decode():
                if is_video:
                    # pts can be missing in odd streams: continue the clock.
                    t = frame.time if frame.pts is not None else (last_vt + frame_dt if last_vt is not None else 0.0)
                    last_vt = t
                    if t_lo is None:
                        t_lo, t_hi, a_lo, a_hi = span(t)
                    if frame.duration and frame.time_base is not None:
                        last_vdur = float(frame.duration * frame.time_base)
                    if t < t_lo:
                        prev = (t, frame)  # keep only the latest frame before the span
                        continue
                    if prev is not None:
                        vframes.append(prev)
                        prev = None
                    vframes.append((t, frame))
                    if t > t_hi + 2 * frame_dt:
                        v_done = True
                else:
                    n = frame.samples
                    if n == 0:
                        continue
                    a_seen = True
                    a_rate = frame.sample_rate
                    t = frame.time if frame.pts is not None else a_next
                    if t is None:
                        t = 0.0
                    a_next = t + n / a_rate
                    if a_next <= a_lo:
                        continue
                    if t > a_hi:
                        a_done = True
                        continue
                    if a_t0 is None:
                        a_t0 = t
                    # Samples are concatenated as one contiguous run from a_t0:
                    # small timestamp jitter between packets is ignored.
                    a_chunks.append(_audio_to_mono(frame))
            if v_done and a_done:
                break
    except av.error.FFmpegError as exc:
        raise ValueError(f"could not decode video file '{path}': {exc}") from exc
    if prev is not None and not vframes:
        vframes.append(prev)  # the whole video ends before t_lo: caller decides
    audio = (a_t0, np.concatenate(a_chunks)) if a_chunks else None
    return t_lo, t_hi, vframes, last_vdur, audio, a_rate, a_seen


def _select_frames(times, fps, native, t_lo, max_duration, video_end, tick):
    """Pick frame indices and the output rate.

    ``tick`` is the stream's time base (s): time stamps are rounded to it, so
    a constant-rate stream's frame intervals may differ by up to one tick.

    Returns (indices, out_fps, t_first) where ``t_first`` is the time that the
    first output frame stands for (the audio is cut from there).
    """
    diffs = np.diff(times)
    # Constant frame rate = every interval is one nominal frame, up to time
    # stamp rounding; a dropped or duplicated frame makes it "variable".
    tol = max(0.05 / native, 1.01 * tick)
    cfr = diffs.size == 0 or bool(np.all(np.abs(diffs - 1.0 / native) <= tol))
    if fps is None and cfr:
        # Constant frame rate at the native rate: return the decoded frames as
        # they are, starting at the one nearest to t_lo, and start the audio at
        # that frame's real time (sub-frame accurate alignment).
        out_fps = native
        i0 = int(np.argmin(np.abs(times - t_lo)))
        n = times.size - i0
        # frames whose display starts at or after the end of the video are not
        # part of it (happens only with rounding in the time stamps)
        n = min(n, int(np.sum(times[i0:] < video_end - 0.5 / native)))
        if max_duration is not None:
            n = min(n, int(math.floor(max_duration * out_fps + 1e-6)))
        return np.arange(i0, i0 + n), out_fps, float(times[i0])
    # Fixed output grid t_lo + k / out_fps, each point showing the frame with
    # the closest time stamp: uniform output even from variable-rate input.
    out_fps = float(fps) if fps is not None else native
    n = int(math.ceil((video_end - t_lo) * out_fps - 1e-3))
    if max_duration is not None:
        n = min(n, int(math.floor(max_duration * out_fps + 1e-6)))
    n = max(n, 0)
    grid = t_lo + np.arange(n) / out_fps
    right = np.clip(np.searchsorted(times, grid), 1, max(times.size - 1, 1))
    left = right - 1
    if times.size == 1:
        idx = np.zeros(n, dtype=int)
    else:
        idx = np.where(np.abs(times[left] - grid) <= np.abs(times[right] - grid), left, right)
    return idx, out_fps, t_lo


def _to_rgb(frames, frame_size):
    """Convert decoded frames to RGB uint8 arrays (resized to ``frame_size``).

    One shared ``VideoReformatter`` for all frames: ``frame.to_ndarray(format=)``
    builds a new swscale context (and thread pool) per frame, which made the
    conversion ~100x slower than the decoding itself for small frames.
    """
    reformatter = VideoReformatter()
    h, w = frame_size if frame_size is not None else (None, None)
    out = []
    for frame in frames:
        # swscale's own threads only pay off for large frames
        threads = 1 if frame.width * frame.height <= 640 * 480 else 0
        # swscale does the resize (area averaging) and the colour conversion in one pass
        rgb = reformatter.reformat(frame, width=w, height=h, format="rgb24", interpolation="AREA", threads=threads)
        out.append(rgb.to_ndarray())
    return out


def load_clip(
    path,
    *,
    sample_rate=16000,
    fps=None,
    max_duration=None,
    start=0.0,
    frame_size=None,
    allow_missing_audio=False,
):
    """Decode a video file's frames and audio into an :class:`AVClip`.

    Parameters
    ----------
    path : str or os.PathLike
        Video file readable by FFmpeg (mp4, mkv, webm, avi, mov, ...).
    sample_rate : int or None, default=16000
        Sampling rate of the returned audio. When the file's rate differs the
        audio is resampled with ``librosa.resample(res_type="soxr_hq")``.
        ``None`` keeps the file's rate.
    fps : float or None, default=None
        Frame rate of the returned frames. ``None`` keeps the native rate (the
        stream's average rate). When ``fps`` is given, or the stream has a
        variable frame rate, the frames are resampled onto a uniform grid
        ``start + k / fps``: each output frame is the decoded frame whose time
        stamp is the closest.
    max_duration : float or None, default=None
        Keep at most this many seconds (whole frames:
        ``floor(max_duration * fps)`` frames). ``None`` reads to the end.
    start : float, default=0.0
        Where to start, in seconds from the first video frame. With the native
        frame rate the clip starts at the frame nearest to ``start`` (and the
        audio at that frame's time); with a given ``fps`` it starts exactly at
        ``start``.
    frame_size : tuple of (int, int) or None, default=None
        ``(height, width)`` to resize frames to (area interpolation, done by
        FFmpeg while converting to RGB). ``None`` keeps the file's size.
    allow_missing_audio : bool, default=False
        If the file has no audio stream, or no audio samples in the requested
        span, return silence of the right length instead of raising.

    Returns
    -------
    clip : AVClip
        ``frames`` of shape (n_frames, height, width, 3), uint8 RGB, and mono
        float32 ``audio`` of exactly ``round(n_frames * sample_rate / fps)``
        samples that starts at the same time as the first frame (see the
        module docstring for how stream start times are reconciled).
        ``source`` is the path.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file cannot be decoded, has no video stream, has no audio stream
        (unless ``allow_missing_audio``), or yields no frames / no audio
        samples in the requested span.

    Notes
    -----
    * The first video stream and the first audio stream are used; channels
      are averaged to mono. Rotation metadata (phone videos) is not applied.
    * For ``start`` beyond 2 s the decoder seeks to the keyframe before
      ``start - 1 s`` instead of decoding from the beginning (and falls back
      to a full decode if the seek skipped data that is needed).
    * All decoded frames of the requested span are held (in the file's pixel
      format, usually yuv420p) until they are converted to RGB: use
      ``max_duration`` for long files.
    * Partially corrupt streams decode as far as FFmpeg can; only a file that
      cannot be opened or that errors out while decoding raises.

    Examples
    --------
    >>> clip = load_clip("talk.mp4", sample_rate=16000, fps=25,
    ...                  max_duration=10, frame_size=(224, 224))  # doctest: +SKIP
    """
    path = _check_path_in(path)
    audio, out_sr, frames, out_fps = _decode_clip(
        path, sample_rate=sample_rate, fps=fps, max_duration=max_duration, start=start,
        frame_size=frame_size, allow_missing_audio=allow_missing_audio,
    )
    return AVClip(audio=audio, sample_rate=out_sr, frames=frames, fps=out_fps, source=path)


def load_sampled(path, frame_sampler, *, sample_rate=16000):
    """A video file's whole audio and only the frames ``frame_sampler`` picks.

    What a clip embedding needs (all the audio, a few frames) without converting
    every frame to RGB.

    Parameters
    ----------
    path : str or os.PathLike
    frame_sampler : callable
        ``frame_sampler(n_frames)`` returns the indices (into the clip's frames at
        the native rate) of the frames to return.
    sample_rate : int, default=16000

    Returns
    -------
    audio : ndarray of shape (n_samples,), float32
        As :func:`load_clip` returns it.
    frames : ndarray of shape (len(indices), height, width, 3), uint8
        Equal to ``load_clip(path).frames[frame_sampler(n_frames)]``.
    """
    audio, _, frames, _ = _decode_clip(
        path, sample_rate=sample_rate, fps=None, max_duration=None, start=0.0, frame_size=None,
        allow_missing_audio=False, frame_sampler=frame_sampler,
    )
    return audio, frames


def load_audio(path, *, sample_rate=None, name="path"):
    """The sound of any audio or video file FFmpeg reads (WAV, FLAC, MP3, the sound of an MP4, ...).

    Parameters
    ----------
    path : str or os.PathLike
    sample_rate : int or None, default=None
        Rate of the returned samples (resampled as :func:`load_clip` does); None keeps the file's.
    name : str, default="path"
        What to call ``path`` in error messages (a parameter, or a command-line argument).

    Returns
    -------
    samples : ndarray of shape (n_samples,), float32
        Mono (channels averaged), full scale 1.0 (integer PCM scaled), the first audio stream
        from its first sample.
    sample_rate : int
        The file's rate, or ``sample_rate`` when given.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file cannot be read, or holds no sound.
    """
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"{name} must be a str or os.PathLike; got {type(path).__name__}")
    path = os.fsdecode(os.fspath(path))
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{name}: no such file: '{path}'" if not os.path.exists(path)
                                else f"{name}: '{path}' is not a file")
    sample_rate = _check_sample_rate(sample_rate)
    what = "it must be an audio or video file with sound (WAV, FLAC, MP3, MP4, ...)"
    try:
        container = av.open(path)
    except av.error.FFmpegError as exc:
        raise ValueError(f"{name}: could not read '{path}' ({exc}); {what}") from exc
    with container:
        if not container.streams.audio:
            raise ValueError(f"{name}: '{path}' has no sound (no audio stream); {what}")
        stream = container.streams.audio[0]
        try:
            chunks = [_audio_to_mono(frame) for frame in container.decode(stream) if frame.samples]
        except av.error.FFmpegError as exc:
            raise ValueError(f"{name}: could not decode the sound of '{path}' ({exc})") from exc
        rate = stream.rate or stream.codec_context.sample_rate
    if not chunks:
        raise ValueError(f"{name}: no sound decoded from '{path}'; {what}")
    samples = np.concatenate(chunks).astype(np.float32, copy=False)
    if sample_rate is not None and sample_rate != rate:
        import librosa  # only when resampling: importing it costs ~1 s

        samples = librosa.resample(samples, orig_sr=rate, target_sr=sample_rate, res_type="soxr_hq").astype(np.float32)
        rate = sample_rate
    return samples, int(rate)


def _decode_clip(path, *, sample_rate, fps, max_duration, start, frame_size, allow_missing_audio, frame_sampler=None):
    """:func:`load_clip`'s work: (audio, sample rate, frames, fps), frames optionally sampled."""
    path = _check_path_in(path)
    sample_rate = _check_sample_rate(sample_rate)
    if fps is not None:
        fps = check_positive(fps, name="fps")
    if max_duration is not None:
        max_duration = check_positive(max_duration, name="max_duration")
    try:
        start = float(start)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"start must be a number of seconds; got {start!r}") from exc
    if not np.isfinite(start) or start < 0:
        raise ValueError(f"start must be a finite number of seconds >= 0; got {start!r}")
    frame_size = _check_frame_size(frame_size)

    try:
        container = av.open(path)
    except av.error.FFmpegError as exc:
        if isinstance(exc, OSError) and not isinstance(exc, ValueError):
            raise  # permission denied and the like: not a decoding problem
        raise ValueError(f"could not decode video file '{path}': {exc}") from exc
    with container:
        if not container.streams.video:
            raise ValueError(f"no video stream in '{path}': a clip needs both frames and audio")
        vstream = container.streams.video[0]
        astream = container.streams.audio[0] if container.streams.audio else None
        if astream is None and not allow_missing_audio:
            raise ValueError(
                f"no audio stream in '{path}': a clip needs both frames and audio "
                "(pass allow_missing_audio=True to use silence instead)"
            )
        # Frame-level multithreading: several times faster for H.264/HEVC.
        vstream.thread_type = "AUTO"
        native = _native_fps(vstream)
        stream_start = (
            float(vstream.start_time * vstream.time_base)
            if vstream.start_time is not None and vstream.time_base is not None
            else None
        )
        frame_dt = 1.0 / (fps or native or 25.0)

        # The origin is the video stream's start time from the header (equal
        # to the first frame's time in well-formed files), else the first
        # decoded frame. Seek only when the origin is known and the start is
        # far in; if the seek turns out to have skipped data we need, decode
        # again from the beginning.
        attempts = [None]
        if start > _SEEK_MIN_START and stream_start is not None:
            attempts = [stream_start + start - _SEEK_LEAD, None]
        for seek_to in attempts:
            if seek_to is None and attempts[0] is not None:
                container.seek(0, stream=vstream, backward=True)
            t_lo, t_hi, vframes, last_vdur, audio, a_rate, a_seen = _decode(
                container, path, vstream, astream, stream_start, start, max_duration, seek_to, fps or native
            )
            if seek_to is not None:
                ok = bool(vframes) and vframes[0][0] <= t_lo + 0.5 * frame_dt
                if ok and audio is not None and astream.start_time is not None:
                    # the audio after the seek must reach back to the span's
                    # start, unless the stream itself starts later than that
                    a_start = float(astream.start_time * astream.time_base)
                    ok = audio[0] <= max(t_lo - frame_dt, a_start) + 1e-3
                if not ok:
                    continue
            break

    if not vframes:
        raise ValueError(f"no video frames decoded from '{path}'")
    times = np.array([t for t, _ in vframes], dtype=np.float64)
    order = np.argsort(times, kind="stable")
    times = times[order]
    vframes = [vframes[i] for i in order]
    if times[-1] < t_lo - (1.0 / native if native else 0.1):  # all frames end before start
        raise ValueError(
            f"no video frames decoded from '{path}' at start={start:g}s: "
            f"the video ends at {times[-1] - (t_lo - start):.3f}s"
        )
    if native is None:  # no rate in the header: estimate it from the time stamps
        native = 1.0 / float(np.median(np.diff(times))) if times.size > 1 else (1.0 / last_vdur if last_vdur else 25.0)
    video_end = times[-1] + (last_vdur or 1.0 / native)
    tick = float(vstream.time_base) if vstream.time_base is not None else 0.0
    idx, out_fps, t_first = _select_frames(times, fps, native, t_lo, max_duration, video_end, tick)
    if idx.size == 0:
        if max_duration is not None and max_duration * (fps or native) < 1:
            raise ValueError(f"max_duration={max_duration:g}s is shorter than one frame of '{path}'")
        raise ValueError(f"no video frames decoded from '{path}' at start={start:g}s")

    # convert each selected frame once, even when the fps grid repeats it; with a sampler,
    # only the frames it picks (RGB conversion and stacking were ~40% of a decode)
    picked = idx if frame_sampler is None else idx[frame_sampler(idx.size)]
    unique, inverse = np.unique(picked, return_inverse=True)
    rgb = _to_rgb([vframes[int(i)][1] for i in unique], frame_size)
    del vframes
    frames = np.stack(rgb)[inverse] if unique.size != picked.size else np.stack(rgb)
    del rgb

    out_sr = sample_rate if sample_rate is not None else (a_rate or 16000)
    n_samples = max(1, int(round(idx.size * out_sr / out_fps)))
    if astream is None:
        wave = np.zeros(n_samples, dtype=np.float32)
    else:
        wave = None
        if audio is not None:
            a_t0, y = audio
            if a_rate != out_sr:
                import librosa  # only when resampling: importing it costs ~1 s

                y = librosa.resample(y, orig_sr=a_rate, target_sr=out_sr, res_type="soxr_hq")
            # sample i of y plays at a_t0 + i / out_sr; the clip starts at t_first
            offset = int(round((t_first - a_t0) * out_sr))
            if min(y.size, offset + n_samples) - max(0, offset) > 0:  # any overlap?
                if offset >= 0:
                    y = y[offset : offset + n_samples]
                else:  # audio starts after the first frame: silence in front
                    y = np.concatenate([np.zeros(-offset, dtype=np.float32), y[: n_samples + offset]])
                if y.size < n_samples:  # audio ends before the video: silence at the end
                    y = np.concatenate([y, np.zeros(n_samples - y.size, dtype=np.float32)])
                wave = np.ascontiguousarray(y, dtype=np.float32)
        if wave is None:
            if not allow_missing_audio:
                what = "" if a_seen else " at all"
                raise ValueError(
                    f"no audio samples decoded{what} from '{path}' for the requested span "
                    f"(start={start:g}s, {idx.size} frames at {out_fps:g} fps); "
                    "pass allow_missing_audio=True to use silence instead"
                )
            wave = np.zeros(n_samples, dtype=np.float32)
    return wave, out_sr, frames, out_fps


# --------------------------------------------------------------------------- #
# writing
# --------------------------------------------------------------------------- #
def _default_video_codec():
    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


def _rgb_to_videoframe(rgb):
    """One RGB frame as an av.VideoFrame (a seam the tests use to inject failures)."""
    return av.VideoFrame.from_ndarray(rgb, format="rgb24")


def _write_video(clip, path, frames, size, *, video_codec=None, crf=18, video_bit_rate=None, audio_codec="aac",
                 audio_bit_rate=192_000, preset=None):
    """Write ``clip``'s sound and ``frames`` (an iterable of (height, width, 3) uint8 RGB arrays,
    ``size`` = (height, width), both even) to ``path``, atomically: :func:`save_clip`'s writer,
    also fed frames made one at a time (:func:`skavc.plotting.save_heatmap_video`).

    Each frame is converted as soon as it is yielded, so a generator may reuse its buffers.
    ``preset`` is the x264 / x265 speed preset (None: the codec's default).
    """
    crf, preset = check_encoder_settings(crf, preset)
    path = os.fsdecode(os.fspath(check_output_path(path, name="path")))
    video_codec = video_codec or _default_video_codec()
    for kind, codec in (("video_codec", video_codec), ("audio_codec", audio_codec)):
        if codec not in av.codecs_available:
            raise ValueError(f"{kind}={codec!r} is not available in this PyAV build")
    try:
        # A hidden temporary file beside ``path``, its extension last so FFmpeg picks the same
        # container format, renamed over ``path`` once complete.
        with atomic_path(path) as tmp:
            _encode(clip, tmp, frames, size, video_codec, crf, video_bit_rate, audio_codec, audio_bit_rate, preset)
    except BaseException as exc:
        # FFmpeg failures (and PyAV's ValueErrors: unknown format, codec not
        # allowed in this container, ...) become one error that names the path.
        if isinstance(exc, (av.error.FFmpegError, ValueError)):
            raise ValueError(f"could not write video file '{path}': {exc}") from exc
        raise
    return path


def _encode(clip, path, frames, size, video_codec, crf, video_bit_rate, audio_codec, audio_bit_rate, preset):
    rate = Fraction(clip.fps).limit_denominator(100000)  # 29.97... -> 30000/1001
    height, width = size
    with av.open(path, "w") as container:
        vstream = container.add_stream(video_codec, rate=rate)
        vstream.width, vstream.height = width, height
        vstream.pix_fmt = "yuv420p"  # the only format every player decodes
        if video_codec in ("libx264", "libx265"):
            # quality-driven, unless a bit rate is asked for
            vstream.options = {"crf": str(crf), **({} if preset is None else {"preset": preset})}
            if video_bit_rate is not None:
                vstream.bit_rate = int(video_bit_rate)
        else:
            # bit-rate-driven codecs: ~1 bit per pixel per frame keeps mpeg4
            # visually lossless at the small sizes clips usually have
            vstream.bit_rate = int(video_bit_rate or max(500_000, width * height * float(clip.fps)))
        vstream.thread_type = "AUTO"
        astream = container.add_stream(audio_codec, rate=clip.sample_rate)
        astream.layout = "mono"
        if audio_bit_rate is not None and not audio_codec.startswith("pcm_"):
            astream.bit_rate = int(audio_bit_rate)

        for i, rgb in enumerate(frames):
            frame = _rgb_to_videoframe(rgb)
            frame.pts = i  # codec time base is 1 / rate: one tick per frame
            container.mux(vstream.encode(frame))
        container.mux(vstream.encode(None))

        # One frame holding the whole waveform: PyAV converts it to the
        # encoder's sample format and re-chunks it to the codec's frame size.
        aframe = av.AudioFrame.from_ndarray(np.asarray(clip.audio, dtype=np.float32)[None, :], format="fltp",
                                            layout="mono")
        aframe.sample_rate = clip.sample_rate
        aframe.pts = 0
        aframe.time_base = Fraction(1, clip.sample_rate)
        container.mux(astream.encode(aframe))
        container.mux(astream.encode(None))


def save_clip(
    clip,
    path,
    *,
    video_codec=None,
    crf=18,
    video_bit_rate=None,
    audio_codec="aac",
    audio_bit_rate=192_000,
    pad_odd=False,
):
    """Write an :class:`AVClip` to a video file, atomically.

    The file is first written to a hidden temporary file in the same directory
    and then renamed over ``path`` (``os.replace``), so a failure or an
    interruption never leaves a half-written ``path`` behind, and an existing
    file at ``path`` is only replaced once the new one is complete.

    Parameters
    ----------
    clip : AVClip
        The clip to write. Audio and video both start at time 0 in the file, so
        :func:`load_clip` gives back a clip with the same alignment.
    path : str or os.PathLike
        Output file; the container format follows the extension (``.mp4``,
        ``.mkv``, ``.mov``, ...). Its directory must exist.
    video_codec : str or None, default=None
        FFmpeg encoder name. ``None`` picks ``"libx264"`` (H.264) when this
        PyAV build has it, else ``"mpeg4"``. Frames are encoded as yuv420p.
    crf : int, default=18
        Constant rate factor for ``libx264`` / ``libx265`` (0 = lossless,
        18 = visually lossless, 23 = x264's default). Ignored by other codecs.
    video_bit_rate : int or None, default=None
        Target video bit rate in bit/s. For codecs other than libx264/libx265
        the default is ``max(500k, width * height * fps)`` (about one bit per
        pixel); for those two it overrides ``crf`` only when given.
    audio_codec : str, default="aac"
        FFmpeg audio encoder name (``"aac"``, ``"libmp3lame"``,
        ``"pcm_s16le"`` for .mov/.mkv, ...). Audio is written mono at
        ``clip.sample_rate``, which the codec must support (AAC accepts the
        usual 8000..96000 Hz rates). Samples outside [-1, 1] survive AAC (a
        float codec) but are clipped by integer PCM codecs.
    audio_bit_rate : int or None, default=192000
        Audio bit rate in bit/s for compressed codecs.
    pad_odd : bool, default=False
        yuv420p needs an even width and height. If ``True``, an odd size is
        padded by repeating the last row/column; if ``False`` it raises.

    Returns
    -------
    path : str
        The path written.

    Raises
    ------
    FileNotFoundError
        If the directory of ``path`` does not exist.
    ValueError
        If the frame size is odd (and ``pad_odd`` is False), the extension is
        not a known container format, or a codec is not available / rejects
        the data.
    """
    if not isinstance(clip, AVClip):
        raise TypeError(f"clip must be an AVClip; got {type(clip).__name__}")
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike; got {type(path).__name__}")
    frames = clip.frames
    _, height, width, _ = frames.shape
    if height % 2 or width % 2:
        if not pad_odd:
            raise ValueError(
                f"frames are {height}x{width} (height x width) but yuv420p video needs an even "
                "height and width: crop or resize the frames, or pass pad_odd=True"
            )
        frames = np.pad(frames, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)), mode="edge")
    return _write_video(clip, path, frames, frames.shape[1:3], video_codec=video_codec, crf=crf,
                        video_bit_rate=video_bit_rate, audio_codec=audio_codec, audio_bit_rate=audio_bit_rate)
