"""Visual features: how much the picture changes, block by block and frame by frame.

Array in, array out, one job each (in the style of ``librosa.feature``):

* :func:`block_size` and :func:`grey_blocks`: greyscale (BT.601 luma) frames averaged over
  square pixel blocks, so that the longer side has at most ``max_size`` blocks;
  :func:`colour_blocks`: the same blocks' mean colour.
* :func:`estimate_shifts` and :func:`shift_frames`: the global translation (camera shake, slow
  pans) between consecutive frames, found to a fraction of a block, and its removal.
* :func:`frame_changes`: the signed change of every block from the previous frame, camera motion
  and flicker removed (localisation: which blocks change when the sound does).
* :func:`motion_energy` (with :func:`motion_energy_times`): one number per frame, how much the
  picture changed (synchronisation: when things move).

Conventions. Frames are uint8 RGB of shape (T, H, W, 3); frame ``f`` shows the instant
``f / fps``. Grey levels are in 0-255 units throughout. A change stored at index ``t`` is frame
``t`` minus frame ``t - 1`` (index 0 holds 0). A shift ``(dy, dx)`` of frame pair ``t`` means that
``cur[y, x]`` best matches ``prev[y + dy, x + dx]``, in blocks (rows, columns).
"""

import numpy as np

from .._validation import check_frames, check_int, check_positive, check_real
from .time import rises

__all__ = [
    "block_size",
    "colour_blocks",
    "estimate_shifts",
    "frame_changes",
    "grey_blocks",
    "motion_energy",
    "motion_energy_times",
    "shift_frames",
]

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601 grey
_CHUNK_VALUES = 1 << 24      # float32 values held at once per chunk of frames (64 MB)
_ALIGN_CLIP = 10.0           # grey levels: per-pixel cap of the camera-alignment cost
_PREFER_STILL = 0.9          # the zero shift wins unless another explains a frame 10 % better


# ---------------------------------------------------------------------------
# Greyscale blocks
# ---------------------------------------------------------------------------


#: Larger side (pixels) a long video's frames are decoded at where only their motion is read (sync,
#: separation): :func:`motion_energy` averages frames over at most 64 blocks a side, so 4 pixels a
#: block keep its input nearly as it is at full size, at a fraction of the decoding's memory and time.
MOTION_SIDE = 256


def block_size(height, width, max_size=64):
    """Side, in pixels, of the square blocks that bring the longer frame side to <= ``max_size`` blocks.

    Parameters
    ----------
    height, width : int
        Frame size in pixels.
    max_size : int, default=64
        Largest number of blocks along the longer side.

    Returns
    -------
    k : int
        ``ceil(max(height, width) / max_size)``, at least 1 and at most the shorter side (so
        that there is always at least one block along each side).

    Examples
    --------
    >>> from skavc.features import block_size
    >>> block_size(720, 1280), block_size(128, 128)  # 1280 / 20 = 64 blocks, 128 / 2 = 64 blocks
    (20, 2)
    """
    return int(max(1, min(np.ceil(max(height, width) / max_size), height, width)))


def grey_blocks(frames, k):
    """Luma of the frames averaged over ``k x k`` pixel blocks.

    Parameters
    ----------
    frames : ndarray of shape (T, H, W, 3), uint8
        RGB frames.
    k : int
        Block side in pixels (:func:`block_size`), ``1 <= k <= min(H, W)``.

    Returns
    -------
    grey : ndarray of shape (T, H // k, W // k), float32
        Grey levels 0-255 (ITU-R BT.601 luma). The last ``H % k`` rows and ``W % k`` columns
        are dropped. The luma of each block's mean colour (``colour_blocks``, the same as
        the mean of the pixels' luma): a long video never needs a float copy of itself.

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.features import grey_blocks
    >>> frames = np.zeros((2, 4, 6, 3), np.uint8); frames[..., 0] = 200  # red
    >>> grey = grey_blocks(frames, k=2)
    >>> grey.shape, grey.dtype, round(float(grey[0, 0, 0]), 1)  # 0.299 * 200
    ((2, 2, 3), dtype('float32'), 59.8)
    """
    return colour_blocks(frames, k) @ _LUMA


