"""Sound-source localisation: where in each frame the sound comes from.

Three maps, one output format (per clip a heat map ``(T, H, W)`` in [0, 1] at the
frames' own size, and a per-frame source confidence ``(T,)`` in [0, 1]):

- synchrony (training-free; Hershey and Movellan 2000, Kidron et al. 2005 "Pixels
  that sound"): per cell of a grid of at most 64 cells a side, the correlation
  over a sliding window (Gaussian, sd 1 s) between how much the cell changes from
  frame to frame (camera shift compensated, frame median and a noise floor
  removed) and how much the audio changes over the same interval (RMS change and
  rise in dB); confident where that peak stands above the clip's own chance level
  (the same with the audio circularly shifted) while the sound stands above the
  clip's noise floor.
- learned (Objects that Sound / LVS / EZ-VSL): a linear projection of the visual
  encoder's 7x7 feature map (standardised, PCA-whitened) into the estimator's
  embedding space, trained inside ``fit`` with a multiple-instance InfoNCE loss
  (each clip's audio against the log-sum-exp pooled positions of every clip's
  frame) and scored against the projected audio of the two seconds around each
  frame; its values are Platt-calibrated on clips held out of its training.
- fused: the synchrony shape weighted by the learned one (:func:`fuse_evidence`).

Where faces are seen (``faces=True``, the default), each face whose mouth moves with the sound
is lit over the method's map at its probability of speaking, its mouth brightest (:func:`paint_faces`,
:func:`skavc.features.tracks_speaking`): a person talking is the source even where the whole
frame's synchrony is weak (a speaker small in a corner inset).

Each method gives *evidence*, a ``shape`` (T, H, W) in [0, 1] (near 1 where the
source most likely is) and a ``confidence`` (T,) that a visible source is
sounding at all; by default the shape is then sharpened to the outline of what
the frame shows there (:func:`refine_shape`). Evidence stays on its grid of cells
and is refined (and fused) on blocks of at most 256 pixels a side; only the maps
are made at the frames' size (:func:`shape_to_maps`: 8 s of 720p at 30 fps take
about 1.6 s on one core, benchmarks/bench_localization_speed.py). The map is ``confidence * shape``:
it is never renormalised per frame, so a pixel counts as sounding when its value
is >= :data:`SOURCE_THRESHOLD` (0.5), which needs a frame confidence of 0.5 too.
Silence, off-screen sound or no moving source give low confidence and so a dark
map, never a confident blob.

The task functions (:func:`localize_clips`, :func:`fit_localization_head`) take an
:class:`skavc._encoding.EncodingContext`, the fitted heads and an ``embed_audio`` callable as
arguments; ``AVCorrespondence.localize`` delegates to them.
"""


import numpy as np
from sklearn.exceptions import NotFittedError

from .._validation import check_option
# audio_envelope, audio_changes, frame_changes and window_means lived here before features/:
# still importable from here, though not listed in __all__ (features/ is where they belong).
from ..features.video import colour_blocks
from ..features import (audio_changes, audio_envelope, block_size, frame_changes, sample_frame_indices,  # noqa: F401
                        mouth_boxes, sound_presence, tracks_speaking, window_means)
from ._learned import LocalizationHead, learned_evidence, mil_loss_and_grads, silence_gate
from ._maps import (
    FUSION_PRIOR_POWER,
    FUSIONS,
    SOURCE_THRESHOLD,
    WORK_SIZE,
    cell_sizes,
    cells_to_blocks,
    evidence_to_maps,
    fuse_evidence,
    paint_faces,
    refine_blocks,
    refine_shape,
    shape_to_maps,
    upsample_bilinear,
)
from ._windows import GridMaps, LocalizedWindow, regrid_windows
from ._synchrony import frame_peaks, synchrony_cells, synchrony_correlation, synchrony_evidence, synchrony_maps

__all__ = [
    "FUSION_PRIOR_POWER",
    "FUSIONS",
    "METHODS",
    "SOURCE_THRESHOLD",
    "GridMaps",
    "LocalizationHead",
    "LocalizedWindow",
    "evidence_to_maps",
    "fit_localization_head",
    "fuse_evidence",
    "grid_maps",
    "learned_clip_evidence",
    "learned_evidence",
    "localize_clips",
    "localize_windows",
    "regrid_windows",
    "mil_loss_and_grads",
    "paint_faces",
    "refine_blocks",
    "refine_shape",
    "resolve_method",
    "shape_to_maps",
    "silence_gate",
    "synchrony_cells",
    "synchrony_correlation",
    "synchrony_evidence",
    "synchrony_maps",
    "upsample_bilinear",
]

