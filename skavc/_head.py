"""Projection heads and their symmetric InfoNCE training, in numpy.

Each modality has its own head (linear, or one hidden ReLU layer) mapping
standardised encoder features to an L2-normalised embedding. Pairs from the
same clip are positives, every other pairing in the minibatch a negative
(CLIP's symmetric cross-entropy). Parameters live in a flat dict so that the
estimator can pickle them and Adam can update them uniformly.

Everything computes in the dtype of the head weights: float64 as
:func:`init_head_params` returns them, or float32 when the caller casts the
parameters (before creating the :class:`Adam` optimiser), which roughly halves
the time of the matrix products and of the Adam update on wide heads. Inputs
are cast to that dtype minibatch by minibatch.
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
        Cast every value to float32 (before creating :class:`Adam`) to train
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


class Adam:
    """Adam (Kingma and Ba, 2015) over a dict of arrays; its state pickles with the estimator.

    Large arrays (weight matrices) and their moments are updated in place, through
    scratch buffers kept between steps, with the same arithmetic as the expression
    used for small ones: ``m = b1 m + (1 - b1) g``, ``v = b2 v + (1 - b2) g g``,
    ``p = p - lr_t m / (sqrt(v) + eps)``. A parameter that cannot be updated in place
    (a 0-d log temperature, a read-only memory map) is replaced by the update.
    """

    def __init__(self, params, learning_rate=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8):
        self.learning_rate = learning_rate
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon
        self.t = 0
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_scratch", None)  # scratch space, rebuilt on the next step
        return state

    def _buffers(self, g):
        """Two scratch arrays shaped like ``g``, views of buffers kept between steps."""
        scratch = self.__dict__.setdefault("_scratch", {})
        bufs = scratch.get(g.dtype)
        if bufs is None or bufs[0].size < g.size:
            bufs = scratch[g.dtype] = (np.empty(g.size, g.dtype), np.empty(g.size, g.dtype))
        return bufs[0][: g.size].reshape(g.shape), bufs[1][: g.size].reshape(g.shape)

    def step(self, params, grads):
        """Update ``params`` in place."""
        self.t += 1
        # Python floats: numpy scalars would promote float32 parameters to float64.
        b1, b2, eps = float(self.beta1), float(self.beta2), float(self.epsilon)
        lr_t = float(self.learning_rate * np.sqrt(1 - b2**self.t) / (1 - b1**self.t))
        for key, g in grads.items():
            m, v, p = self.m[key], self.v[key], params[key]
            if getattr(g, "size", 0) < _IN_PLACE_MIN_SIZE or not (
                _in_place_ok(p, g) and _in_place_ok(m, g) and _in_place_ok(v, g)
            ):
                self.m[key] = m = b1 * m + (1 - b1) * g
                self.v[key] = v = b2 * v + (1 - b2) * g * g
                params[key] = p - lr_t * m / (np.sqrt(v) + eps)
                continue
            t1, t2 = self._buffers(g)
            m *= b1
            np.multiply(g, 1 - b1, out=t1)
            m += t1
            v *= b2
            np.multiply(g, 1 - b2, out=t1)
            t1 *= g
            v += t1
            np.sqrt(v, out=t1)
            t1 += eps
            np.multiply(m, lr_t, out=t2)
            t2 /= t1
            p -= t2
        params["log_temperature"] = np.clip(params["log_temperature"], _MIN_LOG_TEMPERATURE, _MAX_LOG_TEMPERATURE)


# Below this many elements, allocating the update costs less than the extra in-place calls.
_IN_PLACE_MIN_SIZE = 8192


def _in_place_ok(x, g):
    """Whether ``x`` (a parameter or moment) can take an in-place update by the gradient ``g``."""
    return type(x) is np.ndarray and x.flags.writeable and x.shape == g.shape and x.dtype == g.dtype


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
