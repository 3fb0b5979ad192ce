import pickle
import warnings

import numpy as np
import pytest

from skavc.encoders import OnnxEncoder, available_providers
from skavc._validation import atomic_write_bytes
from skavc.encoders._cache import cached_graph
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


def _frames_model():
    # uint8 frames in, a per-frame float feature out (a stand-in with the built-in encoders' input).
    g = GraphBuilder("mean_pixels")
    x = g.input("frames", np.uint8, ["N", "H", "W", 3])
    y = g.op("ReduceMean", g.op("Cast", x, to=1), g.const(np.array([1, 2], np.int64)), keepdims=0)
    g.output(y, "mean", np.float32, ["N", 3])
    return g.to_bytes()


def test_auto_batch_size_follows_the_provider():
    enc = OnnxEncoder(_double_model(), device="cpu")
    assert enc.batch_size is None and enc.effective_batch_size == 8
    enc.run({"x": np.ones((20, 3), np.float32)})
    assert enc.n_session_runs_ == 3
    with pytest.raises(ValueError, match="batch_size"):
        OnnxEncoder(_double_model(), batch_size=0)


def test_io_binding_reuses_buffers_without_aliasing_results_or_inputs():
    rng = np.random.RandomState(0)
    frames = rng.randint(0, 256, size=(21, 5, 4, 3), dtype=np.uint8)
    before = frames.copy()
    plain = OnnxEncoder(_frames_model(), device="cpu", batch_size=8, io_binding=False)
    bound = OnnxEncoder(_frames_model(), device="cpu", batch_size=8, io_binding=True)
    first = bound.run({"frames": frames[:8]})[0]
    kept = first.copy()
    second = bound.run({"frames": frames[8:16]})[0]  # same shape: the same bound buffers
    np.testing.assert_array_equal(first, kept)  # earlier results are not overwritten
    assert not np.shares_memory(first, second)
    np.testing.assert_array_equal(frames, before)  # the caller's frames are never written
    np.testing.assert_array_equal(bound.run({"frames": frames})[0], plain.run({"frames": frames})[0])
    assert len(bound._local.shapes) == 1  # the 5-frame tail is padded to 8: the same buffers


def _run_in_threads(enc, inputs):
    import threading

    results, errors = [None] * len(inputs), [None] * len(inputs)
    barrier = threading.Barrier(len(inputs))

    def work(i):
        barrier.wait()
        try:
            results[i] = enc.run(inputs[i])[0]
        except Exception as exc:
            errors[i] = exc

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a coalesced call hung"
    return results, errors


def test_coalescing_merges_concurrent_calls_and_returns_each_its_rows():
    from skavc.encoders import make_visual_encoder

    rng = np.random.RandomState(1)
    path = make_visual_encoder("efficientnet-lite0").onnx.path
    # Two shapes interleaved: only calls with equal trailing shapes are merged.
    inputs = [{"frames": rng.randint(0, 256, size=(3, 48 if i % 2 else 40, 48, 3), dtype=np.uint8)}
              for i in range(8)]
    enc = OnnxEncoder(path, device="cpu", batch_size=64, coalesce=True, n_threads=2)
    results, errors = _run_in_threads(enc, inputs)
    assert errors == [None] * 8
    direct = OnnxEncoder(path, device="cpu", batch_size=3)
    for x, y in zip(inputs, results):
        np.testing.assert_allclose(y, direct.run(x)[0], rtol=1e-5, atol=1e-5)
    assert 2 <= enc.n_session_runs_ < 8
    assert enc._pending == [] and not enc._busy


def test_coalesced_failure_reaches_every_caller():
    enc = OnnxEncoder(_double_model(), device="cpu", batch_size=64, coalesce=True)
    inputs = [{"x": np.ones((2, 3), np.float64)} for _ in range(4)]  # the model wants float32
    results, errors = _run_in_threads(enc, inputs)
    assert results == [None] * 4
    assert all(e is not None for e in errors)
    np.testing.assert_array_equal(enc.run({"x": np.ones((2, 3), np.float32)})[0], 2.0)  # still usable


def test_pickling_drops_runtime_state_and_keeps_options():
    enc = OnnxEncoder(_double_model(), device="cpu", batch_size=5, io_binding=True, coalesce=True)
    enc.run({"x": np.ones((2, 3), np.float32)})
    restored = pickle.loads(pickle.dumps(enc))
    assert (restored.batch_size, restored.io_binding, restored.coalesce) == (5, True, True)
    assert restored._session is None and restored._pending == []
    np.testing.assert_array_equal(restored.run({"x": np.ones((7, 3), np.float32)})[0], 2.0)


def test_bucket_sizes_bound_the_number_of_shapes():
    from skavc.encoders._onnx import bucket_size

    sizes = [bucket_size(n, 256) for n in range(1, 257)]
    assert all(n <= s <= 256 and s <= max(8, 2 * n) for n, s in zip(range(1, 257), sizes))
    assert sorted(set(sizes)) == [8, 16, 32, 64, 128, 256]
    assert bucket_size(300, 256) == 300 and bucket_size(5, 4) == 5 and bucket_size(3, 4) == 4


def test_io_binding_pads_to_buckets_and_trims():
    rng = np.random.RandomState(2)
    enc = OnnxEncoder(_frames_model(), device="cpu", batch_size=64, io_binding=True)
    plain = OnnxEncoder(_frames_model(), device="cpu", io_binding=False)
    for n in (3, 5, 9, 33, 40):
        frames = rng.randint(0, 256, size=(n, 4, 4, 3), dtype=np.uint8)
        out = enc.run({"frames": frames})[0]
        assert out.shape == (n, 3)
        np.testing.assert_array_equal(out, plain.run({"frames": frames})[0])
    shapes = sorted(key[0][1][0] for key in enc._local.shapes)
    assert shapes == [8, 16, 64]  # 3 and 5->8, 9->16, 33 and 40->64


