"""PNG pictures of results people would rather look at than read (needs matplotlib: ``skavc[plot]``)."""

import os

from ._validation import atomic_path


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: never needs a display
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("writing PNG files needs matplotlib: pip install 'skavc[plot]'") from exc
    return plt


def _save(fig, path):
    """Write ``fig`` to ``path`` atomically (a temporary file, then a rename)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)


def save_sync_curve(offsets, scores, path, *, offset=None, confidence=None, title=None):
    """Plot a sync curve (score against offset) as a PNG.

    Parameters
    ----------
    offsets : ndarray of shape (n_offsets,)
        Seconds, positive = audio ahead of video.
    scores : ndarray of shape (n_offsets,)
    path : str or os.PathLike
        Output file (``.png``).
    offset : float or None
        The estimated offset, marked with a vertical line.
    confidence : float or None
        Shown in the title.
    title : str or None
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.2))
    try:
        ax.plot(offsets, scores, color="tab:blue", lw=1.5)
        if offset is not None:
            ax.axvline(offset, color="tab:red", ls="--", lw=1)
        ax.axvline(0.0, color="grey", lw=0.5)
        ax.set_xlabel("offset (s), positive = audio ahead of video")
        ax.set_ylabel("sync score")
        parts = [title] if title else []
        if offset is not None:
            parts.append(f"offset {offset:+.3f} s")
        if confidence is not None:
            parts.append(f"confidence {confidence:.2f}")
        ax.set_title(", ".join(parts), fontsize=10)
        fig.tight_layout()
        _save(fig, path)
    finally:
        plt.close(fig)


def _overlay(frame, heat, cmap, threshold, strength=0.6):
    """One frame with ``heat`` (H, W) in [0, 1] blended in: opacity follows the heat, so a map
    that is dark (low confidence) leaves the frame as it is; pixels at the threshold's edge
    are drawn white."""
    import numpy as np

    rgb = frame.astype(np.float32) / 255.0
    colour = cmap(np.clip(heat, 0.0, 1.0))[..., :3].astype(np.float32)
    alpha = (strength * np.clip(heat, 0.0, 1.0))[..., None]
    out = rgb * (1 - alpha) + colour * alpha
    inside = heat >= threshold
    edge = np.zeros_like(inside)
    edge[:-1] |= inside[:-1] != inside[1:]
    edge[:, :-1] |= inside[:, :-1] != inside[:, 1:]
    out[edge & inside] = 1.0
    return (np.clip(out, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def overlay_frames(frames, maps, *, threshold=0.5, cmap="inferno"):
    """Frames with their localisation maps blended over them (as :func:`save_heatmap_frames` draws them).

    Parameters
    ----------
    frames : ndarray of shape (T, H, W, 3), uint8
    maps : ndarray of shape (T, H, W), in [0, 1]
    threshold : float, default=0.5
        Map value whose outline is drawn white.
    cmap : str, default="inferno"

    Returns
    -------
    overlaid : ndarray of shape (T, H, W, 3), uint8
    """
    import numpy as np

    frames, maps = _check_frames_and_maps(frames, maps)
    colormap = _pyplot().get_cmap(cmap)
    return np.stack([_overlay(f, m, colormap, threshold) for f, m in zip(frames, maps)])


def _check_frames_and_maps(frames, maps):
    import numpy as np

    frames, maps = np.asarray(frames), np.asarray(maps)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 of shape (T, H, W, 3); got {frames.dtype} {frames.shape}")
    if maps.shape != frames.shape[:3]:
        raise ValueError(f"maps must have shape {frames.shape[:3]} (T, H, W) to match frames; got {maps.shape}")
    return frames, maps


def save_heatmap_frames(frames, maps, out_dir, every=1, *, threshold=0.5, cmap="inferno", prefix="frame"):
    """Write frames with a localisation map blended over them, one PNG per frame.

    Parameters
    ----------
    frames : ndarray of shape (T, H, W, 3), uint8
    maps : ndarray of shape (T, H, W), in [0, 1]
        As from ``AVCorrespondence.localize``; not renormalised here, so a
        low-confidence frame stays nearly untinted.
    out_dir : str or os.PathLike
        Created if missing.
    every : int, default=1
        Write every ``every``-th frame (0, every, 2 * every, ...).
    threshold : float, default=0.5
        Map value whose outline is drawn in white (the "sounding" region).
    cmap : str, default="inferno"
        Matplotlib colormap name.
    prefix : str, default="frame"
        Files are ``{prefix}_{index:05d}.png``.

    Returns
    -------
    paths : list of str
        The files written, in frame order.
    """
    import numpy as np

    frames, maps = _check_frames_and_maps(frames, maps)
    if int(every) < 1:
        raise ValueError(f"every must be >= 1; got {every!r}")
    plt = _pyplot()
    colormap = plt.get_cmap(cmap)
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for t in range(0, frames.shape[0], int(every)):
        path = os.path.join(os.fspath(out_dir), f"{prefix}_{t:05d}.png")
        with atomic_path(path) as tmp:
            plt.imsave(tmp, _overlay(frames[t], maps[t], colormap, threshold), format="png")
        paths.append(path)
    return paths
