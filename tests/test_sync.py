"""Synchronisation through the estimator: learned head, training-free estimate, API and CLI."""

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from skavc import AVClip, AVCorrespondence
from skavc.sync import SYNC_CONFIDENCE_THRESHOLD
from skavc.datasets import make_av_clips


@pytest.fixture(scope="module")
def sync_model(memory):
    train, _ = make_av_clips(n_clips=32, duration=4.0, frame_size=(96, 96), random_state=11)
    return AVCorrespondence(sync=True, epochs=5, sync_epochs=30, embedding_dim=8, memory=memory,
                            random_state=0).fit(train)


@pytest.fixture(scope="module")
def shifted():
    return make_av_clips(n_clips=8, duration=4.0, frame_size=(96, 96), offset_range=(-0.8, 0.8), random_state=12)


def test_learned_head_recovers_offsets(sync_model, shifted):
    clips, truth = shifted
    offsets, confidence = sync_model.predict_offset(clips, return_confidence=True, method="learned")
    assert offsets.shape == confidence.shape == (8,)
    # Trained on only 32 clips here (a test budget), the head already puts most clips within one
    # frame; chance is about 0.05. benchmarks/ measures it at scale.
    assert np.mean(np.abs(offsets - truth.offsets) <= 1 / 25) >= 0.5
    assert np.all((0 <= confidence) & (confidence <= 1))


def test_auto_uses_the_learned_head_when_trained(sync_model, shifted):
    clips, _ = shifted
    np.testing.assert_array_equal(sync_model.predict_offset(clips[:2]), sync_model.predict_offset(clips[:2], method="learned"))
    assert np.all(np.isfinite(AVCorrespondence().predict_offset(clips[:2])))  # signal, before any fit


@pytest.mark.parametrize("method", ["learned", "signal"])
def test_audio_shifted_later_gives_a_negative_offset(sync_model, method):
    (clip,), _ = make_av_clips(n_clips=1, duration=4.0, frame_size=(96, 96), random_state=13)
    delay = int(0.4 * clip.sample_rate)
    later = np.concatenate([np.zeros(delay, np.float32), clip.audio[:-delay]])
    (offset,) = sync_model.predict_offset([AVClip(later, clip.sample_rate, clip.frames, clip.fps)], method=method)
    assert offset == pytest.approx(-0.4, abs=1 / 25)


def test_learned_head_trained_at_25_fps_works_at_30(sync_model):
    clips, truth = make_av_clips(n_clips=6, duration=4.0, fps=30.0, frame_size=(96, 96),
                                 offset_range=(-0.6, 0.6), random_state=14)
    offsets = sync_model.predict_offset(clips, method="learned")
    assert np.mean(np.abs(offsets - truth.offsets) <= 1 / 30) >= 0.5


def test_sync_curve_shapes(sync_model, shifted):
    clips, _ = shifted
    for method in ("learned", "signal", "naive"):
        curves = sync_model.sync_curve(clips[:2], method=method)
        assert len(curves) == 2
        for offsets, scores in curves:
            assert offsets.shape == scores.shape and offsets.ndim == 1
            assert offsets.min() >= -1.0 - 1e-9 and offsets.max() <= 1.0 + 1e-9
            assert np.all(np.isfinite(scores)) and np.all(np.diff(offsets) > 0)


@pytest.mark.parametrize("method", ["learned", "signal"])
def test_silence_and_static_video_give_low_confidence(sync_model, shifted, method):
    clip = shifted[0][0]
    silent = AVClip(np.zeros_like(clip.audio), clip.sample_rate, clip.frames, clip.fps)
    static = AVClip(clip.audio, clip.sample_rate, np.repeat(clip.frames[:1], clip.n_frames, axis=0), clip.fps)
    _, conf = sync_model.predict_offset([silent, static], return_confidence=True, method=method)
    assert np.all(conf < SYNC_CONFIDENCE_THRESHOLD)


def test_method_errors(shifted):
    clips, _ = shifted
    with pytest.raises(NotFittedError, match="sync=True"):
        AVCorrespondence().predict_offset(clips[:1], method="learned")
    with pytest.raises(ValueError, match="method must be one of"):
        AVCorrespondence().predict_offset(clips[:1], method="psychic")


def test_sync_head_survives_joblib(sync_model, shifted, tmp_path):
    import joblib

    joblib.dump(sync_model, tmp_path / "m.joblib")
    loaded = joblib.load(tmp_path / "m.joblib")
    clips, _ = shifted
    np.testing.assert_array_equal(loaded.predict_offset(clips[:2]), sync_model.predict_offset(clips[:2]))


def test_cli_sync_prints_offset_and_writes_png(shifted, tmp_path, capsys):
    from skavc.cli import main
    from skavc.io import save_clip

    clips, truth = shifted
    video = tmp_path / "v.mp4"
    save_clip(clips[0], video)
    png = tmp_path / "curve.png"
    assert main(["sync", str(video), "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    printed = float(out.split("offset ")[1].split(" s")[0])
    assert printed == pytest.approx(truth.offsets[0], abs=1 / 25)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