def test_device_path_runs_each_shape_on_its_own_session(monkeypatch):
    """On CUDA a session whose input shape changes rebuilds its cuDNN state (seconds, measured
    on an H100): there every shape gets its own session, reused while it is among the recent
    _MAX_SHAPES, and no more sessions than that are opened. Here the CPU takes that path;
    results are the same as one session's."""
    from skavc.encoders import _onnx

    rng = np.random.RandomState(3)
    enc = OnnxEncoder(_frames_model(), device="cpu", batch_size=64, io_binding=True)
    monkeypatch.setattr(enc, "_calls_on_device_thread", lambda: True)
    created = []
    create = enc._create_session
    monkeypatch.setattr(enc, "_create_session", lambda: created.append(1) or create())
    plain = OnnxEncoder(_frames_model(), device="cpu", io_binding=False)
    sizes = [(8, 4, 4), (20, 4, 4), (8, 4, 4), (8, 6, 4), (20, 4, 4)]  # 20 -> 32; (8, 6, 4) a new picture size
    for n, h, w in sizes:
        frames = rng.randint(0, 256, size=(n, h, w, 3), dtype=np.uint8)
        np.testing.assert_array_equal(enc.run({"frames": frames})[0], plain.run({"frames": frames})[0])
    states = enc._on_device_thread(lambda: dict(enc._local.shapes))  # that thread's shapes
    sessions = {key[0][1]: state.session for key, state in states.items()}
    assert len(sessions) == 3 and len({id(s) for s in sessions.values()}) == 3
    assert len(created) == 3  # the main session (first shape) and two more; repeats reuse theirs
    for n in range(_onnx._MAX_SHAPES + 2):  # more shapes than are kept: the oldest go
        enc.run({"frames": rng.randint(0, 256, size=(4, 5 + n, 4, 3), dtype=np.uint8)})
    assert len(enc._on_device_thread(lambda: dict(enc._local.shapes))) == _onnx._MAX_SHAPES
    assert len(created) == _onnx._MAX_SHAPES  # then the oldest shape's session serves the new one
    # least recently *used* goes, not least recently added: the oldest, used again, stays
    oldest = next(iter(enc._on_device_thread(lambda: dict(enc._local.shapes))))
    _, h, w, _ = oldest[0][1]
    enc.run({"frames": rng.randint(0, 256, size=(4, h, w, 3), dtype=np.uint8)})
    enc.run({"frames": rng.randint(0, 256, size=(4, 99, 4, 3), dtype=np.uint8)})
    assert oldest in enc._on_device_thread(lambda: dict(enc._local.shapes))


def test_device_path_without_io_binding_pads_batches_to_a_few_shapes(monkeypatch):
    """On CUDA without I/O binding batches are padded to bucket sizes too: otherwise every
    batch size would be a shape with its own session (and the last ones would evict each other)."""
    enc = OnnxEncoder(_frames_model(), device="cpu", batch_size=64, io_binding=False)
    monkeypatch.setattr(type(enc), "on_gpu", property(lambda self: True))  # the CPU takes CUDA's path
    plain = OnnxEncoder(_frames_model(), device="cpu", io_binding=False)
    rng = np.random.RandomState(4)
    for n in (3, 5, 7, 8, 6):  # all padded to 8
        frames = rng.randint(0, 256, size=(n, 4, 4, 3), dtype=np.uint8)
        np.testing.assert_array_equal(enc.run({"frames": frames})[0], plain.run({"frames": frames})[0])
    assert len(enc._on_device_thread(lambda: dict(enc._local.shapes))) == 1


def test_unpickled_builtin_encoder_opens_one_session_across_threads():
    from concurrent.futures import ThreadPoolExecutor

    from skavc.encoders import make_visual_encoder

    encoder = make_visual_encoder("efficientnet-lite0", device="cpu")
    encoder.prepare()
    restored = pickle.loads(pickle.dumps(encoder))
    assert restored._onnx is None
    with ThreadPoolExecutor(8) as pool:
        sessions = set(pool.map(lambda _: id(restored.onnx.session), range(16)))
    assert len(sessions) == 1


def test_device_thread_makes_every_session_call_of_concurrent_callers(monkeypatch):
    """On CUDA every session call goes to one long-lived thread, which owns the sessions per
    shape (joblib's fresh threads would each open their own); here the CPU takes that path."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from skavc.encoders import make_visual_encoder

    enc = make_visual_encoder("efficientnet-lite0", device="cpu", batch_size=8, coalesce=True).onnx
    monkeypatch.setattr(type(enc), "_calls_on_device_thread", lambda self: True)
    seen = set()
    run_batch = type(enc)._run_batch

    def recording(self, feed, output_names):
        seen.add(threading.current_thread().name)
        return run_batch(self, feed, output_names)

    monkeypatch.setattr(type(enc), "_run_batch", recording)
    frames = np.random.RandomState(0).randint(0, 256, size=(12, 3, 32, 32, 3)).astype(np.uint8)
    expected = [enc.run({"frames": f}, ["embedding"])[0] for f in frames]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda f: enc.run({"frames": f}, ["embedding"])[0], frames))
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)
    assert len(seen) == 1 and next(iter(seen)).startswith("skavc-")
