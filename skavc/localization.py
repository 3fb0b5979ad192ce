"""Sound-source localisation: where in each frame the sound comes from.

Three maps, one output format (per clip a heat map ``(T, H, W)`` in [0, 1] at the
frames' own size, and a per-frame source confidence ``(T,)`` in [0, 1]):

- synchrony (training-free; Hershey and Movellan 2000, Kidron et al. 2005 "Pixels
  that sound"): per cell of a grid of at most 64 cells a side, the correlation
  over a sliding window (Gaussian, sd 1 s) between how much the cell changes from
  frame to frame (camera shift compensated, frame median and a noise floor
  removed) and how much the audio's RMS envelope changes over the same interval.
- learned (Objects that Sound / LVS / EZ-VSL): a linear projection of the visual
  encoder's 7x7 feature map (standardised, PCA-whitened) into the estimator's
  embedding space, trained inside ``fit`` with a multiple-instance InfoNCE loss
  (each clip's audio against the log-sum-exp pooled positions of every clip's
  frame) and scored against the projected audio of the two seconds around each
  frame; its values are Platt-calibrated on clips held out of its training.
- fused: the synchrony shape weighted by the learned one (:func:`fuse_evidence`).

Each method gives *evidence*, a ``shape`` (T, H, W) in [0, 1] (near 1 where the
source most likely is) and a ``confidence`` (T,) that a visible source is
sounding at all; by default the shape is then sharpened to the outline of what
the frame shows there (:func:`refine_shape`). The map is ``confidence * shape``:
it is never renormalised per frame, so a pixel counts as sounding when its value
is >= :data:`SOURCE_THRESHOLD` (0.5), which needs a frame confidence of 0.5 too.
Silence, off-screen sound or no moving source give low confidence and so a dark
map, never a confident blob.
"""

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ._head import project, symmetric_cross_entropy
from ._inputs import check_collection, resolve_clip

#: Map value (and frame confidence) from which a pixel (a frame) counts as holding the sound source.
SOURCE_THRESHOLD = 0.5

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_METHODS = ("auto", "learned", "synchrony", "fused")


# ---------------------------------------------------------------------------
# Resizing
# ---------------------------------------------------------------------------


def _interp_matrix(n_out, n_in, cell=None):
    """Linear interpolation weights (n_out, n_in) between cell centres (half-pixel convention).

    ``cell`` is the size of one input cell in output pixels (default ``n_out / n_in``).
    """
    cell = n_out / n_in if cell is None else cell
    pos = np.clip((np.arange(n_out) + 0.5) / cell - 0.5, 0, n_in - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = pos - lo
    R = np.zeros((n_out, n_in))
    np.add.at(R, (np.arange(n_out), lo), 1 - frac)
    np.add.at(R, (np.arange(n_out), hi), frac)
    return R


def upsample_bilinear(maps, size, cell=None):
    """Bilinear resize of a stack of maps whose cells tile the frame.

    Cell ``(i, j)`` of an ``h x w`` map is centred at pixel
    ``((i + 0.5) c - 0.5, (j + 0.5) c - 0.5)`` for cell size ``c``; by default the
    cells tile the whole frame (``c = H / h`` and ``W / w``), as the encoder's 7x7
    grid does over the uncropped frame. Beyond the outermost centres values are held.

    Parameters
    ----------
    maps : ndarray of shape (T, h, w)
    size : (int, int)
        ``(H, W)`` of the output.
    cell : float or None
        Cell size in output pixels, both axes (:func:`grey_cells` blocks); None
        for cells tiling the whole frame.

    Returns
    -------
    resized : ndarray of shape (T, H, W), float32
    """
    maps = np.asarray(maps, dtype=np.float32)
    H, W = size
    Ry = _interp_matrix(H, maps.shape[1], cell).astype(np.float32)
    Rx = _interp_matrix(W, maps.shape[2], cell).astype(np.float32)
    return np.einsum("yh,thw,xw->tyx", Ry, maps, Rx, optimize=True)


# ---------------------------------------------------------------------------
# Synchrony maps (training-free)
# ---------------------------------------------------------------------------


def cell_size(height, width, max_size=64):
    """Side of the square pixel blocks that bring the longer frame side to <= ``max_size`` cells."""
    return int(max(1, min(np.ceil(max(height, width) / max_size), height, width)))


def grey_cells(frames, k):
    """Luma of the frames averaged over ``k x k`` pixel blocks.

    Parameters
    ----------
    frames : ndarray of shape (T, H, W, 3), uint8
    k : int
        Block side in pixels (:func:`cell_size`).

    Returns
    -------
    grey : ndarray of shape (T, H // k, W // k), float32
        The last ``H % k`` rows and ``W % k`` columns are dropped.
    """
    T, H, W, _ = frames.shape
    h, w = H // k, W // k
    out = np.empty((T, h, w), dtype=np.float32)
    for t0 in range(0, T, 64):  # chunks: a float copy of a long video would not fit
        block = frames[t0 : t0 + 64, : h * k, : w * k].astype(np.float32) @ _LUMA
        out[t0 : t0 + 64] = block.reshape(-1, h, k, w, k).mean(axis=(2, 4))
    return out


def _best_shifts(cur, prev, r):
    """Per frame pair, the whole-cell global shift (|dy|, |dx| <= r) that best aligns ``prev`` to ``cur``.

    Parameters
    ----------
    cur, prev : ndarray of shape (n, h, w)
    r : int

    Returns
    -------
    shifts : ndarray of shape (n, 2), int
        ``(dy, dx)``: ``cur[y, x]`` best matches ``prev[y + dy, x + dx]``.
    """
    n, h, w = cur.shape
    inner = cur[:, r : h - r, r : w - r].reshape(n, -1)
    candidates = [(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1)]
    costs = np.empty((len(candidates), n))
    for i, (dy, dx) in enumerate(candidates):
        d = inner - prev[:, r + dy : h - r + dy, r + dx : w - r + dx].reshape(n, -1)
        # Median absolute deviation: objects moving over a still background do not count.
        costs[i] = np.median(np.abs(d - np.median(d, axis=1, keepdims=True)), axis=1)
    costs[candidates.index((0, 0))] *= 0.9  # prefer no shift when it is a near tie
    return np.asarray(candidates)[np.argmin(costs, axis=0)]


def _shifted(img, dy, dx):
    """``img`` moved so that ``out[y, x] = img[y + dy, x + dx]``; uncovered borders keep ``img``."""
    h, w = img.shape
    out = img.copy()
    out[max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)] = img[
        max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)
    ]
    return out


