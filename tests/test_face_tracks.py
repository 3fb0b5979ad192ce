"""Tests for the face tracker (``FaceTracker``, ``track_faces`` in skavc/encoders/_faces.py).

Clips are made here from a real photo: the face of ``skimage.data.astronaut()`` (NASA, public
domain), cut out as a 256x256 tile and drawn onto a grey 640x360 canvas, moving, doubled,
hidden. Without the face graphs or scikit-image the model tests skip.
"""


import numpy as np
import pytest

from skavc.encoders._faces import (
    FaceDetector,
    FaceLandmarker,
    FaceObservation,
    FaceTrack,
    FaceTracker,
    _crops,
    face_roi,
    landmarks_roi,
    roi_matrix,
    track_faces,
    warp_affine,
)

H, W = 360, 640
TILE = 256
GREY = 90




@pytest.fixture(scope="module")
def tile():
    data = pytest.importorskip("skimage.data")
    return np.ascontiguousarray(data.astronaut()[40:40 + TILE, 96:96 + TILE])  # the face, x 84-174 in it


@pytest.fixture(scope="module")
def models(need_face_models):
    return FaceDetector(device="cpu", n_threads=1), FaceLandmarker(device="cpu", n_threads=1)


def clip(tile, positions, n_frames):
    """``n_frames`` grey frames with ``tile`` drawn at ``positions(t)``: a list of (x, y, mirrored)."""
    frames = np.full((n_frames, H, W, 3), GREY, np.uint8)
    for t in range(n_frames):
        for x, y, mirrored in positions(t):
            frames[t, y:y + TILE, x:x + TILE] = tile[:, ::-1] if mirrored else tile
    return frames


def centres(boxes):
    boxes = np.asarray(boxes)
    return (boxes[..., :2] + boxes[..., 2:]) / 2


def slide(t):
    return [(20 + 10 * t, 50, False)]  # 10 pixels a frame to the right: 290 pixels in 30 frames


@pytest.fixture(scope="module")
def sliding(tile):
    return clip(tile, slide, 30)


@pytest.fixture(scope="module")
def sliding_tracks(models, sliding):
    return track_faces(sliding, *models, detect_every=10)


# ---------------------------------------------------------------------------------------
# Pure parts
# ---------------------------------------------------------------------------------------


def test_crops_are_warp_affine_with_replicated_borders():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)
    rois = [(60, 45, 70, 0.3), (10, 80, 50, -2.0), (100, 20, 200, 1.0)]  # the last two reach outside
    matrices = np.array([roi_matrix(r, 48) for r in rois])
    want = warp_affine(frame, matrices, 48, border="replicate")
    np.testing.assert_allclose(_crops(frame, matrices, 48), want, atol=1e-3)


def test_landmarks_roi_is_the_box_of_the_points_turned_by_the_eye_corners():
    rng = np.random.default_rng(1)
    points = np.column_stack([rng.uniform(100, 200, 468), rng.uniform(50, 250, 468), rng.normal(0, 5, 468)])
    points[33, :2], points[263, :2] = (120, 100), (180, 160)  # eye line at 45 degrees, downwards
    cx, cy, side, angle = landmarks_roi(points)
    x0, y0 = points[:, :2].min(axis=0)
    x1, y1 = points[:, :2].max(axis=0)
    np.testing.assert_allclose([cx, cy, side], [(x0 + x1) / 2, (y0 + y1) / 2, 1.5 * max(x1 - x0, y1 - y0)])
    assert angle == pytest.approx(np.pi / 4)
    np.testing.assert_allclose(landmarks_roi(points), face_roi([x0, y0, x1, y1], points[[33, 263], :2]))


# ---------------------------------------------------------------------------------------
# Tracking real faces
# ---------------------------------------------------------------------------------------


def test_landmarks_rois_match_landmarks_of_the_detection(models, tile):
    detector, landmarker = models
    frame = clip(tile, lambda t: [(100, 50, False)], 1)[0]
    (faces,) = detector.detect(frame)
    want, want_presence = landmarker.landmarks(frame, faces)
    points, presence = landmarker.landmarks_rois(frame, [face_roi(faces[0]["box"], faces[0]["keypoints"])])
    np.testing.assert_allclose(points, want, atol=0.05)
    np.testing.assert_allclose(presence, want_presence, atol=1e-3)
    empty, none = landmarker.landmarks_rois(frame, np.zeros((0, 4)))
    assert empty.shape == (0, 468, 3) and none.shape == (0,)


def test_a_sliding_face_is_one_track_that_follows_it(models, sliding, sliding_tracks):
    (track,) = sliding_tracks
    assert isinstance(track, FaceTrack) and track.track == 0
    np.testing.assert_array_equal(track.frames, np.arange(30))
    assert track.boxes.shape == (30, 4) and track.points.shape == (30, 468, 3)
    assert track.points.dtype == np.float32 and track.presence.shape == (30,)
    assert track.presence.min() > 0.9
    # the truth: where the face is on the still photo (landmarks of its detection), moved with the tile
    detector, landmarker = models
    (faces,) = detector.detect(sliding[0])
    points, _ = landmarker.landmarks(sliding[0], faces)
    truth = centres(np.concatenate([points[0, :, :2].min(0), points[0, :, :2].max(0)]))
    shift = np.column_stack([10.0 * track.frames, np.zeros(30)])
    error = np.abs(centres(track.boxes) - shift - truth)
    assert error.max() < 3, error.max()  # measured: 0.7 pixels
    # the box is the landmarks' bounding box, and the face is about 90 pixels wide
    np.testing.assert_allclose(track.boxes[:, :2], track.points[:, :, :2].min(axis=1), atol=1e-3)
    assert np.all((track.boxes[:, 2] - track.boxes[:, 0] > 70) & (track.boxes[:, 2] - track.boxes[:, 0] < 130))


