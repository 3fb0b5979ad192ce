"""The estimator on the real built-in encoders and generated clips."""

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from skavc import AVClip, AVCorrespondence


def test_embeddings_are_unit_rows_of_the_right_shape(fitted, clips):
    Ea = fitted.transform_audio(clips[74:])
    Ev = fitted.transform_visual(clips[74:])
    for E in (Ea, Ev):
        assert E.shape == (6, 16) and E.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(E, axis=1), 1.0, atol=1e-5)
    both = fitted.transform(clips[74:])
    np.testing.assert_allclose(both, np.hstack([Ea, Ev]), atol=1e-6)
    names = fitted.get_feature_names_out()
    assert len(names) == 32 and names[0] == "avcorrespondence_audio0" and names[16] == "avcorrespondence_visual0"


def test_properties(fitted):
    assert fitted.audio_sample_rate == 16000
    assert fitted.video_frame_rate == 25.0
    assert fitted.embedding_dim == 16
    assert AVCorrespondence(audio_encoder="effnet-mel").audio_sample_rate == 16000


def test_training_learns_correspondence(fitted, clips):
    assert fitted.loss_curve_[-1] < 0.5 * fitted.loss_curve_[0]
    assert fitted.n_iter_ == 40
    # Trained pairs score higher than the same clips with their sounds swapped around.
    train = clips[:20]
    matched = fitted.correspondence(train)
    swapped = [(train[i].audio, train[(i + 1) % 20].frames) for i in range(20)]
    assert matched.mean() > fitted.correspondence(swapped).mean() + 0.3
    assert fitted.score(train) > 0.5


def test_held_out_retrieval_beats_chance(fitted, clips, av_data):
    from skavc.metrics import cross_modal_recall

    labels = av_data[1].labels[60:]
    held_out = clips[60:]
    Ea, Ev = fitted.transform_audio(held_out), fitted.transform_visual(held_out)
    # 20 held-out clips of 4 classes after 60 training pairs: the best-matching video shows
    # the sound's class far more often than chance (the share of same-class pairs, ~0.25).
    best = (Ea @ Ev.T).argmax(axis=1)
    chance = np.mean(labels[:, None] == labels[None, :])
    assert np.mean(labels[best] == labels) >= chance + 0.2
    a2v, v2a = cross_modal_recall(Ea, Ev, k=5)
    assert min(a2v, v2a) > 5 / 20


def test_same_seed_same_model(clips, small_params):
    a = AVCorrespondence(**small_params).fit(clips[:12], epochs=5)
    b = AVCorrespondence(**small_params).fit(clips[:12], epochs=5)
    for key in a.head_params_:
        np.testing.assert_array_equal(a.head_params_[key], b.head_params_[key])
    c = AVCorrespondence(**{**small_params, "random_state": 1}).fit(clips[:12], epochs=5)
    assert not np.allclose(a.head_params_["audio_W0"], c.head_params_["audio_W0"])


def test_inputs_in_every_form_give_the_same_embeddings(fitted, clips):
    clip = clips[20]
    ref_a = fitted.transform_audio([clip])
    np.testing.assert_allclose(fitted.transform_audio([clip.audio]), ref_a, atol=1e-6)
    np.testing.assert_allclose(fitted.transform_audio([(clip.audio, clip.frames)]), ref_a, atol=1e-6)
    np.testing.assert_allclose(fitted.transform_visual([clip.frames]), fitted.transform_visual([clip]), atol=1e-6)
    # The same sound at 44.1 kHz is resampled to the encoder's rate.
    import librosa

    audio_44k = librosa.resample(clip.audio, orig_sr=16000, target_sr=44100)
    from_44k = fitted.transform_audio([audio_44k], sample_rate=44100)
    assert float((from_44k @ ref_a.T)[0, 0]) > 0.95
    clip_44k = AVClip(audio_44k, 44100, clip.frames, clip.fps)
    np.testing.assert_allclose(fitted.transform_audio([clip_44k]), from_44k, atol=1e-5)


