"""Projection heads and their symmetric InfoNCE training, in numpy.

Each modality has its own head (linear, or one hidden ReLU layer) mapping
standardised encoder features to an L2-normalised embedding. Pairs from the
same clip are positives, every other pairing in the minibatch a negative
(CLIP's symmetric cross-entropy). Parameters live in a flat dict so that the
estimator can pickle them and Adam can update them uniformly.
"""

import numpy as np

_MIN_LOG_TEMPERATURE = np.log(0.01)
_MAX_LOG_TEMPERATURE = np.log(1.0)


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


def _n_layers(params, prefix):
    return sum(1 for k in params if k.startswith(f"{prefix}_W"))


def _forward(params, X, prefix):
    """Raw (unnormalised) head output and the activations backprop needs."""
    activations = [X]
    h = X
    n_layers = _n_layers(params, prefix)
    for layer in range(n_layers):
        h = h @ params[f"{prefix}_W{layer}"] + params[f"{prefix}_b{layer}"]
        if layer < n_layers - 1:
            h = np.maximum(h, 0.0)
            activations.append(h)
    return h, activations


def _l2_normalize(Z):
    norms = np.linalg.norm(Z, axis=1, keepdims=True)
    norms = np.maximum(norms, 1e-12)
    return Z / norms, norms


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
    """
    Z, _ = _forward(params, X, prefix)
    return _l2_normalize(Z)[0]


def _backward(params, activations, dZ, prefix, grads):
    n_layers = _n_layers(params, prefix)
    delta = dZ
    for layer in reversed(range(n_layers)):
        grads[f"{prefix}_W{layer}"] = activations[layer].T @ delta
        grads[f"{prefix}_b{layer}"] = delta.sum(axis=0)
        if layer > 0:
            delta = (delta @ params[f"{prefix}_W{layer}"].T) * (activations[layer] > 0)


def _log_softmax(logits, axis):
    shifted = logits - logits.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


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
    n = logits.shape[0]
    logp_rows = _log_softmax(logits, axis=1)  # row item -> column items
    logp_cols = _log_softmax(logits, axis=0)  # column item -> row items
    diag = np.arange(n)
    loss = -0.5 * (logp_rows[diag, diag].mean() + logp_cols[diag, diag].mean())
    eye = np.eye(n)
    d_logits = 0.5 * ((np.exp(logp_rows) - eye) + (np.exp(logp_cols) - eye)) / n
    return float(loss), d_logits


def infonce_loss_and_grads(params, A, V, learn_temperature=True, alpha=0.0):
    """Symmetric InfoNCE loss of paired rows of ``A`` and ``V`` and its gradients.

    Parameters
    ----------
    params : dict
    A : ndarray of shape (n_pairs, n_audio_features)
    V : ndarray of shape (n_pairs, n_visual_features)
        Row ``i`` of ``A`` and row ``i`` of ``V`` come from the same clip.
    learn_temperature : bool
        Whether the log temperature gets a gradient.
    alpha : float
        L2 penalty on the weight matrices.

    Returns
    -------
    loss : float
    grads : dict, same keys as ``params``
    """
    Za, act_a = _forward(params, A, "audio")
    Zv, act_v = _forward(params, V, "visual")
    Ea, norm_a = _l2_normalize(Za)
    Ev, norm_v = _l2_normalize(Zv)
    temperature = np.exp(params["log_temperature"])
    logits = (Ea @ Ev.T) / temperature
    loss, d_logits = symmetric_cross_entropy(logits)
    grads = {}
    grads["log_temperature"] = np.array(-np.sum(d_logits * logits) if learn_temperature else 0.0)
    dEa = d_logits @ Ev / temperature
    dEv = d_logits.T @ Ea / temperature
    # Backprop through z / ||z||.
    dZa = (dEa - Ea * np.sum(Ea * dEa, axis=1, keepdims=True)) / norm_a
    dZv = (dEv - Ev * np.sum(Ev * dEv, axis=1, keepdims=True)) / norm_v
    _backward(params, act_a, dZa, "audio", grads)
    _backward(params, act_v, dZv, "visual", grads)
    if alpha:
        for key in params:
            if "_W" in key:
                loss += 0.5 * alpha * np.sum(params[key] ** 2)
                grads[key] = grads[key] + alpha * params[key]
    return float(loss), grads


class Adam:
    """Adam (Kingma and Ba, 2015) over a dict of arrays; its state pickles with the estimator."""

    def __init__(self, params, learning_rate=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8):
        self.learning_rate = learning_rate
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon
        self.t = 0
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}

    def step(self, params, grads):
        """Update ``params`` in place."""
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        lr_t = self.learning_rate * np.sqrt(1 - b2**self.t) / (1 - b1**self.t)
        for key, g in grads.items():
            self.m[key] = b1 * self.m[key] + (1 - b1) * g
            self.v[key] = b2 * self.v[key] + (1 - b2) * g * g
            params[key] = params[key] - lr_t * self.m[key] / (np.sqrt(self.v[key]) + self.epsilon)
        params["log_temperature"] = np.clip(params["log_temperature"], _MIN_LOG_TEMPERATURE, _MAX_LOG_TEMPERATURE)


def train_epoch(params, optimizer, A, V, batch_size, rng, learn_temperature=True, alpha=0.0):
    """One pass over shuffled minibatches; returns the mean loss.

    A last minibatch of a single pair is merged into the previous one: InfoNCE
    needs at least one negative.
    """
    n = A.shape[0]
    order = rng.permutation(n)
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] < 2:
        starts.pop()
    losses = []
    for i, start in enumerate(starts):
        stop = starts[i + 1] if i + 1 < len(starts) else n
        idx = order[start:stop]
        loss, grads = infonce_loss_and_grads(params, A[idx], V[idx], learn_temperature, alpha)
        optimizer.step(params, grads)
        losses.append(loss)
    return float(np.mean(losses))
