"""Scene labels at call time and expected sounds: probabilities, unseen labels, errors, descriptions."""

import copy

import numpy as np
import pytest
from sklearn.datasets import load_sample_images

from skavc import AVClip, AVCorrespondence
from skavc._text_space import combine_experts, fit_temperature, sharpen, transfer_matrix
from skavc.datasets import make_av_clips
from skavc.describe import describe_sentence, motion_onsets


@pytest.fixture(scope="module")
def photos():
    """The two real photographs scikit-learn ships (a temple, a flower), as still clips."""
    return [AVClip(np.zeros(16000, np.float32), 16000, np.repeat(im[None], 25, axis=0), 25.0)  # 1 s still
            for im in load_sample_images().images]


@pytest.fixture(scope="module")
def data():
    return make_av_clips(n_clips=120, n_classes=6, duration=2.0, frame_size=(64, 64), random_state=3)


@pytest.fixture(scope="module")
def fitted(data, memory):
    clips, truth = data
    train = [i for i in range(len(clips)) if truth.labels[i] != 5][:80]  # class 5 never seen
    model = AVCorrespondence(scene=True, epochs=30, embedding_dim=16, memory=memory, random_state=0)
    return model.fit([clips[i] for i in train], list(truth.label_names[train])), train


def test_zero_shot_probabilities_sum_to_one_and_name_what_the_photo_shows(photos):
    labels = ["a temple", "church bells", "a daisy", "a dog park", "a crowded train station"]
    P = AVCorrespondence().classify_scene(photos, labels)
    assert P.shape == (2, 5)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-9)
    assert np.all(P >= 0)
    temple, flower = (dict(zip(labels, row)) for row in P)
    assert max(temple, key=temple.get) in ("a temple", "church bells")
    assert max(flower, key=flower.get) == "a daisy"


def test_an_exact_class_name_takes_its_class_probability():
    # Two source classes; the label naming class 0 exactly must take (nearly) all of its mass.
    sources = np.eye(3)[:2]
    targets = np.array([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [0.0, 0.6, 0.8]])
    T = transfer_matrix(sources, targets)
    np.testing.assert_allclose(T.sum(axis=1), 1.0)
    assert T[0, 0] > 0.99


def test_calibration_helpers():
    rng = np.random.RandomState(0)
    P = rng.dirichlet(np.ones(4), size=50)
    np.testing.assert_allclose(sharpen(P, 0.5).sum(axis=1), 1.0)
    assert np.all(sharpen(P, 0.5).max(axis=1) >= P.max(axis=1) - 1e-12)  # sharper
    y = P.argmax(axis=1)  # always right: the likelihood wants the sharpest
    assert fit_temperature(P, y) < 0.1
    flat = np.full((3, 4), 0.25)
    # a flat expert keeps the other's ranking (the geometric mean with it is sqrt(P), renormalised)
    np.testing.assert_allclose(combine_experts(P[:3], flat), sharpen(P[:3], 2.0))


@pytest.mark.parametrize("labels, error, match", [
    ([], ValueError, "empty"),
    ("dog", TypeError, "labels must be a list of strings, not a single string"),
    (["dog", 3], TypeError, r"labels\[1\] is int"),
    ([b"dog"], TypeError, r"labels\[0\] is bytes"),
    (["dog", " "], ValueError, r"labels\[1\] is an empty string"),
    (["Dog park", "dog  park"], ValueError, "duplicates"),
])
def test_bad_labels_are_refused_before_any_encoding(photos, labels, error, match):
    with pytest.raises(error, match=match):
        AVCorrespondence().classify_scene(photos, labels)


def test_fitted_model_scores_seen_and_unseen_labels(fitted, data):
    model, train = fitted
    clips, truth = data
    test = [i for i in range(len(clips)) if i not in train]
    P = model.classify_scene([clips[i] for i in test], list(truth.class_names))
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-9)
    seen = [j for j, i in enumerate(test) if truth.labels[i] != 5]
    accuracy = np.mean(P[seen].argmax(axis=1) == truth.labels[[test[j] for j in seen]])
    assert accuracy >= 0.5  # chance 1/6
    assert model.text_map_ is not None and hasattr(model.audio_class_head_, "classes_")


