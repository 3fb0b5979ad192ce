"""Bad input gets a clear error that names the parameter and what was expected."""

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import InvalidParameterError

from skavc import AVClip, AVCorrespondence, pair_clips

SR = 16000


def _frames(n=5, size=32):
    return np.zeros((n, size, size, 3), np.uint8)


def _audio(seconds=0.5):
    return (0.1 * np.sin(np.linspace(0, 2000, int(SR * seconds)))).astype(np.float32)


@pytest.mark.parametrize(
    "audio, error, match",
    [
        (np.zeros(0, np.float32), ValueError, "audio is empty"),
        (np.array([0.0, np.nan, 0.1], np.float32), ValueError, "NaN or infinite"),
        (np.array([0.0, np.inf], np.float32), ValueError, "NaN or infinite"),
        (np.zeros((100, 2), np.float32), ValueError, r"mono.*\(100, 2\)"),
        (np.array(["a", "b"]), TypeError, "numeric"),
    ],
)
def test_bad_audio(audio, error, match):
    with pytest.raises(error, match=match):
        AVClip(audio, SR, _frames(), 25.0)


@pytest.mark.parametrize(
    "frames, error, match",
    [
        (np.zeros((5, 32, 32, 3), np.float32), TypeError, "frames must be uint8"),
        (np.zeros((5, 32, 32), np.uint8), ValueError, r"frames must have shape \(T, H, W, 3\)"),
        (np.zeros((5, 32, 32, 4), np.uint8), ValueError, r"\(T, H, W, 3\)"),
        (np.zeros((0, 32, 32, 3), np.uint8), ValueError, "frames is empty"),
    ],
)
def test_bad_frames(frames, error, match):
    with pytest.raises(error, match=match):
        AVClip(_audio(), SR, frames, 25.0)


@pytest.mark.parametrize("rate, name", [(0, "sample_rate"), (-16000, "sample_rate"), (16000.5, "sample_rate")])
def test_bad_sample_rate(rate, name):
    with pytest.raises(ValueError, match=name):
        AVClip(_audio(), rate, _frames(), 25.0)


def test_bad_fps():
    with pytest.raises(ValueError, match="fps"):
        AVClip(_audio(), SR, _frames(), 0)


def test_mismatched_numbers_of_audio_and_visual_samples():
    with pytest.raises(ValueError, match="same number.*3 waveforms and 2 frame arrays"):
        pair_clips([_audio()] * 3, [_frames()] * 2, sample_rate=SR, fps=25.0)
    assert len(pair_clips([_audio()] * 2, [_frames()] * 2, sample_rate=SR, fps=25.0)) == 2


def test_bad_pair_inside_X_names_its_position(clips, small_params):
    model = AVCorrespondence(**small_params)
    X = list(clips[:3]) + [(np.array([np.nan] * 100, np.float32), _frames())]
    with pytest.raises(ValueError, match=r"X\[3\].*NaN"):
        model.fit(X)
    with pytest.raises(TypeError, match=r"X\[1\] must be an AVClip"):
        model.fit([clips[0], 42])


def test_X_must_be_a_collection_of_clips(clips, small_params):
    model = AVCorrespondence(**small_params)
    with pytest.raises(TypeError, match="numeric array of shape"):
        model.fit(np.zeros((10, 3)))
    with pytest.raises(ValueError, match="X is empty"):
        model.fit([])
    with pytest.raises(ValueError, match="at least 2 clips"):
        model.fit(clips[:1])
    with pytest.raises(TypeError, match="wrap a single clip"):
        model.fit(clips[0])


def test_unknown_encoder_name():
    with pytest.raises(InvalidParameterError, match="audio_encoder"):
        AVCorrespondence(audio_encoder="wav2vec9").fit([(_audio(), _frames())] * 2)
    with pytest.raises(InvalidParameterError, match="visual_encoder"):
        AVCorrespondence(visual_encoder="resnet").fit([(_audio(), _frames())] * 2)
    from skavc.encoders import make_audio_encoder

    with pytest.raises(ValueError, match=r"audio_encoder must be one of \['effnet-mel', 'whisper-tiny', 'whisper-tiny-30s'\]"):
        make_audio_encoder("wav2vec9")


def test_bad_parameter_values_are_named():
    with pytest.raises(InvalidParameterError, match="embedding_dim"):
        AVCorrespondence(embedding_dim=0).fit([(_audio(), _frames())] * 2)
    with pytest.raises(InvalidParameterError, match="temperature"):
        AVCorrespondence(temperature=5.0).fit([(_audio(), _frames())] * 2)
    with pytest.raises(ValueError, match="epochs"):
        AVCorrespondence().fit([(_audio(), _frames())] * 2, epochs=0)


def test_wrong_sample_rate_for_waveforms(fitted):
    with pytest.raises(ValueError, match="sample_rate must be a positive number"):
        fitted.transform_audio([_audio()], sample_rate=0)
    with pytest.raises(ValueError, match="sample_rate must be a whole number of Hz, at least 1000"):
        fitted.transform_audio([_audio()], sample_rate=100)


def test_missing_and_corrupt_video_files(fitted, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.mp4"):
        fitted.transform([str(tmp_path / "nowhere.mp4")])
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.RandomState(0).bytes(4096))
    with pytest.raises(ValueError, match="corrupt.mp4"):
        fitted.transform([str(corrupt)])


def test_transform_before_fit():
    with pytest.raises(NotFittedError):
        AVCorrespondence().transform_audio([_audio()])
    with pytest.raises(NotFittedError):
        AVCorrespondence().get_feature_names_out()


def test_tampered_cached_graph_is_refused(tmp_path, monkeypatch):
    from skavc.encoders import make_visual_encoder

    monkeypatch.setenv("SKAVC_HOME", str(tmp_path))
    make_visual_encoder("efficientnet-lite0").prepare()
    (graph,) = tmp_path.glob("efficientnet-lite0-*.onnx")
    data = bytearray(graph.read_bytes())
    data[-100] ^= 0xFF
    graph.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="modified or corrupted"):
        make_visual_encoder("efficientnet-lite0").prepare()


def test_loaded_model_refuses_a_different_graph(fitted, clips):
    import pickle

    model = pickle.loads(pickle.dumps(fitted))
    model.visual_encoder_.sha256 = "0" * 64  # as if fitted with another build of the graph
    with pytest.raises(ValueError, match="not the one this model was fitted with"):
        model.transform_visual(clips[:1])