METHODS = ("auto", "learned", "synchrony", "fused")
# Frames encoded at once when localising: a long video's feature maps would not fit in memory.
_CHUNK_FRAMES = 256


def resolve_method(method, localization_head):
    """The method ``"auto"`` stands for ("fused" with a learned head, else "synchrony"), checked.

    Examples
    --------
    >>> from skavc.localization import resolve_method
    >>> resolve_method("auto", None), resolve_method("synchrony", None)  # no learned head
    ('synchrony', 'synchrony')
    >>> resolve_method("fused", None)
    Traceback (most recent call last):
        ...
    sklearn.exceptions.NotFittedError: method='fused' needs a localisation head: ...
    """
    check_option(method, name="method", options=METHODS)
    if method == "auto":
        return "fused" if localization_head is not None else "synchrony"
    if method in ("learned", "fused") and localization_head is None:
        raise NotFittedError(
            f"method={method!r} needs a localisation head: fit with localization=True first, "
            "or use method='synchrony'"
        )
    return method


def _audio_window_embeddings(context, embed_audio, audio, times, window):
    """Unit-norm audio embeddings (n_times, d) of the ``window`` seconds around each of ``times``."""
    steps = context.encode_audio(audio)
    return embed_audio(window_means(steps, context.audio_rate, times, window))


def learned_clip_evidence(context, head, embed_audio, clip, *, full_size=True):
    """One clip's learned (shape, confidence), the confidence silence-gated.

    The shape is at the frames' size, or with ``full_size=False`` on the head's grid of cells
    (which tile the frame).

    Examples
    --------
    >>> import numpy as np
    >>> from skavc import AVCorrespondence
    >>> from skavc.datasets import make_av_clips
    >>> from skavc.localization import fit_localization_head, learned_clip_evidence
    >>> context = AVCorrespondence()._context()  # as the estimator builds it
    >>> clips, truth = make_av_clips(n_clips=2, duration=1.0, random_state=0)
    >>> embed_audio = lambda features: features / np.linalg.norm(features, axis=1, keepdims=True)  # a stand-in
    >>> head = fit_localization_head(context, clips, embed_audio, rng=np.random.RandomState(0))
    >>> shape, confidence = learned_clip_evidence(context, head, embed_audio, clips[0], full_size=False)
    >>> shape.shape, shape.dtype, confidence.shape  # the head's 7 x 7 cells in each of 25 frames
    ((25, 7, 7), dtype('float32'), (25,))
    """
    times = np.arange(clip.n_frames) / clip.fps
    A = _audio_window_embeddings(context, embed_audio, clip.audio, times, head.audio_window)
    probabilities = np.concatenate([
        head.maps(context.encode_frame_maps(clip.frames[t0 : t0 + _CHUNK_FRAMES]), A[t0 : t0 + _CHUNK_FRAMES])
        for t0 in range(0, clip.n_frames, _CHUNK_FRAMES)
    ])
    gate = sound_presence(clip.audio, clip.sample_rate, times, head.audio_window)
    return learned_evidence(probabilities, clip.frames.shape[1:3] if full_size else None, gate)


