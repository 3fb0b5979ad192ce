"""Streaming decode (skavc.io.iter_clips, video_info) and the display rotation of phone videos.

iter_clips must give, window by window and in bounded memory, what load_clip gives at once:
the tests compare the two on generated files (constant and variable frame rate, streams that
start at different times, resampled audio, a seek), check that windows tile the file, that
memory follows the window and not the length, and that rotated files come out upright.
"""

import tracemalloc
import warnings
from fractions import Fraction

import numpy as np
import pytest

av = pytest.importorskip("av")

from skavc._clip import AVClip, ClipQualityWarning  # noqa: E402
from skavc.io import iter_clips, load_clip, load_sampled, save_clip, video_info  # noqa: E402

SR = 16000
FPS = 25


def tone_clip(duration=3.0, sr=SR, fps=FPS, height=48, width=64):
    """A frame counter (each frame a different grey, a square moving over it) and a 440 Hz tone
    with a click each second: frames tell their index, the audio its time."""
    n = int(round(duration * fps))
    frames = np.empty((n, height, width, 3), np.uint8)
    frames[:] = (np.arange(n) * 7 % 200 + 20).astype(np.uint8)[:, None, None, None]
    for i in range(n):
        x = int(i * (width - 16) / max(n, 1))
        frames[i, 8:24, x : x + 16] = 255
    t = np.arange(int(round(duration * sr))) / sr
    audio = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    for s in np.arange(0.5, duration, 1.0):
        audio[int(s * sr) : int(s * sr) + 40] = 0.9
    return AVClip(audio, sr, frames, fps)


def write_video(path, frames, *, fps=FPS, frame_times=None, audio=None, sr=SR, audio_start=0.0, layout="mono",
                audio_codec="aac", rotation=None, hflip=False, crf=None):
    """Write with PyAV directly: ``frames`` may be a generator (long files without holding them),
    ``frame_times`` gives a variable rate, ``rotation`` a display matrix (PyAV's counter-clockwise
    degrees, as ``ffmpeg -display_rotation``)."""
    with av.open(str(path), "w") as container:
        vs = container.add_stream("libx264", rate=fps)
        frames = iter(frames)
        first = next(frames)
        vs.width, vs.height, vs.pix_fmt = first.shape[1], first.shape[0], "yuv420p"
        vs.options = {"preset": "ultrafast", **({"crf": str(crf)} if crf is not None else {})}
        ms = Fraction(1, 1000)
        if frame_times is not None:
            vs.codec_context.time_base = ms
        if rotation is not None:
            vs.set_display_rotation(rotation, hflip=hflip)
        if audio is not None:
            ast = container.add_stream(audio_codec, rate=sr)
            ast.layout = layout
        for i, rgb in enumerate(_chain(first, frames)):
            f = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            if frame_times is not None:
                f.pts, f.time_base = int(round(frame_times[i] * 1000)), ms
            else:
                f.pts = i
            container.mux(vs.encode(f))
        container.mux(vs.encode(None))
        if audio is not None:
            fmt = "s16" if audio.dtype == np.int16 else "fltp"
            data = audio.reshape(1, -1) if fmt == "s16" else np.atleast_2d(audio)
            af = av.AudioFrame.from_ndarray(data, format=fmt, layout=layout)
            af.sample_rate, af.pts, af.time_base = sr, int(round(audio_start * sr)), Fraction(1, sr)
            container.mux(ast.encode(af))
            container.mux(ast.encode(None))
    return str(path)


def _chain(first, rest):
    yield first
    yield from rest


@pytest.fixture(scope="module")
def mp4(tmp_path_factory):
    """3 s at 25 fps, 16 kHz audio (no resampling: windows' audio compares exactly)."""
    return save_clip(tone_clip(), tmp_path_factory.mktemp("stream") / "clip.mp4")


@pytest.fixture(scope="module")
def mp4_48k(tmp_path_factory):
    """3 s, 48 kHz audio: read at 16 kHz through the streaming resampler."""
    return save_clip(tone_clip(sr=48000), tmp_path_factory.mktemp("stream") / "clip48.mp4")


