"""Decoding and encoding real video files (skavc.io): round trips through PyAV."""

import os
from fractions import Fraction

import numpy as np
import pytest

av = pytest.importorskip("av")

from skavc._clip import AVClip  # noqa: E402
from skavc import io as skio  # noqa: E402
from skavc.io import load_audio, load_clip, save_clip  # noqa: E402

SR = 16000
FPS = 25
EVENTS = (0.4, 1.2)  # seconds: a white flash and an audio click at each
CLICK_TOL = 0.005  # s: AAC pre-echo can move a click onset by a few ms (a frame is 40 ms)


def make_clip(sr=SR, fps=FPS, duration=2.0, height=64, width=96):
    """A white square moving over black plus a 440 Hz tone; at each EVENTS time
    the whole frame flashes white and the audio has a 2.5 ms click."""
    n_frames = int(round(duration * fps))
    n = int(round(duration * sr))
    audio = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / sr)).astype(np.float32)
    frames = np.zeros((n_frames, height, width, 3), np.uint8)
    for i in range(n_frames):
        x = int(i * (width - 16) / n_frames)
        frames[i, 20:36, x : x + 16] = 255
    for t in (t for t in EVENTS if t < duration):
        frames[int(round(t * fps))] = 255
        s = int(round(t * sr))
        audio[s : s + int(0.0025 * sr)] = 0.9
    return AVClip(audio=audio, sample_rate=sr, frames=frames, fps=fps)


def flash_times(clip):
    bright = clip.frames.reshape(clip.n_frames, -1).mean(axis=1) > 128
    return np.flatnonzero(bright) / clip.fps