def grid_maps(context, clip, method, *, localization_head=None, embed_audio=None, refine=True, fusion="prior",
              faces=True):
    """One clip's maps on the grid they are computed on, before the resize to the frames' size.

    What :func:`localize_clips` computes for one clip, but for the last step: its maps are
    ``upsample_bilinear(grid, size, cell=cell)`` of these, so a caller that draws (or scores) a
    few frames at a time never holds the full-size maps of a whole clip (a 10 s window of 720p
    at 30 fps would take 1.1 GB of float32).

    Parameters
    ----------
    context : EncodingContext
    clip : AVClip
    method : {"synchrony", "learned", "fused"}
        As resolved by :func:`resolve_method`.
    localization_head, embed_audio, refine, fusion, faces
        As in :func:`localize_clips`.

    Returns
    -------
    grid : ndarray of shape (T, h, w), float32 in [0, 1]
        ``confidence * shape`` on the grid of cells (``refine=True``: the refinement's blocks of
        at most ``WORK_SIZE`` pixels a side).
    cell : float or (float, float)
        Cell size in pixels of the frames, as :func:`upsample_bilinear` takes it.

    Examples
    --------
    >>> from skavc import AVCorrespondence
    >>> from skavc.datasets import make_av_clips
    >>> from skavc.localization import grid_maps, upsample_bilinear
    >>> context = AVCorrespondence()._context()  # as the estimator builds it
    >>> clips, truth = make_av_clips(n_clips=1, duration=2.0, random_state=0)
    >>> grid, cell = grid_maps(context, clips[0], "synchrony", refine=False)
    >>> grid.shape, cell  # 50 frames of 128 x 128 pixels, on 64 x 64 cells of 2 pixels
    ((50, 64, 64), 2)
    >>> upsample_bilinear(grid, (128, 128), cell=cell).shape  # the maps at the frames' size
    (50, 128, 128)
    """
    size = clip.frames.shape[1:3]
    if method in ("synchrony", "fused"):
        s_shape, s_confidence, s_cell = synchrony_cells(clip.audio, clip.sample_rate, clip.frames, clip.fps)
    if method in ("learned", "fused"):
        l_shape, l_confidence = learned_clip_evidence(context, localization_head, embed_audio, clip, full_size=False)
    if method == "synchrony":
        shape, confidence, cell = s_shape, s_confidence, s_cell
    elif method == "learned":
        shape, confidence, cell = l_shape, l_confidence, None
    else:  # the two grids differ: fused on the refinement's blocks
        k = block_size(*size, WORK_SIZE)
        shape, confidence = fuse_evidence((cells_to_blocks(l_shape, size, k), l_confidence),
                                          (cells_to_blocks(s_shape, size, k, s_cell), s_confidence), fusion)
        cell = k
    if refine:
        k = block_size(*size, WORK_SIZE)
        shape = refine_blocks(colour_blocks(clip.frames, k), cells_to_blocks(shape, size, k, cell))
        cell = k
    if cell is None:  # cells tiling the frame (the learned head's 7x7)
        cell = cell_sizes(size, shape.shape[1:])
    grid = evidence_to_maps(shape, confidence)
    if faces:
        tracks = context.face_tracks(clip.frames)
        if tracks:
            speaking = tracks_speaking(clip.audio, clip.sample_rate, tracks, clip.n_frames, clip.fps)
            grid = paint_faces(grid, size, cell, [(t.frames, t.boxes, mouth_boxes(t.points)) for t in tracks], speaking)
    return grid, cell


def localize_clips(context, X, method, *, localization_head=None, embed_audio=None, refine=True,
                   fusion="prior", faces=True):
    """Heat maps and per-frame confidences of where the sound comes from, per clip.

    Parameters
    ----------
    context : EncodingContext
    X : list of items (AVClip, (audio, frames) pairs or video paths)
    method : {"synchrony", "learned", "fused"}
        As resolved by :func:`resolve_method`.
    localization_head : LocalizationHead or None
        Needed by "learned" and "fused".
    embed_audio : callable or None
        Pooled audio encoder features (n, F) -> unit-norm embeddings (n, d) in the space the
        head was trained in; needed by "learned" and "fused".
    refine : bool, default=True
        Sharpen shapes with :func:`refine_shape`.
    fusion : str, default="prior"
        :func:`fuse_evidence`'s rule for "fused".
    faces : bool, default=True
        Light the faces that speak (:func:`paint_faces`: each face tracked in the frames,
        ``EncodingContext.face_tracks``, at its probability of speaking,
        :func:`skavc.features.tracks_speaking`) over the method's maps. Frames without a face
        keep the method's maps as they are.

    Returns
    -------
    results : list of (maps, confidence)
        Per clip, maps (T, H, W) float32 in [0, 1] and confidence (T,) float64.

    Examples
    --------
    >>> from skavc import AVCorrespondence
    >>> from skavc.datasets import make_av_clips
    >>> from skavc.localization import localize_clips
    >>> context = AVCorrespondence()._context()  # as the estimator builds it
    >>> clips, truth = make_av_clips(n_clips=1, duration=2.0, random_state=0)
    >>> (maps, confidence), = localize_clips(context, clips, "synchrony")
    >>> maps.shape, confidence.shape  # (T, H, W) in [0, 1]; one confidence per frame
    ((50, 128, 128), (50,))
    >>> on_source = truth.source_masks[0]  # the sounding object's pixels
    >>> round(float(maps[on_source].mean()), 1), round(float(maps[~on_source].mean()), 1)
    (0.9, 0.0)
    """
    if method in ("learned", "fused"):
        context.require_time_steps("learned localisation")

    def job(item, where):
        clip = context.clip(item, where)
        grid, cell = grid_maps(context, clip, method, localization_head=localization_head,
                               embed_audio=embed_audio, refine=refine, fusion=fusion, faces=faces)
        maps = upsample_bilinear(grid, clip.frames.shape[1:3], cell=cell)
        return maps, frame_peaks(maps)

    return context.map(job, X, desc="localize")


