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


_STRENGTH = 0.6  # opacity of a map at 1.0
_LEVELS = 256  # map levels in the blend table, at least (matplotlib's colormaps have 256 colours)
_CHUNK_PIXELS = 1 << 17  # pixels blended at once: the temporaries stay in the CPU's cache


def _blend_table(cmap, strength=_STRENGTH):
    """``(table, levels)``: ``table`` (3, levels * 256) uint8, ``table[c, q * 256 + v]`` channel
    ``c`` of a pixel of value ``v`` under map level ``q`` (the map in [q / levels, (q + 1) / levels)).

    ``levels`` is the smallest multiple of the colormap's number of colours ``N`` that is at
    least 256 (256 for matplotlib's usual colormaps), so each level lies within one colour.

    The blend is ``v * (1 - a) + 255 * colour * a`` with ``a = strength * heat``, rounded half up,
    as floats: ``colour`` is the colormap's colour of the level (the colour every map value in
    it gets: matplotlib picks colour ``floor(value * N)``) and ``heat`` the level's middle, 0 for
    the first level and 1 for the last, so a zero map leaves a pixel as it is and a map at 1
    covers it fully. Against blending each pixel's own value a pixel moves by at most
    ``255 * strength / (2 * levels)`` (0.3) before rounding."""
    import numpy as np

    n_colours = max(int(getattr(cmap, "N", _LEVELS)), 1)
    levels = n_colours * -(-_LEVELS // n_colours)
    centre = (np.arange(levels) + 0.5) / levels
    colour = np.asarray(cmap(centre), dtype=np.float64)[:, :3]  # (levels, 3)
    heat = centre.copy()
    heat[0], heat[-1] = 0.0, 1.0
    alpha = strength * heat  # (levels,)
    value = np.arange(256) / 255.0
    blended = value[None, :, None] * (1 - alpha)[:, None, None] + (colour * alpha[:, None])[:, None, :]
    table = np.floor(np.clip(blended, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)  # (level, value, channel)
    return np.ascontiguousarray(table.transpose(2, 0, 1).reshape(3, -1)), levels


def _colour_table(cmap):
    return _blend_table(_pyplot().get_cmap(cmap) if isinstance(cmap, str) else cmap)


def _overlay_into(out, frame, heat, table, threshold):
    """Write ``frame`` (H, W, 3) uint8 with ``heat`` (H, W) in [0, 1] blended in (``table``: the
    pair from :func:`_blend_table`) into ``out`` (H, W, 3) uint8, a band of rows at a time: opacity follows
    the heat, so a map that is dark (low confidence) leaves the frame as it is; pixels at the
    threshold's edge are drawn white. NaN counts as 0."""
    import numpy as np

    table, levels = table
    H, W = heat.shape
    rows = max(1, _CHUNK_PIXELS // max(W, 1))
    level = np.empty((min(rows, H), W), dtype=np.float32)
    base = np.empty(level.shape, dtype=np.intp)
    index = np.empty(level.shape, dtype=np.intp)
    channel = np.empty(level.shape, dtype=np.uint8)
    for y0 in range(0, H, rows):
        y1 = min(y0 + rows, H)
        n = y1 - y0
        lv, b, ix, ch = level[:n], base[:n], index[:n], channel[:n]
        np.multiply(heat[y0:y1], levels, out=lv, casting="same_kind")
        np.clip(lv, 0, levels - 1, out=lv)
        with np.errstate(invalid="ignore"):  # NaN: 0 or the most negative integer, 0 once shifted
            np.copyto(b, lv, casting="unsafe")  # truncation: the level
        b <<= 8
        for c in range(3):
            np.add(b, frame[y0:y1, :, c], out=ix)
            np.take(table[c], ix, out=ch, mode="clip")  # clip: no bounds check (they are in range)
            out[y0:y1, :, c] = ch
        # the outline: inside pixels whose right or lower neighbour is outside
        inside = heat[y0 : min(y1 + 1, H)] >= threshold
        if not inside[:n].any() or inside.all():
            continue
        edge = np.zeros((n, W), dtype=bool)
        np.not_equal(inside[:n, :-1], inside[:n, 1:], out=edge[:, :-1])
        edge[: inside.shape[0] - 1] |= inside[:-1] != inside[1:]
        edge &= inside[:n]
        out[y0:y1][edge] = 255
    return out


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

    See Also
    --------
    save_heatmap_video : the same frames written to a video file as they are made, without
        holding them all in memory.
    """
    import numpy as np

    frames, maps = _check_frames_and_maps(frames, maps, threshold)
    table = _colour_table(cmap)
    out = np.empty_like(frames)
    for t in range(frames.shape[0]):
        _overlay_into(out[t], frames[t], maps[t], table, threshold)
    return out




def save_heatmap_video(clip, maps, path, *, threshold=0.5, cmap="inferno", video_codec=None, preset="veryfast",
                       crf=18, audio_codec="aac", audio_bit_rate=192_000):
    """Write a clip with its localisation maps blended over the frames, and its sound, to a video file.

    The frames are drawn as :func:`overlay_frames` draws them and handed to the encoder one at a
    time, so memory holds one frame, not the whole video. The file is written atomically (a
    temporary file, then a rename). An odd width or height is padded by repeating the last
    row / column (yuv420p needs even sizes).

    Parameters
    ----------
    clip : AVClip
    maps : ndarray of shape (T, H, W), in [0, 1]
        One per frame of ``clip``.
    path : str or os.PathLike
        Output file; the container follows the extension (``.mp4``, ``.mkv``, ...). Its
        directory must exist.
    threshold : float, default=0.5
        Map value whose outline is drawn white.
    cmap : str, default="inferno"
    video_codec : str or None, default=None
        FFmpeg encoder; ``None`` picks ``"libx264"`` (H.264) when PyAV has it, else ``"mpeg4"``.
        Frames are encoded as yuv420p.
    preset : str, default="veryfast"
        x264 / x265 speed preset (``"ultrafast"`` ... ``"veryslow"``); ``"veryfast"`` encodes
        720p several times faster than x264's default (``"medium"``) for a slightly larger file.
    crf : int, default=18
        Constant rate factor for libx264 / libx265 (18: visually lossless).
    audio_codec : str, default="aac"
    audio_bit_rate : int or None, default=192000

    Returns
    -------
    path : str
    """
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from ._clip import AVClip
    from .io import _write_video

    if not isinstance(clip, AVClip):
        raise TypeError(f"clip must be an AVClip; got {type(clip).__name__}")
    frames, maps = _check_frames_and_maps(clip.frames, maps, threshold)
    table = _colour_table(cmap)
    T, H, W, _ = frames.shape
    height, width = H + H % 2, W + W % 2  # yuv420p: even sizes
    buffers = [np.empty((height, width, 3), dtype=np.uint8) for _ in range(2)]

    def draw(out, t):
        _overlay_into(out[:H, :W], frames[t], maps[t], table, threshold)
        if H % 2:
            out[H] = out[H - 1]
        if W % 2:
            out[:, W] = out[:, W - 1]
        return out

    def drawn():
        # frame t + 1 is drawn in a second thread (numpy lets go of the GIL) while frame t is
        # converted to yuv420p and encoded; the writer copies each frame before asking for the next
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(draw, buffers[0], 0)
            for t in range(T):
                out = pending.result()
                if t + 1 < T:
                    pending = pool.submit(draw, buffers[(t + 1) % 2], t + 1)
                yield out

    return _write_video(clip, path, drawn(), (height, width), video_codec=video_codec, crf=crf,
                        audio_codec=audio_codec, audio_bit_rate=audio_bit_rate, preset=preset)


def _check_frames_and_maps(frames, maps, threshold):
    import numpy as np

    from ._validation import check_real

    check_real(threshold, name="threshold")

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

    frames, maps = _check_frames_and_maps(frames, maps, threshold)
    if int(every) < 1:
        raise ValueError(f"every must be >= 1; got {every!r}")
    plt = _pyplot()
    table = _colour_table(cmap)
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    image = np.empty(frames.shape[1:], dtype=np.uint8)
    for t in range(0, frames.shape[0], int(every)):
        path = os.path.join(os.fspath(out_dir), f"{prefix}_{t:05d}.png")
        with atomic_path(path) as tmp:
            plt.imsave(tmp, _overlay_into(image, frames[t], maps[t], table, threshold), format="png")
        paths.append(path)
    return paths