def click_times(clip):
    """Onset time of each click (first sample above 0.6 after a quiet gap)."""
    loud = np.flatnonzero(np.abs(clip.audio) > 0.6)
    if loud.size == 0:
        return np.array([])
    onsets = loud[np.r_[True, np.diff(loud) > clip.sample_rate // 100]]
    return onsets / clip.sample_rate


def write_raw(path, *, frames, frame_times=None, audio=None, audio_start=0.0, video_start=0.0):
    """Write a file with PyAV directly, with control over the streams' time stamps
    (what save_clip never produces): custom start times, variable frame rate,
    no audio stream."""
    with av.open(str(path), "w") as container:
        vs = container.add_stream("libx264", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        ms = Fraction(1, 1000)
        vs.codec_context.time_base = ms
        if audio is not None:
            ast = container.add_stream("aac", rate=SR)
            ast.layout = "mono"
        for i, rgb in enumerate(frames):
            f = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            t = frame_times[i] if frame_times is not None else i / FPS
            f.pts, f.time_base = int(round((video_start + t) * 1000)), ms
            container.mux(vs.encode(f))
        container.mux(vs.encode(None))
        if audio is not None:
            af = av.AudioFrame.from_ndarray(audio[None], format="fltp", layout="mono")
            af.sample_rate, af.pts, af.time_base = SR, int(round(audio_start * SR)), Fraction(1, SR)
            container.mux(ast.encode(af))
            container.mux(ast.encode(None))


@pytest.fixture(scope="module")
def clip():
    return make_clip()


@pytest.fixture(scope="module")
def mp4(clip, tmp_path_factory):
    return save_clip(clip, tmp_path_factory.mktemp("io") / "clip.mp4")


def test_load_sampled_equals_load_clip_then_indexing(mp4):
    full = load_clip(mp4)
    picks = []

    def sampler(n_frames):
        picks.append(n_frames)
        return np.array([0, 7, n_frames - 1, 7])  # repeats are allowed

    audio, frames = skio.load_sampled(mp4, sampler)
    assert picks == [full.n_frames]
    np.testing.assert_array_equal(frames, full.frames[[0, 7, full.n_frames - 1, 7]])
    np.testing.assert_array_equal(audio, full.audio)


# --------------------------------------------------------------------------- #
# round trips
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("ext, codec", [("mp4", "libx264"), ("mp4", "mpeg4"), ("mkv", "libx264")])
def test_round_trip(clip, tmp_path, ext, codec):
    path = save_clip(clip, tmp_path / f"clip.{ext}", video_codec=codec)
    assert isinstance(path, str) and os.path.isfile(path)
    out = load_clip(path)
    assert out.source == path
    assert out.frames.shape == clip.frames.shape and out.frames.dtype == np.uint8
    assert out.fps == pytest.approx(FPS)
    assert out.sample_rate == SR
    assert abs(out.duration - clip.duration) <= 1 / FPS
    assert out.audio.dtype == np.float32 and out.audio.size == clip.audio.size
    # lossy codecs: close, not equal
    assert np.corrcoef(out.audio, clip.audio)[0, 1] > 0.99
    assert np.abs(out.frames.astype(int) - clip.frames).mean() < 3
    # synchrony survives: flashes and clicks where they were, within a few ms
    np.testing.assert_allclose(flash_times(out), EVENTS, atol=1e-6)
    np.testing.assert_allclose(click_times(out), EVENTS, atol=CLICK_TOL)


def test_resample_audio_on_load(tmp_path):
    path = save_clip(make_clip(sr=44100), tmp_path / "44k.mp4")
    out = load_clip(path, sample_rate=16000)
    ref = make_clip(sr=16000)
    assert out.sample_rate == 16000 and out.audio.size == ref.audio.size
    assert np.corrcoef(out.audio, ref.audio)[0, 1] > 0.99
    np.testing.assert_allclose(click_times(out), EVENTS, atol=CLICK_TOL)
    native = load_clip(path, sample_rate=None)
    assert native.sample_rate == 44100 and native.audio.size == 88200


@pytest.mark.parametrize("fps, n_frames", [(10, 20), (50, 100), (12.5, 25)])
def test_fps_resampling(mp4, fps, n_frames):
    out = load_clip(mp4, fps=fps)
    assert out.fps == fps and out.n_frames == n_frames
    assert out.audio.size == round(n_frames * SR / fps)
    # each event is still shown at the output frame nearest to its time
    for t in EVENTS:
        assert out.frames[int(round(t * fps))].mean() > 128
    np.testing.assert_allclose(click_times(out), EVENTS, atol=CLICK_TOL)


def test_max_duration_and_start(clip, mp4):
    out = load_clip(mp4, max_duration=0.5)
    assert out.n_frames == 12 and out.duration == pytest.approx(0.48)  # whole frames, <= 0.5 s
    out = load_clip(mp4, start=1.0, max_duration=0.6)
    assert out.n_frames == 15 and out.audio.size == 15 * SR // FPS
    assert np.abs(out.frames.astype(int) - clip.frames[25:40]).mean() < 3
    assert np.corrcoef(out.audio, clip.audio[SR : SR + out.audio.size])[0, 1] > 0.99
    np.testing.assert_allclose(flash_times(out), [0.2], atol=1e-6)
    np.testing.assert_allclose(click_times(out), [0.2], atol=CLICK_TOL)
    with pytest.raises(ValueError, match="shorter than one frame"):
        load_clip(mp4, max_duration=0.01)
    with pytest.raises(ValueError, match="no video frames"):
        load_clip(mp4, start=30.0)


def test_seek_far_into_file(tmp_path):
    """start beyond the seek threshold: same content as decoding from 0."""
    long = make_clip(duration=6.0, height=32, width=48)
    path = save_clip(long, tmp_path / "long.mp4")
    out = load_clip(path, start=4.0, max_duration=1.0)
    assert out.n_frames == 25
    assert np.abs(out.frames.astype(int) - long.frames[100:125]).mean() < 3
    assert np.corrcoef(out.audio, long.audio[4 * SR : 5 * SR])[0, 1] > 0.99


def test_frame_size(mp4):
    out = load_clip(mp4, frame_size=(32, 48))
    assert out.frames.shape == (50, 32, 48, 3)
    np.testing.assert_allclose(flash_times(out), EVENTS, atol=1e-6)


def test_stereo_int16_is_mixed_to_mono(tmp_path):
    """Packed int16 stereo at 44.1 kHz: channel mean, scaled to [-1, 1], resampled."""
    t = np.arange(44100) / 44100
    left, right = 0.5 * np.sin(2 * np.pi * 440 * t), 0.25 * np.sin(2 * np.pi * 440 * t)
    path = tmp_path / "stereo.mkv"
    with av.open(str(path), "w") as container:
        vs = container.add_stream("libx264", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = 32, 32, "yuv420p"
        ast = container.add_stream("pcm_s16le", rate=44100)
        ast.layout = "stereo"
        for i in range(FPS):
            f = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            f.pts = i
            container.mux(vs.encode(f))
        container.mux(vs.encode(None))
        packed = (np.stack([left, right], axis=1) * 32767).astype(np.int16).reshape(1, -1)
        af = av.AudioFrame.from_ndarray(packed, format="s16", layout="stereo")
        af.sample_rate, af.pts = 44100, 0
        container.mux(ast.encode(af))
        container.mux(ast.encode(None))
    out = load_clip(path)
    ref = 0.375 * np.sin(2 * np.pi * 440 * np.arange(SR) / SR)
    assert out.audio.size == SR
    np.testing.assert_allclose(out.audio[100:-100], ref[100:-100], atol=2e-3)


# --------------------------------------------------------------------------- #
# stream start times, variable frame rate
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("video_start, audio_start", [(0.0, 0.3), (0.32, 0.0), (1.0, 1.2)])
def test_streams_starting_at_different_times(tmp_path, video_start, audio_start):
    """Content is in sync on the file's clock; the loaded clip is in sync too.
    Audio starting after the video is padded with silence in front."""
    ref = make_clip()
    # the audio stream carries the samples from audio_start on, relative to
    # the video's first frame (a negative shift means it starts earlier)
    shift = int(round((audio_start - video_start) * SR))
    audio = ref.audio[shift:] if shift >= 0 else np.r_[np.full(-shift, 0.01, np.float32), ref.audio]
    path = tmp_path / "offset.mkv"
    write_raw(path, frames=ref.frames, audio=audio, audio_start=audio_start, video_start=video_start)
    out = load_clip(path)
    assert out.n_frames == ref.n_frames and out.audio.size == ref.audio.size
    np.testing.assert_allclose(flash_times(out), EVENTS, atol=1e-6)
    expected_clicks = [t for t in EVENTS if t >= shift / SR]
    np.testing.assert_allclose(click_times(out), expected_clicks, atol=CLICK_TOL)
    if shift > 0:
        assert not np.any(out.audio[: shift - 1])  # silence until the audio starts


def test_variable_frame_rate(tmp_path):
    # 50 fps for 0.8 s, then 12.5 fps: average 27.5 fps
    times = np.r_[np.arange(40) * 0.02, 0.8 + np.arange(1, 16) * 0.08]
    frames = np.zeros((times.size, 32, 32, 3), np.uint8)
    frames[20] = 255  # shown at 0.40 s
    frames[45] = 255  # shown at 1.28 s
    audio = np.zeros(2 * SR, np.float32)
    path = tmp_path / "vfr.mkv"
    write_raw(path, frames=frames, frame_times=times, audio=audio)
    out = load_clip(path, fps=20)
    assert out.fps == 20
    # uniform output; each output time k / 20 shows the frame with the closest
    # time stamp: 0.40 -> the 0.40 frame; 1.25 and 1.30 -> the 1.28 frame
    # (1.35 is closer to the 1.36 one)
    np.testing.assert_allclose(flash_times(out), [0.40, 1.25, 1.30], atol=1e-9)
    # native rate: VFR is detected and resampled onto the stream's average rate
    # (the frames are not just stacked, which would put the 1.28 s flash at 0.9 s)
    native = load_clip(path)
    with av.open(str(path)) as container:
        assert native.fps == pytest.approx(float(container.streams.video[0].average_rate))
    flashes = flash_times(native)
    assert np.min(np.abs(flashes - 0.40)) <= 0.5 / native.fps
    assert np.min(np.abs(flashes - 1.28)) <= 0.5 / native.fps
    assert np.all(np.min(np.abs(flashes[:, None] - [0.40, 1.28]), axis=1) <= 0.08 + 1e-9)


# --------------------------------------------------------------------------- #
# errors
# --------------------------------------------------------------------------- #
def test_missing_file(tmp_path):
    path = str(tmp_path / "nope.mp4")
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        load_clip(path)


def test_corrupt_file(tmp_path):
    path = tmp_path / "x.mp4"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ValueError, match="could not decode video file .*x.mp4") as info:
        load_clip(path)
    assert isinstance(info.value.__cause__, av.error.FFmpegError)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="could not decode video file"):
        load_clip(empty)


def test_no_audio_stream(tmp_path):
    frames = make_clip(duration=1.0).frames
    path = tmp_path / "silent.mp4"
    write_raw(path, frames=frames)
    with pytest.raises(ValueError, match="no audio stream in .*silent.mp4"):
        load_clip(path)
    out = load_clip(path, allow_missing_audio=True)
    assert out.n_frames == 25 and out.audio.size == SR and not np.any(out.audio)


def test_no_video_stream(tmp_path):
    path = tmp_path / "audio.m4a"
    with av.open(str(path), "w") as container:
        ast = container.add_stream("aac", rate=SR)
        ast.layout = "mono"
        af = av.AudioFrame.from_ndarray(np.zeros((1, SR), np.float32), format="fltp", layout="mono")
        af.sample_rate, af.pts = SR, 0
        container.mux(ast.encode(af))
        container.mux(ast.encode(None))
    with pytest.raises(ValueError, match="no video stream in .*audio.m4a"):
        load_clip(path)


def test_bad_arguments(mp4):
    with pytest.raises(ValueError, match="fps"):
        load_clip(mp4, fps=0)
    with pytest.raises(ValueError, match="start"):
        load_clip(mp4, start=-1)
    with pytest.raises(ValueError, match="frame_size"):
        load_clip(mp4, frame_size=(10,))
    with pytest.raises(ValueError, match="sample_rate"):
        load_clip(mp4, sample_rate=16000.5)


# --------------------------------------------------------------------------- #
# writing
# --------------------------------------------------------------------------- #
def test_odd_frame_size(tmp_path):
    odd = AVClip(np.zeros(SR, np.float32), SR, np.zeros((25, 31, 48, 3), np.uint8), FPS)
    with pytest.raises(ValueError, match="even height and width"):
        save_clip(odd, tmp_path / "odd.mp4")
    assert os.listdir(tmp_path) == []
    out = load_clip(save_clip(odd, tmp_path / "odd.mp4", pad_odd=True))
    assert out.frames.shape == (25, 32, 48, 3)


def test_write_errors(clip, tmp_path):
    with pytest.raises(FileNotFoundError, match="folder .*missing' does not exist"):
        save_clip(clip, tmp_path / "missing" / "a.mp4")
    for crf in (99, -1, 18.5, True):  # checked before anything is written, as for the heat-map video
        with pytest.raises(ValueError, match="crf must be an integer"):
            save_clip(clip, tmp_path / "a.mp4", crf=crf)
    assert os.listdir(tmp_path) == []
    written = save_clip(clip, tmp_path / "ok.mp4", crf=np.int64(30))  # numpy integers are integers
    os.remove(written)
    with pytest.raises(ValueError, match="could not write video file .*a.nosuchext"):
        save_clip(clip, tmp_path / "a.nosuchext")
    with pytest.raises(ValueError, match="not available"):
        save_clip(clip, tmp_path / "a.mp4", video_codec="no-such-codec")
    assert os.listdir(tmp_path) == []


def test_written_files_follow_the_umask(clip, tmp_path, monkeypatch):
    """Files skavc writes are readable by others as the umask allows (mkstemp alone makes them 0600)."""
    from skavc import EmbeddingIndex
    from skavc.encoders._cache import cached_graph
    from skavc.plotting import save_sync_curve

    monkeypatch.setenv("SKAVC_HOME", str(tmp_path / "cache"))  # a cache folder not made yet
    index = EmbeddingIndex()
    index.add(np.eye(3, dtype=np.float32))
    old = os.umask(0o022)
    try:
        paths = [save_clip(clip, tmp_path / "a.mp4"), *index.save(tmp_path / "index")]
        graph, _ = cached_graph("graph.onnx", lambda: b"not really a graph")
        save_sync_curve(np.linspace(-1, 1, 5), np.arange(5.0), tmp_path / "curve.png")
        paths += [graph, graph.with_name("graph.onnx.sha256"), tmp_path / "curve.png", graph.parent]
        os.umask(0o077)
        paths_private = [save_clip(clip, tmp_path / "private.mp4")]
    finally:
        os.umask(old)
    modes = [oct(os.stat(p).st_mode & 0o777) for p in paths]
    assert modes == [oct(0o644)] * (len(paths) - 1) + [oct(0o755)]  # the cache folder last
    assert oct(os.stat(paths_private[0]).st_mode & 0o777) == oct(0o600)


def test_atomic_write(clip, tmp_path, monkeypatch):
    """A write that fails half-way leaves neither a partial file nor a temporary."""
    target = tmp_path / "out.mp4"
    real = skio._rgb_to_videoframe
    calls = []

    def flaky(rgb):
        calls.append(1)
        if len(calls) > 10:
            raise RuntimeError("disk on fire")
        return real(rgb)

    monkeypatch.setattr(skio, "_rgb_to_videoframe", flaky)
    with pytest.raises(RuntimeError, match="disk on fire"):
        save_clip(clip, target)
    assert os.listdir(tmp_path) == []

    # an existing file is left untouched by a failed overwrite
    target.write_bytes(b"previous")
    calls.clear()
    with pytest.raises(RuntimeError):
        save_clip(clip, target)
    assert os.listdir(tmp_path) == ["out.mp4"] and target.read_bytes() == b"previous"

    monkeypatch.setattr(skio, "_rgb_to_videoframe", real)
    save_clip(clip, target)  # a successful one replaces it
    assert os.listdir(tmp_path) == ["out.mp4"] and load_clip(target).n_frames == clip.n_frames


def test_load_audio_reads_wav_flac_and_stereo(tmp_path):
    import av
    from scipy.io import wavfile

    rate = 22050
    t = np.arange(rate // 2) / rate
    left, right = 0.5 * np.sin(2 * np.pi * 440 * t), 0.25 * np.sin(2 * np.pi * 220 * t)
    stereo = (np.stack([left, right], axis=1) * 32767).astype(np.int16)
    wavfile.write(tmp_path / "s.wav", rate, stereo)
    samples, got_rate = load_audio(tmp_path / "s.wav")
    assert got_rate == rate and samples.dtype == np.float32
    np.testing.assert_allclose(samples, (left + right) / 2, atol=1e-4)  # channels averaged, int16 scaled

    with av.open(str(tmp_path / "s.flac"), "w") as container:  # lossless: the same samples come back
        stream = container.add_stream("flac", rate=rate)
        stream.layout = "stereo"
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(stereo.T), format="s16p", layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = rate, 0, Fraction(1, rate)
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    flac, flac_rate = load_audio(tmp_path / "s.flac")
    assert flac_rate == rate
    np.testing.assert_allclose(flac, samples, atol=1e-4)

    (tmp_path / "notes.txt").write_text("not sound")
    with pytest.raises(ValueError, match="audio or video file with sound"):
        load_audio(tmp_path / "notes.txt", name="MIX")
    with pytest.raises(FileNotFoundError, match="MIX: no such file"):
        load_audio(tmp_path / "missing.wav", name="MIX")


def test_a_bad_frame_sampler_is_named(mp4):
    from skavc.io import load_sampled

    with pytest.raises(ValueError, match=r"frame_sampler\(50\) must return .* integer frame indices in \[0, 50\)"):
        load_sampled(mp4, lambda n: np.array([0, n]))
    with pytest.raises(ValueError, match="frame_sampler"):
        load_sampled(mp4, lambda n: np.array([0.5]))


def test_the_rate_estimate_survives_repeated_time_stamps():
    from skavc.io import _estimate_fps

    assert _estimate_fps(np.arange(5) / 25.0, None) == pytest.approx(25.0)
    assert _estimate_fps(np.array([0.0, 0.0, 0.0, 0.04]), 0.04) == pytest.approx(25.0)  # median interval 0
    assert _estimate_fps(np.array([1.0]), None) == 25.0


def test_key_frames_decode_one_key_frame_per_time(tmp_path):
    from skavc import AVClip, load_clip
    from skavc.io import key_frames, save_clip

    rng = np.random.default_rng(0)
    frames = np.repeat(np.linspace(0, 255, 50).astype(np.uint8)[:, None, None, None], 3, axis=3)
    frames = np.ascontiguousarray(np.broadcast_to(frames, (50, 48, 64, 3)))
    path = save_clip(AVClip(rng.uniform(-0.1, 0.1, 32000).astype(np.float32), 16000, frames, 25.0),
                     tmp_path / "ramp.mp4")
    picked = key_frames(path, [0.0, 1.5, 99.0], frame_size=(24, 32))
    assert picked.dtype == np.uint8 and picked.shape[1:] == (24, 32, 3) and 1 <= len(picked) <= 3
    first = load_clip(path, frame_size=(24, 32)).frames[0]
    assert np.abs(picked[0].astype(int) - first).mean() < 2  # the key frame at the start is frame 0
    with pytest.raises(FileNotFoundError):
        key_frames(tmp_path / "missing.mp4", [0.0])