def localize_windows(context, windows, method, *, localization_head=None, embed_audio=None, refine=True,
                     fusion="prior", faces=True):
    """Where the sound comes from in each window of a long recording, one window at a time.

    Each window is localised on its own, as :func:`localize_clips` localises a clip (its
    synchrony chance level and refinement are the window's), so a recording that is one
    window gets :func:`localize_clips`'s maps and confidences exactly.

    Parameters
    ----------
    context : EncodingContext
    windows : iterable of AVClip
        Consecutive windows (``EncodingContext.windows``, :func:`skavc.io.iter_clips`), read
        one at a time: a window is let go before the next is asked for.
    method, localization_head, embed_audio, refine, fusion, faces
        As in :func:`localize_clips`.

    Yields
    ------
    window : LocalizedWindow
        The window's clip, its maps (resized from their grid when sliced) and per-frame
        confidences (T,), found as the maps are read.

    Examples
    --------
    >>> from skavc import AVClip, AVCorrespondence
    >>> from skavc.datasets import make_av_clips
    >>> from skavc.localization import localize_windows
    >>> context = AVCorrespondence()._context()  # as the estimator builds it
    >>> clips, truth = make_av_clips(n_clips=1, duration=2.0, random_state=0)
    >>> audio, frames = clips[0].audio, clips[0].frames  # 16 kHz, 25 fps
    >>> windows = (AVClip(audio[k * 16000:(k + 1) * 16000], 16000, frames[k * 25:(k + 1) * 25], 25.0, start=float(k))
    ...            for k in range(2))  # two windows of 1 s, read one at a time
    >>> [(window.start, window.maps.shape, window.confidence.shape)
    ...  for window in localize_windows(context, windows, "synchrony")]
    [(0.0, (25, 128, 128), (25,)), (1.0, (25, 128, 128), (25,))]
    """
    if method in ("learned", "fused"):
        context.require_time_steps("learned localisation")
    for clip in windows:
        grid, cell = grid_maps(context, clip, method, localization_head=localization_head, embed_audio=embed_audio,
                               refine=refine, fusion=fusion, faces=faces)
        maps = GridMaps(grid, clip.frames.shape[1:3], cell)
        window = LocalizedWindow(clip, maps)
        yield window
        del clip, grid, maps, window  # the reader then holds one window, not two


def fit_localization_head(context, X, embed_audio, *, rng, alpha=1e-4, log=None):
    """Train a :class:`LocalizationHead` on the clips of ``X``.

    ``embed_audio`` maps pooled audio features to the fitted correspondence embedding (the
    head learns to point at what that audio embedding matches); ``log(epoch, loss)`` as
    :func:`skavc._training.progress_logger` gives it.

    Examples
    --------
    >>> import numpy as np
    >>> from skavc import AVCorrespondence
    >>> from skavc.datasets import make_av_clips
    >>> from skavc.localization import fit_localization_head
    >>> context = AVCorrespondence()._context()  # as the estimator builds it
    >>> clips, truth = make_av_clips(n_clips=2, duration=1.0, random_state=0)
    >>> embed_audio = lambda features: features / np.linalg.norm(features, axis=1, keepdims=True)  # a stand-in
    >>> head = fit_localization_head(context, clips, embed_audio, rng=np.random.RandomState(0))
    >>> head.grid_shape_, len(head.loss_curve_)  # the visual encoder's 7 x 7 positions; one loss per epoch
    ((7, 7), 60)
    """
    context.require_time_steps("learned localisation")
    head = LocalizationHead(alpha=alpha)

    def job(item, where):
        clip = context.clip(item, where)
        idx = sample_frame_indices(clip.n_frames, head.n_frames, repeat=True)
        feature_maps = context.encode_frame_maps(clip.frames[idx])
        A = _audio_window_embeddings(context, embed_audio, clip.audio, idx / clip.fps, head.audio_window)
        return feature_maps, A

    data = context.map(job, X, desc="localisation features")
    feature_maps = np.stack([d[0] for d in data])
    audio = np.stack([d[1] for d in data])
    del data
    return head.fit(feature_maps, audio, rng, log)
