"""Scene classification over label strings given at call time ("what is happening here?").

``classify_scene(X, labels)`` returns, per clip, a probability for each label (rows sum to 1;
``dict(zip(labels, P[0]))`` is the seed interface's ``ClassifyScene`` dictionary). Three experts,
combined in log space:

- **frames, zero-shot** (no fit needed): the visual encoder's ImageNet-1k posteriors, averaged
  over ``n_visual_frames`` frames, handed to the labels through the text space
  (:func:`skavc._text_space.transfer_matrix`: a label naming a class almost exactly takes that
  class's probability);
- **sound** (a model fitted with ``scene=True``: ``AVCorrespondence(scene=True).fit(X)``): the :class:`~skavc._text_space.AudioClassHead`,
  which learnt from unlabelled paired clips to predict the frames' posteriors from the audio,
  combined with the frames' as a product of experts, so that the sound can move a clip whose
  camera shows little; weighted by how well it predicted the frames of clips it was not trained
  on (:func:`skavc._text_space.fit_audio_class_head`), so a head that learnt nothing that
  carries over (too few clips, or each a different thing) costs nothing. It moves, it does not
  replace: a blank frame's own ImageNet posterior is far from flat, and with two photographs
  each heard with its own sound a grey frame with the tone leans only 0.02 towards the temple;
- **captions** (``AVCorrespondence(scene=True).fit(X, y)`` with label or caption strings in ``y``): the
  :class:`~skavc._text_space.TextMap` from the joint audio-visual embedding into the text space;
  labels never seen in training are scored by their text, seen ones sharpen.

The zero-shot probabilities get a calibration temperature,
fitted by negative log-likelihood on real pictures with real sounds (qabcs-data clip art; see
:data:`skavc._text_space.ZERO_SHOT_TEMPERATURE`): it came out at 0.98, i.e. the raw mixture is
already about as confident as it is right there.
"""

import numpy as np

from ._text_space import (
    AUDIO_HEAD_MAX_WEIGHT,
    ZERO_SHOT_TEMPERATURE,
    TextMap,
    check_labels,
    combine_experts,
    embed_texts,
    fit_audio_class_head,
    fit_expert_weight,
    sharpen,
    transfer_matrix,
)

__all__ = ["classify_scene", "fit_scene_heads", "zero_shot"]


def classify_scene(class_posteriors, labels, *, text_encoder, class_names, audio_posteriors=None,
                   audio_weight=AUDIO_HEAD_MAX_WEIGHT, joint_embeddings=None, text_map=None, text_weight=0.5,
                   temperature=ZERO_SHOT_TEMPERATURE):
    """Probabilities of ``labels`` for each clip.

    Parameters
    ----------
    class_posteriors : ndarray of shape (n_clips, n_classes)
        The frames' classifier posteriors (``EncodingContext.pooled(..., class_posteriors=True)``).
    labels : list of str
        Distinct label strings (:func:`skavc._text_space.check_labels`).
    text_encoder : text encoder
    class_names : sequence of str, length n_classes
    audio_posteriors : ndarray of shape (n_clips, n_classes) or None
        The :class:`~skavc._text_space.AudioClassHead`'s prediction from the audio.
    audio_weight : float in [0, 1]
        Its weight against ``class_posteriors`` (learnt in :func:`fit_scene_heads`).
    joint_embeddings : ndarray of shape (n_clips, p) or None
        With ``text_map``: the clips' embeddings in the shared space.
    text_map : TextMap or None
    text_weight : float in [0, 1]
        Weight of the text map against the zero-shot part (learnt in :func:`fit_scene_heads`).
    temperature : float
        Calibration temperature of the zero-shot part.

    Returns
    -------
    probabilities : ndarray of shape (n_clips, n_labels)
        Rows sum to 1.

    Examples
    --------
    >>> import numpy as np
    >>> from skavc import AVCorrespondence
    >>> from skavc.scene import classify_scene
    >>> text_encoder = AVCorrespondence()._text_encoder()  # as the estimator builds it
    >>> classes = ["golden retriever", "tabby cat", "sports car"]
    >>> posteriors = np.array([[0.8, 0.15, 0.05], [0.1, 0.1, 0.8]])  # two clips' frames over those classes
    >>> P = classify_scene(posteriors, ["a dog", "a car"], text_encoder=text_encoder, class_names=classes)
    >>> P.round(1)  # per clip, a probability per label: rows sum to 1
    array([[0.9, 0.1],
           [0.2, 0.8]])
    """
    labels = check_labels(labels)
    label_embeddings = embed_texts(text_encoder, labels)
    probabilities = zero_shot(class_posteriors, label_embeddings, text_encoder=text_encoder, class_names=class_names,
                              audio_posteriors=audio_posteriors, audio_weight=audio_weight, temperature=temperature)
    if text_map is not None:
        probabilities = combine_experts(probabilities, text_map.predict_proba(joint_embeddings, label_embeddings),
                                        weights=[1 - text_weight, text_weight])
    return probabilities


