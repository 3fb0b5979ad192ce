"""Scoring named things through a text space: the zero-shot machinery of scene labels and descriptions.

The visual encoder's classifier gives, per clip, a posterior over its own named classes
(ImageNet-1k). Any other vocabulary (label strings a user gives at call time, AudioSet sound
names) is reached through a text encoder: each source class hands its probability to the target
names in proportion to ``exp(cos(class, name) / temperature)`` (:func:`transfer_matrix`), so

    P(name | clip) = sum_k P(class k | clip) P(name | class k).

A name that says a class almost exactly (cosine near 1, the others far below) takes nearly all of
that class's mass, so an exact label is never diluted by its neighbours; a class related to no
name spreads its (usually small) mass thinly. This is a mixture, so rows sum to one by
construction; :func:`sharpen` then applies a calibration temperature.

Heads learnt in ``fit`` (the teacher-student :class:`AudioClassHead` and the :class:`TextMap`
from the joint audio-visual embedding into the text space) live here too, shared by the tasks.
"""

from functools import lru_cache

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax

from ._training import Adam, minibatches, run_epochs
from .encoders._text import check_texts
from .index import unit_rows

#: Temperature of zero-shot probabilities (``P ** (1 / T)``, renormalised), applied to scene labels
#: and sound names alike but fitted on scene labels only: by negative log-likelihood on the
#: qabcs-data pictures (clip art with their recordings) of the "animals" and "toys" categories,
#: their names as labels (``benchmarks/bench_scene.py --calibrate``): 0.98, i.e. the raw
#: probabilities were already about calibrated. On "instrument" + "misc" the expected calibration
#: error of the top-1 confidence is 0.10 at T = 1, 0.11 at 0.98 and 0.34 at 0.5 (the value before
#: calibration). Sound-name scores (describe) and fitted scene probabilities (the text map mixed
#: in) are not calibrated beyond this.
ZERO_SHOT_TEMPERATURE = 0.98

#: Cosine temperature of the class -> name transfer. At 0.05 a name 0.15 closer in cosine to a
#: class than the next name takes e^3 = 20 times its share: exact and near-exact names win, loose
#: associations still carry some mass.
TRANSFER_TEMPERATURE = 0.05


#: Floor of the text map's fitted temperature. The fit only sees the training labels as candidates;
#: when they are easy to tell apart it drives the temperature towards zero, which over another
#: vocabulary (527 sound names) would make every answer certain. At 0.03 a cosine lead of 0.1 is
#: a factor e^3.3 = 28.
TEXT_MAP_MIN_TEMPERATURE = 0.03


@lru_cache(maxsize=16)
def _embed_cached(encoder, texts):
    return encoder.encode(list(texts))


def embed_texts(encoder, texts):
    """Unit-norm text embeddings, (len(texts), d) float64, cached per encoder and tuple of texts."""
    return np.asarray(_embed_cached(encoder, tuple(texts)), dtype=np.float64)


def check_labels(labels, *, name="labels"):
    """``labels`` as a list of distinct, non-empty strings; a clear error otherwise."""
    labels = check_texts(labels, name=name)
    for i, label in enumerate(labels):
        if not label.strip():
            raise ValueError(f"{name}[{i}] is an empty string")
    seen, duplicates = set(), []
    for label in labels:
        key = " ".join(label.lower().split())
        if key in seen:
            duplicates.append(label)
        seen.add(key)
    if duplicates:
        raise ValueError(f"{name} holds duplicates (case and spacing ignored): {sorted(set(duplicates))}; "
                         "each label must be given once")
    return labels


def transfer_matrix(source_embeddings, target_embeddings, temperature=TRANSFER_TEMPERATURE):
    """How each source class hands its probability to the target names.

    Parameters
    ----------
    source_embeddings : ndarray of shape (n_classes, d)
        Unit-norm text embeddings of the source classes' names.
    target_embeddings : ndarray of shape (n_names, d)
        Unit-norm text embeddings of the target names.
    temperature : float
        Cosine temperature.

    Returns
    -------
    transfer : ndarray of shape (n_classes, n_names)
        ``P(name | class)``: rows sum to 1.
    """
    return softmax(source_embeddings @ target_embeddings.T / temperature, axis=1)


