"""A long video's localisation, window by window: maps kept on their grid, resized as they are read.

A window of full-size maps is large (10 s of 720p at 30 fps: 1.1 GB of float32), so a window's
maps stay on the grid they were computed on (:func:`skavc.localization.grid_maps`) and are
resized to the frames' size a few frames at a time, when drawn or scored.
"""

from dataclasses import dataclass

import numpy as np

from ._maps import upsample_bilinear

# Frames resized at once when a window's peaks are found: 8 frames of 720p float32 maps are
# 30 MB, and fewer would cost more numpy calls per frame.
_READ_CHUNK = 8


class GridMaps:
    """Full-size maps ``(T, H, W)`` read from their grid a slice at a time (``maps[t0:t1]``).

    Parameters
    ----------
    grid : ndarray of shape (T, h, w), float32
    size : (int, int)
        ``(H, W)`` of the frames.
    cell : float or (float, float)
        Cell size in pixels, as in :func:`~skavc.localization.upsample_bilinear`.

    Attributes
    ----------
    shape : (int, int, int)
        ``(T, H, W)``.

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.localization import GridMaps
    >>> grid = np.array([[[0.0, 1.0], [1.0, 0.0]]], np.float32)  # one frame, 2 x 2 cells
    >>> maps = GridMaps(grid, (4, 4), 2.0)  # cells of 2 pixels: frames of 4 x 4
    >>> maps.shape, maps[0:1].shape, maps.peaks()  # resized when sliced
    ((1, 4, 4), (1, 4, 4), array([1.]))
    >>> maps[0][0]
    array([0.  , 0.25, 0.75, 1.  ], dtype=float32)
    """

    def __init__(self, grid, size, cell):
        self.grid, self.size, self.cell = grid, tuple(int(v) for v in size), cell
        self.shape = (grid.shape[0], *self.size)
        self.ndim, self.dtype = 3, np.dtype(np.float32)
        # Each frame's peak, noted whenever its map is made (NaN until then): drawing a window
        # then gives its confidences without resizing its maps a second time.
        self._peaks = np.full(grid.shape[0], np.nan)

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, index):
        """``maps[t]`` (H, W) or ``maps[t0:t1]`` (n, H, W), float32, resized when asked for."""
        if not isinstance(index, slice):
            t = range(self.shape[0])[index]
            return self[t : t + 1][0]
        maps = upsample_bilinear(self.grid[index], self.size, cell=self.cell)
        self._peaks[index] = maps.reshape(maps.shape[0], -1).max(axis=1)
        return maps

    def __array__(self, dtype=None, copy=None):
        maps = self[:]
        return maps if dtype is None else maps.astype(dtype)

    def peaks(self):
        """Each frame's largest full-size map value, (T,) float64, a few frames at a time."""
        missing = np.flatnonzero(np.isnan(self._peaks))
        for t0 in missing[::_READ_CHUNK]:  # frames resized once, whether drawn first or not
            self[t0 : min(t0 + _READ_CHUNK, self.shape[0])]
        return self._peaks.copy()


