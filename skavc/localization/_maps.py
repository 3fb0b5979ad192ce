"""From evidence to maps: resizing, fusing and sharpening source shapes (array in, array out).

Every method gives *evidence*: a shape (T, H, W) in [0, 1], near 1 on the pixels
most likely to be the source, and a confidence (T,) in [0, 1] that a visible
source is there at all. The map is their product, so it is never brighter than
the frame's confidence.
"""

import numpy as np

from ..features import block_size
from ..features.video import colour_blocks

#: Map value (and frame confidence) from which a pixel (a frame) counts as holding the sound source.
SOURCE_THRESHOLD = 0.5

# Appearance refinement: colour histogram bins per channel, and the spatial prior's blur as a
# fraction of the shorter frame side.
_REFINE_BINS = 8
_REFINE_BLUR = 0.025


# Frames resized at once by :func:`upsample_bilinear`: enough for few numpy calls per frame, few
# enough for a small intermediate (n, W, h) (24 MB from 256x144 blocks to 720p; 8 was slower).
_RESIZE_CHUNK = 32
# Frames refined at once by :func:`refine_blocks` (arrays of chunk x block-grid size).
_REFINE_CHUNK = 32


#: Evidence is refined (and fused) on blocks of at most this many pixels along the longer frame
#: side, and only the final maps are made at the frames' own size.
WORK_SIZE = 256

def _interp_taps(n_out, n_in, cell=None):
    """Linear interpolation taps between cell centres (half-pixel convention).

    Output pixel ``i`` sits at ``pos = (i + 0.5) / cell - 0.5`` input cells, clipped to
    ``[0, n_in - 1]``; its value is ``x[lo] + frac * (x[lo + 1] - x[lo])``.

    Parameters
    ----------
    n_out, n_in : int
        Output pixels and input cells along one axis.
    cell : float or None
        Size of one input cell in output pixels (default ``n_out / n_in``).

    Returns
    -------
    lo : ndarray of shape (n_out,), int
        Left input cell, in ``[0, max(n_in - 2, 0)]``.
    frac : ndarray of shape (n_out,), float32
        Weight of cell ``lo + 1``, in [0, 1] (0 when ``n_in == 1``).
    """
    cell = n_out / n_in if cell is None else cell
    pos = np.clip((np.arange(n_out) + 0.5) / cell - 0.5, 0, n_in - 1)
    lo = np.minimum(np.floor(pos).astype(np.intp), max(n_in - 2, 0))
    return lo, (pos - lo).astype(np.float32)


def _gather_axis1(x, lo, frac):
    """:func:`_resize_axis1` by two gathers of whole arrays (the same values): for a small ``x``."""
    left = np.take(x, lo, axis=1)
    step = np.take(x, np.minimum(lo + 1, x.shape[1] - 1), axis=1)
    step -= left
    step *= frac[None, :, None]
    step += left
    return step


def _resize_axis1(x, lo, frac, out):
    """Linear interpolation along axis 1: ``out[:, i] = x[:, lo[i]] + frac[i] * (x[:, lo[i] + 1] - x[:, lo[i]])``.

    ``x`` (n, n_in, m) float32, ``out`` (n, n_out, m) float32; one pass over ``out`` per tap,
    whole rows at a time (a gather of two rows would write ``out`` four times).
    """
    step = np.diff(x, axis=1, append=x[:, -1:])  # x[:, j + 1] - x[:, j], 0 after the last cell
    for i in range(lo.size):
        np.multiply(step[:, lo[i]], frac[i], out=out[:, i])
        out[:, i] += x[:, lo[i]]
    return out