def test_video_files_are_decoded(fitted, clips, tmp_path):
    from skavc.io import save_clip

    path = tmp_path / "clip.mp4"
    save_clip(clips[19], path)
    from_file = fitted.transform([str(path)])
    from_memory = fitted.transform([clips[19]])
    # A lossy round trip through H.264/AAC barely moves the embeddings.
    assert float(from_file[0, :16] @ from_memory[0, :16]) > 0.9
    assert float(from_file[0, 16:] @ from_memory[0, 16:]) > 0.9
    # Files are decoded converting only the sampled frames: the same as decoding them whole.
    from skavc.io import load_clip

    decoded = load_clip(path, sample_rate=fitted.audio_sample_rate)
    np.testing.assert_allclose(from_file, fitted.transform([decoded]), atol=1e-5)
    np.testing.assert_allclose(fitted.transform_visual([str(path)]), fitted.transform_visual([decoded]), atol=1e-5)


def test_partial_fit_streams_batches(clips, small_params):
    model = AVCorrespondence(**small_params)
    for _ in range(15):
        for start in (0, 6, 12):
            model.partial_fit(clips[start : start + 6])
    assert model.n_iter_ == 45
    assert np.mean(model.loss_curve_[-3:]) < np.mean(model.loss_curve_[:3])
    assert model.transform_audio(clips[:2]).shape == (2, 16)


def test_parallel_encoding_matches_serial(fitted, clips):
    from sklearn.base import clone

    serial = fitted.transform(clips[:6])
    parallel = clone(fitted).set_params(n_jobs=2)
    parallel.__dict__.update({k: v for k, v in fitted.__dict__.items() if k.endswith("_") or k == "_rng"})
    np.testing.assert_allclose(parallel.transform(clips[:6]), serial, atol=1e-5)


def test_verbose_reports_progress(clips, small_params, capsys):
    AVCorrespondence(**{**small_params, "verbose": 1}).fit(clips[:6], epochs=10)
    out = capsys.readouterr().out
    assert "[AVCorrespondence] encoded 6 clips" in out and "epoch 10: loss" in out


def test_effnet_mel_audio_encoder(clips, memory):
    model = AVCorrespondence(audio_encoder="effnet-mel", embedding_dim=8, epochs=3, n_visual_frames=2,
                             memory=memory, random_state=0).fit(clips[:4])
    assert model.n_features_audio_ == 1280
    assert model.transform_audio(clips[:2]).shape == (2, 8)


def test_mlp_head_and_learnt_temperature(clips, small_params):
    model = AVCorrespondence(**{**small_params, "head": "mlp", "hidden_units": 32, "learn_temperature": True})
    model.fit(clips[:12], epochs=20)
    assert model.temperature_ != pytest.approx(0.1)
    assert model.head_params_["audio_W1"].shape == (32, 16)
    assert model.transform(clips[:3]).shape == (3, 32)


def test_unfitted_model_refuses_to_transform(clips):
    model = AVCorrespondence()
    for method in (model.transform_audio, model.transform_visual, model.transform, model.correspondence):
        with pytest.raises(NotFittedError):
            method(clips[:2])


def test_memory_encodes_each_clip_once(clips, tmp_path, monkeypatch):
    import joblib
    from sklearn.base import clone

    from skavc.encoders import EfficientNetLite0Encoder, WhisperTinyEncoder

    model = AVCorrespondence(embedding_dim=8, epochs=2, n_visual_frames=2, random_state=0,
                             memory=joblib.Memory(str(tmp_path), verbose=0))
    model.fit(clips[:6])

    def refuse(self, *args, **kwargs):
        raise AssertionError("the encoder ran again although its output was cached")

    monkeypatch.setattr(WhisperTinyEncoder, "encode", refuse)
    monkeypatch.setattr(EfficientNetLite0Encoder, "encode", refuse)
    # A refit with other head parameters (what a grid search does) reads the cache only.
    other = clone(model).set_params(embedding_dim=4, temperature=0.2).fit(clips[:6])
    assert other.transform(clips[:6]).shape == (6, 8)
    with pytest.raises(AssertionError, match="ran again"):
        other.transform(clips[6:7])