def frame_changes(grey, *, max_shift=1, noise_floor=2.0):
    """Signed change of every cell from the previous frame, camera motion and flicker removed.

    Global camera translation (whole cells, up to ``max_shift``) is compensated
    before differencing; the frame's median change (global brightness flicker,
    residual camera motion) is subtracted; changes within ``noise_floor`` grey
    levels (sensor and compression noise) are shrunk to zero.

    Parameters
    ----------
    grey : ndarray of shape (T, h, w)
    max_shift : int
    noise_floor : float

    Returns
    -------
    changes : ndarray of shape (T, h, w), float32
        ``changes[t]`` is frame ``t`` minus frame ``t - 1``; ``changes[0]`` is 0.
    """
    T, h, w = grey.shape
    out = np.zeros((T, h, w), dtype=np.float32)
    if T < 2:
        return out
    r = int(max(0, min(max_shift, (h - 1) // 4, (w - 1) // 4)))
    for t0 in range(1, T, 256):
        t1 = min(t0 + 256, T)
        prev = grey[t0 - 1 : t1 - 1]
        if r:
            shifts = _best_shifts(grey[t0:t1], prev, r)
            prev = np.stack([_shifted(p, dy, dx) if dy or dx else p for p, (dy, dx) in zip(prev, shifts)])
        d = grey[t0:t1] - prev
        d -= np.median(d.reshape(t1 - t0, -1), axis=1)[:, None, None]
        out[t0:t1] = np.sign(d) * np.maximum(np.abs(d) - noise_floor, 0.0)
    return out


def audio_envelope(audio, sample_rate, times, window):
    """RMS of the audio in a window of ``window`` seconds centred on each of ``times``.

    Parameters
    ----------
    audio : ndarray of shape (n_samples,)
    sample_rate : int
    times : ndarray of shape (n_times,)
        Seconds.
    window : float
        Seconds.

    Returns
    -------
    envelope : ndarray of shape (n_times,)
    """
    power = np.concatenate([[0.0], np.cumsum(np.asarray(audio, dtype=np.float64) ** 2)])
    n = audio.shape[0]
    half = 0.5 * window * sample_rate
    lo = np.clip(np.round(times * sample_rate - half).astype(int), 0, n)
    hi = np.clip(np.round(times * sample_rate + half).astype(int), 0, n)
    return np.sqrt(np.maximum(power[hi] - power[lo], 0.0) / np.maximum(hi - lo, 1))


def audio_changes(audio, sample_rate, n_frames, fps):
    """Change of the audio envelope between consecutive frame times, shape (n_frames,).

    Frame ``t`` shows time ``t / fps``; the envelope is the RMS over one frame
    period around it, and ``changes[t]`` is its change since frame ``t - 1``
    (``changes[0] = 0``), the audio counterpart of :func:`frame_changes`.
    """
    env = audio_envelope(audio, sample_rate, np.arange(n_frames) / fps, 1.0 / fps)
    return np.diff(env, prepend=env[:1])


def windowed_correlation(x, a, weights):
    """Weighted Pearson correlation of every cell's series with one series, per window.

    Parameters
    ----------
    x : ndarray of shape (T, n_cells)
    a : ndarray of shape (T,)
    weights : ndarray of shape (n_windows, T)
        Non-negative weights of each window over time.

    Returns
    -------
    rho : ndarray of shape (n_windows, n_cells)
        0 where either series is constant within the window.
    n_eff : ndarray of shape (n_windows,)
        Effective number of samples per window, ``(sum w)^2 / sum w^2``.
    """
    W = weights / np.maximum(weights.sum(axis=1, keepdims=True), 1e-12)
    n_eff = 1.0 / np.maximum((W**2).sum(axis=1), 1e-12)
    x = np.asarray(x, dtype=np.float64)
    a = np.asarray(a, dtype=np.float64)
    mx, ma = W @ x, W @ a
    var_x = np.maximum(W @ (x * x) - mx**2, 0.0)
    var_a = np.maximum(W @ (a * a) - ma**2, 0.0)[:, None]
    cov = W @ (x * a[:, None]) - mx * ma[:, None]
    # Constant series (silence, a still picture) correlate with nothing: 0, not noise over noise.
    scale_x = np.maximum(np.sqrt((W @ (x * x)).max(axis=1, keepdims=True)), 1e-12)
    scale_a = np.maximum(np.sqrt(W @ (a * a)), 1e-12)[:, None]
    ok = (var_x > (1e-6 * scale_x) ** 2) & (var_a > (1e-6 * scale_a) ** 2)
    rho = np.where(ok, cov / np.sqrt(np.where(ok, var_x * var_a, 1.0)), 0.0)
    return np.clip(rho, -1.0, 1.0), n_eff


def window_weights(n_frames, fps, window, hop):
    """Gaussian weights over frames of windows centred every ``hop`` frames.

    Parameters
    ----------
    n_frames : int
    fps : float
    window : float or None
        Standard deviation of the Gaussian in seconds; None weighs the whole clip equally.
    hop : int
        Frames between window centres.

    Returns
    -------
    centres : ndarray of shape (n_windows,)
        Frame index of each window's centre (the first and the last frame included).
    weights : ndarray of shape (n_windows, n_frames)
        Frame 0 has weight 0: it has no predecessor to change from.
    """
    centres = np.unique(np.append(np.arange(0, n_frames, max(1, hop)), n_frames - 1))
    t = np.arange(n_frames)
    if window is None:
        weights = np.ones((centres.size, n_frames))
    else:
        sigma = max(window * fps, 1e-6)
        weights = np.exp(-0.5 * ((t[None, :] - centres[:, None]) / sigma) ** 2)
    weights[:, 0] = 0.0
    return centres, weights


def _time_interp(n_frames, centres):
    """(n_frames, n_centres) weights interpolating per-window values linearly to every frame."""
    n = centres.size
    if n == 1:
        return np.ones((n_frames, 1))
    pos = np.interp(np.arange(n_frames), centres, np.arange(n, dtype=np.float64))
    lo = np.minimum(np.floor(pos).astype(int), n - 2)
    frac = pos - lo
    M = np.zeros((n_frames, n))
    M[np.arange(n_frames), lo] = 1 - frac
    M[np.arange(n_frames), lo + 1] = frac
    return M


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64)))


