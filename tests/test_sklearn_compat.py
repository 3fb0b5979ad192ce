"""AVCorrespondence as a scikit-learn citizen: clone, params, Pipeline, GridSearchCV, persistence."""

import joblib
import numpy as np
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from skavc import AVCorrespondence


def test_clone_and_params(small_params):
    model = AVCorrespondence(**small_params)
    params = model.get_params()
    assert params["embedding_dim"] == 16 and params["audio_encoder"] == "whisper-tiny"
    copy = clone(model)
    assert copy is not model
    assert {k: v for k, v in copy.get_params().items() if k != "memory"} == {
        k: v for k, v in params.items() if k != "memory"
    }
    copy.set_params(embedding_dim=8, temperature=0.05)
    assert (copy.embedding_dim, copy.temperature) == (8, 0.05) and model.embedding_dim == 16


def test_pipeline_with_a_classifier_on_the_embeddings(clips, av_data, small_params):
    labels = av_data[1].labels
    pipe = Pipeline([("av", AVCorrespondence(**small_params)), ("clf", LogisticRegression(max_iter=500))])
    pipe.fit(clips[:60], labels[:60])
    # Four balanced classes: chance accuracy is about 0.25.
    assert pipe.score(clips[60:], labels[60:]) >= 0.6


def test_grid_search_selects_head_parameters_without_labels(clips, small_params):
    grid = GridSearchCV(
        AVCorrespondence(**{**small_params, "epochs": 15}),
        {"embedding_dim": [4, 16], "temperature": [0.05, 0.2]},
        cv=3,
    )
    grid.fit(clips[:30])
    assert set(grid.best_params_) == {"embedding_dim", "temperature"}
    assert 0.0 <= grid.best_score_ <= 1.0
    assert grid.cv_results_["mean_test_score"].shape == (4,)
    assert grid.best_estimator_.transform(clips[60:62]).shape[0] == 2


def test_cross_val_score_matches_a_manual_loop(clips, small_params):
    from sklearn.model_selection import KFold

    model = AVCorrespondence(**{**small_params, "epochs": 15})
    scores = cross_val_score(model, clips[:30], cv=3)
    manual = [
        clone(model).fit([clips[i] for i in tr]).score([clips[i] for i in te])
        for tr, te in KFold(3).split(np.arange(30))
    ]
    np.testing.assert_allclose(scores, manual)
    assert np.all((0 <= scores) & (scores <= 1))


def test_joblib_round_trip_gives_identical_outputs(fitted, clips, tmp_path):
    path = tmp_path / "model.joblib"
    joblib.dump(fitted, path)
    loaded = joblib.load(path)
    assert loaded.audio_encoder_._onnx is None  # sessions are rebuilt, not pickled
    np.testing.assert_array_equal(loaded.transform(clips[60:]), fitted.transform(clips[60:]))
    # Training continues where it stopped.
    loaded.partial_fit(clips[:6])
    assert loaded.n_iter_ == fitted.n_iter_ + 1


def test_a_fitted_model_answers_from_its_fitted_attributes(fitted, clips):
    """set_params after fit changes nothing a fitted model answers (feature names, transform)."""
    model = clone(fitted)
    model.__dict__.update({k: v for k, v in vars(fitted).items() if k.endswith("_")})
    before = model.transform(clips[60:63])
    model.set_params(embedding_dim=4, n_visual_frames=1)
    names = model.get_feature_names_out()
    assert names.shape == (before.shape[1],) == (2 * fitted.embedding_dim,)
    np.testing.assert_array_equal(model.transform(clips[60:63]), before)
    model.set_output(transform="pandas")
    frame = model.transform(clips[60:63])
    assert list(frame.columns) == list(names)


_TABLE = (
    "feeds X as a numeric feature table; AVCorrespondence encodes raw clips (AVClip objects, "
    "(audio, frames) pairs or video paths) and rejects tables with a TypeError by design"
)
_EXPECTED_FAILED_CHECKS = {
    name: _TABLE
    for name in [
        "check_fit_score_takes_y", "check_estimators_overwrite_params", "check_dont_overwrite_parameters",
        "check_estimators_fit_returns_self", "check_readonly_memmap_input", "check_n_features_in_after_fitting",
        "check_estimators_dtypes", "check_complex_data", "check_pipeline_consistency", "check_estimators_pickle",
        "check_f_contiguous_array_estimator", "check_transformer_general", "check_transformer_preserve_dtypes",
        "check_methods_sample_order_invariance", "check_methods_subset_invariance", "check_fit2d_1sample",
        "check_fit2d_1feature", "check_dict_unchanged", "check_fit_idempotent", "check_fit_check_is_fitted",
        "check_n_features_in", "check_fit1d", "check_fit2d_predict1d",
    ]
}
_EXPECTED_FAILED_CHECKS.update({
    "check_dtype_object": "feeds a table of Python objects that are not clips; each row is rejected by name",
    "check_transformer_data_not_an_array": "feeds a wrapped numeric table, not a sequence of clips",
    "check_positive_only_tag_during_fit": "expects negative table values to be accepted or refused with a "
    "ValueError; a table is refused as a whole with a TypeError",
    "check_estimators_nan_inf": "feeds tables with NaN; NaN audio in a clip is refused (tested in test_bad_input)",
    "check_estimators_empty_data_messages": "expects the tabular message for an (n, 0) table; an empty "
    "table is refused with 'X is empty' instead",
})


class _TableTagged(AVCorrespondence):
    """Claims 2-D input only so that scikit-learn runs its generic checks at all (it skips estimators
    whose tags admit no array input); the product's own tags say two_d_array=False."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = True
        return tags


def test_tags_are_honest():
    tags = AVCorrespondence().__sklearn_tags__()
    assert tags.input_tags.two_d_array is False and tags.target_tags.required is False
    assert tags.requires_fit is True


@parametrize_with_checks(
    [_TableTagged(embedding_dim=4, epochs=1, n_visual_frames=1)],
    expected_failed_checks=lambda est: _EXPECTED_FAILED_CHECKS,
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
