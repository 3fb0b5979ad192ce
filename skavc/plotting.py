"""PNG pictures of results people would rather look at than read (needs matplotlib: ``skavc[plot]``)."""

import os

from pathlib import Path

from ._validation import atomic_path, check_output_path


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: never needs a display
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("writing PNG files needs matplotlib: pip install 'skavc[plot]'") from exc
    return plt


def _check_output_folder(path, *, name="out_dir"):
    """Return ``path`` as a :class:`~pathlib.Path` to a folder that files can be written into,
    checked before any work: an existing folder, or a new one whose parent folder exists (it is
    created by the writer, not here; a mistyped parent is refused, never created). Errors name
    ``name`` (a parameter, or a command-line option such as ``"--png"``)."""
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise TypeError(f"{name} must be a folder path (str or os.PathLike); got {path!r}")
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise ValueError(f"{name}: '{path}' is a file, not a folder")
        return path
    check_output_path(path, name=name)  # its parent folders exist and are folders
    return path


def _save(fig, path):
    """Write ``fig`` to ``path`` atomically (a temporary file, then a rename)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)


def save_sync_curve(offsets, scores, path, *, offset=None, confidence=None, title=None, timeline=None):
    """Plot a sync curve (score against offset) as a PNG, and the offset over time when given.

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
    timeline : SyncTimeline or None
        A long recording's windows (:meth:`skavc.AVCorrespondence.sync_timeline`): a second
        panel shows each window's offset against time, coloured by its confidence, with the
        fitted drift.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from skavc.plotting import save_sync_curve
    >>> offsets = np.linspace(-0.5, 0.5, 101)  # seconds, positive = audio ahead of video
    >>> scores = np.exp(-((offsets - 0.1) / 0.05) ** 2)  # a curve peaking at +0.1 s
    >>> path = os.path.join(tempfile.mkdtemp(), "sync.png")
    >>> save_sync_curve(offsets, scores, path, offset=0.1, confidence=0.9)
    >>> os.path.getsize(path) > 0
    True
    """
    import numpy as np

    plt = _pyplot()
    panels = 2 if timeline is not None and len(timeline.starts) > 1 else 1
    fig, axes = plt.subplots(panels, 1, figsize=(7, 3.2 * panels), squeeze=False)
    ax = axes[0, 0]
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
        if panels == 2:
            ax = axes[1, 0]
            points = ax.scatter(timeline.centres, timeline.offsets, c=timeline.confidence, cmap="viridis",
                                vmin=0, vmax=1, s=14)
            fig.colorbar(points, ax=ax, label="confidence")
            if np.isfinite(timeline.drift):
                ax.plot(timeline.centres, timeline.drift_intercept + timeline.drift * timeline.centres,
                        color="tab:red", lw=1, label=f"drift {3600 * timeline.drift:+.2f} s per hour")
                ax.legend(loc="best", fontsize=8)
            ax.axhline(0.0, color="grey", lw=0.5)
            ax.set_xlabel("time in the recording (s), window centres")
            ax.set_ylabel("offset (s)")
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


def _overlay_into(out, frame, heat, table, threshold, scale=1.0):
    """Write ``frame`` (H, W, 3) uint8 with ``heat`` (H, W) in [0, 1] blended in (``table``: the
    pair from :func:`_blend_table`) into ``out`` (H, W, 3) uint8, a band of rows at a time: opacity follows
    the heat, so a map that is dark (low confidence) leaves the frame as it is; pixels at the
    threshold's edge are drawn white. NaN counts as 0. The colours follow ``heat * scale``
    (values above 1 as 1); the outline follows ``heat`` itself."""
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
        np.multiply(heat[y0:y1], levels * scale, out=lv, casting="same_kind")
        np.clip(lv, 0, levels - 1, out=lv)
        with np.errstate(invalid="ignore"):  # NaN: 0 or the most negative integer, 0 once shifted
            np.copyto(b, lv, casting="unsafe")  # truncation: the level
        # Level 0 leaves a pixel as it is (the table's first level is the identity), and most
        # of a real video's frame is at level 0: only the box around the rest is looked up.
        out[y0:y1] = frame[y0:y1]
        lit_columns = np.flatnonzero(b.any(axis=0))
        if lit_columns.size:
            lit_rows = np.flatnonzero(b.any(axis=1))
            r0, r1, c0, c1 = lit_rows[0], lit_rows[-1] + 1, lit_columns[0], lit_columns[-1] + 1
            bb, ixb, chb = b[r0:r1, c0:c1], ix[r0:r1, c0:c1], ch[r0:r1, c0:c1]
            bb <<= 8
            for c in range(3):
                np.add(bb, frame[y0 + r0 : y0 + r1, c0:c1, c], out=ixb)
                np.take(table[c], ixb, out=chb, mode="clip")  # clip: no bounds check (they are in range)
                out[y0 + r0 : y0 + r1, c0:c1, c] = chb
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


_LEGEND_MIN_WIDTH = 128  # pixels: narrower, its labels cannot be read (smaller frames get none)
_LEGEND_MAX_WIDTH = 360


class _Legend:
    """A colour bar drawn into the lower left corner of each frame: the map's scale, 0 to 1 (or
    to the frame's maximum with ``normalize``), and a white tick where the threshold lies on it.

    Rendered once with matplotlib (no pyplot state: safe in the drawing thread) and blended into
    each frame as a small patch; only the tick moves, with ``normalize`` (the threshold is
    ``threshold / max`` of the frame's own scale, off the bar when no pixel reaches it).
    ``patch`` is None when the frame is too small to hold a readable legend."""

    def __init__(self, frame_shape, cmap, threshold, normalize):
        import numpy as np

        H, W = frame_shape
        margin = max(2, W // 100)
        width = int(min(max(_LEGEND_MIN_WIDTH, round(0.3 * W)), _LEGEND_MAX_WIDTH))
        height = int(round(0.3 * width))
        self.patch = None
        if width + 2 * margin > W or height + 2 * margin > H:
            return
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.patches import Rectangle

        fig = Figure(figsize=(width / 100, height / 100), dpi=100)
        FigureCanvasAgg(fig)
        fig.patch.set_alpha(0.0)
        fig.add_artist(Rectangle((0, 0), 1, 1, transform=fig.transFigure, color="black", alpha=0.6, lw=0, zorder=-1))
        bar = (0.07, 0.36, 0.86, 0.24)  # left, bottom, width, height as fractions of the legend
        ax = fig.add_axes(bar)
        ax.imshow(np.linspace(0, 1, 256)[None, :], aspect="auto", cmap=cmap, extent=(0, 1, 0, 1),
                  interpolation="nearest")
        ax.set_axis_off()
        caption = f"map / frame max (tick: {threshold:g})" if normalize else "sound source map"
        # text a fifth of the legend's height, smaller when the caption would not fit its width
        points = min(0.2 * height, 0.9 * width / (0.6 * len(caption))) * 72 / 100
        fig.text(0.5, 0.8, caption, color="white", fontsize=points, ha="center", va="center")
        labels = [(0.0, "0"), (1.0, "max" if normalize else "1")]
        if not normalize and 0 < threshold < 1:
            labels.append((threshold, f"{threshold:g}"))
        for x, label in labels:
            fig.text(bar[0] + bar[2] * x, 0.17, label, color="white", fontsize=points, ha="center", va="center")
        fig.canvas.draw()
        rgba = np.asarray(fig.canvas.buffer_rgba(), dtype=np.float32) / 255.0
        alpha = rgba[..., 3:]
        self.colour = rgba[..., :3] * alpha * 255.0  # premultiplied
        self.keep = 1.0 - alpha
        self.patch = (slice(H - margin - height, H - margin), slice(margin, margin + width))
        self.bar_x = (int(round(bar[0] * width)), int(round((bar[0] + bar[2]) * width)))
        self.bar_y = (int(round((1 - bar[1] - bar[3]) * height)), int(round((1 - bar[1]) * height)))
        self.tick_width = max(1, width // 120)
        self.threshold = float(threshold)

    def draw(self, out, scale=1.0):
        """Blend the legend into ``out`` (H, W, 3) uint8, the tick at ``threshold * scale``."""
        import numpy as np

        if self.patch is None:
            return out
        region = out[self.patch]
        region[...] = np.clip(region * self.keep + self.colour + 0.5, 0, 255).astype(np.uint8)
        position = self.threshold * scale
        if np.isfinite(position) and 0.0 <= position <= 1.0:  # off the bar: nothing reaches the threshold
            x0, x1 = self.bar_x
            x = x0 + int(round(position * (x1 - x0 - 1)))
            y0, y1 = self.bar_y
            region[max(y0 - 2, 0) : y1 + 2, max(x - self.tick_width // 2, 0) : x - self.tick_width // 2 + self.tick_width] = 255
        return out


class _Painter:
    """Draws frames as :func:`overlay_frames` documents it: the map blended in, the threshold's
    outline, with ``normalize`` the colours scaled to each frame's maximum, and the legend."""

    def __init__(self, frame_shape, threshold, cmap, legend, normalize):
        self.table = _colour_table(cmap)
        self.threshold = threshold
        self.normalize = bool(normalize)
        self.legend = _Legend(frame_shape, _pyplot().get_cmap(cmap) if isinstance(cmap, str) else cmap,
                              threshold, self.normalize) if legend else None

    def __call__(self, out, frame, heat):
        import numpy as np

        scale = 1.0
        if self.normalize:
            peak = float(np.fmax.reduce(heat, axis=None)) if heat.size else 0.0  # fmax: NaN ignored
            if np.isfinite(peak) and peak > 0:
                scale = 1.0 / peak
        _overlay_into(out, frame, heat, self.table, self.threshold, scale)
        if self.legend is not None:
            self.legend.draw(out, scale)
        return out


def overlay_frames(frames, maps, *, threshold=0.5, cmap="inferno", legend=False, normalize=False):
    """Frames with their localisation maps blended over them (as :func:`save_heatmap_frames` draws them).

    Parameters
    ----------
    frames : ndarray of shape (T, H, W, 3), uint8
    maps : ndarray of shape (T, H, W), in [0, 1]
    threshold : float, default=0.5
        Map value whose outline is drawn white.
    cmap : str, default="inferno"
    legend : bool, default=False
        Draw a colour bar into the lower left corner of each frame: the scale of the colours and
        a white tick at ``threshold``. Frames narrower than about 130 pixels get none.
    normalize : bool, default=False
        Colour each frame's map divided by its maximum, so that the source's shape shows
        whatever the frame's confidence (the legend then reads "map / its frame's max" and its
        tick moves to ``threshold / max``). The white outline still marks ``map >= threshold``.

    Returns
    -------
    overlaid : ndarray of shape (T, H, W, 3), uint8

    See Also
    --------
    save_heatmap_video : the same frames written to a video file as they are made, without
        holding them all in memory.

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.plotting import overlay_frames
    >>> frames = np.full((2, 64, 64, 3), 100, np.uint8)  # two grey frames
    >>> maps = np.zeros((2, 64, 64)); maps[:, 16:48, 16:48] = 1.0  # a sounding square in each
    >>> out = overlay_frames(frames, maps)
    >>> out.shape, out[0, 0, 0].tolist(), out[0, 32, 32].tolist(), out[0, 47, 47].tolist()  # map at 0, at 1, outline
    ((2, 64, 64, 3), [100, 100, 100], [191, 193, 139], [255, 255, 255])
    """
    import numpy as np

    frames, maps = _check_frames_and_maps(frames, maps, threshold)
    paint = _Painter(frames.shape[1:3], threshold, cmap, legend, normalize)
    out = np.empty_like(frames)
    for t in range(frames.shape[0]):
        paint(out[t], frames[t], maps[t])
    return out


def save_heatmap_video(clip, maps, path, *, threshold=0.5, cmap="inferno", legend=False, normalize=False,
                       video_codec=None, preset="veryfast", crf=18, audio_codec="aac", audio_bit_rate=192_000):
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
    legend : bool, default=False
        Draw a colour bar with the scale and the threshold into each frame (:func:`overlay_frames`).
    normalize : bool, default=False
        Colour each frame's map divided by its maximum (:func:`overlay_frames`).
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

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from skavc.datasets import make_av_clips
    >>> from skavc.plotting import save_heatmap_video
    >>> (clip,), _ = make_av_clips(n_clips=1, duration=1.0, random_state=0)  # 25 frames of 128 x 128
    >>> maps = np.zeros(clip.frames.shape[:3]); maps[:, 32:96, 32:96] = 0.8  # (T, H, W)
    >>> path = save_heatmap_video(clip, maps, os.path.join(tempfile.mkdtemp(), "heatmap.mp4"))
    >>> os.path.basename(path), os.path.getsize(path) > 0
    ('heatmap.mp4', True)
    """
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from ._clip import AVClip
    from .io import _write_video

    if not isinstance(clip, AVClip):
        raise TypeError(f"clip must be an AVClip; got {type(clip).__name__}")
    frames, maps = _check_frames_and_maps(clip.frames, maps, threshold)
    T, H, W, _ = frames.shape
    paint = _Painter((H, W), threshold, cmap, legend, normalize)
    height, width = H + H % 2, W + W % 2  # yuv420p: even sizes
    buffers = [np.empty((height, width, 3), dtype=np.uint8) for _ in range(2)]

    def draw(out, t):
        paint(out[:H, :W], frames[t], maps[t])
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


class _StreamedSound:
    """The sound of the windows a video is written from, handed to the writer as they pass
    (:func:`skavc.io._write_video` reads ``fps`` and ``sample_rate``, then ``take_audio()``
    after each frame): only what the writer has not taken yet is held, never the whole sound."""

    def __init__(self, fps, sample_rate):
        self.fps, self.sample_rate = fps, sample_rate
        self._chunks = []

    def add(self, audio):
        self._chunks.append(audio)

    def take_audio(self):
        """The samples added since the last call, mono float32."""
        import numpy as np

        chunks, self._chunks = self._chunks, []
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)


# Frames whose maps are resized from their grid at once while drawing a window (maps that are
# resized when sliced, as skavc.localization.GridMaps): 8 frames of 720p maps are 30 MB.
_MAP_CHUNK = 8


def _window_pairs(windows, threshold):
    """``(clip, maps)`` of each window, checked (frames uint8 (T, H, W, 3) with maps (T, H, W)
    of one size throughout, one rate and sample rate), each let go before the next is read."""
    import numpy as np

    from ._clip import AVClip
    from ._validation import check_real

    check_real(threshold, name="threshold")
    first, k = None, -1
    for pair in windows:  # not enumerate: it holds the last pair while the next is read
        clip, maps = pair
        del pair
        k += 1
        if not isinstance(clip, AVClip):
            raise TypeError(f"windows[{k}] must be a pair (AVClip, maps); got a {type(clip).__name__} first")
        frames = clip.frames
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"windows[{k}]: frames must be uint8 of shape (T, H, W, 3); got {frames.dtype} "
                             f"{frames.shape}")
        if tuple(maps.shape) != frames.shape[:3]:
            raise ValueError(f"windows[{k}]: maps must have shape {frames.shape[:3]} (T, H, W) to match the "
                             f"frames; got {tuple(maps.shape)}")
        if first is None:
            first = (frames.shape[1:3], clip.fps, clip.sample_rate)
        elif (frames.shape[1:3], clip.fps, clip.sample_rate) != first:
            raise ValueError(f"windows[{k}] has frames of {frames.shape[1:3]} at {clip.fps:g} fps with sound at "
                             f"{clip.sample_rate} Hz; the first window had {first[0]} at {first[1]:g} fps and "
                             f"{first[2]} Hz")
        yield clip, maps
        del clip, maps, frames


def save_heatmap_video_windows(windows, path, *, threshold=0.5, cmap="inferno", legend=False, normalize=False,
                               video_codec=None, preset="veryfast", crf=18, audio_codec="aac",
                               audio_bit_rate=192_000):
    """Write a long video with its localisation maps blended in, from its windows, as they are read.

    :func:`save_heatmap_video` for a video that never is in memory at once: each window's
    frames are drawn (as :func:`overlay_frames` draws them) and encoded as the window arrives,
    and the window is let go before the next is asked for, so memory holds one window (and its
    maps, a few frames at a time when they are resized on slicing). Each window's sound is kept
    (mono, 64 kB per second at 16 kHz) and written after the last frame. The file is written
    atomically: an error or Ctrl-C part way leaves no file at ``path`` (an existing one is kept).

    Parameters
    ----------
    windows : iterable of (AVClip, maps)
        Consecutive windows in order, no overlap: each window's clip (frames (T, H, W, 3) uint8,
        all of one size and rate, and the sound that plays with them) and its maps, (T, H, W)
        in [0, 1], an array or anything sliced as one (``maps[t0:t1]``:
        :class:`skavc.localization.GridMaps`), as
        ``AVCorrespondence.localize_windows`` gives them.
    path : str or os.PathLike
        Output file; the container follows the extension. Its directory must exist.
    threshold, cmap, legend, normalize, video_codec, preset, crf, audio_codec, audio_bit_rate
        As in :func:`save_heatmap_video`.

    Returns
    -------
    path : str

    Raises
    ------
    ValueError
        If ``windows`` is empty, or its windows differ in frame size, frame rate or sample rate.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from skavc.datasets import make_av_clips
    >>> from skavc.plotting import save_heatmap_video_windows
    >>> (clip,), _ = make_av_clips(n_clips=1, duration=1.0, random_state=0)  # 25 frames of 128 x 128
    >>> windows = [(clip, np.zeros(clip.frames.shape[:3]))] * 2  # two consecutive 1 s windows and their maps
    >>> path = save_heatmap_video_windows(windows, os.path.join(tempfile.mkdtemp(), "long.mp4"))
    >>> os.path.basename(path), os.path.getsize(path) > 0
    ('long.mp4', True)
    """
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from .io import _write_video

    pairs = _window_pairs(windows, threshold)
    try:
        clip, maps = next(pairs)
    except StopIteration:
        raise ValueError("windows is empty: expected at least one (AVClip, maps)") from None
    H, W = clip.frames.shape[1:3]
    sound = _StreamedSound(clip.fps, clip.sample_rate)
    paint = _Painter((H, W), threshold, cmap, legend, normalize)
    height, width = H + H % 2, W + W % 2  # yuv420p: even sizes
    buffers = [np.empty((height, width, 3), dtype=np.uint8) for _ in range(2)]

    def draw(out, box):
        # the frame comes in a box emptied here: the pool's work item, which may outlive the
        # call a moment, then holds no view of the window's frames while the next is read
        frame, heat = box.pop()
        paint(out[:H, :W], frame, heat)
        del frame, heat
        if H % 2:
            out[H] = out[H - 1]
        if W % 2:
            out[:, W] = out[:, W - 1]
        return out

    def frames_and_maps(first):
        """(frame, map) of every frame in order, maps resized a few frames at a time."""
        clip, maps = first
        del first
        while clip is not None:
            sound.add(clip.audio)
            for t0 in range(0, clip.n_frames, _MAP_CHUNK):
                chunk = np.asarray(maps[t0 : t0 + _MAP_CHUNK], dtype=np.float32)
                for t in range(chunk.shape[0]):
                    yield clip.frames[t0 + t], chunk[t]
            del clip, maps, chunk  # one window held, never two
            clip, maps = next(pairs, (None, None))

    def drawn(source):
        # frame t + 1 is drawn in a second thread (numpy lets go of the GIL) while frame t is
        # converted to yuv420p and encoded; the writer copies each frame before asking for the next
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending, t = pool.submit(draw, buffers[0], [next(source)]), 0
            while pending is not None:
                out = pending.result()
                # no frame of the window just drawn is referenced here when the next is read
                item = next(source, None)
                t += 1
                pending = None if item is None else pool.submit(draw, buffers[t % 2], [item])
                del item
                yield out

    source = frames_and_maps((clip, maps))
    del clip, maps  # the generator holds the first window, and lets it go
    return _write_video(sound, path, drawn(source), (height, width), video_codec=video_codec,
                        crf=crf, audio_codec=audio_codec, audio_bit_rate=audio_bit_rate, preset=preset)


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


def save_heatmap_frames(frames, maps, out_dir, every=1, *, threshold=0.5, cmap="inferno", prefix="frame",
                        legend=False, normalize=False):
    """Write frames with a localisation map blended over them, one PNG per frame.

    Parameters
    ----------
    frames : ndarray of shape (T, H, W, 3), uint8
    maps : ndarray of shape (T, H, W), in [0, 1]
        As from ``AVCorrespondence.localize``; not renormalised here, so a
        low-confidence frame stays nearly untinted.
    out_dir : str or os.PathLike
        Folder for the files, created if missing; its parent folder must exist (a mistyped
        path is refused, not created).
    every : int, default=1
        Write every ``every``-th frame (0, every, 2 * every, ...).
    threshold : float, default=0.5
        Map value whose outline is drawn in white (the "sounding" region).
    cmap : str, default="inferno"
        Matplotlib colormap name.
    prefix : str, default="frame"
        Files are ``{prefix}_{index:05d}.png``.
    legend : bool, default=False
        Draw a colour bar with the scale and the threshold into each frame (:func:`overlay_frames`).
    normalize : bool, default=False
        Colour each frame's map divided by its maximum (:func:`overlay_frames`).

    Returns
    -------
    paths : list of str
        The files written, in frame order.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from skavc.plotting import save_heatmap_frames
    >>> frames, maps = np.zeros((25, 64, 64, 3), np.uint8), np.full((25, 64, 64), 0.8)  # 25 frames and their maps
    >>> paths = save_heatmap_frames(frames, maps, tempfile.mkdtemp(), every=10)  # frames 0, 10 and 20
    >>> [os.path.basename(p) for p in paths], all(os.path.getsize(p) > 0 for p in paths)
    (['frame_00000.png', 'frame_00010.png', 'frame_00020.png'], True)
    """
    import numpy as np

    frames, maps = _check_frames_and_maps(frames, maps, threshold)
    if int(every) < 1:
        raise ValueError(f"every must be >= 1; got {every!r}")
    plt = _pyplot()
    out_dir = _check_output_folder(out_dir, name="out_dir")
    paint = _Painter(frames.shape[1:3], threshold, cmap, legend, normalize)
    out_dir.mkdir(exist_ok=True)
    paths = []
    image = np.empty(frames.shape[1:], dtype=np.uint8)
    for t in range(0, frames.shape[0], int(every)):
        path = os.path.join(os.fspath(out_dir), f"{prefix}_{t:05d}.png")
        with atomic_path(path) as tmp:
            plt.imsave(tmp, paint(image, frames[t], maps[t]), format="png")
        paths.append(path)
    return paths


def save_heatmap_frames_windows(windows, out_dir, every=1, *, threshold=0.5, cmap="inferno", prefix="frame",
                                legend=False, normalize=False, first_index=0):
    """Write a long video's frames with their maps blended in, one PNG per frame, window by window.

    :func:`save_heatmap_frames` for windows read one at a time (as
    :func:`save_heatmap_video_windows` takes them): a file's index counts frames from the
    video's first, so the files are those :func:`save_heatmap_frames` writes from the whole
    video, and only the maps of the frames written are resized.

    Parameters
    ----------
    windows : iterable of (AVClip, maps)
        As in :func:`save_heatmap_video_windows`.
    out_dir, every, threshold, cmap, prefix, legend, normalize
        As in :func:`save_heatmap_frames`.
    first_index : int, default=0
        Index of the first window's first frame in the video (windows given a few at a time).

    Returns
    -------
    paths : list of str
        The files written, in frame order.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from skavc.datasets import make_av_clips
    >>> from skavc.plotting import save_heatmap_frames_windows
    >>> (clip,), _ = make_av_clips(n_clips=1, duration=1.0, random_state=0)  # 25 frames of 128 x 128
    >>> windows = [(clip, np.zeros(clip.frames.shape[:3]))] * 2  # two consecutive windows: frames 0-24, 25-49
    >>> paths = save_heatmap_frames_windows(windows, tempfile.mkdtemp(), every=20)  # indices count from frame 0
    >>> [os.path.basename(p) for p in paths], all(os.path.getsize(p) > 0 for p in paths)
    (['frame_00000.png', 'frame_00020.png', 'frame_00040.png'], True)
    """
    import numpy as np

    if int(every) < 1:
        raise ValueError(f"every must be >= 1; got {every!r}")
    every = int(every)
    plt = _pyplot()
    out_dir = _check_output_folder(out_dir, name="out_dir")
    out_dir.mkdir(exist_ok=True)
    paths, paint, image, first = [], None, None, int(first_index)
    for clip, maps in _window_pairs(windows, threshold):
        if paint is None:
            paint = _Painter(clip.frames.shape[1:3], threshold, cmap, legend, normalize)
            image = np.empty(clip.frames.shape[1:], dtype=np.uint8)
        for t in range(-first % every, clip.n_frames, every):
            path = os.path.join(os.fspath(out_dir), f"{prefix}_{first + t:05d}.png")
            with atomic_path(path) as tmp:
                plt.imsave(tmp, paint(image, clip.frames[t], np.asarray(maps[t : t + 1])[0]), format="png")
            paths.append(path)
        first += clip.n_frames
        del clip, maps  # let go of the window before the next is read
    return paths


# Box colours of draw_face_boxes: grey for a face that is not speaking, green for one that is.
_QUIET_RGB = (150, 150, 150)
_SPEAKING_RGB = (40, 230, 60)


def draw_face_boxes(frame, boxes, speaking, *, threshold=0.5):
    """Draw faces' boxes into a frame, coloured by how likely each is speaking (in place).

    Needs only numpy (no matplotlib).

    Parameters
    ----------
    frame : ndarray of shape (H, W, 3), uint8
        RGB; drawn into.
    boxes : array-like of shape (n, 4)
        ``(x0, y0, x1, y1)`` in pixels of ``frame``.
    speaking : array-like of shape (n,)
        Probability that each face speaks, in [0, 1]: the box's colour runs from grey (0) to
        green (1), its line is 2 px wide, 4 px at or above ``threshold``; a bar along the
        box's top edge is filled in proportion.
    threshold : float, default=0.5

    Returns
    -------
    frame : ndarray
        The same array.

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.plotting import draw_face_boxes
    >>> frame = np.zeros((64, 64, 3), np.uint8)
    >>> boxes = [(8, 16, 28, 40), (36, 16, 56, 40)]  # (x0, y0, x1, y1) in pixels
    >>> draw_face_boxes(frame, boxes, speaking=[0.9, 0.1]) is frame  # drawn in place
    True
    >>> frame[16, 8].tolist(), frame[16, 36].tolist()  # top left corners: nearly green (speaking), nearly grey
    ([51, 222, 69], [139, 158, 141])
    """
    import numpy as np

    H, W = frame.shape[:2]
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    speaking = np.clip(np.asarray(speaking, dtype=np.float64).reshape(-1), 0.0, 1.0)
    if boxes.shape[0] != speaking.shape[0]:
        raise ValueError(f"boxes and speaking must have one row per face; got {boxes.shape[0]} and {speaking.shape[0]}")
    quiet, loud = np.array(_QUIET_RGB, float), np.array(_SPEAKING_RGB, float)
    for (x0, y0, x1, y1), p in zip(boxes, speaking):
        colour = np.round((1 - p) * quiet + p * loud).astype(np.uint8)
        width = 4 if p >= threshold else 2
        x0, x1 = int(np.clip(np.floor(x0), 0, W - 1)), int(np.clip(np.ceil(x1), 0, W - 1))
        y0, y1 = int(np.clip(np.floor(y0), 0, H - 1)), int(np.clip(np.ceil(y1), 0, H - 1))
        if x1 <= x0 or y1 <= y0:
            continue
        frame[y0 : y0 + width, x0 : x1 + 1] = colour
        frame[max(y1 - width + 1, y0) : y1 + 1, x0 : x1 + 1] = colour
        frame[y0 : y1 + 1, x0 : x0 + width] = colour
        frame[y0 : y1 + 1, max(x1 - width + 1, x0) : x1 + 1] = colour
        bar = max(y0 - 10, 0)  # the probability as a bar just above the box
        frame[bar : bar + 6, x0 : x0 + int(round(p * (x1 - x0))) + 1] = colour
    return frame


def save_speakers_video_windows(windows, path, *, threshold=0.5, video_codec=None, preset="veryfast", crf=18,
                                audio_codec="aac", audio_bit_rate=192_000):
    """Write a video with its faces' boxes coloured by how likely each is speaking, and its sound.

    Each window's frames are drawn (:func:`draw_face_boxes`) and encoded as the window arrives,
    so memory holds one window. The file is written atomically.

    Parameters
    ----------
    windows : iterable of (AVClip, faces)
        Consecutive windows in order, no overlap: the clip (frames (T, H, W, 3) uint8, one size
        and rate throughout, and its sound) and, per frame, ``(boxes (n, 4), speaking (n,))``
        in pixels of those frames (a list of T pairs).
    path : str or os.PathLike
        Output file; the container follows the extension. Its directory must exist.
    threshold : float, default=0.5
        Probability from which a face is drawn as speaking.
    video_codec, preset, crf, audio_codec, audio_bit_rate
        As in :func:`save_heatmap_video`.

    Returns
    -------
    path : str

    Examples
    --------
    >>> import os, tempfile
    >>> from skavc.datasets import make_av_clips
    >>> from skavc.plotting import save_speakers_video_windows
    >>> (clip,), _ = make_av_clips(n_clips=1, duration=1.0, random_state=0)  # 25 frames of 128 x 128
    >>> faces = [([(32, 32, 96, 96)], [0.8])] * clip.n_frames  # per frame: boxes (n, 4), speaking (n,)
    >>> path = save_speakers_video_windows([(clip, faces)], os.path.join(tempfile.mkdtemp(), "speakers.mp4"))
    >>> os.path.basename(path), os.path.getsize(path) > 0
    ('speakers.mp4', True)
    """
    import numpy as np

    from .io import _write_video

    windows = iter(windows)
    first = next(windows, None)
    if first is None:
        raise ValueError("windows is empty: expected at least one (AVClip, faces)")
    clip = first[0]
    H, W = clip.frames.shape[1:3]
    sound = _StreamedSound(clip.fps, clip.sample_rate)
    height, width = H + H % 2, W + W % 2  # yuv420p: even sizes
    out = np.empty((height, width, 3), dtype=np.uint8)

    def drawn(item):
        k = 0
        while item is not None:
            clip, faces = item
            del item
            if clip.frames.shape[1:3] != (H, W) or len(faces) != clip.n_frames:
                raise ValueError(f"windows[{k}] must hold frames of {(H, W)} and one entry of faces per frame; "
                                 f"got frames {clip.frames.shape[1:3]} and {len(faces)} entries for {clip.n_frames}")
            sound.add(clip.audio)
            for frame, (boxes, speaking) in zip(clip.frames, faces):
                out[:H, :W] = frame
                draw_face_boxes(out[:H, :W], boxes, speaking, threshold=threshold)
                if H % 2:
                    out[H] = out[H - 1]
                if W % 2:
                    out[:, W] = out[:, W - 1]
                yield out
            del clip, faces
            item, k = next(windows, None), k + 1

    return _write_video(sound, path, drawn(first), (height, width), video_codec=video_codec, crf=crf,
                        audio_codec=audio_codec, audio_bit_rate=audio_bit_rate, preset=preset)