@pytest.mark.parametrize("y, match", [
    (["a"] * 5, r"per clip \(6\); got 5 items"),
    (["a", "b", "a", " ", "b", "a"], r"y\[3\] is ' '"),
    (["a", "b", 3, "a", "b", "a"], r"y\[2\] is 3"),
    (["a"] * 6, "at least two different labels"),
    (5, "list of label or caption strings, one per clip \\(6\\); got int"),
    ("abcdef", "got str"),
])
def test_fit_y_is_checked_before_any_encoding(data, monkeypatch, y, match):
    from skavc import _correspondence

    clips, _ = data
    monkeypatch.setattr(_correspondence.EncodingContext, "pooled",
                        lambda *a, **k: pytest.fail("clips were encoded before y was checked"))
    with pytest.raises(ValueError, match=match):
        AVCorrespondence(scene=True, epochs=2).fit(clips[:6], y)


def test_text_map_temperature_is_fitted_out_of_fold_also_for_captions():
    """All-distinct captions: each caption's out-of-fold map never saw it, so on noise its
    probability stays near chance (in-sample maps would put it near 1)."""
    from skavc._text_space import TextMap

    rng = np.random.default_rng(0)
    n = 30
    text_map = TextMap().fit(rng.normal(size=(n, 8)), rng.normal(size=(n, 16)), np.arange(n))
    assert text_map.out_of_fold_proba_[np.arange(n), np.arange(n)].mean() < 3.0 / n


