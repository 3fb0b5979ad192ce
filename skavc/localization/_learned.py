"""Learned localisation: a spatial projection of the encoder's feature map, trained with a
multiple-instance InfoNCE loss (Objects that Sound / LVS / EZ-VSL) and Platt-calibrated on clips
held out of its training."""

import numpy as np
from scipy.special import expit

from .._head import make_preprocessor, symmetric_cross_entropy
from .._training import Adam, minibatches, run_epochs
from ..features import sound_presence
from ._maps import upsample_bilinear


def init_spatial_params(n_features, embedding_dim, rng):
    """Glorot-initialised linear map ``W`` (n_features, embedding_dim) and bias ``b``."""
    scale = np.sqrt(2.0 / (n_features + embedding_dim))
    return {
        "W": rng.normal(0.0, scale, size=(n_features, embedding_dim)),
        "b": np.zeros(embedding_dim),
    }


def project_positions(params, P):
    """Unit-norm embeddings of position features and the norms before normalising.

    Parameters
    ----------
    params : dict with ``W`` (D, d) and ``b`` (d,)
    P : ndarray of shape (..., D)

    Returns
    -------
    U : ndarray of shape (..., d)
    norms : ndarray of shape (..., 1)
    """
    Z = P @ params["W"] + params["b"]
    norms = np.maximum(np.linalg.norm(Z, axis=-1, keepdims=True), 1e-12)
    return Z / norms, norms


def pool_positions(S, pooling="lse", sharpness=10.0):
    """Pool similarities over positions (the last axis), and the weight of each position.

    Parameters
    ----------
    S : ndarray of shape (..., K)
    pooling : {"lse", "max"}
        "lse": ``log(mean_k exp(sharpness * S)) / sharpness``, a soft maximum
        that tends to "max" as ``sharpness`` grows and to the mean as it shrinks.
    sharpness : float

    Returns
    -------
    pooled : ndarray of shape S.shape[:-1]
    weights : ndarray of shape S.shape
        d pooled / d S (softmax weights; one-hot at the arg-max for "max").
    """
    top = S.max(axis=-1, keepdims=True)
    if pooling == "max":
        weights = (np.arange(S.shape[-1]) == np.argmax(S, axis=-1)[..., None]).astype(S.dtype)
        return top[..., 0], weights
    e = np.exp(sharpness * (S - top))
    total = e.sum(axis=-1, keepdims=True)
    pooled = top[..., 0] + np.log(total[..., 0] / S.shape[-1]) / sharpness
    return pooled, e / total


def mil_loss_and_grads(params, A, P, *, temperature=0.1, pooling="lse", sharpness=10.0, alpha=0.0):
    """Multiple-instance InfoNCE loss of audio against pooled visual positions, with gradients.

    Clip ``i``'s audio is scored against clip ``j``'s frame by pooling the
    similarity of the audio embedding with every position's projected feature
    (``pool_positions``); a symmetric InfoNCE over clips then asks each audio
    to pick its own frame and each frame its own audio (Objects that Sound,
    LVS, EZ-VSL). Only the spatial projection is trained; the audio embeddings
    are the estimator's, fixed.

    Parameters
    ----------
    params : dict
        ``W`` (D, d) and ``b`` (d,).
    A : ndarray of shape (B, d)
        Unit-norm audio embeddings; row ``i`` belongs with ``P[i]``.
    P : ndarray of shape (B, K, D)
        Preprocessed features of the K positions of one frame per clip.
    temperature : float
        Softmax temperature of the InfoNCE (fixed).
    pooling : {"lse", "max"}
    sharpness : float
        Of the "lse" pooling.
    alpha : float
        L2 penalty on ``W``.

    Returns
    -------
    loss : float
    grads : dict with ``W`` and ``b``

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.localization import mil_loss_and_grads
    >>> rng = np.random.RandomState(0)
    >>> params = {"W": 0.1 * rng.randn(6, 4), "b": np.zeros(4)}  # 6 features per position -> 4-d embeddings
    >>> A = rng.randn(5, 4)
    >>> A /= np.linalg.norm(A, axis=1, keepdims=True)  # 5 clips' unit-norm audio embeddings
    >>> P = rng.randn(5, 9, 6)  # and a frame of each: 9 positions of 6 features
    >>> loss, grads = mil_loss_and_grads(params, A, P)
    >>> round(loss, 2), grads["W"].shape, grads["b"].shape  # the loss, and its gradient for each parameter
    (2.35, (6, 4), (4,))
    """
    B, K, D = P.shape
    temperature = float(temperature)
    U, norms = project_positions(params, P)                      # (B, K, d), (B, K, 1)
    S = (A @ U.reshape(B * K, -1).T).reshape(B, B, K)            # audio i vs position k of clip j
    pooled, weights = pool_positions(S, pooling, sharpness)     # (B, B), (B, B, K)
    logits = pooled / temperature
    loss, d_logits = symmetric_cross_entropy(logits)             # audio <-> frames
    dS = (d_logits / temperature)[:, :, None] * weights         # (B, B, K)
    dU = (dS.reshape(B, B * K).T @ A).reshape(B, K, -1)
    dZ = (dU - U * np.sum(U * dU, axis=-1, keepdims=True)) / norms
    grads = {"W": P.reshape(B * K, D).T @ dZ.reshape(B * K, -1), "b": dZ.sum(axis=(0, 1))}
    if alpha:
        loss += 0.5 * alpha * np.sum(params["W"] ** 2)
        grads["W"] = grads["W"] + alpha * params["W"]
    return float(loss), grads


