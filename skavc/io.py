"""Read and write real video files as :class:`~skavc.AVClip` objects (PyAV + soxr).

Time model used by :func:`load_clip` and :func:`iter_clips`
-----------------------------------------------------------
Every time in a file is measured on the container's clock. The clip's time
origin is the **first frame of the video stream**; ``start`` is relative to
it. The audio is cut from the same clock, so audio and video keep whatever
offset the file itself has:

* if the audio stream starts later than the video stream, the missing
  beginning is filled with zeros (silence);
* if it starts earlier, the samples before the first video frame are dropped;
* if it ends earlier than the video, the end is filled with zeros; samples
  after the last video frame are dropped.

So a file whose content is in sync gives an :class:`~skavc.AVClip` whose audio
sample ``i`` plays while frame ``floor(i * fps / sample_rate)`` is shown,
i.e. an AV offset of 0. The length of the clip is set by the video; the audio
always holds exactly ``round(n_frames * sample_rate / fps)`` samples.

Long files: :func:`iter_clips` reads the same clip as consecutive windows in
one pass, holding about one window at a time (each window's ``start`` says
where it is); :func:`video_info` reads duration, rate, size and rotation from
the header, to plan windows and show progress.

Orientation: phone videos store landscape frames and a display matrix; the
frames are turned upright as FFmpeg's players and ``autorotate`` do, and
``frame_size`` is the upright size.

(Over 500 lines: reading and writing share the time model above and the stream handling,
which one module keeps in one place.)
"""

import bisect
import math
import os
import struct
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from ._clip import AVClip
from ._validation import (atomic_path, check_encoder_settings, check_output_path, check_positive, check_real,
                          check_sample_rate, pcm_to_float)

__all__ = ["AudioWindows", "VideoInfo", "WavWriter", "cut_windows", "iter_audio", "iter_clips", "load_audio", "load_clip", "load_sampled", "save_clip", "video_info"]

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


def _sampled(frame_sampler, n_frames):
    """``frame_sampler(n_frames)`` checked: integer indices into ``n_frames`` frames, (k,)."""
    choice = np.asarray(frame_sampler(n_frames))
    if choice.ndim != 1 or not np.issubdtype(choice.dtype, np.integer) or (
            choice.size and (choice.min() < -n_frames or choice.max() >= n_frames)):
        raise ValueError(f"frame_sampler({n_frames}) must return a 1-D array of integer frame indices in "
                         f"[0, {n_frames}); got {choice!r}")
    return choice


def _estimate_fps(times, last_vdur):
    """A stream's rate (frames/s) from its time stamps (s) when the header has none: the median
    interval; the last frame's duration (or 25) when the intervals say nothing."""
    diffs = np.diff(times)
    if diffs.size and np.median(diffs) > 0:  # repeated time stamps give a median of 0
        return 1.0 / float(np.median(diffs))
    return 1.0 / last_vdur if last_vdur else 25.0


def _check_start(start):
    try:
        start = float(start)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"start must be a number of seconds; got {start!r}") from exc
    if not np.isfinite(start) or start < 0:
        raise ValueError(f"start must be a finite number of seconds >= 0; got {start!r}")
    return start


def _check_load_args(path, sample_rate, fps, max_duration, start, frame_size):
    """The arguments :func:`load_clip` and :func:`iter_clips` share, checked under their own names."""
    path = _check_path_in(path)
    sample_rate = _check_sample_rate(sample_rate)
    if fps is not None:
        fps = check_positive(fps, name="fps")
    if max_duration is not None:
        max_duration = check_positive(max_duration, name="max_duration")
    return path, sample_rate, fps, max_duration, _check_start(start), _check_frame_size(frame_size)


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


def _open_input(path):
    """``av.open(path)``, FFmpeg's failures as one ValueError that names the path."""
    try:
        return av.open(path)
    except av.error.FFmpegError as exc:
        if isinstance(exc, OSError) and not isinstance(exc, ValueError):
            raise  # permission denied and the like: not a decoding problem
        raise ValueError(f"could not decode video file '{path}': {exc}") from exc


def _pick_streams(container, path, allow_missing_audio):
    """The first video stream (frame-threaded) and the first audio stream (or None)."""
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
    return vstream, astream


def _stream_start(stream):
    """The stream's start time (s) from the header, or None."""
    if stream.start_time is None or stream.time_base is None:
        return None
    return float(stream.start_time * stream.time_base)


def _soxr_stream(orig_sr, target_sr):
    """libsoxr at quality "HQ", streaming: fed chunk by chunk, it gives bit for bit what
    ``librosa.resample(res_type="soxr_hq")`` gives on the whole signal (one-shot
    ``soxr.resample``), whatever the chunks; :func:`iter_clips` relies on it."""
    import soxr  # librosa's resampler, without librosa's import time (~1 s)

    return soxr.ResampleStream(orig_sr, target_sr, 1, dtype="float32", quality="HQ")


def resample_audio(samples, orig_sr, target_sr):
    """Mono float32 ``samples`` from ``orig_sr`` to ``target_sr`` (Hz), as :func:`iter_clips` streams them."""
    return _soxr_stream(orig_sr, target_sr).resample_chunk(np.asarray(samples, dtype=np.float32), last=True)


def _native_fps(stream):
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and rate > 0:
            return float(rate)
    return None