def significance(rho, n_eff):
    """Fisher z statistic of a correlation from ``n_eff`` samples: about N(0, 1) without a link."""
    rho = np.clip(np.asarray(rho, dtype=np.float64), -0.999999, 0.999999)
    return np.arctanh(rho) * np.sqrt(np.maximum(np.asarray(n_eff, dtype=np.float64) - 3.0, 1.0))


def synchrony_correlation(audio, sample_rate, frames, fps, *, max_size=64, window=1.0, hop=0.2,
                          max_shift=1, noise_floor=2.0):
    """Per frame and grid cell, how well the cell's change follows the audio's change.

    Parameters
    ----------
    audio : ndarray of shape (n_samples,)
    sample_rate : int
    frames : ndarray of shape (T, H, W, 3), uint8
    fps : float
    max_size : int
        Cells along the longer frame side (at most).
    window : float or None
        Gaussian window (standard deviation, seconds) of the correlation around
        each frame; None correlates over the whole clip.
    hop : float
        Seconds between the window centres; frames in between are interpolated.
    max_shift : int
        Largest camera shift compensated between frames, in cells.
    noise_floor : float
        Grey levels of change treated as noise.

    Returns
    -------
    rho : ndarray of shape (T, h, w)
        Pearson correlation of ``|frame change|`` with ``|audio envelope change|``.
    n_eff : ndarray of shape (T,)
        Effective number of frames behind each frame's correlation.
    cell : int
        Cell side in pixels.
    """
    T, H, W, _ = frames.shape
    k = cell_size(H, W, max_size)
    grey = grey_cells(frames, k)
    h, w = grey.shape[1:]
    if T < 3:
        return np.zeros((T, h, w)), np.zeros(T), k
    # Magnitudes: a sounding object may brighten or darken, grow or shrink as it is heard.
    x = np.abs(frame_changes(grey, max_shift=max_shift, noise_floor=noise_floor)).reshape(T, -1)
    a = np.abs(audio_changes(audio, sample_rate, T, fps))
    centres, weights = window_weights(T, fps, window, int(round(hop * fps)))
    rho, n_eff = windowed_correlation(x, a, weights)
    M = _time_interp(T, centres)
    return (M @ rho).reshape(T, h, w), M @ n_eff, k


