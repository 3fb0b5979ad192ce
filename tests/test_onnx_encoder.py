import pickle
import warnings

import numpy as np
import pytest

from skavc.encoders import OnnxEncoder, available_providers
from skavc.encoders._cache import atomic_write_bytes, cached_graph
from skavc.encoders._graph import GraphBuilder


def _double_model():
    g = GraphBuilder("double")
    x = g.input("x", np.float32, ["N", 3])
    g.output(g.op("Mul", x, g.const(np.float32(2.0))), "y", np.float32, ["N", 3])
    return g.to_bytes()


def test_runs_in_batches_and_concatenates():
    enc = OnnxEncoder(_double_model(), batch_size=4, device="cpu")
    x = np.arange(30, dtype=np.float32).reshape(10, 3)
    (y,) = enc.run({"x": x})
    np.testing.assert_array_equal(y, 2 * x)
    assert enc.input_names == ["x"] and enc.output_names == ["y"]


def test_session_is_lazy_and_pickling_rebuilds_it(tmp_path):
    path = tmp_path / "double.onnx"
    path.write_bytes(_double_model())
    enc = OnnxEncoder(path, device="cpu")
    assert enc._session is None
    enc.run({"x": np.ones((1, 3), np.float32)})
    assert enc._session is not None and enc.sha256 is not None
    restored = pickle.loads(pickle.dumps(enc))
    assert restored._session is None and restored.sha256 == enc.sha256 and restored.path == path
    np.testing.assert_array_equal(restored.run({"x": np.ones((2, 3), np.float32)})[0], 2.0)


def test_pickled_encoder_refuses_a_modified_file(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(_double_model())
    enc = OnnxEncoder(path, device="cpu")
    enc.run({"x": np.ones((1, 3), np.float32)})
    blob = pickle.dumps(enc)
    path.write_bytes(_double_model() + b"\0")
    with pytest.raises(ValueError, match="sha256"):
        pickle.loads(blob).run({"x": np.ones((1, 3), np.float32)})


def test_cuda_request_without_gpu_falls_back_with_warning():
    if "CUDAExecutionProvider" in available_providers():
        pytest.skip("a GPU provider is present")
    enc = OnnxEncoder(_double_model(), device="cuda")
    with pytest.warns(RuntimeWarning, match="CUDA"):
        providers = enc.providers
    assert providers == ["CPUExecutionProvider"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert OnnxEncoder(_double_model(), device="auto").providers == ["CPUExecutionProvider"]


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        OnnxEncoder(tmp_path / "missing.onnx")
    with pytest.raises(ValueError, match="device"):
        OnnxEncoder(_double_model(), device="tpu")
    with pytest.raises(TypeError, match="model"):
        OnnxEncoder(42)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="could not load"):
        OnnxEncoder(bad).run({"x": np.ones((1, 3), np.float32)})


def test_cached_graph_builds_once_and_detects_tampering(tmp_path, monkeypatch):
    monkeypatch.setenv("SKAVC_HOME", str(tmp_path))
    calls = []

    def build():
        calls.append(1)
        return _double_model()

    path, digest = cached_graph("toy.onnx", build)
    assert cached_graph("toy.onnx", build) == (path, digest) and len(calls) == 1
    assert path.parent == tmp_path and not list(tmp_path.glob("*.tmp"))
    path.write_bytes(path.read_bytes()[:-1] + b"\1")
    with pytest.raises(ValueError, match="sha256"):
        cached_graph("toy.onnx", build)


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "x.bin"
    with pytest.raises(TypeError):
        atomic_write_bytes(target, object())
    assert list(tmp_path.iterdir()) == []
