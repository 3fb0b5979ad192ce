"""Projection heads and their symmetric InfoNCE training, in numpy.

Each modality has its own head (linear, or one hidden ReLU layer) mapping
standardised encoder features to an L2-normalised embedding. Pairs from the
same clip are positives, every other pairing in the minibatch a negative
(CLIP's symmetric cross-entropy). Parameters live in a flat dict so that the
estimator can pickle them and Adam can update them uniformly.

Everything computes in the dtype of the head weights: float64 as
:func:`init_head_params` returns them, or float32 when the caller casts the
parameters (before creating the :class:`skavc._training.Adam` optimiser), which roughly halves
the time of the matrix products and of the Adam update on wide heads. Inputs
are cast to that dtype minibatch by minibatch. The optimiser and the training loop are in
:mod:`skavc._training`.
"""

import numpy as np
from sklearn.decomposition import PCA
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

#: Range a learnt log temperature is kept in (temperature 0.01 to 1), as the optimiser's bounds.
LOG_TEMPERATURE_BOUNDS = (float(np.log(0.01)), float(np.log(1.0)))


def make_preprocessor(n_components, shape):
    """Standardise, then PCA-whiten to ``n_components`` (capped by what data of ``shape`` supports).

    Parameters
    ----------
    n_components : int or None
        None only standardises.
    shape : (int, int)
        ``(n_samples, n_features)`` of the data it will be fitted on.

    Returns
    -------
    preprocessor : Pipeline (unfitted)
    """
    if n_components is None:
        return make_pipeline(StandardScaler())
    k = max(1, min(n_components, shape[0] - 1, shape[1]))
    return make_pipeline(StandardScaler(), PCA(n_components=k, whiten=True, random_state=0))


def init_head_params(n_audio_features, n_visual_features, embedding_dim, hidden_units, temperature, rng):
    """Glorot-initialised parameters for both heads plus the log temperature.

    Parameters
    ----------
    n_audio_features, n_visual_features : int
        Input widths of the audio and visual heads.
    embedding_dim : int
        Width of the shared embedding.
    hidden_units : int or None
        Hidden layer width; None for linear heads.
    temperature : float
        Initial softmax temperature.
    rng : numpy.random.RandomState

    Returns
    -------
    params : dict of str to ndarray (float64)
        Cast every value to float32 (before creating the optimiser) to train
        and project in float32.
    """
    params = {}
    for prefix, n_in in (("audio", n_audio_features), ("visual", n_visual_features)):
        widths = [n_in, embedding_dim] if hidden_units is None else [n_in, hidden_units, embedding_dim]
        for layer, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
            scale = np.sqrt(2.0 / (fan_in + fan_out))
            params[f"{prefix}_W{layer}"] = rng.normal(0.0, scale, size=(fan_in, fan_out))
            params[f"{prefix}_b{layer}"] = np.zeros(fan_out)
    params["log_temperature"] = np.array(np.log(temperature))
    return params


def _layers(params, prefix):
    """The (W, b) pairs of the ``prefix`` head, input layer first."""
    layers = []
    while f"{prefix}_W{len(layers)}" in params:
        layer = len(layers)
        layers.append((params[f"{prefix}_W{layer}"], params[f"{prefix}_b{layer}"]))
    return layers


def _input(layers, X):
    """``X`` in the dtype of the head's weights (a float64 copy for a head without layers, which
    passes its input through to the in-place normalisation)."""
    if not layers:
        return np.array(X, dtype=np.float64)
    dtype = layers[0][0].dtype
    return X if isinstance(X, np.ndarray) and X.dtype == dtype else np.asarray(X, dtype=dtype)


def _forward(layers, X):
    """Raw (unnormalised) head output and the activations backprop needs."""
    activations = [X]
    h = X
    for i, (W, b) in enumerate(layers):
        h = h @ W
        h += b
        if i < len(layers) - 1:
            np.maximum(h, 0.0, out=h)
            activations.append(h)
    return h, activations


def _l2_normalize(Z):
    """Rows of ``Z`` over their norms (at least 1e-12), in place; and the norms."""
    norms = np.sqrt(np.einsum("ij,ij->i", Z, Z))[:, None]
    np.maximum(norms, 1e-12, out=norms)
    Z /= norms
    return Z, norms


def project(params, X, prefix):
    """L2-normalised embeddings of ``X`` through the ``prefix`` ("audio"/"visual") head.

    Parameters
    ----------
    params : dict
    X : ndarray of shape (n_samples, n_features)
    prefix : {"audio", "visual"}

    Returns
    -------
    E : ndarray of shape (n_samples, embedding_dim)
        In the dtype of the head weights.
    """
    layers = _layers(params, prefix)
    Z, _ = _forward(layers, _input(layers, X))
    return _l2_normalize(Z)[0]


