"""From evidence to maps: resizing, fusing and sharpening source shapes (array in, array out).

Every method gives *evidence*: a shape (T, H, W) in [0, 1], near 1 on the pixels
most likely to be the source, and a confidence (T,) in [0, 1] that a visible
source is there at all. The map is their product, so it is never brighter than
the frame's confidence.
"""

import numpy as np

from ..features import block_size

#: Map value (and frame confidence) from which a pixel (a frame) counts as holding the sound source.
SOURCE_THRESHOLD = 0.5

# Appearance refinement: colour histogram bins per channel, and the spatial prior's blur as a
# fraction of the shorter frame side.
_REFINE_BINS = 8
_REFINE_BLUR = 0.025


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
        Cell size in output pixels, both axes (:func:`skavc.features.grey_blocks` blocks); None
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



#: Exponent of the learned shape in the default ("prior") fusion: a soft spatial prior on the
#: synchrony shape (0 ignores the learned map, 1 trusts it as much as synchrony).
FUSION_PRIOR_POWER = 0.5
FUSIONS = ("prior", "geometric", "product", "mean")


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
    if how not in FUSIONS:
        raise ValueError(f"how must be one of {FUSIONS}; got {how!r}")
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
    k = block_size(H, W, max_size)
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

