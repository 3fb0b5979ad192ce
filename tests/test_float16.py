import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, numpy_helper

from skavc.encoders import make_audio_encoder, make_visual_encoder
from skavc.encoders._float16 import convert_float_to_float16
from skavc.encoders._graph import GraphBuilder

N_TRAIN = 60  # as in conftest.py: the shared fitted model saw clips[:60]


def _run(model, feed):
    data = model if isinstance(model, bytes) else model.SerializeToString()
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, feed)


def _small_model(weight):
    g = GraphBuilder("small")
    x = g.input("x", np.float32, ["N", 4])
    h = g.op("MatMul", x, g.const(weight))
    h = g.op("Clip", h, g.const(np.float32(-6.0)), g.const(np.float32(6.0)))
    g.output(h, "y", np.float32, ["N", 3])
    g.output(g.op("Cast", h, to=TensorProto.FLOAT), "y_cast", np.float32, ["N", 3])
    return g.to_model()


def _cosine(a, b):
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_conversion_keeps_io_types_and_halves_the_weights():
    rng = np.random.RandomState(0)
    model = _small_model(rng.randn(4, 3).astype(np.float32))
    model16 = convert_float_to_float16(model)
    io = [(v.name, v.type.tensor_type.elem_type) for v in list(model16.graph.input) + list(model16.graph.output)]
    assert io == [("x", TensorProto.FLOAT), ("y", TensorProto.FLOAT), ("y_cast", TensorProto.FLOAT)]
    assert {t.data_type for t in model16.graph.initializer} == {TensorProto.FLOAT16}
    assert {p.key: p.value for p in model16.metadata_props}["precision"] == "fp16"
    x = rng.randn(5, 4).astype(np.float32)
    y32, y16 = _run(model, {"x": x}), _run(model16, {"x": x})
    for a, b in zip(y32, y16):
        assert b.dtype == np.float32
        np.testing.assert_allclose(b, a, rtol=5e-3, atol=5e-3)
        assert not np.array_equal(a, b)  # it really computed in half precision somewhere


def test_conversion_saturates_out_of_range_weights_and_refuses_unknown_ops():
    model16 = convert_float_to_float16(_small_model(np.full((4, 3), 1e6, np.float32)))
    weight = numpy_helper.to_array(model16.graph.initializer[0])
    assert np.isfinite(weight).all() and weight.max() == np.finfo(np.float16).max
    g = GraphBuilder("topk")
    x = g.input("x", np.float32, ["N", 4])
    values, _ = g.op("TopK", x, g.const(np.array([2], np.int64)), n_outputs=2)
    g.output(values, "y", np.float32, ["N", 2])
    with pytest.raises(ValueError, match="TopK"):
        convert_float_to_float16(g.to_model())


@pytest.fixture(scope="module")
def frames(clips):
    return np.concatenate([clip.frames[::10] for clip in clips[:6]])


def _fp16(make, name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # fp16 on the CPU warns that it is slower
        encoder = make(name, device="cpu", precision="fp16")
        encoder.prepare()
    return encoder


def test_fp16_efficientnet_matches_fp32(frames):
    enc32 = make_visual_encoder("efficientnet-lite0", device="cpu")
    enc16 = _fp16(make_visual_encoder, "efficientnet-lite0")
    assert enc16.sha256 != enc32.sha256
    meta = onnx.load(str(enc16.onnx.path)).metadata_props
    assert {p.key: p.value for p in meta}["precision"] == "fp16"
    (e32, m32), (e16, m16) = enc32.encode(frames, return_feature_map=True), enc16.encode(frames, True)
    assert e16.dtype == np.float32 and e16.shape == e32.shape
    assert _cosine(e32, e16).min() > 0.999
    assert _cosine(m32, m16).min() > 0.999
    assert np.abs(e32 - e16).max() / np.abs(e32).max() < 0.02


def test_fp16_whisper_matches_fp32(clips):
    enc32 = make_audio_encoder("whisper-tiny", device="cpu")
    enc16 = _fp16(make_audio_encoder, "whisper-tiny")
    a32, a16 = enc32.encode(clips[0].audio), enc16.encode(clips[0].audio)
    assert _cosine(a32, a16).min() > 0.9999
    assert np.abs(a32 - a16).max() / np.abs(a32).max() < 0.01


def test_fp16_on_cpu_warns():
    with pytest.warns(RuntimeWarning, match="fp16"):
        make_visual_encoder("efficientnet-lite0", device="cpu", precision="fp16").prepare()
    with pytest.raises(ValueError, match="precision"):
        make_visual_encoder("efficientnet-lite0", precision="fp8")


def test_estimator_fp16_embeddings_follow_fp32(clips, small_params, fitted):
    import copy

    from skavc import AVCorrespondence

    held_out = clips[N_TRAIN:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        # The same heads fed fp16 encoder outputs: embeddings barely move.
        swapped = copy.deepcopy(fitted)
        swapped.audio_encoder_ = _fp16(make_audio_encoder, "whisper-tiny")
        swapped.visual_encoder_ = _fp16(make_visual_encoder, "efficientnet-lite0")
        for transform in ("transform_audio", "transform_visual"):
            cos = (getattr(swapped, transform)(held_out) * getattr(fitted, transform)(held_out)).sum(1)
            assert cos.min() > 0.999, transform
        # Heads trained on fp16 features: a different optimisation path from inputs ~1e-4
        # apart, so embeddings differ more, while retrieval quality stays.
        model16 = AVCorrespondence(precision="fp16", **small_params).fit(clips[:N_TRAIN])
        assert model16.visual_encoder_.precision == "fp16"
        assert model16.visual_encoder_.sha256 != fitted.visual_encoder_.sha256
        assert abs(model16.score(held_out) - fitted.score(held_out)) <= 0.15