def test_the_detector_runs_only_every_detect_every_frames(models, sliding):
    tracker = FaceTracker(*models, detect_every=10)
    observations = tracker.update(sliding)
    assert [len(o) for o in observations] == [1] * 30
    assert isinstance(observations[0][0], FaceObservation)
    assert tracker.n_frames_ == 30 and tracker.n_detections_ == 3  # frames 0, 10 and 20
    every = FaceTracker(*models, detect_every=1)
    ids = {o.track for obs in every.update(sliding[:5]) for o in obs}
    assert every.n_detections_ == 5 and ids == {0}  # a detection that links to a track starts none


def test_chunked_updates_give_the_same_tracks(models, sliding, sliding_tracks):
    (whole,) = sliding_tracks
    chunks = np.split(sliding, [7, 20, 21])  # 7, 13, 1 and 9 frames
    (chunked,) = track_faces(iter(chunks), *models, detect_every=10)
    assert chunked.track == whole.track
    np.testing.assert_array_equal(chunked.frames, whole.frames)
    np.testing.assert_allclose(chunked.points, whole.points, atol=1e-3)
    np.testing.assert_allclose(chunked.boxes, whole.boxes, atol=1e-3)
    tracker = FaceTracker(*models, detect_every=10)
    out = [obs for chunk in chunks for obs in tracker.update(chunk)]
    assert len(out) == 30 and tracker.n_detections_ == 3
    assert tracker.update(sliding[:0]) == []


def test_two_faces_are_two_stable_tracks(models, tile):
    # the photo and its mirror image side by side, drifting apart by 2 pixels a frame
    frames = clip(tile, lambda t: [(40 - t, 50 + t, False), (340 + 2 * t, 60, True)], 20)
    tracks = track_faces(frames, *models, detect_every=5)
    assert [t.track for t in tracks] == [0, 1]
    for track in tracks:
        np.testing.assert_array_equal(track.frames, np.arange(20))
        assert track.presence.min() > 0.9
    left, right = sorted(tracks, key=lambda t: centres(t.boxes[0])[0])
    assert np.all(centres(left.boxes)[:, 0] < 320) and np.all(centres(right.boxes)[:, 0] > 320)
    # each follows its own face: left moves -1 px a frame in x, +1 in y; right +2 in x
    np.testing.assert_allclose(np.diff(centres(left.boxes), axis=0).mean(0), [-1, 1], atol=0.5)
    np.testing.assert_allclose(np.diff(centres(right.boxes), axis=0).mean(0), [2, 0], atol=0.5)
    (one,) = track_faces(frames, *models, max_faces=1)
    np.testing.assert_array_equal(one.frames, np.arange(20))


def test_a_face_that_leaves_ends_its_track_and_is_found_again(models, tile):
    # on screen in frames 0-14, gone in 15-24, back elsewhere from frame 25
    def where(t):
        return [(60, 50, False)] if t < 15 else [] if t < 25 else [(360, 80, False)]

    frames = clip(tile, where, 40)
    tracker = FaceTracker(*models, detect_every=10)
    observations = tracker.update(frames)
    tracks = track_faces(frames, *models, detect_every=10)
    assert [t.track for t in tracks] == [0, 1]  # a face found again is a new track
    first, second = tracks
    np.testing.assert_array_equal(first.frames, np.arange(15))
    assert all(len(o) == 0 for o in observations[15:25])
    # lost at frame 15, so the detector runs at frame 16 (finds nothing), then at 26: found again
    np.testing.assert_array_equal(second.frames, np.arange(26, 40))
    assert np.all(centres(second.boxes)[:, 0] > 400)


def test_bad_input_is_refused_with_the_parameter_named(models, sliding):
    detector, landmarker = models
    for kwargs, name in [({"detect_every": 0}, "detect_every"), ({"detect_every": 2.5}, "detect_every"),
                         ({"max_faces": 0}, "max_faces"), ({"min_presence": 1.5}, "min_presence"),
                         ({"link_iou": -0.1}, "link_iou")]:
        with pytest.raises(ValueError, match=name):
            FaceTracker(detector, landmarker, **kwargs)
    tracker = FaceTracker(detector, landmarker)
    with pytest.raises(ValueError, match=r"frames must be uint8 RGB of shape \(T, H, W, 3\); got float32"):
        tracker.update(sliding[:2].astype(np.float32))
    with pytest.raises(ValueError, match="frames must be uint8 RGB of shape"):
        tracker.update(sliding[0])  # one frame, not a chunk
    with pytest.raises(ValueError, match="frames must be uint8 RGB of shape"):
        tracker.update(sliding[:2, :, :, :1])
    tracker.update(sliding[:2])
    with pytest.raises(ValueError, match="reset"):
        tracker.update(sliding[:2, :100])  # another video's size
    assert tracker.reset().update(sliding[:1, :200, :300])[0][0].track == 0
    with pytest.raises(ValueError, match="detect_every"):
        track_faces(sliding, detector, landmarker, detect_every=0)