class LocalizationHead:
    """The learned localisation model: position preprocessing, spatial projection, calibration.

    Parameters
    ----------
    n_components : int, default=64
        Positions are standardised and PCA-whitened to this width (fitted on
        at most ``max_fit_positions`` of them) before the projection.
    n_frames : int, default=4
        Frames per training clip (each a bag of 7x7 positions).
    audio_window : float, default=2.0
        Seconds of audio around each frame that make its audio embedding.
    pooling : {"lse", "max"}, default="lse"
    sharpness : float, default=10.0
        Of the log-sum-exp pooling.
    temperature : float, default=0.1
    epochs : int, default=60
    batch_size : int, default=64
    learning_rate : float, default=3e-3
    alpha : float, default=1e-4
        L2 penalty on the projection.
    max_fit_positions : int, default=8192
    calibration_fraction : float, default=0.2
        Share of the clips held out of training to calibrate the map values
        (their similarities are what unseen clips will give; those of training
        clips are inflated). With fewer than 10 clips all are used for both.

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.localization import LocalizationHead
    >>> rng = np.random.RandomState(0)
    >>> feature_maps = rng.randn(12, 4, 7, 7, 32)  # 12 clips, 4 frames each: 7 x 7 positions of 32 features
    >>> audio = rng.randn(12, 4, 8)
    >>> audio /= np.linalg.norm(audio, axis=-1, keepdims=True)  # unit-norm audio embeddings around each frame
    >>> head = LocalizationHead(n_components=8, epochs=5).fit(feature_maps, audio, rng)
    >>> maps = head.maps(feature_maps[0], audio[0])  # per frame and position: P(the sound comes from there)
    >>> head.grid_shape_, maps.shape, bool(maps.min() >= 0 and maps.max() <= 1)
    ((7, 7), (4, 7, 7), True)
    """

    def __init__(self, n_components=64, n_frames=4, audio_window=2.0, pooling="lse", sharpness=10.0,
                 temperature=0.1, epochs=60, batch_size=64, learning_rate=3e-3, alpha=1e-4,
                 max_fit_positions=8192, calibration_fraction=0.2):
        self.n_components = n_components
        self.n_frames = n_frames
        self.audio_window = audio_window
        self.pooling = pooling
        self.sharpness = sharpness
        self.temperature = temperature
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.alpha = alpha
        self.max_fit_positions = max_fit_positions
        self.calibration_fraction = calibration_fraction

    def _positions(self, feature_maps, chunk=4096):
        """(n, h, w, F) encoder maps -> (n, h * w, n_components) preprocessed positions."""
        n, h, w, F = feature_maps.shape
        flat = feature_maps.reshape(n * h * w, F)
        # In chunks: a float64 copy of every position at full width would be the memory peak.
        X = np.vstack([self.preprocessor_.transform(flat[i : i + chunk].astype(np.float64))
                       for i in range(0, flat.shape[0], chunk)])
        return X.reshape(n, h * w, -1)

    def fit(self, feature_maps, audio_embeddings, rng, log=None):
        """Train the projection on paired frames and audio.

        Parameters
        ----------
        feature_maps : ndarray of shape (n_clips, n_frames, h, w, F)
            Encoder maps of a few frames per clip.
        audio_embeddings : ndarray of shape (n_clips, n_frames, d)
            Unit-norm audio embeddings around each of those frames.
        rng : numpy.random.RandomState
        log : callable(epoch, loss) or None

        Returns
        -------
        self : LocalizationHead
        """
        n_clips, n_frames, h, w, F = feature_maps.shape
        flat = feature_maps.reshape(-1, F)
        sample = rng.choice(flat.shape[0], size=min(flat.shape[0], self.max_fit_positions), replace=False)
        self.preprocessor_ = make_preprocessor(self.n_components, (sample.size, F)).fit(flat[sample].astype(np.float64))
        self.grid_shape_ = (h, w)
        P = self._positions(feature_maps.reshape(n_clips * n_frames, h, w, F)).reshape(n_clips, n_frames, h * w, -1)
        A = np.asarray(audio_embeddings, dtype=np.float64)
        order = rng.permutation(n_clips)
        n_held = int(round(self.calibration_fraction * n_clips)) if n_clips >= 10 else 0
        held, train = (order[:n_held], order[n_held:]) if n_held >= 2 else (order, order)
        self.params_ = init_spatial_params(P.shape[-1], A.shape[-1], rng)
        self._train(P[train], A[train], rng, log)
        self._calibrate(P[held], A[held])
        return self

    def _train(self, P, A, rng, log):
        n_clips, n_frames = P.shape[:2]
        optimizer = Adam(self.params_, learning_rate=self.learning_rate)
        batch_size = min(self.batch_size, n_clips)

        def epoch():
            losses = []
            for idx in minibatches(n_clips, batch_size, rng):
                f = rng.randint(n_frames, size=idx.size)  # one frame (bag) per clip and step
                loss, grads = mil_loss_and_grads(self.params_, A[idx, f], P[idx, f], temperature=self.temperature,
                                                 pooling=self.pooling, sharpness=self.sharpness, alpha=self.alpha)
                optimizer.step(self.params_, grads)
                losses.append(loss)
            return np.mean(losses)

        self.loss_curve_ = run_epochs(epoch, self.epochs, log=log, what="localisation loss",
                                      hint="lower the localisation head's learning_rate")

    def _calibrate(self, P, A):
        """Platt scaling of a frame's best-position similarity: its own audio (1) against the
        audio of every other calibration clip (0), the two classes weighted equally."""
        from sklearn.linear_model import LogisticRegression

        n_clips = P.shape[0]
        U, _ = project_positions(self.params_, P)                   # (n, F, K, d)
        # best[i, j, f]: audio of clip i (at frame f's time) against frame f of clip j.
        best = np.einsum("ifd,jfkd->ijfk", A, U).max(axis=-1)
        own = np.eye(n_clips, dtype=bool)
        s = np.concatenate([best[own].ravel(), best[~own].ravel()])[:, None]
        y = np.r_[np.ones(best[own].size), np.zeros(best[~own].size)]
        platt = LogisticRegression(C=1e4, class_weight="balanced").fit(s, y)
        self.calibration_ = (float(platt.coef_[0, 0]), float(platt.intercept_[0]))

    def similarity(self, feature_maps, audio_embeddings):
        """Cosine similarity of each frame's audio embedding with each of its positions.

        Parameters
        ----------
        feature_maps : ndarray of shape (T, h, w, F)
        audio_embeddings : ndarray of shape (T, d)

        Returns
        -------
        similarity : ndarray of shape (T, h, w), in [-1, 1]
        """
        T, h, w, _ = feature_maps.shape
        U, _ = project_positions(self.params_, self._positions(feature_maps))
        return np.einsum("td,tkd->tk", np.asarray(audio_embeddings, dtype=np.float64), U).reshape(T, h, w)

    def maps(self, feature_maps, audio_embeddings):
        """Calibrated probability, per position, that it holds the sound's source: (T, h, w) in [0, 1]."""
        slope, intercept = self.calibration_
        return expit(slope * self.similarity(feature_maps, audio_embeddings) + intercept)