def sharpen(probabilities, temperature):
    """``P ** (1 / temperature)``, renormalised per row (temperature < 1 sharpens, > 1 flattens)."""
    logp = np.log(np.maximum(probabilities, 1e-300)) / temperature
    return softmax(logp, axis=1)


def fit_temperature(probabilities, y):
    """The temperature minimising the negative log-likelihood of the true columns ``y``.

    Parameters
    ----------
    probabilities : ndarray of shape (n, n_names)
    y : ndarray of shape (n,), int
        Index of each row's true name.

    Returns
    -------
    temperature : float in [0.05, 20]
    """
    logp = np.log(np.maximum(probabilities, 1e-300))
    rows = np.arange(len(y))

    def nll(log_t):
        return -log_softmax(logp / np.exp(log_t), axis=1)[rows, y].mean()

    return float(np.exp(minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded").x))


def combine_experts(*distributions, weights=None):
    """Product of experts: the normalised weighted geometric mean of probability rows of the same columns.

    A flat expert (a camera that shows nothing useful) leaves the others' ranking as it is.
    ``weights`` (default equal) are the exponents, normalised to sum to 1.
    """
    weights = np.ones(len(distributions)) if weights is None else np.asarray(weights, dtype=np.float64)
    weights = weights / weights.sum()
    logp = sum(w * np.log(np.maximum(p, 1e-300)) for w, p in zip(weights, distributions))
    return softmax(logp, axis=1)


def fit_expert_weight(first, second, y, grid=None):
    """The weight ``w`` of ``first`` against ``1 - w`` of ``second`` (:func:`combine_experts`) that
    maximises the likelihood of the true columns ``y``, searched on ``grid`` (default 0, 0.1, ..., 1)."""
    grid = np.linspace(0.0, 1.0, 11) if grid is None else np.asarray(grid, dtype=np.float64)
    rows = np.arange(len(y))
    scores = [np.log(np.maximum(combine_experts(first, second, weights=[w, 1 - w])[rows, y], 1e-300)).mean()
              for w in grid]
    return float(grid[int(np.argmax(scores))])


class AudioClassHead:
    """Teacher-student transfer from vision to sound (SoundNet): the visual classifier's posteriors
    of a clip's frames are the soft targets of a softmax regression on the clip's audio features.

    Only the ``n_classes`` classes with the most teacher mass over the training clips get their own
    output; the rest share one "other" output, spread evenly over them at prediction.

    Parameters
    ----------
    n_classes : int, default=64
    epochs : int, default=200
    batch_size : int, default=64
    learning_rate : float, default=1e-2
    alpha : float, default=1e-3
        L2 penalty on the weights.
    """

    def __init__(self, n_classes=64, epochs=200, batch_size=64, learning_rate=1e-2, alpha=1e-3):
        self.n_classes = n_classes
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.alpha = alpha

    def fit(self, audio_features, teacher, rng, log=None):
        """Learn from (n, d) preprocessed audio features and (n, K) teacher posteriors; returns self."""
        n, K = teacher.shape
        self.n_outputs_ = K
        mass = teacher.sum(axis=0)
        self.classes_ = np.sort(np.argsort(mass)[::-1][: min(self.n_classes, K - 1)])
        targets = self.own_outputs(teacher)
        X = np.asarray(audio_features, dtype=np.float64)
        self.params_ = {"W": np.zeros((X.shape[1], targets.shape[1])),
                        "b": np.log(np.maximum(targets.mean(axis=0), 1e-6))}
        optimizer = Adam(self.params_, learning_rate=self.learning_rate)
        batch_size = min(self.batch_size, n)
        # The soft cross-entropy cannot fall below the teacher's own entropy (2.09 nats on the demo's
        # clips, against 2.56 at the start): the loss logged is what is above it, the KL to the teacher.
        entropy = -(targets * np.log(np.maximum(targets, 1e-300))).sum(axis=1)

        def epoch():
            losses, sizes = [], []
            for idx in minibatches(n, batch_size, rng):
                x, t = X[idx], targets[idx]
                logp = log_softmax(x @ self.params_["W"] + self.params_["b"], axis=1)
                d = (np.exp(logp) - t) / len(idx)  # gradient of the soft cross-entropy
                grads = {"W": x.T @ d + self.alpha * self.params_["W"], "b": d.sum(axis=0)}
                optimizer.step(self.params_, grads)
                losses.append((-(t * logp).sum(axis=1) - entropy[idx]).mean())
                sizes.append(len(idx))
            return np.average(losses, weights=sizes)

        self.loss_curve_ = run_epochs(epoch, self.epochs, log=log, what="audio class head's KL to its teacher")
        return self

    def own_outputs(self, posteriors):
        """Posteriors over all ``n_outputs_`` classes, (n, K), folded onto the head's own outputs:
        its ``classes_`` and one "other" holding the rest's mass, (n, len(classes_) + 1)."""
        posteriors = np.atleast_2d(posteriors)
        other = np.setdiff1d(np.arange(self.n_outputs_), self.classes_)
        return np.hstack([posteriors[:, self.classes_], posteriors[:, other].sum(axis=1, keepdims=True)])

    def predict_proba(self, audio_features):
        """Posteriors over all ``n_outputs_`` classes, (n, K), from (n, d) preprocessed audio features."""
        p = softmax(np.asarray(audio_features, dtype=np.float64) @ self.params_["W"] + self.params_["b"], axis=1)
        out = np.empty((p.shape[0], self.n_outputs_))
        other = np.setdiff1d(np.arange(self.n_outputs_), self.classes_)
        out[:, other] = p[:, -1:] / max(other.size, 1)
        out[:, self.classes_] = p[:, :-1]
        return out


#: The audio class head's weight against the frames' posteriors when it predicts its teacher
#: perfectly on clips it was not trained on: equal weight, so that the sound can overrule a
#: picture only as much as the picture can overrule it.
AUDIO_HEAD_MAX_WEIGHT = 0.5

#: L2 penalties the audio class head is chosen among, out of fold. Whitened features give every
#: direction unit variance, so on a few dozen clips the weakest penalty fits noise (two photos,
#: each with its own sound, 60 clips: skill -0.38 at 1e-3, 0.43 at 1e-2, 0.22 at 0.1).
AUDIO_HEAD_ALPHAS = (1e-3, 1e-2, 1e-1, 1.0)


def fit_audio_class_head(audio_features, teacher, rng, *, alphas=AUDIO_HEAD_ALPHAS, n_splits=5, log=None):
    """An :class:`AudioClassHead` with its penalty and its weight chosen on clips it was not trained on.

    For each penalty the head is refitted on ``n_splits - 1`` folds and predicts the held-out
    fold, each in turn. Its skill is the share of what the frames' posteriors say beyond their
    average that it recovers there, over its own outputs (its classes and one "other"):

        skill = 1 - KL(teacher || head) / KL(teacher || mean teacher of the other folds)

    (1 for a perfect head, 0 for one no better than the average picture, negative when worse).
    The penalty with the best skill is refitted on every clip, and weighted against the frames'
    posteriors by ``AUDIO_HEAD_MAX_WEIGHT * clip(skill, 0, 1)``: a head that learnt nothing that
    carries over costs nothing. Measured: 120 qabcs items, each a different object, skill below
    0 (mixed in at 0.5 the head had cost the other items 4 points of zero-shot top-1); 80-150
    generated clips, whose pictures ImageNet cannot name, at most 0.03 (weight at most 0.02).

    Parameters
    ----------
    audio_features : ndarray of shape (n_clips, d)
        Preprocessed pooled audio features.
    teacher : ndarray of shape (n_clips, n_classes)
        The frames' class posteriors.
    rng : numpy.random.RandomState
    alphas : sequence of float, default=AUDIO_HEAD_ALPHAS
    n_splits : int, default=5
    log : callable(epoch, loss) or None
        Progress of the final fit.

    Returns
    -------
    head : AudioClassHead
    weight : float in [0, AUDIO_HEAD_MAX_WEIGHT]
    skill : float
        The skill of the penalty chosen (``head.alpha``).
    """
    from sklearn.model_selection import KFold

    X, teacher = np.asarray(audio_features, dtype=np.float64), np.asarray(teacher, dtype=np.float64)
    skills = np.zeros(len(alphas))
    if len(X) >= 2:
        folds = list(KFold(n_splits=min(n_splits, len(X)), shuffle=True,
                           random_state=rng.randint(2**31 - 1)).split(X))
        def divergence(target, predicted):  # KL(target || predicted), summed over clips
            log = lambda p: np.log(np.maximum(p, 1e-300))  # noqa: E731
            return float((target * (log(target) - log(predicted))).sum())

        for i, alpha in enumerate(alphas):
            head_kl = mean_kl = 0.0
            for train, held_out in folds:
                head = AudioClassHead(alpha=alpha).fit(X[train], teacher[train], rng)
                # Over the head's own outputs: how it spreads "other" over the rest is a
                # convention, not something it learnt or could.
                target = head.own_outputs(teacher[held_out])
                head_kl += divergence(target, head.own_outputs(head.predict_proba(X[held_out])))
                mean_kl += divergence(target, head.own_outputs(teacher[train].mean(axis=0, keepdims=True)))
            skills[i] = 1.0 - head_kl / mean_kl if mean_kl > 0 else 0.0
    best = int(np.argmax(skills))
    head = AudioClassHead(alpha=alphas[best]).fit(X, teacher, rng, log)
    return head, AUDIO_HEAD_MAX_WEIGHT * float(np.clip(skills[best], 0.0, 1.0)), float(skills[best])


class TextMap:
    """A ridge map from the shared audio-visual space into the text space, learnt from captions.

    ``fit`` regresses each clip's label (or caption) embedding, minus the mean of the training
    clips' label embeddings ``mu``, on the clip's embedding; a name is scored by the cosine of
    the mapped clip with ``t_name - mu`` (the direction that sets it apart from the training
    labels' centre, since label embeddings share a large common part), softmaxed with a
    temperature fitted out of fold. Names never seen in training are scored through their
    text alone.

    Parameters
    ----------
    alpha : float, default=0.1
        Ridge penalty.
    """

    def __init__(self, alpha=0.1):
        self.alpha = alpha

    def fit(self, Z, label_embeddings, y):
        """``Z`` (n, p) clip embeddings, ``label_embeddings`` (L, d) of the distinct labels, ``y`` (n,) indices."""
        from sklearn.linear_model import Ridge
        from sklearn.model_selection import KFold, cross_val_predict

        targets = label_embeddings[y]
        self.centre_ = targets.mean(axis=0)
        self.ridge_ = Ridge(alpha=self.alpha).fit(Z, targets - self.centre_)
        # The temperature is fitted on out-of-fold maps: in-sample ones fit their labels too well.
        # Plain (not stratified) folds: captions are usually all distinct, and a label seen only
        # in its own fold is then scored as an unseen one, as it would be on new clips.
        folds = KFold(n_splits=min(5, len(y)), shuffle=True, random_state=0)
        mapped = cross_val_predict(Ridge(alpha=self.alpha), Z, targets - self.centre_, cv=folds)
        cos = unit_rows(mapped) @ unit_rows(label_embeddings - self.centre_).T
        fitted = fit_temperature(softmax(cos / 0.05, axis=1), y) * 0.05
        self.temperature_ = max(fitted, TEXT_MAP_MIN_TEMPERATURE)
        self.out_of_fold_proba_ = softmax(cos / self.temperature_, axis=1)
        return self

    def predict_proba(self, Z, label_embeddings):
        """``P(name | clip)`` over the given names, (n, L)."""
        cos = unit_rows(self.ridge_.predict(Z)) @ unit_rows(label_embeddings - self.centre_).T
        return softmax(cos / self.temperature_, axis=1)
