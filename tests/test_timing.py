"""Timing in correspondence: the sync evidence joins the cosine, so instances, not only classes, match."""

import numpy as np
import pytest

from skavc import AVClip, AVCorrespondence
from skavc.datasets import make_av_clips
from skavc.metrics import recall_at_k
from skavc.sync import fit_timing, timing_probability


@pytest.fixture(scope="module")
def data():
    return make_av_clips(n_clips=56, duration=2.0, frame_size=(64, 64), random_state=4)


@pytest.fixture(scope="module")
def fitted(data, memory):
    clips, _ = data
    return AVCorrespondence(epochs=30, embedding_dim=16, memory=memory, random_state=0).fit(clips[:40])


def test_fit_learns_how_cosine_and_sync_evidence_combine(fitted):
    cos_weight, peak_weight, _ = fitted.timing_
    assert cos_weight > 0 and peak_weight > 0  # both say "same event" when high


def test_timing_finds_the_own_frames_among_look_alikes(fitted, data):
    clips, _ = data
    test = clips[40:]
    n = len(test)
    pairs = [AVClip(a.audio, a.sample_rate, b.frames, b.fps) for a in test for b in test]
    plain = fitted.correspondence(pairs, timing=False).reshape(n, n)
    timed = fitted.correspondence(pairs).reshape(n, n)
    assert np.all((timed >= 0) & (timed <= 1)) and np.all((plain >= -1) & (plain <= 1))
    assert recall_at_k(timed) >= 0.6 and recall_at_k(timed) > recall_at_k(plain) + 0.2


def test_timing_needs_a_model_fitted_with_it(data):
    clips, _ = data
    model = AVCorrespondence(epochs=2, embedding_dim=8, timing=False, random_state=0).fit(clips[:6])
    assert not hasattr(model, "timing_")
    np.testing.assert_allclose(model.correspondence(clips[:3]), model.correspondence(clips[:3], timing=False))
    with pytest.raises(ValueError, match="timing=True needs a model fitted with timing=True"):
        model.correspondence(clips[:3], timing=True)


def test_rerank_scores_are_correspondence_with_timing(fitted, data):
    clips, _ = data
    test = clips[40:48]
    matches = fitted.retrieve_visuals(test[0].audio, test, top_k=3, rerank=5)
    assert len(matches) == 3
    assert [s for _, s in matches] == sorted((s for _, s in matches), reverse=True)
    expected = fitted.correspondence([AVClip(test[0].audio, test[0].sample_rate, test[i].frames, test[i].fps)
                                      for i, _ in matches])
    np.testing.assert_allclose([s for _, s in matches], expected, rtol=1e-4, atol=1e-5)
    # Each sound's best is the best by correspondence among all `rerank` candidates, not only
    # among the first by cosine: for some sounds (asserted) the two differ.
    differs = 0
    for q in range(len(test)):
        pool = [i for i, _ in fitted.retrieve_visuals(test[q].audio, test, top_k=len(test))]
        rescored = fitted.correspondence([AVClip(test[q].audio, test[q].sample_rate, test[i].frames, test[i].fps)
                                          for i in pool])
        best = fitted.retrieve_visuals(test[q].audio, test, top_k=1, rerank=len(test))[0][0]
        assert best == pool[int(np.argmax(rescored))]
        differs += best != pool[0]
    assert differs > 0
    batch = fitted.retrieve_audio(test[:2], test, top_k=2, rerank=4)
    assert len(batch) == 2 and all(len(m) == 2 for m in batch)
    expected = fitted.correspondence([AVClip(test[i].audio, test[i].sample_rate, test[1].frames, test[1].fps)
                                      for i, _ in batch[1]])
    np.testing.assert_allclose([s for _, s in batch[1]], expected, rtol=1e-4, atol=1e-5)


def test_rerank_errors(fitted, data):
    clips, _ = data
    test = clips[40:48]
    with pytest.raises(ValueError, match="rerank needs clips"):
        fitted.retrieve_visuals(test[0].audio, fitted.transform_visual(test), top_k=3, rerank=3)
    with pytest.raises(ValueError, match="rerank must be an integer >= 3"):
        fitted.retrieve_visuals(test[0].audio, test, top_k=3, rerank=2)
    with pytest.raises(ValueError, match="rerank must be an integer"):
        fitted.retrieve_visuals(test[0].audio, test, top_k=3, rerank=4.5)
    untimed = AVCorrespondence(epochs=2, embedding_dim=8, timing=False, random_state=0).fit(clips[:6])
    with pytest.raises(ValueError, match="rerank needs a model fitted with timing=True"):
        untimed.retrieve_visuals(test[0].audio, test, top_k=1, rerank=2)
    with pytest.raises(TypeError, match="timing must be True, False or None"):
        fitted.correspondence(test[:2], timing="yes")


def test_correspondence_reads_a_generator_once(fitted, data):
    clips, _ = data
    np.testing.assert_allclose(fitted.correspondence(c for c in clips[40:43]), fitted.correspondence(clips[40:43]))


def test_timing_probability_is_the_logistic_of_the_fitted_combination():
    rng = np.random.RandomState(0)
    cos = np.r_[rng.normal(0.6, 0.1, 50), rng.normal(0.3, 0.1, 50)]
    peaks = np.r_[rng.normal(8, 2, 50), rng.normal(1, 1, 50)]
    same = np.r_[np.ones(50), np.zeros(50)]
    coefficients = fit_timing(cos, peaks, same)
    p = timing_probability(coefficients, cos, peaks)
    assert np.mean((p > 0.5) == same) > 0.95