def upsample_bilinear(maps, size, cell=None, out=None):
    """Bilinear resize of a stack of maps whose cells tile the frame.

    Cell ``(i, j)`` of an ``h x w`` map is centred at pixel
    ``((i + 0.5) c - 0.5, (j + 0.5) c - 0.5)`` for cell size ``c``; by default the
    cells tile the whole frame (``c = H / h`` and ``W / w``), as the encoder's 7x7
    grid does over the uncropped frame. Beyond the outermost centres values are held.

    Separable, in float32, a few frames at a time: columns on the small map first (h, w) ->
    (h, W), then rows (h, W) -> (H, W), each output value written by one multiply-add. A
    (240, 144, 256) stack to 720p takes about 0.3 s on one core.

    Parameters
    ----------
    maps : ndarray of shape (T, h, w)
    size : (int, int)
        ``(H, W)`` of the output.
    cell : float, (float, float) or None
        Cell size in output pixels, both axes or ``(rows, columns)``
        (:func:`skavc.features.grey_blocks` blocks); None for cells tiling the whole frame.
    out : ndarray of shape (T, H, W), float32, optional
        Written in place and returned.

    Returns
    -------
    resized : ndarray of shape (T, H, W), float32

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.localization import upsample_bilinear
    >>> grid = np.array([[[0.0, 1.0], [1.0, 0.0]]])  # one frame, 2 x 2 cells
    >>> upsample_bilinear(grid, (4, 4))[0]  # each cell covers 2 x 2 pixels
    array([[0.   , 0.25 , 0.75 , 1.   ],
           [0.25 , 0.375, 0.625, 0.75 ],
           [0.75 , 0.625, 0.375, 0.25 ],
           [1.   , 0.75 , 0.25 , 0.   ]], dtype=float32)
    """
    maps = np.asarray(maps, dtype=np.float32)
    T, h, w = maps.shape
    H, W = size
    cy, cx = (cell, cell) if cell is None or np.isscalar(cell) else cell
    ylo, yfrac = _interp_taps(H, h, cy)
    xlo, xfrac = _interp_taps(W, w, cx)
    if out is None:
        out = np.empty((T, H, W), dtype=np.float32)
    for t0 in range(0, T, _RESIZE_CHUNK):
        chunk = maps[t0 : t0 + _RESIZE_CHUNK]
        n = chunk.shape[0]
        # Columns, on the transposed small maps (h rows): gathered whole, where a loop over the
        # W output columns would make 2 W small numpy calls.
        columns = _gather_axis1(np.ascontiguousarray(chunk.transpose(0, 2, 1)), xlo, xfrac)
        _resize_axis1(np.ascontiguousarray(columns.transpose(0, 2, 1)), ylo, yfrac, out[t0 : t0 + n])
    return out


def block_means(maps, k):
    """Means of a stack of maps over ``k x k`` pixel blocks (the last ``H % k`` rows, ``W % k`` columns dropped).

    Parameters
    ----------
    maps : ndarray of shape (T, H, W)
    k : int

    Returns
    -------
    means : ndarray of shape (T, H // k, W // k), float32
    """
    T, H, W = maps.shape
    h, w = H // k, W // k
    out = np.empty((T, h, w), dtype=np.float32)
    for t in range(T):  # rows of a block first (whole rows), then the columns of the row sums
        frame = maps[t, : h * k, : w * k]
        rows = frame[0::k].astype(np.float32)
        for i in range(1, k):
            rows += frame[i::k]
        rows = rows.reshape(h, w, k)
        out[t] = rows.sum(axis=2)
    out /= np.float32(k * k)
    return out


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

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.localization import fuse_evidence
    >>> synchrony_shape = np.zeros((2, 4, 4), np.float32)
    >>> synchrony_shape[:, 1, 1] = 1.0  # 2 frames of 4 x 4 pixels: synchrony finds the source at (1, 1)
    >>> learned = (np.full((2, 4, 4), 0.25, np.float32), np.array([0.9, 0.2]))  # (shape, confidence)
    >>> shape, confidence = fuse_evidence(learned, (synchrony_shape, np.array([0.8, 0.1])))
    >>> float(shape[0, 1, 1]), confidence  # synchrony's shape times sqrt(learned's); synchrony's confidence
    (0.5, array([0.8, 0.1]))
    >>> fuse_evidence(learned, (synchrony_shape, np.array([0.8, 0.1])), "mean")[1]
    array([0.85, 0.15])
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


