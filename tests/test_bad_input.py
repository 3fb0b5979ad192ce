"""Bad input gets a clear error that names the parameter and what was expected."""

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import InvalidParameterError

from skavc import AVClip, AVCorrespondence, pair_clips

SR = 16000


def _frames(n=12, size=32):  # 12 frames at 25 fps: the 0.48 s of _audio()
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


# -- issue 19: wrong results without a word, errors that mislead -------------------------------

@pytest.mark.parametrize("dtype, full_scale, offset", [(np.int16, 32768, 0), (np.int32, 2 ** 31, 0),
                                                        (np.int8, 128, 0), (np.uint8, 128, 128)])
def test_integer_pcm_audio_is_scaled_to_full_scale(dtype, full_scale, offset):
    audio = _audio()
    pcm = np.round(audio * (full_scale - 1) + offset).astype(dtype)
    clip = AVClip(pcm, SR, _frames(), 25.0)
    np.testing.assert_allclose(clip.audio, audio, atol=1.5 / full_scale)


def test_integer_pcm_gives_the_float_embedding(fitted):
    audio = _audio()
    pcm = np.round(audio * 32767).astype(np.int16)
    E = fitted.transform_audio([audio, pcm])
    assert float(E[0] @ E[1]) > 0.999
    Ep = fitted.transform([(audio, _frames()), (pcm, _frames())])
    assert float(Ep[0] @ Ep[1]) > 2 * 0.999  # audio and visual halves each ~1


def test_integers_that_are_no_pcm_format_are_refused_by_name():
    with pytest.raises(TypeError, match=r"audio must hold float samples.*int64"):
        AVClip(np.zeros(12000, np.int64), SR, _frames(), 25.0)


@pytest.mark.parametrize("n_samples, n_frames", [(10, 50), (160, 50), (SR * 2, 3), (SR, 75)])
def test_audio_and_frames_that_cannot_be_one_clip_are_refused(n_samples, n_frames):
    with pytest.raises(ValueError, match=r"audio lasts .* but the frames .* same span of time"):
        AVClip(np.zeros(n_samples, np.float32), SR, _frames(n_frames), 25.0)


def test_durations_within_the_tolerance_pass_silently():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        AVClip(np.zeros(SR * 2 - 1200, np.float32), SR, _frames(50), 25.0)  # 75 ms short of 2 s


def test_poor_clips_warn():
    from skavc import ClipQualityWarning

    with pytest.warns(ClipQualityWarning, match="4x4 pixels"):
        AVClip(_audio(), SR, _frames(size=4), 25.0)
    with pytest.warns(ClipQualityWarning, match="one frame"):
        AVClip(np.zeros(SR * 2, np.float32), SR, _frames(1), 25.0)  # a still picture with its sound
    with pytest.warns(ClipQualityWarning, match="audio lasts 0.6 ms"):
        AVClip(np.zeros(10, np.float32), SR, _frames(1), 25.0)


def test_rerank_on_an_unfitted_model_is_not_fitted_error(clips):
    with pytest.raises(NotFittedError):
        AVCorrespondence().retrieve_visuals(clips[0].audio, clips[:4], top_k=1, rerank=3)
    with pytest.raises(NotFittedError):
        AVCorrespondence().retrieve_audio(clips[0].frames, clips[:4], top_k=1, rerank=3)


def test_errors_give_the_fix_as_a_constructor_parameter(fitted, clips):
    model = AVCorrespondence(**fitted.get_params())
    model.__dict__.update({k: v for k, v in vars(fitted).items() if k.endswith("_")})
    del model.timing_
    with pytest.raises(ValueError, match=r"AVCorrespondence\(timing=True\)\.fit\(X\)"):
        model.retrieve_visuals(clips[0].audio, clips[:4], top_k=1, rerank=3)


def test_one_pair_unwrapped_points_to_wrapping_it(fitted):
    with pytest.raises(TypeError, match=r"X is one \(audio, frames\) pair; wrap it in a list"):
        fitted.transform((_audio(), _frames()))


def test_a_dataframe_column_of_clips(fitted, clips):
    import pandas as pd
    expected = fitted.transform(clips[:3])
    np.testing.assert_array_equal(fitted.transform(pd.DataFrame({"clip": list(clips[:3])})), expected)
    with pytest.raises(ValueError, match="DataFrame of 2 columns"):
        fitted.transform(pd.DataFrame({"clip": list(clips[:3]), "other": [1, 2, 3]}))


@pytest.mark.parametrize("method", ["predict_offset", "localize", "classify_scene", "expected_sounds"])
def test_unfitted_methods_name_bad_parameters_by_their_own_name(method, clips):
    args = (["a", "b"],) if method == "classify_scene" else ()
    with pytest.raises(InvalidParameterError, match="n_visual_frames"):
        getattr(AVCorrespondence(n_visual_frames=0), method)(clips[:1], *args)
    with pytest.raises(InvalidParameterError, match="max_offset"):
        getattr(AVCorrespondence(max_offset=-1.0), method)(clips[:1], *args)


def test_separate_names_a_bad_fps(clips):
    with pytest.raises(InvalidParameterError, match="fps"):
        AVCorrespondence(fps=0).separate(clips[0].audio, clips[0].frames)


@pytest.mark.parametrize("name", ["embedding_dim", "n_visual_frames", "epochs", "hidden_units"])
def test_a_bool_is_no_integer_parameter(name):
    with pytest.raises(InvalidParameterError, match=f"{name}.*not a bool"):
        AVCorrespondence(**{name: True}).fit([(_audio(), _frames())] * 2)