def assert_same_clip(got, ref):
    """Frames identical; audio identical (one resampler, same input: no tolerance needed)."""
    assert got.fps == ref.fps and got.sample_rate == ref.sample_rate
    assert got.frames.shape == ref.frames.shape
    assert np.array_equal(got.frames, ref.frames)
    assert got.audio.shape == ref.audio.shape
    np.testing.assert_array_equal(got.audio, ref.audio)


def only(windows):
    windows = list(windows)
    assert len(windows) == 1
    return windows[0]


# --------------------------------------------------------------------------- #
# a short file: one window, equal to load_clip
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("kwargs", [
    {},
    {"fps": 10},  # halfway ties between frames: the same nearest frame as load_clip
    {"fps": 12.5, "frame_size": (32, 40)},
    {"fps": 60},  # frames repeat
    {"sample_rate": None},
    {"start": 0.5},
    {"start": 0.02},  # halfway between two frames
    {"start": 2.5},  # seeks
    {"start": 2.5, "fps": 10, "frame_size": (32, 40)},
    {"max_duration": 1.3},
    {"start": 1.0, "max_duration": 1.0, "fps": 30},
])
@pytest.mark.parametrize("file", ["mp4", "mp4_48k"])
def test_short_file_is_one_window_equal_to_load_clip(request, file, kwargs):
    path = request.getfixturevalue(file)
    win = only(iter_clips(path, window=10.0, **kwargs))
    ref = load_clip(path, **kwargs)
    assert_same_clip(win, ref)
    assert win.source == ref.source == path
    assert win.start == pytest.approx(kwargs.get("start", 0.0), abs=0.5 / FPS + 1e-9)


def test_iter_clips_is_lazy_and_checks_arguments_at_the_call(mp4, tmp_path):
    gen = iter_clips(mp4, window=1.0)
    first = next(gen)
    assert first.n_frames == 25 and first.start == 0.0
    gen.close()  # stopping early closes the file
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        iter_clips(tmp_path / "nope.mp4")
    for kwargs, name in [({"window": 0}, "window"), ({"window": -1.0}, "window"), ({"window": "10"}, "window"),
                         ({"hop": 0}, "hop"), ({"window": 1.0, "hop": 1.5}, "hop"), ({"fps": 0}, "fps"),
                         ({"start": -1}, "start"), ({"frame_size": (0, 10)}, "frame_size"),
                         ({"max_duration": 0}, "max_duration"), ({"sample_rate": 0}, "sample_rate")]:
        with pytest.raises((TypeError, ValueError), match=name):
            iter_clips(mp4, **kwargs)  # no next(): raised by the call itself
    with pytest.raises(ValueError, match="window=0.01s is shorter than one frame"):
        iter_clips(mp4, window=0.01, fps=25)
    with pytest.raises(ValueError, match="window=0.01s is shorter than one frame"):
        next(iter_clips(mp4, window=0.01))  # the native rate is known once the file is open
    with pytest.raises(ValueError, match="no video frames"):
        next(iter_clips(mp4, start=30.0))


# --------------------------------------------------------------------------- #
# windows of a longer file
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("window", [1.0, 0.6, 0.9])  # 25, 15, 22.5 frames
def test_windows_tile_the_file(mp4, window):
    ref = load_clip(mp4)
    wins = list(iter_clips(mp4, window=window))
    firsts = [int(round(k * window * FPS - 1e-6)) for k in range(len(wins))]
    assert [int(round(w.start * FPS)) for w in wins] == firsts
    np.testing.assert_allclose([w.start for w in wins], np.array(firsts) / FPS, atol=1e-9)
    assert all(w.n_frames <= np.ceil(window * FPS) for w in wins)
    assert np.array_equal(np.concatenate([w.frames for w in wins]), ref.frames)
    # audio: each window's exact share of the one resampled stream
    for w, first in zip(wins, firsts):
        assert w.audio.size == round(w.n_frames * SR / FPS)
        a0 = first * SR // FPS
        np.testing.assert_array_equal(w.audio, ref.audio[a0 : a0 + w.audio.size])