def colour_blocks(frames, k):
    """Mean colour of the frames over ``k x k`` pixel blocks.

    Sums are exact (integers: rows of a block first, whole contiguous rows at a time, then the
    columns of the row sums), so each frame is read once and no float copy of it is made: a
    720p frame takes about 2 ms at ``k = 5``, several times faster than a float ``mean``.

    Parameters
    ----------
    frames : ndarray of shape (T, H, W, 3), uint8
        RGB frames.
    k : int
        Block side in pixels (:func:`block_size`), ``1 <= k <= min(H, W)``.

    Returns
    -------
    colour : ndarray of shape (T, H // k, W // k, 3), float32
        Mean R, G, B per block, 0-255. The last ``H % k`` rows and ``W % k`` columns are
        dropped, as in :func:`grey_blocks`.
    """
    T, H, W, _ = frames.shape
    h, w = H // k, W // k
    out = np.empty((T, h, w, 3), dtype=np.float32)
    # uint16 holds the sum of k rows up to k = 257 (257 * 255 < 2 ** 16); wider blocks add in uint32.
    row_type = np.uint16 if k <= 257 else np.uint32
    for t in range(T):
        frame = frames[t, : h * k, : w * k]
        rows = frame[0::k].astype(row_type)
        for i in range(1, k):
            rows += frame[i::k]
        rows = rows.reshape(h, w, k, 3)
        block = out[t]
        block[...] = rows[:, :, 0]
        for j in range(1, k):
            block += rows[:, :, j]  # float32 holds these integer sums exactly (< 2 ** 24 up to k = 256)
    out /= np.float32(k * k)  # a division, exact where the mean is a whole number (a bin edge stays one)
    return out


# ---------------------------------------------------------------------------
# Camera motion
# ---------------------------------------------------------------------------


