"""Mouth shape from face landmarks: arrays of Face Mesh points in, one value per frame out.

The points are MediaPipe Face Mesh's 468 landmarks (``skavc.encoders._faces.FaceLandmarker``),
in pixels; a frame without a face holds NaN. Distances are divided by the distance between the
outer eye corners, so that a face near the camera and one far away open their mouths alike.
"""

import numpy as np

#: Face Mesh indices: the inner lips at the centre (upper, lower), the mouth corners (right,
#: left) and the outer eye corners (right, left), the face's scale.
INNER_LIPS = (13, 14)
MOUTH_CORNERS = (61, 291)
EYE_CORNERS = (33, 263)


def _in_eye_corner_units(points, pair):
    """Distance between the landmarks ``pair`` over the eye-corner distance, per frame (T,)."""
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 3 or points.shape[1] != 468 or points.shape[2] not in (2, 3):
        raise ValueError(f"points must be Face Mesh landmarks of shape (T, 468, 2 or 3); got {points.shape}")

    def distance(a, b):
        return np.linalg.norm(points[:, a, :2] - points[:, b, :2], axis=-1)

    with np.errstate(invalid="ignore", divide="ignore"):
        return distance(*pair) / distance(*EYE_CORNERS)


def mouth_opening(points):
    """Gap between the inner lips in each frame, in units of the face's eye-corner distance.

    Parameters
    ----------
    points : ndarray of shape (T, 468, 2 or 3)
        Face Mesh landmarks (x, y[, z]) in pixels of one face per frame; NaN where a frame has
        no face.

    Returns
    -------
    opening : ndarray of shape (T,), float64
        About 0 with the lips closed, 0.3-0.6 wide open; NaN where there is no face.
    """
    return _in_eye_corner_units(points, INNER_LIPS)


def mouth_width(points):
    """Distance between the mouth corners in each frame, in eye-corner distances; as :func:`mouth_opening`."""
    return _in_eye_corner_units(points, MOUTH_CORNERS)


def fill_gaps(series):
    """A series with its NaN (frames without a face) filled by linear interpolation, the ends held.

    Parameters
    ----------
    series : array-like of shape (T,)

    Returns
    -------
    filled : ndarray of shape (T,), float64
        All NaN when ``series`` has no finite value.
    """
    series = np.array(series, dtype=np.float64)
    known = np.isfinite(series)
    if known.any() and not known.all():
        series[~known] = np.interp(np.flatnonzero(~known), np.flatnonzero(known), series[known])
    return series