@pytest.mark.parametrize("file", ["mp4", "mp4_48k"])
def test_overlapping_windows_equal_load_clip_of_their_span(request, file):
    path = request.getfixturevalue(file)
    window, hop = 1.0, 0.4
    wins = list(iter_clips(path, window=window, hop=hop))
    # the last window is the first that reaches the end (2.0 + 1.0 >= 3.0 s)
    assert [round(w.start, 6) for w in wins] == [0.0, 0.4, 0.8, 1.2, 1.6, 2.0]
    assert [w.n_frames for w in wins] == [25] * 6
    for k, w in enumerate(wins):
        ref = load_clip(path, start=k * hop, max_duration=window)
        assert np.array_equal(w.frames, ref.frames)
        if file == "mp4":  # no resampling: the same samples
            np.testing.assert_array_equal(w.audio, ref.audio)
        else:
            # load_clip restarts its resampler at the audio frame before its span, which puts its
            # samples up to 1/3 sample (48 kHz frames of 1024 on a 16 kHz grid) off the stream's
            assert w.audio.size == ref.audio.size
            assert np.corrcoef(w.audio, ref.audio)[0, 1] > 0.99
            lag = np.argmax(np.correlate(w.audio, ref.audio, "full")) - (ref.audio.size - 1)
            assert lag == 0


@pytest.mark.parametrize("fps, window", [(10, 0.5), (60, 0.5), (60, 0.25), (12.5, 0.7)])
def test_given_fps_and_frame_size_windows(mp4_48k, fps, window):
    ref = load_clip(mp4_48k, fps=fps, frame_size=(32, 40))
    wins = list(iter_clips(mp4_48k, window=window, fps=fps, frame_size=(32, 40)))
    assert all(w.fps == fps and w.frames.shape[1:3] == (32, 40) for w in wins)
    assert np.array_equal(np.concatenate([w.frames for w in wins]), ref.frames)
    np.testing.assert_array_equal(np.concatenate([w.audio for w in wins]), ref.audio)
    # overlapping: window k is the stretch of the whole clip it covers
    hop = window / 2
    for k, w in enumerate(iter_clips(mp4_48k, window=window, hop=hop, fps=fps, frame_size=(32, 40))):
        first = int(round(k * hop * fps - 1e-6))
        assert np.array_equal(w.frames, ref.frames[first : first + w.n_frames])


def test_max_duration_and_start_bound_the_windows(mp4):
    wins = list(iter_clips(mp4, window=0.4, start=1.0, max_duration=1.0))
    assert [w.n_frames for w in wins] == [10, 10, 5]
    np.testing.assert_allclose([w.start for w in wins], [1.0, 1.4, 1.8])
    ref = load_clip(mp4, start=1.0, max_duration=1.0)
    assert np.array_equal(np.concatenate([w.frames for w in wins]), ref.frames)
    np.testing.assert_array_equal(np.concatenate([w.audio for w in wins]), ref.audio)


def test_last_window_of_one_frame(tmp_path):
    path = save_clip(tone_clip(duration=2.04), tmp_path / "odd.mp4")  # 51 frames
    with warnings.catch_warnings():
        warnings.simplefilter("error", ClipQualityWarning)  # only the first window speaks for the file
        wins = list(iter_clips(path, window=1.0))
    assert [w.n_frames for w in wins] == [25, 25, 1]
    assert wins[-1].audio.size == SR // FPS


# --------------------------------------------------------------------------- #
# clocks: streams starting at different times, variable frame rate, stereo PCM
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("video_start, audio_start", [(0.0, 0.3), (0.32, 0.0), (1.0, 1.2)])
def test_streams_starting_at_different_times(tmp_path, video_start, audio_start):
    ref_clip = tone_clip(duration=2.0)
    shift = int(round((audio_start - video_start) * SR))
    audio = ref_clip.audio[shift:] if shift >= 0 else np.r_[np.full(-shift, 0.01, np.float32), ref_clip.audio]
    times = video_start + np.arange(ref_clip.n_frames) / FPS
    path = write_video(tmp_path / "offset.mkv", ref_clip.frames, frame_times=times, audio=audio,
                       audio_start=audio_start)
    ref = load_clip(path)
    assert_same_clip(only(iter_clips(path, window=5.0)), ref)
    wins = list(iter_clips(path, window=0.8))
    assert np.array_equal(np.concatenate([w.frames for w in wins]), ref.frames)
    np.testing.assert_array_equal(np.concatenate([w.audio for w in wins]), ref.audio)
    if shift > 0:
        assert not np.any(wins[0].audio[: shift - 1])  # silence until the audio starts