def _decode(container, path, vstream, astream, origin, start, max_duration, seek_to, fps_guess, keep=None,
            resample_to=None):
    """Demux once; return the video frames around [t_lo, t_hi) and the audio.

    ``origin`` is the time of the clip's zero; ``None`` means "the first
    decoded video frame" (only valid when not seeking). With ``keep`` (a
    callable ``keep(time, frame)``), what it returns is held in place of each
    frame (an RGB array, or None for a frame not needed), so that a long file's
    decoded frames are not all held at once. With ``resample_to`` (Hz) the audio
    is resampled as it is decoded (:func:`_soxr_stream`: the same samples as
    resampling it whole), so that it is never held at the file's rate.

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
        The rate of ``audio``: the stream's, or ``resample_to``.
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
    resampler = None
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
                        vframes.append(prev if keep is None else (prev[0], keep(*prev)))
                        prev = None
                    vframes.append((t, frame if keep is None else keep(t, frame)))
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
                    mono = _audio_to_mono(frame)
                    if resample_to is not None and a_rate != resample_to:
                        if resampler is None:
                            resampler = _soxr_stream(a_rate, resample_to)
                        mono = resampler.resample_chunk(np.asarray(mono, dtype=np.float32))
                    a_chunks.append(mono)
            if v_done and a_done:
                break
    except av.error.FFmpegError as exc:
        raise ValueError(f"could not decode video file '{path}': {exc}") from exc
    if prev is not None and not vframes:
        vframes.append(prev if keep is None else (prev[0], keep(*prev)))  # the video ends before t_lo
    if resampler is not None:
        a_chunks.append(resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
        a_rate = resample_to
    audio = (a_t0, np.concatenate(a_chunks)) if a_chunks else None
    return t_lo, t_hi, vframes, last_vdur, audio, a_rate, a_seen


def _cfr_tolerance(native, tick):
    """How far (s) a frame interval may be from ``1 / native`` in a constant-rate stream.

    Constant frame rate = every interval is one nominal frame, up to time stamp rounding
    (``tick``, the time base); a dropped or duplicated frame makes it "variable".
    """
    return max(0.05 / native, 1.01 * tick)


def _select_frames(times, fps, native, t_lo, max_duration, video_end, tick):
    """Pick frame indices and the output rate.

    ``tick`` is the stream's time base (s): time stamps are rounded to it, so
    a constant-rate stream's frame intervals may differ by up to one tick.

    Returns (indices, out_fps, t_first) where ``t_first`` is the time that the
    first output frame stands for (the audio is cut from there).
    """
    diffs = np.diff(times)
    cfr = diffs.size == 0 or bool(np.all(np.abs(diffs - 1.0 / native) <= _cfr_tolerance(native, tick)))
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


# --------------------------------------------------------------------------- #
# orientation (the display matrix of phone videos) and RGB conversion
# --------------------------------------------------------------------------- #
_UPRIGHT = (False, False, False)  # (transpose, flip rows, flip columns): nothing to do


def _display_matrix(frame):
    """The display matrix a decoded frame carries (9 ints, FFmpeg's layout), or None.

    FFmpeg (>= 6.1) copies the container's matrix (mp4 ``tkhd``, mkv projection) onto
    every decoded frame. The whole matrix is read, not only ``VideoFrame.rotation``,
    whose angle alone cannot tell a mirrored video from a turned one.
    """
    for side_data in frame.side_data:
        if getattr(side_data.type, "name", None) == "DISPLAYMATRIX":
            return np.frombuffer(bytes(side_data), dtype=np.int32)[:9]
    return None


def _orientation(matrix):
    """How to show stored frames upright, as FFmpeg's ``autorotate`` does (fftools).

    Parameters
    ----------
    matrix : ndarray of 9 int32 or None
        A display matrix (16.16 fixed point), as :func:`_display_matrix` gives it.

    Returns
    -------
    rotation : int
        Degrees clockwise the stored frames turn to be shown (0, 90, 180 or 270; other
        angles are reported rounded but not applied). A portrait phone video is stored
        landscape with rotation 90 (ffprobe: "rotation of -90.00 degrees").
    ops : tuple of bool
        (transpose, flip rows, flip columns) on an (height, width, 3) array, in that order:
        the eight orientations a matrix of right angles and mirrors can express.
    """
    if matrix is None:
        return 0, _UPRIGHT
    m = matrix.astype(np.float64) / 65536.0
    sx, sy = math.hypot(m[0], m[3]), math.hypot(m[1], m[4])
    if sx == 0 or sy == 0:
        return 0, _UPRIGHT
    # av_display_rotation_get is counter-clockwise; fftools' get_rotation turns it clockwise in [0, 360)
    theta = float(round(math.degrees(math.atan2(m[1] / sy, m[0] / sx))))
    theta -= 360 * math.floor(theta / 360 + 0.9 / 360)
    # the cases of fftools' autorotate (transpose, hflip and vflip filters), signs on the raw matrix
    if abs(theta - 90) < 1:
        ops = (True, False, False) if matrix[3] > 0 else (True, False, True)  # cclock_flip | clock
    elif abs(theta - 180) < 1:
        ops = (False, bool(matrix[4] < 0), bool(matrix[0] < 0))  # vflip, hflip
    elif abs(theta - 270) < 1:
        ops = (True, True, True) if matrix[3] < 0 else (True, True, False)  # clock_flip | cclock
    elif abs(theta) < 1 or abs(theta - 360) < 1:
        theta, ops = 0.0, (False, bool(matrix[4] < 0), False)  # vflip
    else:
        ops = _UPRIGHT  # FFmpeg would rotate by an arbitrary angle (and pad); phones never ask
    return int(round(theta)) % 360, ops


def _orient(rgb, ops):
    """``rgb`` of shape (height, width, 3) turned by ``ops`` (a view, no copy)."""
    transpose, flip_rows, flip_cols = ops
    if transpose:
        rgb = rgb.swapaxes(0, 1)
    if flip_rows:
        rgb = rgb[::-1]
    if flip_cols:
        rgb = rgb[:, ::-1]
    return rgb


class _RGBConverter:
    """Decoded frames as upright RGB uint8 arrays of ``frame_size`` (the upright size).

    One shared ``VideoReformatter`` for all frames: ``frame.to_ndarray(format=)``
    builds a new swscale context (and thread pool) per frame, which made the
    conversion ~100x slower than the decoding itself for small frames. swscale does
    the resize (area averaging) and the colour conversion in one pass; the turn to
    upright (display matrix of the first frame) is an array view after it.

    ``copy=True`` returns arrays that own their memory (C-contiguous): what a stream
    keeps must not pin FFmpeg's frame buffers, which also hide from ``tracemalloc``.
    """

    def __init__(self, frame_size, *, copy):
        self.frame_size = frame_size
        self.copy = copy
        self.ops = None  # known at the first frame
        self._reformatter = VideoReformatter()

    def __call__(self, frame):
        if self.ops is None:
            self.ops = _orientation(_display_matrix(frame))[1]
        h, w = self.frame_size if self.frame_size is not None else (None, None)
        if self.ops[0]:  # transposed to be upright: scale to the stored frame's shape first
            h, w = w, h
        # swscale's own threads only pay off for large frames
        threads = 1 if frame.width * frame.height <= 640 * 480 else 0
        rgb = self._reformatter.reformat(frame, width=w, height=h, format="rgb24", interpolation="AREA",
                                         threads=threads)
        rgb = _orient(rgb.to_ndarray(), self.ops)
        return np.array(rgb, order="C", copy=True) if self.copy else rgb


def _to_rgb(frames, frame_size):
    """Convert decoded frames to upright RGB uint8 arrays (resized to ``frame_size``)."""
    convert = _RGBConverter(frame_size, copy=False)
    return [convert(frame) for frame in frames]


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
    """Decode a video file's frames and audio into an :class:`~skavc.AVClip`.

    Parameters
    ----------
    path : str or os.PathLike
        Video file readable by FFmpeg (mp4, mkv, webm, avi, mov, ...).
    sample_rate : int or None, default=16000
        Sampling rate of the returned audio. When the file's rate differs the
        audio is resampled by libsoxr at quality "HQ" (what
        ``librosa.resample(res_type="soxr_hq")`` does; :func:`~skavc.io.iter_clips` streams
        the same resampler). ``None`` keeps the file's rate.
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
      are averaged to mono.
    * Rotation metadata (the display matrix of phone videos) is applied as
      FFmpeg's ``autorotate`` applies it: a portrait phone video comes out
      upright (height > width), mirrored ones unmirrored; ``frame_size`` is the
      upright size. Only right angles are applied (what phones write).
    * For ``start`` beyond 2 s the decoder seeks to the keyframe before
      ``start - 1 s`` instead of decoding from the beginning (and falls back
      to a full decode if the seek skipped data that is needed).
    * All decoded frames of the requested span are held (in the file's pixel
      format, usually yuv420p) until they are converted to RGB: for long files
      use :func:`~skavc.io.iter_clips`, which holds about one window.
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

    What a clip embedding needs (all the audio, a few frames) in memory bounded by the
    picked frames, whatever the file's length: the file is demuxed once without decoding
    (the frames' time stamps, hence their number) and decoded once, converting the picked
    frames to RGB and dropping every other frame as it is decoded.

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

    Notes
    -----
    The frame count comes from the packets' time stamps and is checked against the decode;
    where they disagree (a stream whose decoder drops or adds frames) ``frame_sampler`` is
    called again with the decoded count, and the file decoded once more if frames it then
    picks were not kept.

    Examples
    --------
    >>> import os, tempfile
    >>> from skavc import save_clip
    >>> from skavc.datasets import make_av_clips
    >>> from skavc.io import load_sampled
    >>> (clip,), _ = make_av_clips(n_clips=1, duration=1.0, random_state=0)  # 25 frames, 1 s of sound at 16 kHz
    >>> path = save_clip(clip, os.path.join(tempfile.mkdtemp(), "clip.mp4"))
    >>> audio, frames = load_sampled(path, lambda n_frames: [0, n_frames // 2, n_frames - 1])  # first, middle, last
    >>> audio.shape, frames.shape
    ((16000,), (3, 128, 128, 3))
    """
    return _load_sampled(path, frame_sampler, sample_rate=sample_rate)


def _load_sampled(path, frame_sampler, *, sample_rate=16000, with_audio=True):
    """:func:`load_sampled`; ``with_audio=False`` decodes no audio (and accepts a silent file).

    Returns
    -------
    audio : ndarray of shape (n_samples,), float32, or None without ``with_audio``
    frames : ndarray of shape (n_picked, height, width, 3), uint8
    """
    path, sample_rate, _, _, _, _ = _check_load_args(path, sample_rate, None, None, 0.0, None)
    plan = _sampled_plan(path, frame_sampler)
    # without a plan (packets without time stamps) a first pass only counts the frames
    needed = set() if plan is None else plan[1]
    for _ in range(2):  # the second pass only when the plan missed picked frames
        times, frames, idx, out_fps, t_first, audio = _decode_sampled(path, needed, with_audio, sample_rate)
        if plan is not None and np.array_equal(times[idx], plan[0]):
            choice = plan[2]  # the same frames as planned: frame_sampler is not called again
        else:
            choice = _sampled(frame_sampler, idx.size)
            plan = (times[idx], None, choice)
        picked = idx[choice]
        if all(frames[int(i)] is not None for i in picked):
            break
        needed = set(times[picked].tolist())
    else:
        raise ValueError(f"the frames of '{path}' changed between two decodes; load it with load_clip")
    rgb = {int(i): frames[int(i)] for i in np.unique(picked)}
    del frames
    out = np.stack([rgb[int(i)] for i in picked]) if picked.size else np.zeros((0, 0, 0, 3), np.uint8)
    if not with_audio:
        return None, out
    audio, a_rate, a_seen = audio
    out_sr = sample_rate if sample_rate is not None else (a_rate or 16000)
    return _cut_audio(audio, a_rate, a_seen, True, out_sr, idx.size, out_fps, t_first, False, path, 0.0), out


def _packet_times(path):
    """The video stream's frame times (s) and the last frame's duration, from demuxing alone.

    Returns
    -------
    times : ndarray of shape (n_packets,), float64, or None
        Presentation times of the packets FFmpeg does not discard, sorted; None when a
        packet has no time stamp (the decoder then makes them up).
    last_duration : float or None
        Duration (s) of the last frame in presentation order, when the file says.
    origin : float or None
        The video stream's start time from the header.
    native, tick : float or None
        Native frame rate and the stream's time base (s).
    """
    with _open_input(path) as container:
        vstream = container.streams.video[0]
        head = (_stream_start(vstream), _native_fps(vstream),
                float(vstream.time_base) if vstream.time_base is not None else 0.0)
        pts, durations = [], []
        try:
            for packet in container.demux(vstream):
                if packet.size == 0 or packet.is_discard:  # the flush packet; edit-list cuts
                    continue
                if packet.pts is None:
                    return (None, None) + head
                pts.append(float(packet.pts * packet.time_base))
                durations.append(float(packet.duration * packet.time_base) if packet.duration else None)
        except av.error.FFmpegError as exc:
            raise ValueError(f"could not decode video file '{path}': {exc}") from exc
    if not pts:
        return (None, None) + head
    last = int(np.argmax(pts))
    return (np.sort(np.asarray(pts)), durations[last]) + head


def _sampled_plan(path, frame_sampler):
    """Which frames :func:`load_sampled` keeps, planned from the packets before decoding.

    Returns
    -------
    plan : (picked times, needed, choice) or None
        Times (s) of the frames the clip will have at the picked positions, their set, and
        ``frame_sampler``'s answer; None when the packets cannot say.
    """
    times, last_dur, origin, native, tick = _packet_times(path)
    if times is None:
        return None
    t_lo = origin if origin is not None else float(times[0])
    before = np.flatnonzero(times < t_lo)
    if before.size > 1:  # :func:`_decode` keeps only the latest frame before the clip's start
        times = times[before[-1]:]
    idx, _, _ = _frame_grid(times, t_lo, native, last_dur, None, None, tick, path, 0.0)
    choice = _sampled(frame_sampler, idx.size)
    picked = times[idx][choice]
    return times[idx], set(picked.tolist()), choice


def _decode_sampled(path, needed, with_audio, sample_rate):
    """One decode of the whole file holding only the frames at ``needed`` times, as RGB.

    Returns
    -------
    times : ndarray of shape (n_decoded,), float64
        Every decoded frame's time (s), sorted.
    frames : list
        Per entry of ``times``: its RGB array (height, width, 3) when its time is in
        ``needed``, else None.
    idx, out_fps, t_first
        As :func:`_frame_grid` gives them.
    audio : (audio, rate, seen) or None
        :func:`_decode`'s audio, resampled to ``sample_rate`` (Hz; None keeps the file's), None
        without ``with_audio``.
    """
    with _open_input(path) as container:
        vstream, astream = _pick_streams(container, path, allow_missing_audio=not with_audio)
        astream = astream if with_audio else None
        native, origin = _native_fps(vstream), _stream_start(vstream)
        tick = float(vstream.time_base) if vstream.time_base is not None else 0.0
        convert = _RGBConverter(None, copy=True)  # owned copies: FFmpeg's buffers go back at once

        def keep(t, frame):
            return convert(frame) if t in needed else None

        t_lo, _, vframes, last_vdur, audio, a_rate, a_seen = _decode(
            container, path, vstream, astream, origin, 0.0, None, None, native, keep=keep, resample_to=sample_rate)
    times, vframes = _sorted_frames(vframes, path)
    idx, out_fps, t_first = _frame_grid(times, t_lo, native, last_vdur, None, None, tick, path, 0.0)
    return (times, [f for _, f in vframes], idx, out_fps, t_first,
            (audio, a_rate, a_seen) if with_audio else None)


def _open_audio(path, name):
    """``path`` checked and opened: (container, its first audio stream); errors name ``name``."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"{name} must be a str or os.PathLike; got {type(path).__name__}")
    path = os.fsdecode(os.fspath(path))
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{name}: no such file: '{path}'" if not os.path.exists(path)
                                else f"{name}: '{path}' is not a file")
    try:
        container = av.open(path)
    except av.error.FFmpegError as exc:
        raise ValueError(f"{name}: could not read '{path}' ({exc}); {_AUDIO_FILE}") from exc
    if not container.streams.audio:
        container.close()
        raise ValueError(f"{name}: '{path}' has no sound (no audio stream); {_AUDIO_FILE}")
    return container, container.streams.audio[0]


_AUDIO_FILE = "it must be an audio or video file with sound (WAV, FLAC, MP3, MP4, ...)"


def _mono_chunks(container, stream, path, name):
    """The stream's decoded frames as mono float32 arrays, in order (empty frames skipped)."""
    try:
        for frame in container.decode(stream):
            if frame.samples:
                yield _audio_to_mono(frame).astype(np.float32, copy=False)
    except av.error.FFmpegError as exc:
        raise ValueError(f"{name}: could not decode the sound of '{path}' ({exc})") from exc


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

    See Also
    --------
    iter_audio : the same samples a window at a time, for long files.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from scipy.io import wavfile
    >>> from skavc.io import load_audio
    >>> path = os.path.join(tempfile.mkdtemp(), "half.wav")
    >>> wavfile.write(path, 8000, np.full(8000, 16384, np.int16))  # 1 s of int16 PCM at half scale
    >>> samples, rate = load_audio(path)
    >>> samples.shape, samples.dtype, rate, float(samples.max())
    ((8000,), dtype('float32'), 8000, 0.5)
    """
    sample_rate = _check_sample_rate(sample_rate)
    container, stream = _open_audio(path, name)
    with container:
        chunks = list(_mono_chunks(container, stream, container.name, name))
        rate = stream.rate or stream.codec_context.sample_rate
    if not chunks:
        raise ValueError(f"{name}: no sound decoded from '{container.name}'; {_AUDIO_FILE}")
    samples = np.concatenate(chunks)
    if sample_rate is not None and sample_rate != rate:
        samples, rate = resample_audio(samples, rate, sample_rate), sample_rate
    return samples, int(rate)


class AudioWindows:
    """The sound of a file as consecutive windows: what :func:`iter_audio` returns.

    Iterating decodes the file once, from its first sample, and yields mono float32 arrays:
    window ``k`` holds the samples ``[round(k * hop * sample_rate), round((k * hop + window) *
    sample_rate))`` of what :func:`load_audio` returns (the last one what is left, at least one
    sample), so memory follows ``window``, not the file's length.

    Attributes
    ----------
    sample_rate : int
        Rate of the samples yielded (Hz).
    duration : float or None
        Seconds of sound from the header (an estimate), None when the file does not say.
    window, hop : float
        Seconds per window, and from one window's start to the next.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from scipy.io import wavfile
    >>> from skavc.io import iter_audio
    >>> path = os.path.join(tempfile.mkdtemp(), "ramp.wav")
    >>> wavfile.write(path, 16000, np.linspace(-1, 1, 16000, dtype=np.float32))  # 1 s at 16 kHz
    >>> windows = iter_audio(path, window=0.4)  # hop defaults to the window: no overlap
    >>> type(windows).__name__, windows.duration, [w.shape for w in windows]  # the last window: what is left
    ('AudioWindows', 1.0, [(6400,), (6400,), (3200,)])
    """

    def __init__(self, path, *, window, hop, sample_rate, name):
        self.window, self.hop = check_window(window, hop)
        requested = _check_sample_rate(sample_rate)
        container, stream = _open_audio(path, name)  # refused at the call, not at the first window
        with container:
            self._path, self._name = container.name, name
            self._native = int(stream.rate or stream.codec_context.sample_rate)
            duration = None
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration = container.duration / av.time_base
        self.sample_rate = requested or self._native
        self.duration = duration

    def __iter__(self):
        with _open_audio(self._path, self._name)[0] as container:
            chunks = _mono_chunks(container, container.streams.audio[0], self._path, self._name)
            if self.sample_rate != self._native:
                resampler = _soxr_stream(self._native, self.sample_rate)
                chunks = _resampled(chunks, resampler)
            empty = True
            for samples in cut_windows(chunks, window=self.window, hop=self.hop, sample_rate=self.sample_rate):
                empty = False
                yield samples
            if empty:
                raise ValueError(f"{self._name}: no sound decoded from '{self._path}'; {_AUDIO_FILE}")


def _resampled(chunks, resampler):
    """``chunks`` through a streaming resampler, its tail flushed at the end."""
    for chunk in chunks:
        out = resampler.resample_chunk(chunk)
        if out.size:
            yield out
    tail = resampler.resample_chunk(np.zeros(0, np.float32), last=True)
    if tail.size:
        yield tail


def cut_windows(pieces, *, window, hop, sample_rate):
    """Consecutive, possibly overlapping windows of a sound given in pieces, holding one window.

    Parameters
    ----------
    pieces : iterable of ndarray of shape (n,)
        The sound in order: decoded chunks of a file, or one array.
    window, hop : float
        Seconds per window and from one window's start to the next (``0 < hop <= window``).
    sample_rate : int
        Rate of the samples (Hz).

    Yields
    ------
    samples : ndarray of shape (n_samples,)
        Window ``k``: the samples ``[round(k * hop * sample_rate), round((k * hop + window) *
        sample_rate))``; the last one is the first that reaches the end (what is left). Nothing
        for an empty sound.

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.io import cut_windows
    >>> pieces = [np.arange(5), np.arange(5, 12)]  # 12 samples at 4 Hz, in two pieces
    >>> [w.tolist() for w in cut_windows(pieces, window=1.0, hop=0.5, sample_rate=4)]
    [[0, 1, 2, 3], [2, 3, 4, 5], [4, 5, 6, 7], [6, 7, 8, 9], [8, 9, 10, 11]]
    """
    held, n_held, base, k = [], 0, 0, 0  # held: samples [base, base + n_held), in pieces
    pieces, done = iter(pieces), False
    while True:
        first = int(round(k * hop * sample_rate))
        stop = int(round((k * hop + window) * sample_rate))
        while not done and base + n_held <= stop:  # one sample past: is this window the last?
            piece = next(pieces, None)
            if piece is None:
                done = True
            elif piece.size:
                held.append(piece)
                n_held += piece.size
        if base + n_held <= first:
            return
        samples = np.concatenate(held) if len(held) != 1 else held[0]
        yield samples[first - base : stop - base].copy()
        if done and base + n_held <= stop:
            return
        k += 1
        nxt = int(round(k * hop * sample_rate))
        held, n_held, base = [samples[nxt - base :]], base + n_held - nxt, nxt


def iter_audio(path, *, window=10.0, hop=None, sample_rate=None, name="path"):
    """Read the sound of a file as consecutive windows, in one pass, in bounded memory.

    Parameters
    ----------
    path : str or os.PathLike
        An audio or video file with sound.
    window : float, default=10.0
        Seconds per window.
    hop : float or None, default=None
        Seconds from one window's start to the next, ``0 < hop <= window``; None means
        ``window`` (the windows tile the sound).
    sample_rate : int or None, default=None
        Rate of the samples (resampled as they are decoded, by :func:`load_audio`'s resampler);
        None keeps the file's.
    name : str, default="path"
        What to call ``path`` in error messages.

    Returns
    -------
    windows : AudioWindows
        An iterable (each pass decodes the file again) of float32 arrays of shape
        (n_samples,): window ``k`` is ``load_audio(path)[0][round(k * hop * rate) :
        round((k * hop + window) * rate)]``; ``windows.sample_rate`` and ``windows.duration``
        are known before the first window is read.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist (at the call, as are the argument errors).
    ValueError
        If the file cannot be read or holds no sound.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from scipy.io import wavfile
    >>> from skavc.io import iter_audio
    >>> path = os.path.join(tempfile.mkdtemp(), "silence.wav")
    >>> wavfile.write(path, 8000, np.zeros(8000, np.float32))  # 1 s at 8 kHz
    >>> windows = iter_audio(path, window=0.5, hop=0.25, sample_rate=16000)
    >>> windows.sample_rate, windows.duration, [w.shape for w in windows]
    (16000, 1.0, [(8000,), (8000,), (8000,)])
    """
    return AudioWindows(path, window=window, hop=hop, sample_rate=sample_rate, name=name)


def _decode_clip(path, *, sample_rate, fps, max_duration, start, frame_size, allow_missing_audio):
    """:func:`load_clip`'s work: (audio, sample rate, frames, fps)."""
    path, sample_rate, fps, max_duration, start, frame_size = _check_load_args(
        path, sample_rate, fps, max_duration, start, frame_size)
    with _open_input(path) as container:
        vstream, astream = _pick_streams(container, path, allow_missing_audio)
        native = _native_fps(vstream)
        stream_start = _stream_start(vstream)
        # read while the file is open: a closed container's streams point at freed memory
        tick = float(vstream.time_base) if vstream.time_base is not None else 0.0
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

    times, vframes = _sorted_frames(vframes, path)
    idx, out_fps, t_first = _frame_grid(times, t_lo, native, last_vdur, fps, max_duration, tick, path, start)

    # convert each selected frame once, even when the fps grid repeats it
    unique, inverse = np.unique(idx, return_inverse=True)
    rgb = _to_rgb([vframes[int(i)][1] for i in unique], frame_size)
    del vframes
    frames = np.stack(rgb)[inverse] if unique.size != idx.size else np.stack(rgb)
    del rgb

    out_sr = sample_rate if sample_rate is not None else (a_rate or 16000)
    wave = _cut_audio(audio, a_rate, a_seen, astream is not None, out_sr, idx.size, out_fps, t_first,
                      allow_missing_audio, path, start)
    return wave, out_sr, frames, out_fps


def _sorted_frames(vframes, path):
    """``vframes`` (time, payload) from :func:`_decode` in presentation order: (times (n,) s, vframes)."""
    if not vframes:
        raise ValueError(f"no video frames decoded from '{path}'")
    times = np.array([t for t, _ in vframes], dtype=np.float64)
    order = np.argsort(times, kind="stable")
    return times[order], [vframes[i] for i in order]


def _frame_grid(times, t_lo, native, last_vdur, fps, max_duration, tick, path, start):
    """The clip's frames among sorted frame ``times`` (s): (indices into ``times``, out fps, t_first).

    :func:`_select_frames` after the checks and the rate estimate that :func:`load_clip` makes.
    """
    if times[-1] < t_lo - (1.0 / native if native else 0.1):  # all frames end before start
        raise ValueError(
            f"no video frames decoded from '{path}' at start={start:g}s: "
            f"the video ends at {times[-1] - (t_lo - start):.3f}s"
        )
    if native is None:  # no rate in the header: estimate it from the time stamps
        native = _estimate_fps(times, last_vdur)
    video_end = times[-1] + (last_vdur or 1.0 / native)
    idx, out_fps, t_first = _select_frames(times, fps, native, t_lo, max_duration, video_end, tick)
    if idx.size == 0:
        if max_duration is not None and max_duration * (fps or native) < 1:
            raise ValueError(f"max_duration={max_duration:g}s is shorter than one frame of '{path}'")
        raise ValueError(f"no video frames decoded from '{path}' at start={start:g}s")
    return idx, out_fps, t_first


def _cut_audio(audio, a_rate, a_seen, has_audio, out_sr, n_frames, out_fps, t_first, allow_missing_audio, path,
               start):
    """The clip's audio: ``round(n_frames * out_sr / out_fps)`` samples at ``out_sr`` from ``t_first`` (s).

    ``audio`` is :func:`_decode`'s (t0, samples at ``a_rate``) or None; silence fills what the
    stream does not cover (the module docstring's time model).
    """
    n_samples = max(1, int(round(n_frames * out_sr / out_fps)))
    if not has_audio:
        return np.zeros(n_samples, dtype=np.float32)
    if audio is not None:
        a_t0, y = audio
        if a_rate != out_sr:
            y = resample_audio(y, a_rate, out_sr)
        # sample i of y plays at a_t0 + i / out_sr; the clip starts at t_first
        offset = int(round((t_first - a_t0) * out_sr))
        if min(y.size, offset + n_samples) - max(0, offset) > 0:  # any overlap?
            if offset >= 0:
                y = y[offset : offset + n_samples]
            else:  # audio starts after the first frame: silence in front
                y = np.concatenate([np.zeros(-offset, dtype=np.float32), y[: n_samples + offset]])
            if y.size < n_samples:  # audio ends before the video: silence at the end
                y = np.concatenate([y, np.zeros(n_samples - y.size, dtype=np.float32)])
            return np.ascontiguousarray(y, dtype=np.float32)
    if not allow_missing_audio:
        what = "" if a_seen else " at all"
        raise ValueError(
            f"no audio samples decoded{what} from '{path}' for the requested span "
            f"(start={start:g}s, {n_frames} frames at {out_fps:g} fps); "
            "pass allow_missing_audio=True to use silence instead"
        )
    return np.zeros(n_samples, dtype=np.float32)


# --------------------------------------------------------------------------- #
# streaming: windows of a long file in one pass
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class VideoInfo:
    """What :func:`video_info` reads from a file's header (and its first frame).

    Attributes
    ----------
    duration : float or None
        Seconds of video (the video stream's duration, else the container's), None when the
        file does not say.
    fps : float or None
        Native frame rate (the stream's average rate), None when the file does not say.
    n_frames : int or None
        Number of frames at ``fps``: the count the header gives (mp4), else
        ``round(duration * fps)``; an estimate either way.
    width, height : int
        Size of the upright frames in pixels (after the rotation below).
    has_audio : bool
        Whether the file has an audio stream.
    audio_sample_rate : int or None
        The audio stream's rate (Hz), None without one.
    rotation : int
        Degrees clockwise the stored frames are turned to be upright (0, 90, 180 or 270), as
        FFmpeg's player and ``autorotate`` do; 90 for a portrait phone video.

    Examples
    --------
    >>> import os, tempfile
    >>> from skavc import save_clip
    >>> from skavc.datasets import make_av_clips
    >>> from skavc.io import video_info
    >>> (clip,), _ = make_av_clips(n_clips=1, duration=1.0, random_state=0)  # 25 frames of 128 x 128 at 25 fps
    >>> info = video_info(save_clip(clip, os.path.join(tempfile.mkdtemp(), "clip.mp4")))
    >>> info.duration, info.fps, info.n_frames, (info.height, info.width), info.audio_sample_rate, info.rotation
    (1.0, 25.0, 25, (128, 128), 16000, 0)
    >>> info.n_windows(window=0.4)  # how many windows iter_clips would cut
    3
    """

    duration: float
    fps: float
    n_frames: int
    width: int
    height: int
    has_audio: bool
    audio_sample_rate: int
    rotation: int

    def n_windows(self, window=10.0, hop=None, fps=None):
        """How many windows :func:`iter_clips` yields with these arguments (from the header: an estimate).

        Parameters
        ----------
        window, hop, fps : float or None
            As :func:`iter_clips` takes them (``start`` and ``max_duration`` left at their defaults).

        Returns
        -------
        n_windows : int or None
            None when the header gives neither the duration nor the frame count.
        """
        window, hop = check_window(window, hop)
        out_fps = check_positive(fps, name="fps") if fps is not None else self.fps
        if out_fps is None:
            return None
        if fps is None and self.n_frames is not None:
            n_total = self.n_frames
        elif self.duration is not None:
            n_total = max(1, int(math.ceil(self.duration * out_fps - 1e-3)))
        else:
            return None
        k = 0
        while window_frames(k, hop, window, out_fps)[1] < n_total:
            k += 1
        return k + 1


def video_info(path):
    """Duration, frame rate, size and rotation of a video file, without decoding it.

    Reads the container's header and decodes only the first frame (where FFmpeg puts the
    display matrix), so it is instant on files of any length: what a caller needs to plan
    windows and show progress over :func:`iter_clips`.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    info : VideoInfo
        ``duration``, ``fps``, ``n_frames``, ``width``, ``height``, ``has_audio``,
        ``audio_sample_rate``, ``rotation``; ``info.n_windows(window, hop)`` estimates how
        many windows :func:`iter_clips` yields.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file cannot be read, has no video stream, or no frame decodes.

    Examples
    --------
    >>> info = video_info("talk.mp4")  # doctest: +SKIP
    >>> info.duration, info.height, info.width, info.rotation  # doctest: +SKIP
    (3601.2, 1920, 1080, 90)
    """
    path = _check_path_in(path)
    with _open_input(path) as container:
        vstream, astream = _pick_streams(container, path, allow_missing_audio=True)
        fps = _native_fps(vstream)
        duration = None
        if vstream.duration is not None and vstream.time_base is not None:
            duration = float(vstream.duration * vstream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        n_frames = int(vstream.frames) if vstream.frames else None
        if n_frames is None and duration is not None and fps is not None:
            n_frames = int(round(duration * fps))
        if duration is None and n_frames is not None and fps is not None:
            duration = n_frames / fps
        try:
            first = next(container.decode(vstream), None)
        except av.error.FFmpegError as exc:
            raise ValueError(f"could not decode video file '{path}': {exc}") from exc
        if first is None:
            raise ValueError(f"no video frames decoded from '{path}'")
        rotation, ops = _orientation(_display_matrix(first))
        height, width = (first.width, first.height) if ops[0] else (first.height, first.width)
        audio_rate = None
        if astream is not None:
            audio_rate = int(astream.rate or astream.codec_context.sample_rate or 0) or None
    return VideoInfo(duration=duration, fps=fps, n_frames=n_frames, width=int(width), height=int(height),
                     has_audio=astream is not None, audio_sample_rate=audio_rate, rotation=rotation)


def key_frames(path, times, *, frame_size=None):
    """A frame near each of ``times``: the key frame at or before it, decoded alone.

    For a quick look at a long video (is there a face in it?) without decoding the frames
    between: each costs one seek and one key frame's decoding, where reading at an exact time
    decodes a whole group of pictures (up to 250 frames of a default x264 file).

    Parameters
    ----------
    path : str or os.PathLike
    times : sequence of float
        Seconds from the start of the video stream.
    frame_size : (int, int) or None, default=None
        ``(height, width)`` of the upright frames returned (None: the video's own).

    Returns
    -------
    frames : ndarray of shape (n, H, W, 3), uint8
        Upright RGB, one per time where a frame decodes (fewer at the very end of a file).
    """
    path = _check_path_in(path)
    frame_size = _check_frame_size(frame_size)
    convert = _RGBConverter(frame_size, copy=True)
    frames = []
    with _open_input(path) as container:
        vstream, _ = _pick_streams(container, path, allow_missing_audio=True)
        base = vstream.start_time or 0
        for t in times:
            container.seek(base + int(float(t) / vstream.time_base), stream=vstream, backward=True, any_frame=False)
            try:
                frame = next(container.decode(vstream), None)
            except av.error.FFmpegError as exc:
                raise ValueError(f"could not decode video file '{path}': {exc}") from exc
            if frame is not None:
                frames.append(convert(frame))
    if not frames:
        return np.zeros((0, *(frame_size or (0, 0)), 3), np.uint8)
    return np.stack(frames)


def has_video_stream(path):
    """Whether a file has a video stream, from its header (a video, not a sound file)."""
    path = _check_path_in(path)
    with _open_input(path) as container:
        return bool(container.streams.video)


def check_window(window, hop):
    """``window`` and ``hop`` (s) checked, ``hop`` None meaning ``window``: (window, hop)."""
    window = check_real(window, name="window", positive=True)
    if hop is None:
        return window, window
    hop = check_real(hop, name="hop", positive=True)
    if hop > window:
        raise ValueError(f"hop must be at most window ({window:g} s), or windows would leave frames out; "
                         f"got hop={hop!r}")
    return window, hop


def _round_frames(x):
    """``x`` (a number of frames) to the nearest whole frame, halves down, float noise ignored."""
    return int(math.floor(x + 0.5 - 1e-6))


def window_frames(k, hop, window, fps):
    """Window ``k``'s output frames ``[first, stop)`` at ``fps``, before the file's end cuts it.

    Both ends are rounded from seconds (not a fixed count from the start), so that windows with
    ``hop == window`` tile the frames exactly even when ``window * fps`` is not whole.
    """
    return _round_frames(k * hop * fps), _round_frames(k * hop * fps + window * fps)


class _SeekMissed(Exception):
    """The initial seek landed after data the first window needs: decode from the beginning."""


class _AudioTrack:
    """The audio of a stream, mono, resampled as it arrives, cut into windows on the video's clock.

    The resampler is :func:`_soxr_stream`, fed the decoded frames in order: the samples of a
    window are those :func:`load_clip` cuts from the same span (it resamples the whole span in
    one chunk). Only the samples that windows still to come may use are kept.

    Which frames are kept mirrors :func:`_decode`: from the first one that ends after ``a_lo``
    (the span's start less a margin) to the last one that starts before ``a_hi``. Sample ``i``
    of the output plays at ``t0 + i / rate``, ``t0`` the time of the first kept frame.
    """

    def __init__(self, sample_rate):
        self.sample_rate = sample_rate  # None: the file's rate, known at the first frame
        self.a_lo, self.a_hi = -math.inf, math.inf
        self.t0 = None  # time (s) of the first kept sample
        self.seen = False  # any sample at all, kept or not
        self.done = False
        self._in_rate = None  # the stream's rate, from its first frame
        self._next = None  # time of the sample after the last decoded frame
        self._resampler = None
        self._chunks, self._base, self.n_out = [], 0, 0  # samples [base, n_out) are held

    @property
    def rate(self):
        """Rate (Hz) of the samples cut; 16000 when the stream never produced one (as load_clip)."""
        return self.sample_rate or self._in_rate or 16000

    def push(self, frame):
        n = frame.samples
        if n == 0 or self.done:
            return
        self.seen = True
        self._in_rate = self._in_rate or frame.sample_rate
        t = frame.time if frame.pts is not None else self._next
        t = 0.0 if t is None else t
        self._next = t + n / frame.sample_rate
        if self._next <= self.a_lo:
            return
        if t > self.a_hi:
            self.finish()
            return
        if self.t0 is None:
            self.t0 = t
            if self.rate != frame.sample_rate:
                self._resampler = _soxr_stream(frame.sample_rate, self.rate)
        # Samples are concatenated as one contiguous run from t0: small time
        # stamp jitter between packets is ignored (as load_clip does).
        self._add(_audio_to_mono(frame))

    def _add(self, mono, last=False):
        if self._resampler is not None:
            mono = self._resampler.resample_chunk(mono, last=last)
        if mono.size:
            self._chunks.append(mono)
            self.n_out += mono.size

    def finish(self):
        """No more frames: flush the resampler's tail."""
        if not self.done and self._resampler is not None:
            self._add(np.zeros(0, np.float32), last=True)
        self.done = True

    def offset(self, t):
        """Index of the output sample that plays at time ``t`` (as load_clip rounds it)."""
        return int(round((t - self.t0) * self.rate))

    def cut(self, t, n):
        """``n`` samples from time ``t``, zeros where the audio is missing.

        Returns
        -------
        status : {"wait", "ok", "none"}
            "wait": the samples are not all decoded yet; "none": no sample overlaps.
        wave : ndarray of shape (n,), float32, or None
        """
        if self.t0 is None:
            return ("none", None) if self.done else ("wait", None)
        off = self.offset(t)
        if not self.done and self.n_out < off + n:
            return "wait", None
        lo, hi = max(off, self._base), min(off + n, self.n_out)
        if hi <= max(off, 0):
            return "none", None
        if len(self._chunks) > 1:
            self._chunks = [np.concatenate(self._chunks)]
        wave = np.zeros(n, dtype=np.float32)
        wave[lo - off : hi - off] = self._chunks[0][lo - self._base : hi - self._base]
        return "ok", wave

    def drop_before(self, t):
        """Forget the samples before time ``t`` (no window to come starts earlier)."""
        if self.t0 is None or not self._chunks:
            return
        cut = min(self.offset(t), self.n_out) - self._base
        if cut <= 0:
            return
        held = np.concatenate(self._chunks) if len(self._chunks) > 1 else self._chunks[0]
        self._chunks, self._base = [held[cut:].copy()], self._base + cut


class _WindowStream:
    """:func:`iter_clips`' state between packets: the frames of the windows still to come.

    The video side mirrors :func:`_decode` and :func:`_select_frames` on the span
    ``[t_lo, t_hi)``, incrementally. *Candidates* are the decoded frames from the last one
    before ``t_lo`` on, in time order; *outputs* are the clip's frames at ``out_fps``, each a
    candidate (a *pick*):

    * "asis" (``fps=None``, constant rate so far): output ``j`` is candidate ``i0 + j``, ``i0``
      the one nearest to ``t_lo``; its time is the candidate's.
    * "grid" (``fps`` given, or a variable rate found): output ``j`` is the candidate nearest to
      ``anchor + j / out_fps`` (ties to the earlier, as ``np.searchsorted`` there).

    An irregular interval switches "asis" to "grid". Found before window 0 is complete (by
    :func:`load_clip`'s stopping rule for that span), everything is planned again on the grid
    from ``t_lo``, as :func:`load_clip` would; found later, the grid goes on from the first
    frame's time so that no frame repeats or goes missing at the switch.

    Only the newest candidate keeps its decoded (yuv) frame, until the next one arrives: by then
    every output it can be the nearest to is known, and it is converted to RGB if picked, else
    dropped. A picked frame is written straight into its window's array (allocated at the
    window's first frame, handed over as the clip's frames); frames picked for a later window
    (read ahead, or the overlap of the window handed over) wait in ``ahead``.

    Window ``k`` holds outputs ``[round(k * hop * fps), round(k * hop * fps + window * fps))``;
    it is yielded once they are all picked, the frames up to ``2 / fps`` past its end are decoded
    (load_clip's stop rule, so the constant-rate check sees the same frames) and its audio is in.
    """

    def __init__(self, path, vstream, astream, *, origin, start, window, hop, max_duration, fps, sample_rate,
                 frame_size, allow_missing_audio, seeking):
        self.path, self.start, self.window, self.hop = path, start, window, hop
        self.max_duration, self.fps = max_duration, fps
        self.allow_missing_audio, self.seeking = allow_missing_audio, seeking
        self.native = _native_fps(vstream)
        self.tick = float(vstream.time_base) if vstream.time_base is not None else 0.0
        fps_guess = fps or self.native
        self.frame_dt = 1.0 / fps_guess if fps_guess else 0.04
        self.audio = _AudioTrack(sample_rate) if astream is not None else None
        self.audio_start = _stream_start(astream) if astream is not None else None
        self.sample_rate = sample_rate
        self.convert = _RGBConverter(frame_size, copy=False)  # copied into its window's slot
        # the video
        self.origin = self.t_lo = self.t_hi = None
        self.prev = None  # (time, frame): the latest frame before t_lo
        self.last_vt = self.last_vdur = None
        # [time, rgb, yuv]; rgb: the output whose slot holds the frame, or an array; index cbase + i
        self.cands, self.times, self.cbase = [], [], 0
        self.v_stop = self.v_done = self.final = False
        self.max_t = -math.inf  # newest candidate time of the packets fully decoded
        # the outputs
        self.mode = "grid" if fps is not None else "asis"
        self.anchor = None
        self.i0 = self.t_i0 = None  # "asis": the first frame's candidate and its time
        self.picks, self.pbase = [], 0  # (candidate, time) of outputs pbase, pbase + 1, ...
        self.frames = None  # window k's frames, filled as they are picked: (first output, array)
        self.ahead = {}  # output -> RGB of the frames picked for later windows only
        self.n_total = None  # number of outputs, once the end is known
        self.k = 0  # next window
        self.frozen = False  # window 0's frames all decoded: a variable rate found later goes on seamlessly
        self.had_audio = False
        self.exhausted = False
        self.out_fps = None
        if origin is not None:
            self._set_origin(origin)
        self._set_rate()

    # -- the clock -------------------------------------------------------------------
    def _set_origin(self, origin):
        self.origin = origin
        self.t_lo = origin + self.start
        self.t_hi = self.t_lo + self.max_duration if self.max_duration is not None else math.inf
        if self.audio is not None:
            # audio kept: the span plus margins for the resampler and for the nearest first frame
            # being up to a frame before t_lo (as _decode keeps it)
            self.audio.a_lo = self.t_lo - _AUDIO_MARGIN - self.frame_dt
            self.audio.a_hi = self.t_hi + _AUDIO_MARGIN + self.frame_dt
        if self.mode == "grid" and self.anchor is None:
            self.anchor = self.t_lo

    def _set_rate(self):
        """Output rate and cap, once the native rate is known (from the header, or estimated)."""
        if self.native is None:
            return
        self.out_fps = float(self.fps) if self.fps is not None else self.native
        self.n_cap = (int(math.floor(self.max_duration * self.out_fps + 1e-6)) if self.max_duration is not None
                      else math.inf)
        if self.n_cap < 1:
            raise ValueError(f"max_duration={self.max_duration:g}s is shorter than one frame of '{self.path}'")
        first, stop = window_frames(0, self.hop, self.window, self.out_fps)
        if stop - first < 1:
            raise ValueError(f"window={self.window:g}s is shorter than one frame at {self.out_fps:g} fps")

    # -- frames in -------------------------------------------------------------------
    def push_video(self, frame):
        # pts can be missing in odd streams: continue the clock.
        t = frame.time if frame.pts is not None else (self.last_vt + self.frame_dt if self.last_vt is not None
                                                      else 0.0)
        self.last_vt = t
        if self.t_lo is None:
            self._set_origin(t)
        if frame.duration and frame.time_base is not None:
            self.last_vdur = float(frame.duration * frame.time_base)
        if self.v_done:
            return
        if t < self.t_lo:
            self.prev = (t, frame)  # keep only the latest frame before the span
            return
        if self.prev is not None:
            self._add(*self.prev)
            self.prev = None
        self._add(t, frame)
        if t > self.t_hi + 2 * self.frame_dt:
            self.v_stop = True  # this packet's other frames still count, as in _decode

    def push_audio(self, frame):
        had_t0 = self.audio.t0 is not None
        self.audio.push(frame)
        if self.seeking and not had_t0 and self.audio.t0 is not None and self.audio_start is not None:
            # the audio after the seek must reach back to the span's start, unless the stream
            # itself starts later than that (load_clip's test)
            if self.audio.t0 > max(self.t_lo - self.frame_dt, self.audio_start) + 1e-3:
                raise _SeekMissed

    def _add(self, t, frame):
        n = len(self.cands)
        if self.seeking and self.cbase + n == 0 and t > self.t_lo + 0.5 * self.frame_dt:
            raise _SeekMissed
        if n and t < self.times[-1]:  # out of order: the decoder's order is broken, sort
            pos = bisect.bisect_right(self.times, t)
            if self.picks and self.cbase + pos <= self.picks[-1][0] or self.frozen:
                return  # before frames already picked: cannot take part any more
            self.times.insert(pos, t)
            self.cands.insert(pos, [t, None, frame])
            self._variable_rate()
            self._resolve()
            self._release(everyone=True)
            return
        if n and self.native is not None and self.mode == "asis":
            if abs(t - self.times[-1] - 1.0 / self.native) > _cfr_tolerance(self.native, self.tick):
                self._variable_rate()
        self.times.append(t)
        self.cands.append([t, None, frame])
        if self.native is None and len(self.cands) >= 25:
            self._estimate_native()
        self._resolve()
        self._release()

    def _release(self, everyone=False):
        """Only the newest candidate can still be picked (see the class notes): drop the others'
        decoded frame, and where their RGB is too once window 0 is frozen (before, a variable rate
        means picking window 0 again). A picked frame lives on in its window's array.

        The candidates before the previous one were released when it arrived, unless ``everyone``.
        """
        for rec in self.cands[:-1] if everyone else self.cands[-2:-1]:
            rec[2] = None
            if self.frozen:
                rec[1] = None

    def end_packet(self):
        """All frames of one packet are in."""
        if self.v_stop:
            self.v_done = True
        if self.times:
            self.max_t = max(self.max_t, self.times[-1])
        if self.out_fps is not None and not self.frozen and self.max_t > self._ready_time(0):
            self.frozen = True
            self._release(everyone=True)

    def finish(self):
        """The file (or the span) is decoded: the number of outputs is known."""
        if self.audio is not None:
            self.audio.finish()
        if self.final:
            return
        if not self.cands and self.prev is not None:
            self._add(*self.prev)  # the whole video ends before t_lo: judged below
            self.prev = None
        if not self.cands:
            if self.seeking:
                raise _SeekMissed
            raise ValueError(f"no video frames decoded from '{self.path}'")
        self.final = True
        if self.native is None:
            self._estimate_native()
        if self.times[-1] < self.t_lo - 1.0 / self.native:
            raise ValueError(f"no video frames decoded from '{self.path}' at start={self.start:g}s: "
                             f"the video ends at {self.times[-1] - self.origin:.3f}s")
        video_end = self.times[-1] + (self.last_vdur or 1.0 / self.native)
        if self.mode == "asis":
            self._find_i0()
            # frames whose display starts at or after the end of the video are not part of it
            n = bisect.bisect_left(self.times, video_end - 0.5 / self.native) + self.cbase - self.i0
        else:
            n = int(math.ceil((video_end - self.anchor) * self.out_fps - 1e-3))
        self.n_total = max(0, min(n, self.n_cap))
        if self.n_total == 0:
            raise ValueError(f"no video frames decoded from '{self.path}' at start={self.start:g}s")
        self._resolve()
        self.frozen = True
        self._release(everyone=True)

    # -- frames out ------------------------------------------------------------------
    def _estimate_native(self):
        """No rate in the header: from the time stamps, as load_clip does (on the first 25 frames)."""
        diffs = np.diff(self.times)
        self.native = _estimate_fps(self.times, self.last_vdur)
        self._set_rate()
        if self.mode == "asis" and diffs.size and np.any(
                np.abs(diffs - 1.0 / self.native) > _cfr_tolerance(self.native, self.tick)):
            self._variable_rate()

    def _variable_rate(self):
        if self.mode == "grid":
            return
        self.mode = "grid"
        if not self.frozen:  # window 0 not complete: plan again from t_lo, as load_clip would
            for rec in self.cands:  # the slots are written again: keep their frames aside
                if isinstance(rec[1], int):
                    rec[1] = np.array(self._slot(rec[1]), copy=True)
            self.anchor, self.picks, self.pbase, self.ahead = self.t_lo, [], 0, {}
            self.i0 = None
        else:  # go on from the first frame's time: the grid meets the frames already picked
            self._find_i0()
            self.anchor = self.t_i0

    def _find_i0(self):
        """The candidate nearest to t_lo (the earlier on a tie, as ``np.argmin``)."""
        if self.i0 is not None:
            return True
        first = bisect.bisect_left(self.times, self.t_lo)
        if first == len(self.times):
            if not self.final:
                return False
            first = len(self.times) - 1
        elif first > 0 and abs(self.times[first - 1] - self.t_lo) <= abs(self.times[first] - self.t_lo):
            first -= 1
        self.i0 = self.cbase + first
        self.t_i0 = self.times[first]
        return True

    def _pick(self, j):
        """The candidate output ``j`` shows, or None while that is not decided."""
        size = self.cbase + len(self.cands)
        if self.mode == "asis":
            if not self._find_i0():
                return None
            c = self.i0 + j
            return c if c + 1 < size or (self.final and c < size) else None
        g = self.anchor + j / self.out_fps
        right = self.cbase + bisect.bisect_left(self.times, g)
        if not self.final and (right >= size or size < 2):
            return None
        if size == 1:
            return 0
        right = min(max(right, 1), size - 1)
        left = right - 1
        if left < self.cbase:
            raise RuntimeError("iter_clips: a frame needed again was already dropped")  # a bug, not bad input
        t_left, t_right = self.times[left - self.cbase], self.times[right - self.cbase]
        return left if abs(t_left - g) <= abs(t_right - g) else right

    def _resolve(self):
        """Pick every output that can be decided now; convert the picked frames to RGB."""
        if self.out_fps is None:
            return
        while True:
            j = self.pbase + len(self.picks)
            if j >= self.n_cap or (self.n_total is not None and j >= self.n_total):
                return
            c = self._pick(j)
            if c is None:
                return
            rec = self.cands[c - self.cbase]
            if rec[1] is None:
                if rec[2] is None:
                    raise RuntimeError("iter_clips: a picked frame was already dropped")  # a bug
                rgb = self.convert(rec[2])
            else:
                rgb = self._slot(rec[1]) if isinstance(rec[1], int) else rec[1]
            t = rec[0] if self.mode == "asis" else self.anchor + j / self.out_fps
            self.picks.append((c, t))
            self._store(j, rgb)
            rec[1] = j

    def _store(self, j, rgb):
        """Put output ``j``'s frame in window k's array (allocated at its first frame), else aside."""
        first, stop = window_frames(self.k, self.hop, self.window, self.out_fps)
        if self.frames is None and first <= j < stop:
            self._open_window(first, stop, rgb.shape)
        if self.frames is not None and first <= j < stop:
            self.frames[1][j - first] = rgb
        else:
            self.ahead[j] = np.array(rgb, copy=True)

    def _slot(self, j):
        """Output ``j``'s frame, where it is kept."""
        if self.frames is not None and 0 <= j - self.frames[0] < self.frames[1].shape[0]:
            return self.frames[1][j - self.frames[0]]
        return self.ahead[j]

    def _open_window(self, first, stop, shape):
        """Allocate window k's frames and move in those already picked (the overlap, read-ahead)."""
        frames = np.empty((stop - first,) + shape, dtype=np.uint8)
        for j in [j for j in self.ahead if first <= j < stop]:
            frames[j - first] = self.ahead.pop(j)
        self.frames = (first, frames)

    def _ready_time(self, k):
        """Window ``k`` waits for a frame past this time (s): load_clip's stop rule for its span."""
        return self.t_lo + k * self.hop + self.window + 2 * self.frame_dt

    # -- windows out -----------------------------------------------------------------
    def windows(self):
        """Yield every window that is complete now."""
        while not self.exhausted and self.out_fps is not None:
            first, stop = window_frames(self.k, self.hop, self.window, self.out_fps)
            stop = min(stop, self.n_cap if self.n_total is None else self.n_total)
            if not self.final and self.max_t <= self._ready_time(self.k):
                return
            if self.pbase + len(self.picks) < stop:
                return
            clip = self._clip(first, stop)
            if clip is None:
                return  # its audio is not decoded yet
            last = stop >= (self.n_cap if self.n_total is None else self.n_total)
            self.k += 1
            self.exhausted = last
            self._forget()
            yield clip

    def _clip(self, first, stop):
        picks = self.picks[first - self.pbase : stop - self.pbase]
        t_first = picks[0][1]
        n_frames = len(picks)
        rate = self.audio.rate if self.audio is not None else (self.sample_rate or 16000)
        n_samples = max(1, int(round(n_frames * rate / self.out_fps)))
        wave = None
        if self.audio is not None:
            status, wave = self.audio.cut(t_first, n_samples)
            if status == "wait":
                return None
            self.had_audio |= wave is not None
            last = stop >= (self.n_cap if self.n_total is None else self.n_total)
            if wave is None and not self.allow_missing_audio and (self.audio.t0 is None or
                                                                   (last and not self.had_audio)):
                what = "" if self.audio.seen else " at all"
                raise ValueError(
                    f"no audio samples decoded{what} from '{self.path}' for the requested span "
                    f"(start={self.start:g}s, {stop} frames at {self.out_fps:g} fps); "
                    "pass allow_missing_audio=True to use silence instead"
                )
        if wave is None:
            wave = np.zeros(n_samples, dtype=np.float32)
        frames = self._take_frames(first, stop)
        return AVClip(wave, rate, frames, self.out_fps, self.path, start=max(0.0, t_first - self.origin),
                      check_quality=self.k == 0)  # the first window warns for the whole file

    def _take_frames(self, first, stop):
        """Window k's frames ``[first, stop)``, handed over without a copy; the overlap with the
        next window is copied aside first (the caller may change the frames it is given)."""
        if self.frames is None:  # every frame was picked while an earlier window was open
            nominal = window_frames(self.k, self.hop, self.window, self.out_fps)[1]
            self._open_window(first, nominal, self.ahead[first].shape)
        frames = self.frames[1][: stop - first]
        self.frames = None
        next_first, _ = window_frames(self.k + 1, self.hop, self.window, self.out_fps)
        for j in range(max(next_first, first), stop):
            self.ahead[j] = frames[j - first].copy()
        newest = self.cands[-1]  # the only candidate that may still be picked
        if isinstance(newest[1], int) and newest[1] not in self.ahead and first <= newest[1] < stop:
            newest[1] = frames[newest[1] - first].copy()
        return frames

    def _forget(self):
        """Drop the picks, frames and samples that no window to come needs."""
        first, _ = window_frames(self.k, self.hop, self.window, self.out_fps)
        keep = max(0, first - self.pbase)
        self.picks, self.pbase = self.picks[keep:], self.pbase + keep
        nxt = self.pbase + len(self.picks)  # the next output to pick needs candidates from about here
        if self.mode == "asis":
            c_next = (self.i0 if self.i0 is not None else self.cbase) + nxt
        else:
            c_next = self.cbase + bisect.bisect_left(self.times, self.anchor + nxt / self.out_fps)
        needed = min([c for c, _ in self.picks] + [c_next]) - 1
        drop = min(max(0, needed - self.cbase), max(0, len(self.cands) - 1))
        if drop:
            del self.cands[:drop], self.times[:drop]
            self.cbase += drop
        if self.audio is not None and self.audio.t0 is not None:
            t_next = self.picks[0][1] if self.picks else self.times[0]
            self.audio.drop_before(t_next - 2 * self.frame_dt - _AUDIO_MARGIN)


def iter_clips(path, *, window=10.0, hop=None, sample_rate=16000, fps=None, frame_size=None, start=0.0,
               max_duration=None, allow_missing_audio=False):
    """Read a video file as consecutive windows (:class:`~skavc.AVClip` objects), in one pass, in bounded memory.

    The file is decoded once, from ``start`` to its end: each decoded frame is converted at
    once to RGB at ``frame_size`` (by FFmpeg, as :func:`load_clip` does), and only the
    frames of the windows not yet complete are held, so memory follows ``window``, not the
    file's length. Windows follow :func:`load_clip`'s time model (module docstring); the
    audio is resampled as it streams, by the same resampler.

    Parameters
    ----------
    path : str or os.PathLike
        Video file readable by FFmpeg.
    window : float, default=10.0
        Seconds per window. Window ``k`` holds the frames (at the output rate ``fps``) from
        ``round(k * hop * fps)`` to ``round(k * hop * fps + window * fps)``, counted from the
        first frame: ``window * fps`` frames, within one when that is not whole. The last
        window holds what is left (at least one frame).
    hop : float or None, default=None
        Seconds from one window's start to the next, ``0 < hop <= window``; None means
        ``window`` (no overlap: the windows tile the frames, each frame in one window).
    sample_rate : int or None, default=16000
        Sampling rate of the returned audio (None: the file's).
    fps : float or None, default=None
        Frame rate of the returned frames. None keeps the native rate. When ``fps`` is given,
        or the stream has a variable frame rate, frames are picked on the uniform grid
        ``start + k / fps`` by nearest time stamp, as :func:`load_clip` does.
    frame_size : tuple of (int, int) or None, default=None
        ``(height, width)`` of the (upright) frames; None keeps the file's size.
    start : float, default=0.0
        Where the first window starts, in seconds from the first video frame (one seek
        there, then one pass).
    max_duration : float or None, default=None
        Read at most this many seconds from ``start``. None reads to the end.
    allow_missing_audio : bool, default=False
        If the file has no audio stream, or no audio in the span read, give silence instead
        of raising.

    Yields
    ------
    clip : AVClip
        ``frames`` of shape (n_frames, height, width, 3), uint8 RGB; mono float32 ``audio`` of
        exactly ``round(n_frames * sample_rate / fps)`` samples that starts with the first
        frame (zeros where the file has no audio); ``start``: seconds from the file's first
        video frame to the window's first frame; ``source``: the path.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist (raised at the call, as are the argument errors).
    ValueError
        For a bad argument (named), or, when iterating, a file that cannot be decoded, has no
        video stream, has no audio (unless ``allow_missing_audio``) or no frames after ``start``.

    See Also
    --------
    video_info : duration, rate, size and rotation from the header: plan windows, show progress.
    load_clip : the whole file (or one span) at once.

    Notes
    -----
    * A file shorter than ``window`` gives one window equal to :func:`load_clip` with the
      same arguments (frames identical, audio identical). With ``hop * fps`` and
      ``window * fps`` whole numbers, window ``k`` holds the frames
      ``load_clip(start=start + k * hop, max_duration=window)`` holds.
    * Memory: each frame is written into its window's array as it is decoded (handed over
      without a copy), so the reader holds one window of RGB frames, the overlap with the
      next one (``window - hop``), the frames read ahead until the window's audio is in
      (about 1 s in mp4, which the demuxer reads in time order), one decoded frame and the
      audio of the same span. A caller that keeps the previous window while asking for the
      next one holds two. A file whose audio is stored far from its video (badly
      interleaved mkv, avi) makes the reader hold the frames in between.
    * Rotation metadata (phone videos) is applied as by :func:`load_clip`.
    * A variable frame rate found after the first window goes on the grid from the first
      frame's time, not from ``start``: the windows' frames then match :func:`load_clip`'s,
      and their audio starts within half a frame of it.

    Examples
    --------
    >>> for clip in iter_clips("lecture.mp4", window=10.0, frame_size=(224, 224)):  # doctest: +SKIP
    ...     print(f"{clip.start:7.2f}s {clip.n_frames} frames")
    """
    path, sample_rate, fps, max_duration, start, frame_size = _check_load_args(
        path, sample_rate, fps, max_duration, start, frame_size)
    window, hop = check_window(window, hop)
    allow_missing_audio = bool(allow_missing_audio)
    if fps is not None and window_frames(0, hop, window, fps)[1] < 1:
        raise ValueError(f"window={window:g}s is shorter than one frame at fps={fps:g}")
    return _iter_clips(path, window=window, hop=hop, sample_rate=sample_rate, fps=fps, frame_size=frame_size,
                       start=start, max_duration=max_duration, allow_missing_audio=allow_missing_audio)


def _iter_clips(path, **kwargs):
    """:func:`iter_clips`' generator (the arguments are checked before the first ``next``)."""
    with _open_input(path) as container:
        vstream, astream = _pick_streams(container, path, kwargs["allow_missing_audio"])
        origin = _stream_start(vstream)
        # Seek once, only when the origin is known and the start is far in; if the seek
        # turns out to have skipped data the first window needs, decode from the beginning.
        attempts = [None]
        if kwargs["start"] > _SEEK_MIN_START and origin is not None:
            attempts = [origin + kwargs["start"] - _SEEK_LEAD, None]
        for seek_to in attempts:
            if seek_to is None and attempts[0] is not None:
                container.seek(0, stream=vstream, backward=True)
            state = _WindowStream(path, vstream, astream, origin=origin, seeking=seek_to is not None, **kwargs)
            try:
                yield from _stream_windows(container, path, vstream, astream, state, seek_to)
                return
            except _SeekMissed:
                continue  # raised before any window was yielded


def _stream_windows(container, path, vstream, astream, state, seek_to):
    """Demux once, feed ``state``, yield its windows as they complete."""
    if seek_to is not None:
        # Seek on the video stream: lands on the keyframe at or before seek_to.
        container.seek(max(0, int(math.floor(seek_to / vstream.time_base))), stream=vstream, backward=True)
    streams = [s for s in (vstream, astream) if s is not None]
    audio_done = lambda: state.audio is None or state.audio.done  # noqa: E731
    try:
        for packet in container.demux(*streams):
            is_video = packet.stream is vstream
            if (state.v_done if is_video else audio_done()):
                continue
            for frame in packet.decode():
                if is_video:
                    state.push_video(frame)
                else:
                    state.push_audio(frame)
            if is_video:
                state.end_packet()
            if state.v_done and audio_done():
                break
            yield from state.windows()
    except av.error.FFmpegError as exc:
        raise ValueError(f"could not decode video file '{path}': {exc}") from exc
    state.finish()
    yield from state.windows()


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

        # A sound that arrives with the frames (``take_audio()``: the samples since the last
        # call) is encoded as it comes; an AVClip's, after the last frame.
        take_audio = getattr(clip, "take_audio", None)
        n_sent = 0
        for i, rgb in enumerate(frames):
            frame = _rgb_to_videoframe(rgb)
            frame.pts = i  # codec time base is 1 / rate: one tick per frame
            container.mux(vstream.encode(frame))
            if take_audio is not None:
                n_sent = _mux_audio(container, astream, take_audio(), n_sent, clip.sample_rate)
        container.mux(vstream.encode(None))
        _mux_audio(container, astream, clip.audio if take_audio is None else take_audio(), n_sent, clip.sample_rate)
        container.mux(astream.encode(None))


def _mux_audio(container, astream, samples, first, sample_rate):
    """Encode mono ``samples`` that start at sample ``first``; the index of the sample after them.

    One frame holding them all: PyAV converts it to the encoder's sample format and re-chunks
    it to the codec's frame size (carrying the rest over to the next call)."""
    samples = np.asarray(samples, dtype=np.float32)
    if samples.size:
        aframe = av.AudioFrame.from_ndarray(samples[None, :], format="fltp", layout="mono")
        aframe.sample_rate = sample_rate
        aframe.pts = first
        aframe.time_base = Fraction(1, sample_rate)
        container.mux(astream.encode(aframe))
    return first + samples.size


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
    """Write an :class:`~skavc.AVClip` to a video file, atomically.

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

    Examples
    --------
    >>> import os, tempfile
    >>> from skavc import load_clip, save_clip
    >>> from skavc.datasets import make_av_clips
    >>> (clip,), _ = make_av_clips(n_clips=1, duration=1.0, random_state=0)
    >>> path = save_clip(clip, os.path.join(tempfile.mkdtemp(), "clip.mp4"))
    >>> load_clip(path).n_frames == clip.n_frames
    True
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


class WavWriter:
    """A mono float32 WAV file written a piece at a time (what :func:`scipy.io.wavfile.write`
    writes in one go), for sound too long to hold: the sizes in its header are filled in at
    ``close()``.

    Parameters
    ----------
    path : str or os.PathLike
        The file, created or truncated (write to a temporary path and rename it, as
        :func:`skavc._validation.atomic_path` does, to leave nothing half-written).
    sample_rate : int

    Examples
    --------
    >>> with WavWriter("target.wav", 16000) as out:  # doctest: +SKIP
    ...     for piece in pieces:
    ...         out.write(piece)
    """

    # RIFF, WAVE, "fmt " (18 bytes: IEEE float, no extension), "fact" (the sample count), "data"
    _HEADER = struct.Struct("<4sI4s4sIHHIIHHH4sII4sI")

    def __init__(self, path, sample_rate):
        self.sample_rate = check_sample_rate(sample_rate, name="sample_rate")
        self.n_samples = 0
        self._file = open(path, "wb")
        self._file.write(self._header())

    def _header(self):
        n_bytes = 4 * self.n_samples
        return self._HEADER.pack(b"RIFF", 50 + n_bytes, b"WAVE", b"fmt ", 18, 3, 1, self.sample_rate,
                                 4 * self.sample_rate, 4, 32, 0, b"fact", 4, self.n_samples, b"data", n_bytes)

    def write(self, samples):
        """Append mono samples (any real dtype, written as float32)."""
        samples = np.ascontiguousarray(samples, dtype="<f4")
        if samples.ndim != 1:
            raise ValueError(f"samples must be mono, of shape (n_samples,); got shape {samples.shape}")
        if 4 * (self.n_samples + samples.size) + 50 > 0xFFFFFFFF:
            raise ValueError("a WAV file holds at most 4 GB (about 7 hours of float32 at 44.1 kHz)")
        self._file.write(samples.tobytes())
        self.n_samples += samples.size

    def close(self):
        """Write the sizes into the header and close the file."""
        if not self._file.closed:
            self._file.seek(0)
            self._file.write(self._header())
            self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