# ---------------------------------------------------------------------------
# Learned maps: a spatial projection trained with a multiple-instance InfoNCE loss
# ---------------------------------------------------------------------------


def init_spatial_params(n_features, embedding_dim, temperature, rng):
    """Glorot-initialised linear map ``W`` (n_features, embedding_dim), bias ``b`` and the
    (fixed) log temperature, in the layout :class:`skavc._head.Adam` updates."""
    scale = np.sqrt(2.0 / (n_features + embedding_dim))
    return {
        "W": rng.normal(0.0, scale, size=(n_features, embedding_dim)),
        "b": np.zeros(embedding_dim),
        "log_temperature": np.array(np.log(temperature)),
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


def mil_loss_and_grads(params, A, P, *, pooling="lse", sharpness=10.0, alpha=0.0):
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
        ``W`` (D, d), ``b`` (d,) and ``log_temperature`` (fixed: no gradient).
    A : ndarray of shape (B, d)
        Unit-norm audio embeddings; row ``i`` belongs with ``P[i]``.
    P : ndarray of shape (B, K, D)
        Preprocessed features of the K positions of one frame per clip.
    pooling : {"lse", "max"}
    sharpness : float
        Of the "lse" pooling.
    alpha : float
        L2 penalty on ``W``.

    Returns
    -------
    loss : float
    grads : dict with ``W`` and ``b``
    """
    B, K, D = P.shape
    temperature = float(np.exp(params["log_temperature"]))
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


def window_means(features, rate, times, window):
    """Mean of time-resolved features over a window of ``window`` seconds centred on each time.

    Parameters
    ----------
    features : ndarray of shape (n_steps, n_features)
        Step ``j`` is centred at ``(j + 0.5) / rate`` seconds.
    rate : float
        Steps per second.
    times : ndarray of shape (n_times,)
    window : float
        Seconds; the window is cut at the ends of the clip, and always holds
        at least the step nearest to the time.

    Returns
    -------
    means : ndarray of shape (n_times, n_features)
    """
    features = np.asarray(features, dtype=np.float64)
    n = features.shape[0]
    csum = np.vstack([np.zeros((1, features.shape[1])), np.cumsum(features, axis=0)])
    lo = np.clip(np.ceil((times - 0.5 * window) * rate - 0.5).astype(int), 0, n - 1)
    hi = np.clip(np.floor((times + 0.5 * window) * rate - 0.5).astype(int) + 1, lo + 1, n)
    return (csum[hi] - csum[lo]) / (hi - lo)[:, None]


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
        from ._correspondence import _make_preprocessor

        n_clips, n_frames, h, w, F = feature_maps.shape
        flat = feature_maps.reshape(-1, F)
        sample = rng.choice(flat.shape[0], size=min(flat.shape[0], self.max_fit_positions), replace=False)
        self.preprocessor_ = _make_preprocessor(self.n_components, (sample.size, F)).fit(flat[sample].astype(np.float64))
        self.grid_shape_ = (h, w)
        P = self._positions(feature_maps.reshape(n_clips * n_frames, h, w, F)).reshape(n_clips, n_frames, h * w, -1)
        A = np.asarray(audio_embeddings, dtype=np.float64)
        order = rng.permutation(n_clips)
        n_held = int(round(self.calibration_fraction * n_clips)) if n_clips >= 10 else 0
        held, train = (order[:n_held], order[n_held:]) if n_held >= 2 else (order, order)
        self.params_ = init_spatial_params(P.shape[-1], A.shape[-1], self.temperature, rng)
        self._train(P[train], A[train], rng, log)
        self._calibrate(P[held], A[held])
        return self

    def _train(self, P, A, rng, log):
        from ._head import Adam

        n_clips, n_frames = P.shape[:2]
        optimizer = Adam(self.params_, learning_rate=self.learning_rate)
        batch_size = min(self.batch_size, n_clips)
        self.loss_curve_ = []
        for epoch in range(self.epochs):
            order = rng.permutation(n_clips)
            starts = list(range(0, n_clips, batch_size))
            if len(starts) > 1 and n_clips - starts[-1] < 2:
                starts.pop()  # InfoNCE needs a negative: merge a lone last clip into the previous batch
            losses = []
            for i, start in enumerate(starts):
                idx = order[start : starts[i + 1] if i + 1 < len(starts) else n_clips]
                f = rng.randint(n_frames, size=idx.size)  # one frame (bag) per clip and step
                loss, grads = mil_loss_and_grads(self.params_, A[idx, f], P[idx, f], pooling=self.pooling,
                                                 sharpness=self.sharpness, alpha=self.alpha)
                optimizer.step(self.params_, grads)
                losses.append(loss)
            self.loss_curve_.append(float(np.mean(losses)))
            if not np.isfinite(self.loss_curve_[-1]):
                raise FloatingPointError(f"the localisation loss diverged at epoch {epoch + 1}")
            if log is not None:
                log(epoch + 1, self.loss_curve_[-1])

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
        return _sigmoid(slope * self.similarity(feature_maps, audio_embeddings) + intercept)


# ---------------------------------------------------------------------------
# From evidence to maps
#
# Every method gives *evidence*: a shape (T, H, W) in [0, 1], near 1 on the pixels
# most likely to be the source, and a confidence (T,) in [0, 1] that a visible
# source is there at all. The map is their product, so it is never brighter than
# the frame's confidence.
# ---------------------------------------------------------------------------

# Synchrony shape: a cell is half-way lit at this fraction of the frame's peak correlation ...
_SYNC_FRACTION = 0.62
# ... with a soft edge this wide (in fractions of the peak).
_SYNC_SOFTNESS = 0.05
# Synchrony confidence: logistic in the Fisher z of the frame's peak correlation (the peak of
# the correlation map smoothed over _PEAK_SMOOTH cells). Without any audio-visual link the peak
# of ~4000 cells reaches z ~ 3.4 (95th percentile over off-screen-audio frames); a real source
# is above z ~ 4 in 95% of frames (measured on generated clips, see docs/benchmarks.md).
_SYNC_Z0 = 3.8
_SYNC_ZSCALE = 0.3
_PEAK_SMOOTH = 1.0
# Learned maps: audio windows quieter than this (dBFS RMS) are silence, which has no source.
_SILENCE_DB = -50.0
# Appearance refinement: colour histogram bins per channel, and the spatial prior's blur as a
# fraction of the shorter frame side.
_REFINE_BINS = 8
_REFINE_BLUR = 0.025


def synchrony_shape_confidence(rho, n_eff):
    """Turn per-cell correlations into a shape and a per-frame confidence.

    Parameters
    ----------
    rho : ndarray of shape (T, h, w)
    n_eff : ndarray of shape (T,)

    Returns
    -------
    shape : ndarray of shape (T, h, w), in [0, 1]
        Logistic in ``rho / peak``: 0.5 at :data:`_SYNC_FRACTION` of the frame's peak.
    confidence : ndarray of shape (T,), in [0, 1]
        Logistic in the significance of the peak (:func:`significance`).
    """
    from scipy.ndimage import gaussian_filter

    smooth = gaussian_filter(np.asarray(rho, dtype=np.float64), (0, _PEAK_SMOOTH, _PEAK_SMOOTH), mode="nearest")
    peak = smooth.reshape(smooth.shape[0], -1).max(axis=1)
    confidence = np.where(peak > 0, _sigmoid((significance(peak, n_eff) - _SYNC_Z0) / _SYNC_ZSCALE), 0.0)
    relative = rho / np.maximum(peak, 1e-12)[:, None, None]
    shape = np.where(peak[:, None, None] > 0, _sigmoid((relative - _SYNC_FRACTION) / _SYNC_SOFTNESS), 0.0)
    return shape, confidence


def synchrony_evidence(audio, sample_rate, frames, fps, **kwargs):
    """Training-free shape and confidence of one clip's source, from audio-visual synchrony.

    Parameters
    ----------
    audio : ndarray of shape (n_samples,)
    sample_rate : int
    frames : ndarray of shape (T, H, W, 3), uint8
    fps : float
    **kwargs
        Passed to :func:`synchrony_correlation`.

    Returns
    -------
    shape : ndarray of shape (T, H, W), float32 in [0, 1]
        Bilinearly resized from the cell grid.
    confidence : ndarray of shape (T,)
    """
    rho, n_eff, k = synchrony_correlation(audio, sample_rate, frames, fps, **kwargs)
    shape, confidence = synchrony_shape_confidence(rho, n_eff)
    return upsample_bilinear(shape, frames.shape[1:3], cell=k), confidence


def silence_gate(audio, sample_rate, times, window):
    """Per time, 0 for silence and 1 for sound: logistic in the window's RMS level around -50 dBFS."""
    rms = audio_envelope(audio, sample_rate, np.asarray(times, dtype=np.float64), window)
    db = 20 * np.log10(np.maximum(rms, 1e-10))
    return _sigmoid((db - _SILENCE_DB) / 2.0)


def learned_evidence(probabilities, size, gate=None):
    """Shape and confidence from the learned head's calibrated per-position probabilities.

    Parameters
    ----------
    probabilities : ndarray of shape (T, h, w)
        :meth:`LocalizationHead.maps`.
    size : (int, int)
        ``(H, W)`` of the frames.
    gate : ndarray of shape (T,) or None
        Multiplies the confidence (:func:`silence_gate`).

    Returns
    -------
    shape : ndarray of shape (T, H, W), float32 in [0, 1]
        The probabilities relative to the frame's best position.
    confidence : ndarray of shape (T,)
        The best position's probability (times ``gate``).
    """
    peak = probabilities.reshape(probabilities.shape[0], -1).max(axis=1)
    shape = upsample_bilinear(probabilities / np.maximum(peak, 1e-12)[:, None, None], size)
    return shape, peak if gate is None else peak * gate


#: Exponent of the learned shape in the default ("prior") fusion: a soft spatial prior on the
#: synchrony shape (0 ignores the learned map, 1 trusts it as much as synchrony).
FUSION_PRIOR_POWER = 0.5
_FUSIONS = ("prior", "geometric", "product", "mean")


def fuse_evidence(learned, synchrony, how="prior"):
    """Combine learned and synchrony evidence of the same frames.

    Parameters
    ----------
    learned, synchrony : (shape, confidence)
        Shapes (T, H, W) and confidences (T,), as from :func:`learned_evidence`
        and :func:`synchrony_evidence`.
    how : {"prior", "geometric", "product", "mean"}, default="prior"
        "prior" (the default, best in docs/benchmarks.md): the synchrony shape
        times the learned shape to the power :data:`FUSION_PRIOR_POWER`, with
        the synchrony confidence: the learned map says *which* region, only
        synchrony vouches that a visible source is sounding (a still picture
        or off-screen sound must stay dark, and the learned head cannot see
        either). The others apply one rule to shapes and confidences alike:
        "geometric" ``sqrt(learned * synchrony)``, "product", "mean".

    Returns
    -------
    shape : ndarray of shape (T, H, W), float32
    confidence : ndarray of shape (T,)
    """
    if how not in _FUSIONS:
        raise ValueError(f"how must be one of {_FUSIONS}; got {how!r}")
    (ls, lc), (ss, sc) = learned, synchrony
    if how == "prior":
        return (ss * np.power(ls, FUSION_PRIOR_POWER)).astype(np.float32), np.asarray(sc)
    combine = {
        "geometric": lambda a, b: np.sqrt(a * b),
        "product": lambda a, b: a * b,
        "mean": lambda a, b: 0.5 * (a + b),
    }[how]
    return combine(ls, ss).astype(np.float32), combine(np.asarray(lc), np.asarray(sc))


def refine_shape(frames, shape, *, max_size=256, bins=_REFINE_BINS, blur=_REFINE_BLUR):
    """Sharpen a coarse source shape to the outline of what the frame shows there.

    Per frame, a colour histogram of the source (pixels weighted by
    ``shape ** 2``) and one of the rest (weighted by ``(1 - shape) ** 2``)
    give each pixel a colour likelihood ratio; with the blurred shape as the
    prior probability of the source, the posterior is the refined shape (a
    one-step, GrabCut-like colour segmentation). Where the colours do not
    tell source from background the posterior stays at the prior.

    Parameters
    ----------
    frames : ndarray of shape (T, H, W, 3), uint8
    shape : ndarray of shape (T, H, W), in [0, 1]
    max_size : int
        Work on blocks averaged to at most this many pixels along the longer side.
    bins : int
        Histogram bins per colour channel.
    blur : float
        Standard deviation of the prior's Gaussian blur, as a fraction of the shorter side.

    Returns
    -------
    refined : ndarray of shape (T, H, W), float32 in [0, 1]
    """
    from scipy.ndimage import gaussian_filter

    T, H, W, _ = frames.shape
    k = cell_size(H, W, max_size)
    h, w = H // k, W // k
    n_bins = bins**3
    out = np.empty((T, h, w), dtype=np.float32)
    for t in range(T):
        colour = frames[t, : h * k, : w * k].reshape(h, k, w, k, 3).mean(axis=(1, 3))
        q = np.minimum((colour * (bins / 256.0)).astype(np.int64), bins - 1)
        idx = ((q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]).ravel()
        s = shape[t, : h * k, : w * k].reshape(h, k, w, k).mean(axis=(1, 3))
        prior = np.clip(gaussian_filter(s, blur * min(h, w), mode="nearest"), 0.02, 0.98).ravel()
        # Additive smoothing: colours never seen on one side keep a small likelihood there.
        hf = np.bincount(idx, weights=(s**2).ravel(), minlength=n_bins) + 1.0 / n_bins
        hb = np.bincount(idx, weights=((1 - s) ** 2).ravel(), minlength=n_bins) + 1.0 / n_bins
        lf, lb = hf[idx] / hf.sum(), hb[idx] / hb.sum()
        out[t] = (prior * lf / (prior * lf + (1 - prior) * lb)).reshape(h, w)
    return upsample_bilinear(out, (H, W), cell=k)


def evidence_to_maps(shape, confidence):
    """``confidence * shape``, clipped to [0, 1], as float32 maps (T, H, W)."""
    maps = np.asarray(confidence, dtype=np.float32)[:, None, None] * np.asarray(shape, dtype=np.float32)
    return np.clip(maps, 0.0, 1.0)


def synchrony_maps(audio, sample_rate, frames, fps, refine=True, **kwargs):
    """Training-free source maps of one clip (no estimator needed).

    Parameters
    ----------
    audio : ndarray of shape (n_samples,)
    sample_rate : int
    frames : ndarray of shape (T, H, W, 3), uint8
    fps : float
    refine : bool, default=True
        Sharpen the shape with :func:`refine_shape`.
    **kwargs
        Passed to :func:`synchrony_correlation`.

    Returns
    -------
    maps : ndarray of shape (T, H, W), float32 in [0, 1]
    confidence : ndarray of shape (T,)
    """
    shape, confidence = synchrony_evidence(audio, sample_rate, frames, fps, **kwargs)
    if refine:
        shape = refine_shape(frames, shape)
    maps = evidence_to_maps(shape, confidence)
    return maps, maps.reshape(maps.shape[0], -1).max(axis=1).astype(np.float64)


# ---------------------------------------------------------------------------
# The estimator's side
# ---------------------------------------------------------------------------


def _encode_frame_maps(frames, encoder, encoder_key):
    """Per-frame 7x7 encoder feature maps, (T, 7, 7, 1280) (``encoder_key`` keys the cache)."""
    return encoder.encode(frames, return_feature_map=True)[1]


def training_frames(n_frames, n):
    """``n`` frame indices spread evenly over ``n_frames`` (repeated when the clip is shorter)."""
    return np.floor((np.arange(n) + 0.5) * n_frames / n).astype(int)


def _check_method(method):
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}; got {method!r}")