def _photo_clips(photos, n_clips, seed):
    """The two photographs, each with its own sound (a tone with the temple, noise with the
    flower), a little different every clip: a sound that tells what the picture shows."""
    rng = np.random.RandomState(seed)
    t = np.arange(16000) / 16000
    clips = []
    for i in range(n_clips):
        kind = i % 2
        if kind == 0:
            audio = 0.3 * np.sin(2 * np.pi * rng.uniform(400, 500) * t)
        else:
            audio = 0.3 * rng.standard_normal(t.size)
        audio = (audio + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
        clips.append(AVClip(audio, 16000, photos[kind].frames, 25.0))
    return clips


def test_audio_head_weight_follows_its_skill_on_unseen_clips():
    from skavc._text_space import AUDIO_HEAD_MAX_WEIGHT, fit_audio_class_head

    rng = np.random.RandomState(0)
    features = rng.standard_normal((60, 8))
    logits = np.hstack([3 * features[:, :4], np.zeros((60, 100))])  # 104 classes, 4 told by the sound
    teacher = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    head, weight, skill = fit_audio_class_head(features, teacher, np.random.RandomState(0))
    assert skill > 0.3 and 0.15 < weight <= AUDIO_HEAD_MAX_WEIGHT  # the sound predicts the picture
    assert hasattr(head, "classes_")
    unrelated = rng.standard_normal((60, 8))
    _, weight, skill = fit_audio_class_head(unrelated, teacher, np.random.RandomState(0))
    assert skill <= 0 and weight == 0.0  # learnt nothing that carries over: it costs nothing


def test_the_sound_alone_classifies_after_fit(photos, memory):
    """Blank frames: a head that learnt which sound goes with which picture leans to that picture."""
    model = AVCorrespondence(scene=True, epochs=5, n_components=8, embedding_dim=8, memory=memory, random_state=0)
    model.fit(_photo_clips(photos, 40, seed=0))
    assert model.audio_weight_ > 0.2  # out of fold it predicts the pictures from the sounds
    heard = _photo_clips(photos, 4, seed=1)  # tone, noise, tone, noise: new recordings
    blank = [AVClip(c.audio, c.sample_rate, np.full_like(c.frames, 128), c.fps) for c in heard]
    labels = ["a temple", "a daisy"]
    unfit = AVCorrespondence().classify_scene(blank, labels)
    np.testing.assert_allclose(unfit, unfit[[0, 0, 0, 0]])  # the grey frames alone cannot tell them apart
    temple = model.classify_scene(blank, labels)[:, 0]
    assert temple[0] > temple[1] + 0.01 and temple[2] > temple[3] + 0.01  # the tone goes with the temple


def test_a_head_that_learnt_nothing_leaves_zero_shot_as_it_was(fitted, data):
    """Generated clips: ImageNet cannot name their coloured shapes, so the sound cannot learn to
    predict the frames' posteriors on clips it has not seen; its weight is (about) 0 and without
    a caption map the fitted model scores as the unfitted one (at the old weight 0.5 it did not)."""
    model, _ = fitted
    clips, truth = data
    assert model.audio_weight_ < 0.05
    without_text_map = copy.copy(model)
    without_text_map.text_map_ = None
    labels = list(truth.class_names)
    np.testing.assert_allclose(without_text_map.classify_scene(clips[:4], labels),
                               AVCorrespondence().classify_scene(clips[:4], labels), atol=0.01)


def test_describe_gives_a_sentence_per_clip_and_a_string_for_one(photos, data):
    model = AVCorrespondence()
    one = model.describe_expected_audio(load_sample_images().images[0])  # one image
    assert isinstance(one, str) and one.startswith("Expected: ") and "bell" in one.lower()
    clips, _ = data
    many = model.describe_expected_audio([clips[0].frames, clips[1]])
    assert isinstance(many, list) and len(many) == 2
    assert "sound events likely near" in many[0]
    results = model.expected_sounds(photos, top_k=3)
    assert [len(r["sounds"]) for r in results] == [3, 3]
    assert all(0 <= s <= 1 for r in results for _, s in r["sounds"])
    assert results[0]["times"] == []  # a still picture: no moment to point at


def test_motion_onsets_find_the_events_of_generated_clips(data):
    clips, truth = data
    hits, total = 0, 0
    for clip, events in zip(clips[:8], truth.onsets[:8]):
        found = motion_onsets(clip.frames, clip.fps)
        for t in events[0]:  # the main source's events
            total += 1
            hits += np.any(np.abs(found - t) <= 0.08)
    assert hits / total > 0.6
    assert motion_onsets(np.repeat(clips[0].frames[:1], 10, axis=0), 25.0).size == 0


def test_motion_already_under_way_at_the_first_frame_is_no_onset():
    """A clip cut mid-motion: nothing starts at its first frame (motion_energy has no frame
    before the first to compare with, and must not read that as motion starting)."""
    rng = np.random.RandomState(0)
    frames = np.full((50, 64, 64, 3), 100, np.uint8)
    frames[:, 8:24, 8:24] = rng.randint(0, 256, size=(50, 16, 16, 3))  # flickering from the first frame on
    frames[25:, 40:56, 40:56] = 255  # something appears at 1.0 s
    np.testing.assert_allclose(motion_onsets(frames, 25.0), [0.98])  # not also at 0.02 s


def test_describe_sentence_format():
    text = describe_sentence({"sounds": [("Dog", 0.412), ("Bark", 0.2)], "times": [0.4, 1.25]})
    assert text == "Expected: dog (0.41), bark (0.20); sound events likely near 0.4 s, 1.2 s."


def test_a_pickled_model_gives_identical_scene_and_sound_output(fitted, data, tmp_path):
    import joblib

    model, _ = fitted
    clips, truth = data
    labels = list(truth.class_names) + ["a label nobody trained on"]
    joblib.dump(model, tmp_path / "model.joblib")
    loaded = joblib.load(tmp_path / "model.joblib")
    np.testing.assert_array_equal(loaded.classify_scene(clips[:3], labels), model.classify_scene(clips[:3], labels))
    assert loaded.expected_sounds(clips[:2]) == model.expected_sounds(clips[:2])


def test_unseen_labels_are_scored_by_their_text(fitted, data):
    model, _ = fitted
    clips, truth = data
    unseen = ["a red disc", "a blue diamond", "an empty room"]  # never captions in fit
    P = model.classify_scene(clips[:4], unseen)
    assert P.shape == (4, 3) and np.all(np.isfinite(P))
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-9)
    assert np.ptp(P) > 0  # the labels' text tells them apart


def test_zero_shot_classification_encodes_no_audio(photos, monkeypatch):
    from skavc.encoders import WhisperTinyEncoder

    def refuse(self, audio):
        raise AssertionError("the audio encoder ran for a zero-shot (frames only) classification")

    monkeypatch.setattr(WhisperTinyEncoder, "encode", refuse)
    P = AVCorrespondence().classify_scene(photos, ["a temple", "a daisy"])
    np.testing.assert_allclose(P.sum(axis=1), 1.0)