def refine_blocks(colour, shape, *, bins=_REFINE_BINS, blur=_REFINE_BLUR):
    """Sharpen a coarse source shape to the outline of what the frame shows there, on a block grid.

    Per frame, a colour histogram of the source (blocks weighted by
    ``shape ** 2``) and one of the rest (weighted by ``(1 - shape) ** 2``)
    give each block a colour likelihood ratio; with the blurred shape as the
    prior probability of the source, the posterior is the refined shape (a
    one-step, GrabCut-like colour segmentation). Where the colours do not
    tell source from background the posterior stays at the prior. Frames are
    processed a chunk at a time, all of a chunk's histograms in one ``bincount``.

    Parameters
    ----------
    colour : ndarray of shape (T, h, w, 3)
        Mean RGB of each block, 0-255 (``skavc.features.video.colour_blocks``).
    shape : ndarray of shape (T, h, w), in [0, 1]
        The shape on the same blocks.
    bins : int
        Histogram bins per colour channel.
    blur : float
        Standard deviation of the prior's Gaussian blur, as a fraction of the shorter side (in blocks).

    Returns
    -------
    refined : ndarray of shape (T, h, w), float32 in [0, 1]

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.localization import refine_blocks
    >>> colour = np.zeros((1, 16, 16, 3), np.float32)
    >>> colour[..., 1] = 160.0  # one frame of 16 x 16 blocks: a green background ...
    >>> colour[:, 4:8, 4:8] = (200.0, 30.0, 30.0)  # ... and a red object
    >>> shape = np.zeros((1, 16, 16))
    >>> shape[:, 2:10, 2:10] = 0.8  # a coarse shape: the object and a margin of background around it
    >>> refine_blocks(colour, shape)[0, [5, 3, 12], [5, 3, 12]].round(2)  # on the object, the margin, elsewhere
    array([1.  , 0.75, 0.01], dtype=float32)
    """
    from scipy.ndimage import gaussian_filter

    T, h, w = shape.shape
    n_bins = bins**3
    out = np.empty((T, h, w), dtype=np.float32)
    for t0 in range(0, T, _REFINE_CHUNK):
        c = colour[t0 : t0 + _REFINE_CHUNK]
        n = c.shape[0]
        q = np.minimum((c * np.float32(bins / 256.0)).astype(np.intp), bins - 1)
        # Bin of each block, offset by n_bins per frame: one bincount gives every frame's histogram.
        idx = ((q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]).reshape(n, -1)
        idx += (np.arange(n) * n_bins)[:, None]
        s = np.asarray(shape[t0 : t0 + n], dtype=np.float32)
        prior = np.clip(gaussian_filter(s, (0, blur * min(h, w), blur * min(h, w)), mode="nearest"),
                        0.02, 0.98).reshape(n, -1)
        s = s.reshape(n, -1)
        # Additive smoothing: colours never seen on one side keep a small likelihood there.
        hf = np.bincount(idx.ravel(), weights=(s**2).ravel(), minlength=n * n_bins).reshape(n, n_bins)
        hb = np.bincount(idx.ravel(), weights=((1 - s) ** 2).ravel(), minlength=n * n_bins).reshape(n, n_bins)
        hf += 1.0 / n_bins
        hb += 1.0 / n_bins
        hf /= hf.sum(axis=1, keepdims=True)
        hb /= hb.sum(axis=1, keepdims=True)
        lf, lb = hf.ravel()[idx], hb.ravel()[idx]
        out[t0 : t0 + n] = (prior * lf / (prior * lf + (1 - prior) * lb)).reshape(n, h, w)
    return out


def cell_sizes(size, grid_shape, cell=None):
    """``(rows, columns)`` cell size in pixels of a grid of ``grid_shape`` cells over frames of ``size``.

    ``cell`` as in :func:`upsample_bilinear`: one size for both axes, a pair, or None for
    cells tiling the whole frame.
    """
    if cell is None:
        return size[0] / grid_shape[0], size[1] / grid_shape[1]
    return (cell, cell) if np.isscalar(cell) else tuple(cell)