# The old name of the learned maps' gate (an absolute -50 dBFS threshold, which called a webcam's
# room tone sound), kept importable; the gate is now sound_presence, relative to the clip's floor.
silence_gate = sound_presence


def learned_evidence(probabilities, size=None, gate=None):
    """Shape and confidence from the learned head's calibrated per-position probabilities.

    Parameters
    ----------
    probabilities : ndarray of shape (T, h, w)
        :meth:`LocalizationHead.maps`.
    size : (int, int) or None
        ``(H, W)`` of the frames; None keeps the shape on the head's grid (its cells tile the frame).
    gate : ndarray of shape (T,) or None
        Multiplies the confidence (:func:`skavc.features.sound_presence`).

    Returns
    -------
    shape : ndarray of shape (T, H, W) (or (T, h, w) without ``size``), float32 in [0, 1]
        The probabilities relative to the frame's best position.
    confidence : ndarray of shape (T,)
        The best position's probability (times ``gate``).

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.localization import learned_evidence
    >>> probabilities = np.full((2, 7, 7), 0.1)  # the head's 7 x 7 positions in 2 frames
    >>> probabilities[0, 3, 4], probabilities[1, 0, 0] = 0.8, 0.3
    >>> shape, confidence = learned_evidence(probabilities, gate=np.array([1.0, 0.0]))  # frame 1 is silent
    >>> shape.shape, float(shape[0, 3, 4]), float(shape[0, 0, 0]), confidence  # relative to each frame's best
    ((2, 7, 7), 1.0, 0.125, array([0.8, 0. ]))
    >>> learned_evidence(probabilities, size=(112, 112))[0].shape  # at the frames' size
    (2, 112, 112)
    """
    peak = probabilities.reshape(probabilities.shape[0], -1).max(axis=1)
    shape = (probabilities / np.maximum(peak, 1e-12)[:, None, None]).astype(np.float32)
    if size is not None:
        shape = upsample_bilinear(shape, size)
    return shape, peak if gate is None else peak * gate


#: Exponent of the learned shape in the default ("prior") fusion: a soft spatial prior on the