def zero_shot(class_posteriors, label_embeddings, *, text_encoder, class_names, audio_posteriors=None,
              audio_weight=AUDIO_HEAD_MAX_WEIGHT, temperature=ZERO_SHOT_TEMPERATURE):
    """The zero-shot part: class posteriors (with the audio's at ``audio_weight``, as a product of
    experts) handed to the labels through the text space and sharpened, (n_clips, n_labels).

    Examples
    --------
    >>> import numpy as np
    >>> from skavc import AVCorrespondence
    >>> from skavc.scene import zero_shot
    >>> text_encoder = AVCorrespondence()._text_encoder()  # as the estimator builds it
    >>> labels = text_encoder.encode(["a dog", "a car"])  # unit-norm label embeddings
    >>> classes = ["golden retriever", "tabby cat", "sports car"]
    >>> posteriors = np.array([[0.8, 0.15, 0.05], [0.1, 0.1, 0.8]])  # two clips' frames over those classes
    >>> zero_shot(posteriors, labels, text_encoder=text_encoder, class_names=classes).round(1)  # rows sum to 1
    array([[0.9, 0.1],
           [0.2, 0.8]])
    """
    transfer = transfer_matrix(embed_texts(text_encoder, class_names), label_embeddings)
    posteriors = class_posteriors
    if audio_posteriors is not None and audio_weight > 0:
        posteriors = combine_experts(class_posteriors, audio_posteriors, weights=[1 - audio_weight, audio_weight])
    return sharpen(posteriors @ transfer, temperature)


def check_captions(y, n_clips):
    """``y`` as a list of ``n_clips`` non-empty strings naming at least two different labels.

    Raises
    ------
    ValueError
        Naming the first bad item, or the count.
    """
    if isinstance(y, (str, bytes)) or not hasattr(y, "__iter__"):
        raise ValueError(f"y must be a list of label or caption strings, one per clip ({n_clips}); "
                         f"got {type(y).__name__}")
    y = list(y)
    if len(y) != n_clips:
        raise ValueError(f"y must hold one non-empty label or caption string per clip ({n_clips}); "
                         f"got {len(y)} items")
    for i, v in enumerate(y):
        if not isinstance(v, str) or not v.strip():
            raise ValueError(f"y must hold one non-empty label or caption string per clip; "
                             f"y[{i}] is {v!r}")
    if len(set(y)) < 2:
        raise ValueError("y must name at least two different labels: the text map learns to tell them apart")
    return y


def fit_scene_heads(audio_features, class_posteriors, *, rng, joint_embeddings=None, y=None,
                    text_encoder=None, class_names=None, log=None):
    """Train the audio class head (and its weight), and with ``y`` (label or caption strings) the text map (and its).

    Parameters
    ----------
    audio_features : ndarray of shape (n_clips, d)
        Preprocessed (standardised, whitened) pooled audio features.
    class_posteriors : ndarray of shape (n_clips, n_classes)
        The frames' posteriors: the teacher.
    rng : numpy.random.RandomState
    joint_embeddings : ndarray of shape (n_clips, p) or None
    y : sequence of str or None
    text_encoder : text encoder or None
        Needed with ``y``.
    class_names : sequence of str or None
        Needed with ``y``.
    log : callable(epoch, loss) or None

    Returns
    -------
    audio_head : AudioClassHead
    audio_weight : float
        The head's weight against the frames' posteriors (:func:`~skavc._text_space.fit_audio_class_head`).
    text_map : TextMap or None
    text_weight : float
        Weight of the text map against the zero-shot part, chosen by likelihood of the training
        labels on the text map's out-of-fold probabilities (0 when the text map is useless).

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.scene import fit_scene_heads
    >>> rng = np.random.RandomState(0)
    >>> audio_features = rng.randn(40, 8)  # 40 clips' preprocessed pooled audio features
    >>> posteriors = np.exp(2 * audio_features[:, :3])
    >>> posteriors /= posteriors.sum(axis=1, keepdims=True)  # their frames' posteriors over 3 classes: the teacher
    >>> head, audio_weight, text_map, text_weight = fit_scene_heads(audio_features, posteriors, rng=rng)
    >>> head.predict_proba(audio_features[:2]).shape, bool(0 <= audio_weight <= 0.5), text_map, text_weight
    ((2, 3), True, None, 0.0)
    """
    audio_head, audio_weight, _ = fit_audio_class_head(audio_features, class_posteriors, rng, log=log)
    if y is None:
        return audio_head, audio_weight, None, 0.0
    names, index = np.unique(check_captions(y, len(class_posteriors)), return_inverse=True)
    label_embeddings = embed_texts(text_encoder, list(names))
    text_map = TextMap().fit(joint_embeddings, label_embeddings, index)
    prior = zero_shot(class_posteriors, label_embeddings, text_encoder=text_encoder, class_names=class_names,
                      audio_posteriors=audio_head.predict_proba(audio_features), audio_weight=audio_weight)
    text_weight = fit_expert_weight(text_map.out_of_fold_proba_, prior, index)
    return audio_head, audio_weight, text_map, text_weight