def cells_to_blocks(shape, size, k, cell=None):
    """A shape on a grid of cells, sampled at the centres of the frames' ``k x k`` pixel blocks.

    For a bilinear shape this is the mean over each block wherever the shape is linear within
    the block (everywhere but the blocks straddling a cell centre), without the full-size
    shape in between.

    Parameters
    ----------
    shape : ndarray of shape (T, h, w)
    size : (int, int)
        ``(H, W)`` of the frames.
    k : int
        Block side in pixels.
    cell : float, (float, float) or None
        Cell size in pixels, as in :func:`upsample_bilinear`.

    Returns
    -------
    blocks : ndarray of shape (T, H // k, W // k), float32
    """
    cy, cx = cell_sizes(size, shape.shape[1:], cell)
    if cy == cx == k:
        return np.asarray(shape, dtype=np.float32)  # already on those blocks
    return upsample_bilinear(shape, (size[0] // k, size[1] // k), cell=(cy / k, cx / k))


#: A speaking face is lit at this share of its probability of speaking, its mouth at the whole:
#: the sound comes from the mouth (the map's peak and its >= 0.5 outline sit there), the face
#: around it is shown as what makes it.
_FACE_SHARE = 0.8


def paint_faces(grid, size, cell, faces, probabilities, *, threshold=0.5):
    """Grid maps with each speaking face lit by its probability of speaking, its mouth the brightest.

    Parameters
    ----------
    grid : ndarray of shape (T, h, w), float32 in [0, 1]
        Maps on a grid of cells (``confidence * shape``); not modified.
    size : (int, int)
        ``(H, W)`` of the frames.
    cell : float, (float, float) or None
        Cell size in pixels, as in :func:`upsample_bilinear`.
    faces : sequence of (frames (n,), boxes (n, 4), mouths (n, 4))
        Per face, the frames it is seen in, its box and its mouth's box there
        (``(x0, y0, x1, y1)`` in pixels; :func:`skavc.features.mouth_boxes`).
    probabilities : sequence of ndarray of shape (n,)
        Per face, its probability of speaking in those frames
        (:func:`skavc.features.tracks_speaking`).
    threshold : float, default=0.5
        Faces are lit only in frames where they speak (probability >= threshold): a face that
        does not is no evidence of where the sound comes from, and lighting it faintly would
        make every face the map's peak wherever the rest of the map is dark.

    Returns
    -------
    ndarray of shape (T, h, w), float32
        ``max(grid, 0.8 p)`` over the cells whose centres lie in a speaking face's box and
        ``max(grid, p)`` over its mouth's; elsewhere ``grid``.

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.localization import paint_faces
    >>> grid = np.zeros((2, 8, 8), np.float32)  # 2 dark frames of 64 x 64 pixels, on cells of 8 pixels
    >>> boxes, mouths = np.tile([16.0, 16, 48, 48], (2, 1)), np.tile([24.0, 32, 40, 48], (2, 1))  # x0, y0, x1, y1
    >>> face = (np.array([0, 1]), boxes, mouths)  # seen in frames 0 and 1
    >>> lit = paint_faces(grid, (64, 64), 8.0, [face], [np.array([0.9, 0.3])])  # it speaks in frame 0
    >>> lit[0, 2:6, 2:6].round(2)  # the face's cells at 0.8 * 0.9, its mouth's at 0.9
    array([[0.72, 0.72, 0.72, 0.72],
           [0.72, 0.72, 0.72, 0.72],
           [0.72, 0.9 , 0.9 , 0.72],
           [0.72, 0.9 , 0.9 , 0.72]], dtype=float32)
    >>> float(lit[1].max())  # frame 1: silent face, not lit
    0.0
    """
    out = np.array(grid, dtype=np.float32, copy=True)
    cy, cx = cell_sizes(size, grid.shape[1:], cell)
    h, w = grid.shape[1:]

    def light(t, box, value):
        x0, y0, x1, y1 = box
        # cells whose centres ((i + 0.5) * cell) lie inside the box, at least the one under its centre
        i0, i1 = int(np.ceil(y0 / cy - 0.5)), int(np.floor(y1 / cy - 0.5))
        j0, j1 = int(np.ceil(x0 / cx - 0.5)), int(np.floor(x1 / cx - 0.5))
        if i1 < i0:
            i0 = i1 = int((y0 + y1) / 2 / cy)
        if j1 < j0:
            j0 = j1 = int((x0 + x1) / 2 / cx)
        i0, j0, i1, j1 = max(i0, 0), max(j0, 0), min(i1, h - 1), min(j1, w - 1)
        if i0 <= i1 and j0 <= j1:
            np.maximum(out[t, i0 : i1 + 1, j0 : j1 + 1], value, out=out[t, i0 : i1 + 1, j0 : j1 + 1])

    for (frames, boxes, mouths), p in zip(faces, probabilities):
        for t, box, mouth, value in zip(frames, boxes, mouths, p):
            if value >= threshold:
                light(t, box, _FACE_SHARE * value)
                light(t, mouth, value)
    return out


def refine_shape(frames, shape, *, max_size=WORK_SIZE, bins=_REFINE_BINS, blur=_REFINE_BLUR):
    """Sharpen a coarse source shape to the outline of what the frame shows there.

    :func:`refine_blocks` on blocks averaged to at most ``max_size`` pixels along the longer
    side, resized back to the frames' size.

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

    Examples
    --------
    >>> from skavc.datasets import make_av_clips
    >>> from skavc.localization import refine_shape, synchrony_evidence
    >>> clips, truth = make_av_clips(n_clips=1, duration=2.0, random_state=0)
    >>> clip, off_source = clips[0], ~truth.source_masks[0]  # the pixels that are not the sounding object's
    >>> shape, confidence = synchrony_evidence(clip.audio, clip.sample_rate, clip.frames, clip.fps)  # coarse
    >>> refined = refine_shape(clip.frames, shape)
    >>> refined.shape  # the frames' size, in [0, 1]
    (50, 128, 128)
    >>> [round(float((s[off_source] > 0.5).mean()), 2) for s in (shape, refined)]  # share of background lit
    [0.05, 0.01]
    """
    T, H, W, _ = frames.shape
    k = block_size(H, W, max_size)
    refined = refine_blocks(colour_blocks(frames, k), block_means(shape, k), bins=bins, blur=blur)
    return upsample_bilinear(refined, (H, W), cell=k)


def evidence_to_maps(shape, confidence, size=None, cell=None):
    """``confidence * shape``, clipped to [0, 1], as float32 maps (T, H, W).

    Parameters
    ----------
    shape : ndarray of shape (T, h, w), in [0, 1]
        At the frames' size, or on a grid of cells to resize to ``size``.
    confidence : ndarray of shape (T,)
    size : (int, int) or None
        ``(H, W)`` of the frames when ``shape`` is a grid of cells; None when it is at that size.
    cell : float, (float, float) or None
        With ``size``: the cell size in pixels, as in :func:`upsample_bilinear`.

    Returns
    -------
    maps : ndarray of shape (T, H, W), float32 in [0, 1]
        The product on the grid, then resized (bilinear weights are convex: values stay in [0, 1]).

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.localization import evidence_to_maps
    >>> shape = np.array([[[0.2, 1.0], [0.5, 0.0]]])  # one frame, 2 x 2 cells
    >>> evidence_to_maps(shape, np.array([0.5]))  # never brighter than the frame's confidence
    array([[[0.1 , 0.5 ],
            [0.25, 0.  ]]], dtype=float32)
    >>> evidence_to_maps(shape, np.array([0.5]), size=(4, 4)).shape  # resized to frames of 4 x 4 pixels
    (1, 4, 4)
    """
    maps = np.asarray(confidence, dtype=np.float32)[:, None, None] * np.asarray(shape, dtype=np.float32)
    maps = np.clip(maps, 0.0, 1.0)
    return maps if size is None else upsample_bilinear(maps, size, cell=cell)


def shape_to_maps(frames, shape, confidence, cell=None, *, refine=True, max_size=WORK_SIZE):
    """Maps at the frames' size from a shape on a grid of cells, refined on blocks when asked.

    The shape is sampled on blocks of at most ``max_size`` pixels along the longer side
    (:func:`~skavc.localization._maps.cells_to_blocks`), refined there (:func:`refine_blocks`), weighted by the
    confidence and resized once to the frames' size (:func:`evidence_to_maps`): nothing
    full-size is made but the maps themselves. As :func:`refine_shape` on the shape resized
    to full size, but for the blocks that straddle a cell centre (sampled there, not averaged).

    Parameters
    ----------
    frames : ndarray of shape (T, H, W, 3), uint8
    shape : ndarray of shape (T, h, w), in [0, 1]
    confidence : ndarray of shape (T,)
    cell : float, (float, float) or None
        Cell size of ``shape`` in pixels, as in :func:`upsample_bilinear`.
    refine : bool, default=True
    max_size : int
        Blocks along the longer side for the refinement (at most).

    Returns
    -------
    maps : ndarray of shape (T, H, W), float32 in [0, 1]

    Examples
    --------
    >>> from skavc.datasets import make_av_clips
    >>> from skavc.localization import shape_to_maps, synchrony_cells
    >>> clips, truth = make_av_clips(n_clips=1, duration=2.0, random_state=0)
    >>> clip, on_source = clips[0], truth.source_masks[0]  # the sounding object's pixels
    >>> shape, confidence, cell = synchrony_cells(clip.audio, clip.sample_rate, clip.frames, clip.fps)
    >>> maps = shape_to_maps(clip.frames, shape, confidence, cell=cell)  # from 64 x 64 cells of 2 pixels
    >>> maps.shape, round(float(maps[on_source].mean()), 1), round(float(maps[~on_source].mean()), 1)
    ((50, 128, 128), 0.9, 0.0)
    """
    size = frames.shape[1:3]
    if refine:
        k = block_size(*size, max_size)
        shape = refine_blocks(colour_blocks(frames, k), cells_to_blocks(shape, size, k, cell))
        cell = k
    return evidence_to_maps(shape, confidence, size, cell)