def vfr_file(tmp_path):
    """50 fps for 0.8 s, then 12.5 fps to 2 s, then 25 fps to 3 s: average ~26 fps."""
    times = np.r_[np.arange(40) * 0.02, 0.8 + np.arange(1, 16) * 0.08, 2.0 + np.arange(1, 26) * 0.04]
    frames = (np.arange(times.size) * 3 % 250)[:, None, None, None].astype(np.uint8) * np.ones((1, 32, 32, 3),
                                                                                            np.uint8)
    path = write_video(tmp_path / "vfr.mkv", frames, frame_times=times, audio=tone_clip(duration=3.1).audio)
    return path


@pytest.mark.filterwarnings("ignore::skavc.ClipQualityWarning")  # the last window: one frame
@pytest.mark.parametrize("kwargs", [{}, {"fps": 20}, {"fps": 7}])
def test_variable_frame_rate(tmp_path, kwargs):
    path = vfr_file(tmp_path)
    ref = load_clip(path, **kwargs)
    assert_same_clip(only(iter_clips(path, window=10.0, **kwargs)), ref)
    # in windows: the rate changes inside later windows; still one uniform grid, the same frames
    wins = list(iter_clips(path, window=0.5, **kwargs))
    assert all(w.fps == ref.fps for w in wins)
    assert np.array_equal(np.concatenate([w.frames for w in wins]), ref.frames)
    np.testing.assert_array_equal(np.concatenate([w.audio for w in wins]), ref.audio)


def test_variable_rate_found_after_the_first_window(tmp_path):
    """Constant 25 fps, one frame dropped at 2 s: window 0 is read as-is, the rest on the grid,
    seamlessly (the frames of the whole-file load_clip, which sees the variable rate at once)."""
    times = np.r_[np.arange(50), np.arange(51, 75)] / FPS
    clip = tone_clip(duration=3.0)
    path = write_video(tmp_path / "drop.mkv", clip.frames[np.r_[0:50, 51:75]], frame_times=times, audio=clip.audio)
    ref = load_clip(path)
    wins = list(iter_clips(path, window=1.0))
    assert np.array_equal(np.concatenate([w.frames for w in wins]), ref.frames)
    np.testing.assert_array_equal(np.concatenate([w.audio for w in wins]), ref.audio)
    assert np.array_equal(wins[0].frames, load_clip(path, max_duration=1.0).frames)


def test_stereo_int16_44k(tmp_path):
    t = np.arange(2 * 44100) / 44100
    stereo = np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.25 * np.sin(2 * np.pi * 440 * t)], axis=1)
    path = write_video(tmp_path / "stereo.mkv", tone_clip(duration=2.0).frames, sr=44100, layout="stereo",
                       audio=(stereo * 32767).astype(np.int16).reshape(-1), audio_codec="pcm_s16le")
    ref = load_clip(path)
    assert_same_clip(only(iter_clips(path, window=10.0)), ref)
    wins = list(iter_clips(path, window=0.4))
    np.testing.assert_array_equal(np.concatenate([w.audio for w in wins]), ref.audio)


def test_missing_audio(tmp_path):
    path = write_video(tmp_path / "silent.mp4", tone_clip(duration=1.0).frames)
    with pytest.raises(ValueError, match="no audio stream in .*silent.mp4"):
        next(iter_clips(path))
    wins = list(iter_clips(path, window=0.4, allow_missing_audio=True))
    assert [w.n_frames for w in wins] == [10, 10, 5] and not any(np.any(w.audio) for w in wins)
    assert all(w.sample_rate == SR for w in wins)