class LocalizationMixin:
    """``localize`` (sound-source heat maps) for :class:`skavc.AVCorrespondence`."""

    # Frames encoded at once when localising: a long video's feature maps would not fit in memory.
    _localization_chunk = 256

    def _resolve_localization_method(self, method):
        _check_method(method)
        if method == "auto":
            return "fused" if hasattr(self, "localization_head_") else "synchrony"
        if method in ("learned", "fused"):
            check_is_fitted(self, "localization_head_", msg=(
                f"method={method!r} needs a localisation head: fit with localization=True first, "
                "or use method='synchrony'"
            ))
        return method

    def _audio_window_embeddings(self, steps, rate, times, window):
        """Unit-norm audio embeddings (n_times, embedding_dim) of the windows around ``times``."""
        A = window_means(steps, rate, times, window)
        return project(self.head_params_, self.audio_preprocessor_.transform(A), "audio")

    def _learned_evidence_job(self):
        """Job mapping a clip to its learned (shape, confidence), the confidence silence-gated."""
        from ._correspondence import _encode_audio

        head = self.localization_head_
        audio_encoder, visual_encoder = self._encoders()
        encode_audio = self._cached(_encode_audio, audio_encoder)
        encode_maps = self._cached(_encode_frame_maps, visual_encoder)
        chunk = self._localization_chunk

        def job(clip):
            times = np.arange(clip.n_frames) / clip.fps
            steps = encode_audio(clip.audio)
            A = self._audio_window_embeddings(steps, audio_encoder.frame_rate, times, head.audio_window)
            probabilities = np.concatenate([
                head.maps(encode_maps(clip.frames[t0 : t0 + chunk]), A[t0 : t0 + chunk])
                for t0 in range(0, clip.n_frames, chunk)
            ])
            gate = silence_gate(clip.audio, clip.sample_rate, times, head.audio_window)
            return learned_evidence(probabilities, clip.frames.shape[1:3], gate)

        return job

    def _localize_job(self, method, refine=True, fusion="prior"):
        learned_job = self._learned_evidence_job() if method in ("learned", "fused") else None
        sr = self.audio_sample_rate

        def job(item, where):
            clip = resolve_clip(item, sample_rate=sr, fps=self.fps, where=where)
            if method in ("synchrony", "fused"):
                S = synchrony_evidence(clip.audio, clip.sample_rate, clip.frames, clip.fps)
            if method in ("learned", "fused"):
                L = learned_job(clip)
            shape, confidence = S if method == "synchrony" else L if method == "learned" else fuse_evidence(L, S, fusion)
            if refine:
                shape = refine_shape(clip.frames, shape)
            maps = evidence_to_maps(shape, confidence)
            return maps, maps.reshape(maps.shape[0], -1).max(axis=1).astype(np.float64)

        return job

    def localize(self, X, method="auto", return_confidence=False, refine=True):
        """Where the sound comes from, as a heat map per frame.

        Parameters
        ----------
        X : sequence of AVClip, (audio, frames) pairs or video paths
        method : {"auto", "learned", "synchrony", "fused"}, default="auto"
            "synchrony": training-free, pixels whose change over time follows
            the audio's (usable before any fit); "learned": the spatial head
            trained by ``fit`` with ``localization=True``, scored against the
            audio embedding of the two seconds around each frame; "fused":
            the synchrony map weighted by the learned one, with the synchrony
            confidence (:func:`fuse_evidence`); "auto" is "fused" when a
            localisation head was trained, else "synchrony".
        return_confidence : bool, default=False
            Also return a per-frame confidence that a visible source is there.
        refine : bool, default=True
            Sharpen each frame's map to the outline of what the frame shows
            there (:func:`refine_shape`, a colour segmentation seeded by the map).

        Returns
        -------
        maps : list of ndarray of shape (T, H, W), float32
            Per clip, at the frames' own size and in [0, 1]: the frame's
            confidence times the source's shape, never renormalised per frame.
            A pixel is the sound's source when its value is >=
            :data:`SOURCE_THRESHOLD` (0.5); silence, sound from off screen or
            a still picture leave every pixel below it.
        confidence : list of ndarray of shape (T,), only when ``return_confidence``
            Per clip, each frame's largest map value, in [0, 1]: >= 0.5 means
            a sound source is visible in that frame.
        """
        method = self._resolve_localization_method(method)
        X = check_collection(X)
        results = self._map(self._localize_job(method, refine=bool(refine)), X)
        maps = [r[0] for r in results]
        if not return_confidence:
            return maps
        return maps, [r[1] for r in results]

    # -- training, called from AVCorrespondence.fit -------------------------------------
    def _fit_localization(self, X, rng):
        """Train ``localization_head_`` on the clips of ``X`` (the correspondence heads must be fitted)."""
        from ._correspondence import _encode_audio

        check_is_fitted(self, "head_params_")
        head = LocalizationHead(alpha=self.alpha)
        audio_encoder, visual_encoder = self._encoders()
        encode_audio = self._cached(_encode_audio, audio_encoder)
        encode_maps = self._cached(_encode_frame_maps, visual_encoder)
        sr = audio_encoder.sample_rate

        def job(item, where):
            clip = resolve_clip(item, sample_rate=sr, fps=self.fps, where=where)
            idx = training_frames(clip.n_frames, head.n_frames)
            fmaps = encode_maps(clip.frames[idx])
            steps = encode_audio(clip.audio)
            A = self._audio_window_embeddings(steps, audio_encoder.frame_rate, idx / clip.fps, head.audio_window)
            return fmaps, A

        data = self._map(job, X)
        feature_maps = np.stack([d[0] for d in data])
        audio = np.stack([d[1] for d in data])
        del data

        def log(epoch, loss):
            if self.verbose >= 2 or (self.verbose and epoch % 10 == 0):
                self._log(1, f"localisation epoch {epoch}: loss {loss:.4f}")

        self.localization_head_ = head.fit(feature_maps, audio, rng, log)