def _shift_radius(h, w, max_shift):
    """``max_shift`` reduced so that the compared interior keeps at least half of each side."""
    return int(max(0, min(max_shift, (h - 4) // 4, (w - 4) // 4)))


def _vertex_offset(c_minus, c0, c_plus):
    """Sub-sample position (in [-0.5, 0.5]) of the minimum of a parabola through three costs."""
    curvature = c_minus - 2.0 * c0 + c_plus
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = np.where(curvature > 0, 0.5 * (c_minus - c_plus) / curvature, 0.0)
    return np.clip(delta, -0.5, 0.5)


def estimate_shifts(cur, prev, max_shift):
    """Global translation from each of ``prev`` to the matching ``cur``, to a fraction of a block.

    For every candidate whole-block shift ``|dy|, |dx| <= r`` the cost is the truncated L1
    difference ``mean(min(|d - mean(d)|, 10))`` over the interior (a margin of ``r + 1``
    blocks dropped), where ``d = cur - prev`` shifted. The cap of 10 grey levels keeps a
    moving object that covers part of the frame from outvoting the still background, and the
    mean removal ignores a global brightness change. The zero shift's cost is multiplied by
    0.9, so the camera counts as still unless a shift explains the frame 10 % better (a moving
    object on a still background must not read as a pan). The best whole shift is refined on
    each axis by the vertex of the parabola through its cost and its two neighbours' (when it
    is not at the edge of the search, and unless it matches exactly, as a repeated frame does),
    so shakes of a fraction of a block are followed too: at the default 64 blocks a side, a
    1080p camera shaking by 10 pixels moves the picture by about a third of a block. (A
    parabola through an L1-type cost is biased towards the whole shift: on smooth images a
    fractional part is found to within about 0.2 block, about half the way.)

    The cost and the refinement were tuned for :func:`motion_energy` (synchronisation) on
    generated clips with camera shake of 2-3 pixels; :func:`frame_changes` (localisation) uses
    the same estimator.

    Parameters
    ----------
    cur, prev : ndarray of shape (n, h, w), float32 or float64
        Grey images (:func:`grey_blocks`), ``prev[i]`` the frame before ``cur[i]``.
    max_shift : int
        Largest shift searched per axis, in blocks; reduced to ``(min(h, w) - 4) // 4`` so that
        the compared interior keeps at least half of each side. ``0`` returns zeros.

    Returns
    -------
    shifts : ndarray of shape (n, 2), float64
        ``(dy, dx)`` per pair, in blocks, ``|dy|, |dx| <= r + 0.5``: ``cur[y, x]`` best matches
        ``prev[y + dy, x + dx]`` (a camera panning right moves the picture left:
        ``dx > 0``). Apply with :func:`shift_frames`.

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.features import estimate_shifts
    >>> prev = np.random.default_rng(0).uniform(0, 255, (1, 16, 16))
    >>> cur = np.roll(prev, -1, axis=2)  # cur[y, x] = prev[y, x + 1]: the picture moved left
    >>> estimate_shifts(cur, prev, max_shift=2)  # (dy, dx) in blocks
    array([[0., 1.]])
    """
    n, h, w = cur.shape
    r = _shift_radius(h, w, max_shift)
    shifts = np.zeros((n, 2))
    if r == 0 or n == 0:
        return shifts
    m = r + 1  # one more block of margin for the sub-block interpolation

    def view(frames, dy, dx):
        return frames[..., m + dy : h - m + dy, m + dx : w - m + dx]

    inner = view(cur, 0, 0)
    side = 2 * r + 1
    costs = np.empty((side, side, n))
    for iy in range(side):
        for ix in range(side):
            d = (inner - view(prev, iy - r, ix - r)).reshape(n, -1)
            d -= d.mean(axis=1, keepdims=True)
            costs[iy, ix] = np.minimum(np.abs(d), _ALIGN_CLIP).mean(axis=1)
    biased = costs.copy()
    biased[r, r] *= _PREFER_STILL
    best = np.argmin(biased.reshape(side * side, n), axis=0)
    iy, ix = np.divmod(best, side)
    t = np.arange(n)
    fy = np.zeros(n)
    fx = np.zeros(n)
    exact = costs[iy, ix, t] == 0  # a perfect whole-block match (a repeated frame): nothing to refine
    ok = (iy > 0) & (iy < side - 1) & ~exact
    fy[ok] = _vertex_offset(costs[iy[ok] - 1, ix[ok], t[ok]], costs[iy[ok], ix[ok], t[ok]],
                            costs[iy[ok] + 1, ix[ok], t[ok]])
    ok = (ix > 0) & (ix < side - 1) & ~exact
    fx[ok] = _vertex_offset(costs[iy[ok], ix[ok] - 1, t[ok]], costs[iy[ok], ix[ok], t[ok]],
                            costs[iy[ok], ix[ok] + 1, t[ok]])
    shifts[:, 0] = (iy - r) + fy
    shifts[:, 1] = (ix - r) + fx
    return shifts


def shift_frames(frames, shifts):
    """Frames moved by per-frame sub-block shifts, by bilinear interpolation.

    Parameters
    ----------
    frames : ndarray of shape (n, h, w)
        Grey images.
    shifts : array-like of shape (n, 2)
        ``(dy, dx)`` per frame, in blocks (as :func:`estimate_shifts` returns them).

    Returns
    -------
    shifted : ndarray of shape (n, h, w), float64
        ``shifted[t, y, x] = frames[t, y + dy, x + dx]``, interpolated bilinearly between the
        four nearest blocks; positions beyond the border take the nearest border value (the
        full grid is kept). A zero shift returns the frame unchanged.

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.features import shift_frames
    >>> frames = np.arange(16.0).reshape(1, 4, 4)
    >>> shift_frames(frames, [[0, 1]])[0, 0], shift_frames(frames, [[0, 0.5]])[0, 0]
    (array([1., 2., 3., 3.]), array([0.5, 1.5, 2.5, 3. ]))
    """
    frames = np.asarray(frames)
    shifts = np.asarray(shifts, dtype=np.float64).reshape(-1, 2)
    n, h, w = frames.shape
    out = frames.astype(np.float64)
    whole = np.round(shifts).astype(int)
    frac = shifts - whole
    moved = np.flatnonzero(np.any(shifts != 0, axis=1))
    if moved.size == 0:
        return out
    p = int(np.abs(whole[moved]).max()) + 1  # margin: the whole shift plus one interpolation step
    for t in moved:  # one bilinear blend of four shifted views per frame
        padded = np.pad(frames[t], p, mode="edge")

        def view(dy, dx):
            return padded[p + dy : p + dy + h, p + dx : p + dx + w]

        dy, dx = whole[t]
        sy, sx = int(np.sign(frac[t, 0])), int(np.sign(frac[t, 1]))
        ay, ax = abs(frac[t, 0]), abs(frac[t, 1])
        out[t] = ((1 - ay) * (1 - ax) * view(dy, dx) + ay * (1 - ax) * view(dy + sy, dx)
                  + (1 - ay) * ax * view(dy, dx + sx) + ay * ax * view(dy + sy, dx + sx))
    return out


# ---------------------------------------------------------------------------
# Change per block (localisation) and per frame (synchronisation)
# ---------------------------------------------------------------------------


def frame_changes(grey, *, max_shift=1, noise_floor=2.0):
    """Signed change of every block from the previous frame, camera motion and flicker removed.

    The global translation between consecutive frames (up to ``max_shift`` blocks, to a fraction
    of a block: :func:`estimate_shifts`) is removed from the previous frame
    (:func:`shift_frames`) before differencing; the frame's median change (global brightness
    flicker, residual camera motion) is subtracted; changes within ``noise_floor`` grey levels
    (sensor and compression noise) are shrunk to zero (soft threshold, the sign kept).

    Parameters
    ----------
    grey : ndarray of shape (T, h, w)
        Grey images (:func:`grey_blocks`), grey levels 0-255.
    max_shift : int, default=1
        Largest camera shift compensated between two frames, in blocks; ``0`` disables the
        compensation.
    noise_floor : float, default=2.0
        Grey levels of change treated as noise, >= 0.

    Returns
    -------
    changes : ndarray of shape (T, h, w), float32
        ``changes[t]`` is frame ``t`` minus frame ``t - 1`` in grey levels, shrunk by
        ``noise_floor``; ``changes[0]`` is 0. The full grid is kept (borders uncovered by a
        shift compare with the nearest border block).

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.features import frame_changes
    >>> grey = np.zeros((3, 8, 8)); grey[2, 2:4, 2:4] = 100  # a bright patch appears in frame 2
    >>> changes = frame_changes(grey)
    >>> changes.shape, float(changes[1].max()), float(changes[2].max())  # 100 minus the noise floor 2
    ((3, 8, 8), 0.0, 98.0)
    """
    grey = np.asarray(grey)
    if grey.ndim != 3:
        raise ValueError(f"grey must have shape (T, h, w); got {grey.shape}")
    max_shift = check_int(max_shift, name="max_shift", minimum=0)
    noise_floor = check_real(noise_floor, name="noise_floor", minimum=0.0)
    T, h, w = grey.shape
    out = np.zeros((T, h, w), dtype=np.float32)
    if T < 2:
        return out
    chunk = max(1, _CHUNK_VALUES // (h * w * 4))
    for t0 in range(1, T, chunk):
        t1 = min(t0 + chunk, T)
        cur, prev = grey[t0:t1], grey[t0 - 1 : t1 - 1]
        d = (cur - shift_frames(prev, estimate_shifts(cur, prev, max_shift))).astype(np.float32)
        d -= np.median(d.reshape(t1 - t0, -1), axis=1)[:, None, None]
        out[t0:t1] = np.sign(d) * np.maximum(np.abs(d) - noise_floor, 0.0)
    return out


def motion_energy(frames, *, max_size=64, threshold=2.0, max_shift=3):
    """Visual change energy between consecutive frames, robust for real video.

    Each frame is converted to grey (BT.601 luma) and averaged over square blocks so that its
    larger side is at most ``max_size`` blocks (:func:`grey_blocks`). For every pair of
    consecutive frames the global shift of at most ``max_shift`` blocks that best aligns them,
    found to a fraction of a block (:func:`estimate_shifts`), is removed (camera shake and slow
    pans), then the median difference (a global brightness change: exposure, flicker, fades),
    and what remains above ``threshold`` grey levels (compression and sensor noise) is averaged
    over the frame's interior (a margin of the search radius plus one block dropped, where a
    shifted frame has no data).

    Parameters
    ----------
    frames : ndarray of shape (T, H, W, 3), dtype uint8
        RGB frames.
    max_size : int, default=64
        Largest side of the greyscale images compared, in blocks.
    threshold : float, default=2.0
        Per-pixel change, in grey levels (0-255), below which a change counts as noise.
    max_shift : int, default=3
        Largest global shift searched, in blocks per frame (at the default ``max_size`` about
        5 % of the frame). ``0`` disables the camera compensation.

    Returns
    -------
    energy : ndarray of shape (T,), float64, >= 0
        ``energy[t]`` is the change from frame ``t - 1`` to frame ``t`` (mean grey levels per
        block above ``threshold``); ``energy[0] = energy[1]``: there is no frame before the
        first, and a 0 there would read as motion starting with the clip (a rise, an onset,
        an event to align a sound to) wherever a clip is cut mid-motion. A change seen at frame ``t`` happened
        some time between the instants ``(t - 1) / fps`` and ``t / fps``, so its unbiased
        timestamp is the midpoint ``(t - 0.5) / fps``: see :func:`motion_energy_times`.
        Static frames give all zeros.

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.features import motion_energy
    >>> frames = np.zeros((5, 64, 64, 3), np.uint8); frames[3:, 20:40, 20:40] = 255  # a square appears
    >>> motion_energy(frames).round(1)  # one value per frame: the change from the frame before
    array([ 0. ,  0. ,  0. , 32.3,  0. ])
    """
    frames = check_frames(frames, name="frames")
    max_size = check_int(max_size, name="max_size", minimum=1)
    max_shift = check_int(max_shift, name="max_shift", minimum=0)
    threshold = check_real(threshold, name="threshold", minimum=0.0)
    grey = grey_blocks(frames, block_size(frames.shape[1], frames.shape[2], max_size))
    T, h, w = grey.shape
    energy = np.zeros(T, dtype=np.float64)
    if T < 2:
        return energy
    m = _shift_radius(h, w, max_shift) + 1  # interior: where every searched shift has data
    chunk = max(1, _CHUNK_VALUES // (h * w * 4))
    for t0 in range(1, T, chunk):
        t1 = min(t0 + chunk, T)
        cur, prev = grey[t0:t1], grey[t0 - 1 : t1 - 1]
        aligned = shift_frames(prev, estimate_shifts(cur, prev, max_shift))
        d = (cur[:, m : h - m, m : w - m] - aligned[:, m : h - m, m : w - m]).astype(np.float32)
        d -= np.median(d.reshape(t1 - t0, -1), axis=1)[:, None, None]
        energy[t0:t1] = np.maximum(np.abs(d) - threshold, 0.0).reshape(t1 - t0, -1).mean(axis=1)
    energy[0] = energy[1]
    return energy


def motion_energy_times(n_frames, fps):
    """Timestamps of :func:`motion_energy` values, in seconds on the video timeline.

    Parameters
    ----------
    n_frames : int
        Number of frames ``T``.
    fps : float
        Frame rate; frame ``f`` shows the instant ``f / fps``.

    Returns
    -------
    times : ndarray of shape (T,)
        ``(t - 0.5) / fps``: the midpoint of the interval in which the change from frame
        ``t - 1`` to frame ``t`` happened (``times[0]``, half a frame before the clip, carries
        a copy of the first measured change).

    Examples
    --------
    >>> from skavc.features import motion_energy_times
    >>> motion_energy_times(4, fps=25)  # seconds, half a frame before each frame's instant
    array([-0.02,  0.02,  0.06,  0.1 ])
    """
    fps = check_positive(fps, name="fps")
    n_frames = check_int(n_frames, name="n_frames", minimum=0)
    return (np.arange(n_frames) - 0.5) / fps


def _emphasise_rises(energy):
    """``energy`` plus its frame-to-frame increase: motion that starts weighs more than motion that
    fades. The audio onset envelope counts only increases, so without this a visible decay
    after each event (a flash fading over the next frames) pulls the estimate late; on
    generated clips it removes a bias of +2 ms (25 fps) and on decaying flashes of up to
    0.1 frame."""
    return energy + rises(energy)


def _mean_abs_frame_difference(frames):
    """Naive visual envelope: mean |grey difference| of consecutive full-size frames, (T,).

    No camera, brightness or noise compensation (the baseline of ``naive_sync_curve``);
    ``out[0] = 0``.
    """
    T = frames.shape[0]
    out = np.zeros(T)
    prev = frames[0].astype(np.float32) @ _LUMA
    for t in range(1, T):
        cur = frames[t].astype(np.float32) @ _LUMA
        out[t] = np.abs(cur - prev).mean()
        prev = cur
    return out