def test_audio_that_ends_early(tmp_path):
    """Audio for the first 0.5 s of 2 s: later windows are silent, as load_clip pads the whole
    file; a span with no audio at all raises as load_clip does."""
    clip = tone_clip(duration=2.0)
    path = write_video(tmp_path / "short_audio.mkv", clip.frames, audio=clip.audio[: SR // 2])
    ref = load_clip(path)
    wins = list(iter_clips(path, window=0.4))
    np.testing.assert_array_equal(np.concatenate([w.audio for w in wins]), ref.audio)
    assert np.any(wins[0].audio) and not np.any(wins[-1].audio)
    with pytest.raises(ValueError, match="no audio samples decoded from"):
        load_clip(path, start=1.5)
    with pytest.raises(ValueError, match="no audio samples decoded from"):
        list(iter_clips(path, start=1.5))
    silent = only(iter_clips(path, start=1.5, allow_missing_audio=True))
    assert silent.n_frames == 13 and not np.any(silent.audio)


def test_corrupt_file(tmp_path):
    path = tmp_path / "x.mp4"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    gen = iter_clips(path)
    with pytest.raises(ValueError, match="could not decode video file .*x.mp4"):
        next(gen)
    with pytest.raises(ValueError, match="could not decode video file .*x.mp4"):
        video_info(path)


# --------------------------------------------------------------------------- #
# memory: bounded by the window, not by the length
# --------------------------------------------------------------------------- #
def _frames_of(n, height=240, width=320):
    """n frames, each a gradient shifted by its index (cheap to make and to encode)."""
    base = (np.add.outer(np.arange(height), np.arange(width)) % 256).astype(np.uint8)
    for i in range(n):
        rgb = np.empty((height, width, 3), np.uint8)
        rgb[..., 0] = base + np.uint8(i % 256)
        rgb[..., 1] = i % 256
        rgb[..., 2] = base[::-1] - np.uint8(i % 256)
        yield rgb


def _peak_bytes(func):
    tracemalloc.start()
    try:
        func()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_follows_the_window_not_the_length(tmp_path):
    seconds, window = 60, 2.0
    t = np.arange(seconds * SR) / SR
    path = write_video(tmp_path / "long.mp4", _frames_of(seconds * FPS), crf=30,
                       audio=(0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32))
    info = video_info(path)
    assert info.n_frames == seconds * FPS and info.n_windows(window) == seconds / window

    def stream(max_duration=None):
        n = 0
        for clip in iter_clips(path, window=window, max_duration=max_duration):
            n += clip.n_frames
        return n

    whole = _peak_bytes(lambda: load_clip(path))
    streamed = _peak_bytes(stream)
    streamed_short = _peak_bytes(lambda: stream(max_duration=10.0))
    window_bytes = window * FPS * 240 * 320 * 3
    assert whole >= seconds * FPS * 240 * 320 * 3  # load_clip holds every frame
    assert streamed < whole / 4
    assert streamed < 4 * window_bytes
    assert streamed < 1.3 * streamed_short  # 10 s or 40 s: the same
    # and the windows tile the file (compared window by window: no second copy of the file)
    ref = load_clip(path).frames
    n = 0
    for clip in iter_clips(path, window=window):
        assert clip.start == pytest.approx(n / FPS)
        assert np.array_equal(clip.frames, ref[n : n + clip.n_frames])
        n += clip.n_frames
    assert n == ref.shape[0]


# --------------------------------------------------------------------------- #
# video_info
# --------------------------------------------------------------------------- #
def test_video_info(mp4, mp4_48k, tmp_path):
    info = video_info(mp4)
    assert info.duration == pytest.approx(3.0, abs=1 / FPS) and info.fps == FPS and info.n_frames == 75
    assert (info.height, info.width, info.rotation) == (48, 64, 0)
    assert info.has_audio and info.audio_sample_rate == SR
    assert video_info(mp4_48k).audio_sample_rate == 48000
    for window, hop, fps in [(1.0, None, None), (0.9, None, None), (1.0, 0.4, None), (0.5, None, 10), (10, None, None)]:
        assert info.n_windows(window, hop, fps) == len(list(iter_clips(mp4, window=window, hop=hop, fps=fps)))
    with pytest.raises(ValueError, match="hop"):
        info.n_windows(1.0, 2.0)
    silent = write_video(tmp_path / "silent.mkv", tone_clip(duration=1.0).frames)
    info = video_info(silent)
    assert not info.has_audio and info.audio_sample_rate is None
    assert info.duration == pytest.approx(1.0, abs=1 / FPS) and info.n_frames == pytest.approx(25, abs=1)
    with pytest.raises(FileNotFoundError):
        video_info(tmp_path / "nope.mp4")


# --------------------------------------------------------------------------- #
# rotation: phone videos come out upright
# --------------------------------------------------------------------------- #
def upright_picture():
    """A portrait picture (96 high, 64 wide) no turn or mirror leaves unchanged: blocks of
    grey levels, 16 px (whole chroma blocks, so yuv420p keeps them)."""
    levels = np.arange(6 * 4).reshape(6, 4) * 10 + 10
    levels[0, 0] = 250  # a bright corner: top left
    return np.repeat(np.repeat(levels, 16, 0), 16, 1).astype(np.uint8)[..., None].repeat(3, axis=2)


def stored_as(picture, rotation, hflip):
    """What a camera stores for ``picture`` when it writes this display matrix: the inverse of
    "turn ``rotation`` degrees counter-clockwise, then mirror" (PyAV's set_display_rotation)."""
    if hflip:
        picture = picture[:, ::-1]
    return np.ascontiguousarray(np.rot90(picture, k=-int(rotation) // 90))


@pytest.mark.parametrize("rotation, hflip, clockwise", [
    (-90, False, 90),  # a portrait phone video: stored landscape, ffprobe "rotation of -90.00 degrees"
    (90, False, 270),
    (180, False, 180),
    (90, True, 270),  # a mirrored one (front camera apps)
    (0, True, 180),  # mirrored only: FFmpeg reads a 180 degree angle and flips the columns alone
])
def test_rotated_video_comes_out_upright(tmp_path, rotation, hflip, clockwise):
    picture = upright_picture()
    stored = stored_as(picture, rotation, hflip)
    assert stored.shape[:2] != picture.shape[:2] or rotation % 180 == 0
    frames = np.repeat(stored[None], 10, axis=0)
    path = write_video(tmp_path / "phone.mp4", frames, audio=np.zeros(SR // 2, np.float32), rotation=rotation,
                       hflip=hflip, crf=0)
    with av.open(path) as container:  # FFmpeg's own reading of the matrix, as PyAV reports it
        assert (-next(container.decode(video=0)).rotation) % 360 == clockwise
    info = video_info(path)
    assert (info.height, info.width, info.rotation) == (96, 64, clockwise)
    for frames in (load_clip(path).frames, only(iter_clips(path)).frames, load_sampled(path, lambda n: [0, n - 1])[1]):
        assert frames.shape[1:3] == (96, 64)  # upright: portrait, H > W
        assert np.abs(frames[0].astype(int) - picture).mean() < 2
        assert np.unravel_index(np.argmax(frames[0, ..., 0]), (96, 64)) == (0, 0)
    # frame_size is the upright size: scaled, then turned
    small = load_clip(path, frame_size=(48, 32)).frames
    assert small.shape[1:3] == (48, 32)
    assert np.array_equal(small, only(iter_clips(path, frame_size=(48, 32))).frames)
    assert np.abs(small[0].astype(int) - picture[::2, ::2]).mean() < 6


def test_unrotated_file_has_no_matrix(mp4):
    assert video_info(mp4).rotation == 0


# --------------------------------------------------------------------------- #
# AVClip.start
# --------------------------------------------------------------------------- #
def test_avclip_start_field():
    clip = tone_clip(duration=1.0)
    positional = AVClip(clip.audio, SR, clip.frames, FPS, "x.mp4")
    assert positional.start == 0.0 and "start" not in repr(positional)
    at = AVClip(clip.audio, SR, clip.frames, FPS, "x.mp4", 12.5)
    assert at.start == 12.5 and "start=12.5" in repr(at)
    with pytest.raises(ValueError, match="start"):
        AVClip(clip.audio, SR, clip.frames, FPS, start=-1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert AVClip(clip.audio, SR, clip.frames, FPS) != AVClip(clip.audio, SR, clip.frames, FPS)  # eq=False


# --------------------------------------------------------------------------- #
# iter_audio, cut_windows, WavWriter: long sound in, long sound out
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("window, hop", [(1.0, None), (1.0, 0.6), (0.7, 0.7), (5.0, None)])
def test_iter_audio_windows_are_load_audios_slices(mp4_48k, window, hop):
    from skavc.io import iter_audio, load_audio

    whole, rate = load_audio(mp4_48k)
    windows = iter_audio(mp4_48k, window=window, hop=hop)
    assert windows.sample_rate == rate == 48000 and windows.duration == pytest.approx(whole.size / rate, abs=0.05)
    step = window if hop is None else hop
    got = list(windows)
    for k, samples in enumerate(got):
        first = round(k * step * rate)
        assert samples.dtype == np.float32
        assert np.array_equal(samples, whole[first : round((k * step + window) * rate)])
    assert round((len(got) - 1) * step * rate) + got[-1].size == whole.size  # the last reaches the end
    if len(got) > 1:  # and is the first that does
        assert round((len(got) - 2) * step * rate) + got[-2].size < whole.size
    # resampled as it streams: the tiles make load_audio's resampled sound, bit for bit
    tiles = np.concatenate(list(iter_audio(mp4_48k, window=window, sample_rate=16000)))
    assert np.array_equal(tiles, load_audio(mp4_48k, sample_rate=16000)[0])


def test_iter_audio_checks_at_the_call(tmp_path, mp4):
    from skavc.io import iter_audio

    with pytest.raises(FileNotFoundError, match="MIX: no such file"):
        iter_audio(tmp_path / "none.wav", name="MIX")
    silent = write_video(tmp_path / "silent.mp4", _frames_of(10, 32, 32))
    with pytest.raises(ValueError, match="MIX: .* has no sound"):
        iter_audio(silent, name="MIX")
    with pytest.raises(ValueError, match="hop must be at most window"):
        iter_audio(mp4, window=1.0, hop=2.0)
    with pytest.raises(ValueError, match="sample_rate"):
        iter_audio(mp4, sample_rate=-1)


def test_cut_windows_whatever_the_pieces():
    from skavc.io import cut_windows

    x = np.arange(103, dtype=np.float32)
    for window, hop in [(1.0, 1.0), (1.0, 0.5), (0.3, 0.2), (2.0, 1.0), (20.0, 20.0)]:
        ref = list(cut_windows([x], window=window, hop=hop, sample_rate=10))
        for pieces in ([x[:37], x[37:60], x[60:]], [x[i : i + 7] for i in range(0, 103, 7)], [x[:0], x]):
            got = list(cut_windows(pieces, window=window, hop=hop, sample_rate=10))
            assert len(got) == len(ref) and all(np.array_equal(a, b) for a, b in zip(got, ref))
        assert ref[-1][-1] == 102 and (len(ref) == 1 or ref[-2][-1] < 102)
    assert list(cut_windows([], window=1.0, hop=1.0, sample_rate=10)) == []


def test_wav_writer_writes_what_scipy_writes(tmp_path):
    from scipy.io import wavfile

    from skavc.io import WavWriter

    x = np.random.default_rng(0).standard_normal(1001).astype(np.float32)
    with WavWriter(tmp_path / "pieces.wav", 22050) as out:
        out.write(x[:500])
        out.write(x[500:].astype(np.float64))
        with pytest.raises(ValueError, match="mono"):
            out.write(np.zeros((2, 3)))
    wavfile.write(tmp_path / "whole.wav", 22050, x)
    assert (tmp_path / "pieces.wav").read_bytes() == (tmp_path / "whole.wav").read_bytes()