def _backward(layers, activations, dZ, prefix, grads):
    delta = dZ
    for layer in reversed(range(len(layers))):
        grads[f"{prefix}_W{layer}"] = activations[layer].T @ delta
        grads[f"{prefix}_b{layer}"] = delta.sum(axis=0)
        if layer > 0:
            delta = delta @ layers[layer][0].T
            delta *= activations[layer] > 0


def _softmax_stats(logits, axis):
    """Softmax of ``logits`` along ``axis`` and its log-sum-exp (keepdims)."""
    top = logits.max(axis=axis, keepdims=True)
    p = logits - top
    np.exp(p, out=p)
    total = p.sum(axis=axis, keepdims=True)
    p /= total
    return p, top + np.log(total)


def _symmetric_cross_entropy(logits, scale=1.0):
    """Loss and ``scale`` times its gradient with respect to ``logits``."""
    n = logits.shape[0]
    p_rows, lse_rows = _softmax_stats(logits, axis=1)  # row item -> column items
    p_cols, lse_cols = _softmax_stats(logits, axis=0)  # column item -> row items
    loss = 0.5 * (lse_rows.mean() + lse_cols.mean()) - np.trace(logits) / n
    # 0.5 * ((p_rows - I) + (p_cols - I)) / n
    p_rows += p_cols
    p_rows.flat[:: n + 1] -= 2.0
    p_rows *= 0.5 * scale / n
    return float(loss), p_rows


def symmetric_cross_entropy(logits):
    """CLIP's symmetric InfoNCE over a square logit matrix whose diagonal holds the positives.

    Parameters
    ----------
    logits : ndarray of shape (n, n)

    Returns
    -------
    loss : float
    d_logits : ndarray of shape (n, n)
        Gradient of the loss with respect to ``logits``.
    """
    logits = np.asarray(logits)
    if not np.issubdtype(logits.dtype, np.floating):
        logits = logits.astype(np.float64)
    return _symmetric_cross_entropy(logits)


def infonce_loss_and_grads(params, A, V, learn_temperature=True, alpha=0.0):
    """Symmetric InfoNCE loss of paired rows of ``A`` and ``V`` and its gradients.

    Parameters
    ----------
    params : dict
    A : ndarray of shape (n_pairs, n_audio_features)
    V : ndarray of shape (n_pairs, n_visual_features)
        Row ``i`` of ``A`` and row ``i`` of ``V`` come from the same clip.
        Both are cast to the dtype of the head weights.
    learn_temperature : bool
        Whether the log temperature gets a gradient.
    alpha : float
        L2 penalty on the weight matrices.

    Returns
    -------
    loss : float
    grads : dict, same keys as ``params``
    """
    alpha = float(alpha)
    layers_a, layers_v = _layers(params, "audio"), _layers(params, "visual")
    Za, act_a = _forward(layers_a, _input(layers_a, A))
    Zv, act_v = _forward(layers_v, _input(layers_v, V))
    Ea, norm_a = _l2_normalize(Za)
    Ev, norm_v = _l2_normalize(Zv)
    inv_temperature = float(np.exp(-float(params["log_temperature"])))
    logits = Ea @ Ev.T
    logits *= inv_temperature
    # G = d loss / d logits, times 1 / temperature: the gradient of the cosine similarities.
    loss, G = _symmetric_cross_entropy(logits, scale=inv_temperature)
    grads = {}
    # d loss / d log T = -sum(d_logits * logits) = -sum(G * cosines)
    d_log_t = -float(np.vdot(G, logits)) / inv_temperature if learn_temperature else 0.0
    dEa = G @ Ev
    dEv = G.T @ Ea
    # Backprop through z / ||z||: (dE - E <E, dE>) / ||z||.
    for E, dE, norms in ((Ea, dEa, norm_a), (Ev, dEv, norm_v)):
        E *= np.einsum("ij,ij->i", E, dE)[:, None]
        dE -= E
        dE /= norms
    _backward(layers_a, act_a, dEa, "audio", grads)
    _backward(layers_v, act_v, dEv, "visual", grads)
    grads["log_temperature"] = np.array(d_log_t, dtype=np.asarray(params["log_temperature"]).dtype)
    if alpha:
        for key in params:
            if "_W" in key:
                W = params[key]
                loss += 0.5 * alpha * float(np.vdot(W, W))
                grads[key] += alpha * W
    return float(loss), grads


def output_dim(params):
    """Width of the shared space the heads of ``params`` (:func:`init_head_params`) project into."""
    last = max(int(k[len("audio_b"):]) for k in params if k.startswith("audio_b"))
    return params[f"audio_b{last}"].shape[0]