@dataclass(frozen=True)
class LocalizedWindow:
    """One window of a long video and where its sound comes from.

    Attributes
    ----------
    clip : AVClip
        The window's frames (T, H, W, 3) and sound; ``clip.start`` is its first frame's time
        in seconds from the video's first frame.
    maps : GridMaps
        Its maps (T, H, W) in [0, 1], as ``AVCorrespondence.localize`` gives them, resized from
        their grid when sliced (``maps[t0:t1]``; ``np.asarray(maps)`` makes all of them).

    Examples
    --------
    >>> import numpy as np
    >>> from skavc import AVClip
    >>> from skavc.localization import GridMaps, LocalizedWindow
    >>> clip = AVClip(np.zeros(16000, np.float32), 16000, np.zeros((25, 64, 64, 3), np.uint8), 25.0, start=10.0)
    >>> window = LocalizedWindow(clip, GridMaps(np.full((25, 2, 2), 0.8, np.float32), (64, 64), 32.0))
    >>> window.start, window.duration, window.maps[0:5].shape  # seconds; maps (T, H, W) made when sliced
    (10.0, 1.0, (5, 64, 64))
    >>> window.confidence.shape, float(window.confidence.max().round(2))
    ((25,), 0.8)
    """

    clip: object
    maps: GridMaps

    @property
    def confidence(self):
        """Each frame's largest map value, (T,) in [0, 1]: found as the maps are read (read the
        window's maps first, e.g. draw them, and this costs nothing more)."""
        return self.maps.peaks()

    @property
    def start(self):
        """Seconds from the video's first frame to the window's."""
        return self.clip.start

    @property
    def duration(self):
        """The window's length in seconds."""
        return self.clip.n_frames / self.clip.fps


def regrid_windows(localized, windows):
    """Maps localised on some windows of a video, given for other windows of the same frames.

    The frames a video is localised on need not be those it is shown with: it can be localised
    on small frames (what the maps need) while its full-size frames are read alongside, a
    little at a time, to be drawn. Both must tile the same frames in the same order (windows of
    :func:`skavc.io.iter_clips` with ``hop`` equal to ``window``, at any ``window`` and
    ``frame_size``).

    Parameters
    ----------
    localized : iterable of LocalizedWindow
        Consecutive windows and their maps (:func:`localize_windows`).
    windows : iterable of AVClip
        The same frames, cut into windows of any length, at any size.

    Yields
    ------
    window : LocalizedWindow
        Each of ``windows`` with its frames' maps: the grids of the localised windows it
        overlaps, their cells scaled to its frames' size.

    Raises
    ------
    ValueError
        If ``windows`` hold more frames than ``localized``.

    Examples
    --------
    >>> import numpy as np
    >>> from skavc import AVClip
    >>> from skavc.localization import GridMaps, LocalizedWindow, regrid_windows
    >>> small = AVClip(np.zeros(5120, np.float32), 16000, np.zeros((8, 32, 32, 3), np.uint8), 25.0)  # 8 frames
    >>> localized = [LocalizedWindow(small, GridMaps(np.full((8, 4, 4), 0.7, np.float32), (32, 32), 8.0))]
    >>> large = [AVClip(np.zeros(2560, np.float32), 16000, np.zeros((4, 128, 128, 3), np.uint8), 25.0, start=0.16 * k)
    ...          for k in range(2)]  # the same 8 frames at 128 x 128, in two windows
    >>> [(window.maps.shape, window.maps.cell) for window in regrid_windows(localized, large)]
    [((4, 128, 128), (32.0, 32.0)), ((4, 128, 128), (32.0, 32.0))]
    """
    localized = iter(localized)
    held = []  # (first frame, grid, cell (rows, columns) in pixels, frame size) of localised windows
    held_to = n_done = 0  # frames covered by what is held; frames of `windows` given out
    for clip in windows:
        stop = n_done + clip.n_frames
        while held_to < stop:
            window = next(localized, None)
            if window is None:
                raise ValueError(f"the windows hold more frames than were localised ({held_to})")
            maps = window.maps
            cell = maps.cell if np.ndim(maps.cell) else (maps.cell, maps.cell)
            held.append((held_to, maps.grid, cell, maps.size))
            held_to += maps.shape[0]
            del window, maps
        held = [h for h in held if h[0] + h[1].shape[0] > n_done]
        grid = np.concatenate([g[max(n_done - first, 0) : stop - first] for first, g, _, _ in held if first < stop])
        _, _, (cy, cx), (h, w) = held[0]
        H, W = clip.frames.shape[1:3]
        yield LocalizedWindow(clip, GridMaps(grid, (H, W), (cy * H / h, cx * W / w)))
        n_done = stop
        del clip, grid
