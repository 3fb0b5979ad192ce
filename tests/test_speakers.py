"""Faces that speak: lip sync from the mouth, who is speaking, the map on the speaking face.

The talking faces are made here from a real photo (scikit-image's ``astronaut``, public domain):
its face cut out as a 256x256 tile, the mouth opened frame by frame by a dark ellipse between the
lips whose height follows the loudness of a generated "voice" (noise in the 1-3 kHz band, in
syllables of 0.1-0.3 s). Face Mesh reads that opening (its correlation with the drawn height is
about 0.8), so the clips have a known truth: which face's mouth goes with the sound, and the
offset between them. Without the face graphs or scikit-image the tests that need them skip.
"""


import numpy as np
import pytest

from skavc import AVClip, AVCorrespondence
from skavc.features import (MOUTH_LEAD, mouth_boxes, mouth_darkness, mouth_speech_correlation, speaking_probability,
                            speech_at_frames, speech_envelope, track_points)
from skavc.localization import paint_faces
from skavc.metrics import separation_scores
from skavc.separation import mouth_evidence

RATE, FPS, SECONDS = 16000, 25.0, 4.0
TILE = 256
H, W = 288, 640




# ---------------------------------------------------------------------------------------
# Pure functions (no models)
# ---------------------------------------------------------------------------------------


def test_speech_envelope_hears_the_speech_band_only():
    t = np.arange(RATE) / RATE
    in_band, below = np.sin(2 * np.pi * 2000 * t), np.sin(2 * np.pi * 200 * t)
    envelope, times = speech_envelope(in_band, RATE)
    assert envelope.shape == times.shape == (1 + RATE // 160,) and np.allclose(np.diff(times), 0.01)
    assert np.median(envelope) > 100 * np.median(speech_envelope(below, RATE)[0])
    assert not speech_envelope(np.zeros(RATE), RATE)[0].any()
    with pytest.raises(ValueError, match="band must be"):
        speech_envelope(in_band, RATE, band=(3000, 1000))


def test_speech_at_frames_is_the_envelope_a_lead_later():
    audio = np.zeros(RATE)
    audio[8000:8800] = np.sin(2 * np.pi * 1500 * np.arange(800) / RATE)  # a burst at 0.50-0.55 s
    speech = speech_at_frames(audio, RATE, 25, 25.0, lead=0.0)
    late = speech_at_frames(audio, RATE, 25, 25.0, lead=0.08)  # 2 frames: the mouth leads the sound
    assert np.argmax(speech) in (12, 13) and np.argmax(late) == np.argmax(speech) - 2


def test_mouth_speech_correlation_is_local_and_nan_where_the_face_is_unseen():
    rng = np.random.default_rng(0)
    speech = rng.random(200)
    opening = speech + 0.1 * rng.random(200)
    opening[100:] = rng.random(100)  # the second half: a mouth that does not follow
    opening[:10] = np.nan  # not seen
    rho = mouth_speech_correlation(opening, speech, FPS, window=0.5)
    assert np.isnan(rho[:10]).all() and np.isfinite(rho[10:]).all()
    assert rho[30:80].min() > 0.8 and np.abs(rho[150:190]).max() < 0.5
    with pytest.raises(ValueError, match="series of one length"):
        mouth_speech_correlation(opening[:50], speech, FPS)


def test_speaking_probability_needs_sound_and_yields_to_a_clearly_better_rival():
    rho, loud = np.array([0.5, 0.5, 0.0, np.nan]), np.ones(4)
    assert np.allclose(speaking_probability(rho, loud)[:2], 1.0, atol=2e-3)
    assert speaking_probability(rho, loud)[2] < 0.05 and speaking_probability(rho, loud)[3] == 0
    assert np.allclose(speaking_probability(rho, np.zeros(4)), 0)  # silence: nobody speaks
    rival = np.array([0.5, 0.9, np.nan, np.nan])  # the same as another face's / far below it / none
    p = speaking_probability(rho, loud, rival)
    assert p[0] > 0.85 and p[1] < 0.01 and p[2] == speaking_probability(rho, loud)[2]


def test_track_points_lays_a_track_over_its_clip():
    points = np.arange(2 * 468 * 3, dtype=np.float32).reshape(2, 468, 3)
    laid = track_points([1, 3], points, 5)
    assert laid.shape == (5, 468, 3) and np.isnan(laid[[0, 2, 4]]).all()
    assert np.array_equal(laid[[1, 3]], points)


def test_paint_faces_lights_a_speaking_face_and_its_mouth_most():
    grid = np.full((2, 9, 16), 0.1, np.float32)
    box, mouth = np.array([[40.0, 40.0, 120.0, 120.0]] * 2), np.array([[70.0, 90.0, 90.0, 110.0]] * 2)
    faces = [(np.array([0, 1]), box, mouth), (np.array([1]), box[:1] + [360, 0, 360, 0], mouth[:1] + [360, 0, 360, 0])]
    painted = paint_faces(grid, (288, 512), 32.0, faces, [np.array([0.9, 0.3]), np.array([0.4])])
    assert np.array_equal(grid, np.full((2, 9, 16), 0.1, np.float32))  # not modified in place
    # the mouth (x 70-90, y 90-110) holds no cell centre (16 + 32 k) along y: the cell under its centre
    assert np.isclose(painted[0, 3, 2], 0.9)
    assert np.isclose(painted[0, 1, 1], 0.72) and np.isclose(painted[0, 3, 3], 0.72)  # the face: 0.8 p
    assert np.isclose(painted[0].sum(), 0.1 * 144 + 0.62 * 8 + 0.8)  # 3 x 3 face cells, nothing else
    assert np.array_equal(painted[1], grid[1])  # neither face speaks (p < 0.5): no faint prior on faces


def test_mouth_darkness_reads_the_open_mouth_in_the_pixels():
    frames = np.full((3, 40, 40, 3), 200, np.uint8)
    frames[1, 15:25, 10:30] = 20  # an open mouth fills the box's middle
    boxes = np.array([[10, 10, 30, 30], [10, 10, 30, 30], [np.nan] * 4])
    darkness = mouth_darkness(frames, boxes)
    assert darkness[0] == -200 and darkness[1] == -20 and np.isnan(darkness[2])
    with pytest.raises(ValueError, match="one row per frame"):
        mouth_darkness(frames, boxes[:2])


def test_mouth_boxes_frame_the_lips():
    points = np.zeros((1, 468, 2))
    points[0, [61, 291, 0, 17]] = [[100, 200], [140, 202], [120, 190], [121, 215]]
    assert np.allclose(mouth_boxes(points), [[90, 180, 150, 225]])  # grown by a quarter of the width (40)


def test_draw_face_boxes_colours_by_speaking():
    from skavc.plotting import draw_face_boxes

    frame = np.zeros((100, 200, 3), np.uint8)
    draw_face_boxes(frame, [[20, 30, 80, 90], [120, 30, 180, 90]], [1.0, 0.0])
    assert tuple(frame[30, 50]) == (40, 230, 60) and tuple(frame[30, 150]) == (150, 150, 150)
    assert not frame[60, 50].any()  # inside the box: untouched
    with pytest.raises(ValueError, match="one row per face"):
        draw_face_boxes(frame, [[20, 30, 80, 90]], [0.5, 0.5])


# ---------------------------------------------------------------------------------------
# Talking faces made from a real photo
# ---------------------------------------------------------------------------------------


def syllables(rng, n_samples):
    """A 'voice': 1-3 kHz noise in syllables of 0.1-0.3 s with pauses, and its loudness per sample."""
    loudness = np.zeros(n_samples)
    t = int(0.2 * RATE)
    while t < n_samples:
        length = int(rng.uniform(0.1, 0.3) * RATE)
        loudness[t:t + length] = np.sin(np.linspace(0, np.pi, length))[: n_samples - t] * rng.uniform(0.5, 1.0)
        t += length + int(rng.uniform(0.05, 0.25) * RATE)
    spectrum = np.fft.rfft(rng.standard_normal(n_samples))
    freq = np.fft.rfftfreq(n_samples, 1 / RATE)
    noise = np.fft.irfft(spectrum * ((freq > 1000) & (freq < 3000)), n_samples)
    return (0.3 * noise / noise.std() * loudness).astype(np.float32), loudness


@pytest.fixture(scope="module")
def tile():
    data = pytest.importorskip("skimage.data")
    return np.ascontiguousarray(data.astronaut()[40:40 + TILE, 96:96 + TILE])


@pytest.fixture(scope="module")
def mouth(tile, need_face_models):
    """Centre and half-width of the tile's mouth, from its Face Mesh landmarks."""
    from skavc.encoders._faces import FaceDetector, FaceLandmarker, track_faces

    (track,) = track_faces(tile[None], FaceDetector(device="cpu"), FaceLandmarker(device="cpu"))
    p = track.points[0]
    return (p[61, 0] + p[291, 0]) / 2, (p[13, 1] + p[14, 1]) / 2, 0.4 * (p[291, 0] - p[61, 0])


def talking_tiles(tile, mouth, heights):
    """The tile once per frame with its mouth opened ``heights[t]`` pixels (half-height of the ellipse)."""
    cx, cy, half_width = mouth
    yy, xx = np.mgrid[:TILE, :TILE]
    out = np.repeat(tile[None], len(heights), axis=0)
    for t, h in enumerate(heights):
        if h >= 0.5:
            out[t][((xx - cx) / half_width) ** 2 + ((yy - cy) / h) ** 2 <= 1] = (40, 15, 20)
    return out


def mouth_heights(loudness, n_frames, delay=0.0):
    """The mouth's opening (px) in each frame following ``loudness``, ``delay`` s late."""
    times = np.clip(np.arange(n_frames) / FPS - delay, 0, None)
    return 1.0 + 9.0 * np.interp(times, np.arange(loudness.size) / RATE, loudness)


@pytest.fixture(scope="module")
def two_faces(tile, mouth):
    """Two talking faces side by side, each with its own voice; the sound is the left one's."""
    rng = np.random.default_rng(1)
    n_samples, n_frames = int(SECONDS * RATE), int(SECONDS * FPS)
    voice_left, loud_left = syllables(rng, n_samples)
    _, loud_right = syllables(rng, n_samples)
    frames = np.full((n_frames, H, W, 3), 90, np.uint8)
    frames[:, 16:16 + TILE, 40:40 + TILE] = talking_tiles(tile, mouth, mouth_heights(loud_left, n_frames))
    frames[:, 16:16 + TILE, 344:344 + TILE] = talking_tiles(tile, mouth, mouth_heights(loud_right, n_frames))[:, :, ::-1]
    return AVClip(voice_left, RATE, frames, FPS), loud_left


def test_speakers_finds_both_faces_and_the_one_whose_mouth_goes_with_the_sound(two_faces):
    clip, loudness = two_faces
    (speakers,) = AVCorrespondence().speakers([clip])
    assert [s.track for s in speakers] == [0, 1]
    left, right = sorted(speakers, key=lambda s: s.boxes[0, 0])
    assert left.frames.size == right.frames.size == clip.n_frames
    assert 40 <= left.boxes[:, 0].min() and left.boxes[:, 2].max() <= 40 + TILE  # on the left tile
    voiced = np.interp(np.arange(clip.n_frames) / FPS, np.arange(loudness.size) / RATE, loudness) > 0.3
    assert np.mean(left.speaking[voiced] >= 0.5) > 0.8
    assert np.mean(right.speaking[voiced] >= 0.5) < 0.1
    assert np.array_equal(left.speaking_frames(), left.frames[left.speaking >= 0.5])


def test_localize_puts_the_map_on_the_speaking_face(two_faces):
    clip, loudness = two_faces
    model = AVCorrespondence()
    (maps,), (confidence,) = model.localize([clip], return_confidence=True)
    voiced = np.interp(np.arange(clip.n_frames) / FPS, np.arange(loudness.size) / RATE, loudness) > 0.3
    peak_x = maps.reshape(len(maps), -1).argmax(axis=1) % W
    assert np.mean((peak_x < W // 2)[voiced]) > 0.9
    assert np.mean(confidence[voiced] >= 0.5) > 0.8
    (plain,) = model.localize([clip], faces=False)  # the method's map alone
    assert np.all(maps >= plain - 1e-6) and not np.allclose(maps, plain)


def test_lip_sync_follows_the_mouth_and_auto_picks_it(two_faces, tile, mouth):
    rng = np.random.default_rng(2)
    n_samples, n_frames = int(SECONDS * RATE), int(SECONDS * FPS)
    voice, loudness = syllables(rng, n_samples + RATE)
    # the sound 0.2 s ahead of the mouth that makes it (positive: audio ahead)
    frames = np.full((n_frames, H, W, 3), 90, np.uint8)
    frames[:, 16:16 + TILE, 192:192 + TILE] = talking_tiles(tile, mouth, mouth_heights(loudness, n_frames, 0.2))
    clip = AVClip(voice[:n_samples], RATE, frames, FPS)
    model = AVCorrespondence(max_offset=0.5)
    offsets, confidence = model.predict_offset([clip], return_confidence=True, method="face")
    assert abs(offsets[0] - 0.2) <= 1 / FPS and confidence[0] >= 0.5
    assert abs(offsets[0] - 0.2 - MOUTH_LEAD) < 0.02  # a generated mouth has no lead of its own
    auto = model.sync_curve([clip], method="auto")[0]
    face = model.sync_curve([clip], method="face")[0]
    assert np.array_equal(auto[1], face[1])
    # two faces: the offset is the speaking face's (the left one, in sync)
    two, _ = two_faces
    assert abs(model.predict_offset([two], method="face")[0]) <= 1 / FPS


def test_auto_without_a_face_is_the_whole_frame_as_before(need_face_models):
    from skavc.datasets import make_av_clips

    clips, _ = make_av_clips(2, duration=2.0, random_state=0)
    model = AVCorrespondence()
    for auto, signal in zip(model.sync_curve(clips, method="auto"), model.sync_curve(clips, method="signal")):
        assert np.array_equal(auto[0], signal[0]) and np.array_equal(auto[1], signal[1])
    (with_faces,), (without,) = model.localize(clips[:1]), model.localize(clips[:1], faces=False)
    assert np.array_equal(with_faces, without)


def test_timing_evidence_of_a_face_is_higher_with_its_own_voice(two_faces):
    clip, _ = two_faces
    rng = np.random.default_rng(3)
    other_voice, _ = syllables(rng, clip.audio.size)
    model = AVCorrespondence()
    context = model._context()
    own, dubbed = model._sync_evidence(context, [clip, AVClip(other_voice, RATE, clip.frames, FPS)])
    assert own > 6 and dubbed < own - 2


def test_speakers_windows_keeps_a_face_number_across_windows(two_faces):
    clip, _ = two_faces
    windows = list(AVCorrespondence().speakers_windows(clip, window=2.0))
    assert [w[0].start for w in windows] == [0.0, 2.0]
    for window, speakers in windows:
        assert sorted(s.track for s in speakers) == [0, 1]
        assert all(s.frames.max() < window.n_frames for s in speakers)


def test_cli_speakers_writes_the_overlay_with_the_sound(two_faces, tmp_path, capsys):
    import av

    from skavc.cli import main
    from skavc.io import save_clip

    clip, _ = two_faces
    video = save_clip(clip, tmp_path / "two.mp4")
    out = tmp_path / "speakers.mp4"
    assert main(["speakers", str(video), "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "2 faces followed" in printed and "face 0: seen 0:00-0:04" in printed
    with av.open(str(out)) as container:
        assert container.streams.audio and container.streams.video[0].frames == clip.n_frames
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]).astype(int)
    # the left face's box is drawn green while it speaks, the right one's never
    green = (frames[..., 1] - frames[..., 0] > 120) & (frames[..., 1] > 180)
    assert green[:, :, : W // 2].any(axis=(1, 2)).mean() > 0.5 and not green[:, :, W // 2 :].any()
    assert main(["speakers", str(video), "--out", str(tmp_path / "x.txt")]) != 0


def test_tiles_find_a_small_face_in_a_corner(need_face_models):
    from skavc.encoders._faces import FaceDetector, tile_origins

    data = pytest.importorskip("skimage.data")
    pick = np.arange(160) * TILE // 160
    face = data.astronaut()[40:40 + TILE, 96:96 + TILE][pick][:, pick]  # a 160 px inset, the face ~55 px wide
    frame = np.full((720, 1280, 3), 200, np.uint8)
    frame[540:700, 1100:1260] = face
    assert not FaceDetector(device="cpu").detect(frame)[0].size  # the whole frame shrunk to 128 px: too small
    (faces,) = FaceDetector(device="cpu", tile_side="auto").detect(frame)
    assert len(faces) == 1
    x0, y0, x1, y1 = faces[0]["box"]
    assert 1100 <= x0 < x1 <= 1260 and 540 <= y0 < y1 <= 700
    origins = tile_origins(720, 1280, 360)
    assert (0, 0) in origins and (360, 920) in origins and len(origins) == 15
    assert tile_origins(360, 640, 400) == [] and tile_origins(300, 500, 256) == []


# ---------------------------------------------------------------------------------------
# A speaking face's voice out of a mixture (separate, the speech route)
# ---------------------------------------------------------------------------------------


def test_mouth_evidence_is_high_for_speech_that_follows_the_mouth_and_near_zero_otherwise():
    rng = np.random.default_rng(0)
    voice, loudness = syllables(rng, int(SECONDS * RATE))
    n_frames = int(SECONDS * FPS)
    opening = mouth_heights(loudness, n_frames)
    assert mouth_evidence(voice, RATE, opening, FPS) > 4
    other, _ = syllables(rng, voice.size)
    assert abs(mouth_evidence(other, RATE, opening, FPS)) < 2.5
    assert mouth_evidence(np.zeros_like(voice), RATE, opening, FPS) == 0  # silence
    assert mouth_evidence(voice, RATE, np.ones(n_frames), FPS) == 0  # a still mouth


def voiced(loudness, rng):
    """A vowel-like voice: a glottal pulse train (110-130 Hz) through three formants, at ``loudness``."""
    from scipy.signal import lfilter

    n = loudness.size
    f0 = 120 + 10 * np.sin(2 * np.pi * 0.5 * np.arange(n) / RATE)
    pulses = np.diff(np.floor(np.cumsum(f0 / RATE)), prepend=0.0)
    for formant, bandwidth in ((700, 110), (1200, 120), (2600, 160)):
        r = np.exp(-np.pi * bandwidth / RATE)
        pulses = lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * formant / RATE), r * r], pulses)
    y = pulses * loudness * (1 + 0.05 * rng.standard_normal(n))
    return (0.3 * y / y.std()).astype(np.float32)


@pytest.fixture(scope="module")
def face_and_music(tile, mouth, need_speech_enhancer):
    """One talking face, its voice, and a tune with noise at the voice's level (0 dB)."""
    rng = np.random.default_rng(1)
    n_samples, n_frames = int(SECONDS * RATE), int(SECONDS * FPS)
    _, loudness = syllables(rng, n_samples)
    voice = voiced(loudness, rng)
    frames = np.full((n_frames, H, 320, 3), 90, np.uint8)
    frames[:, 16:16 + TILE, 32:32 + TILE] = talking_tiles(tile, mouth, mouth_heights(loudness, n_frames))
    t = np.arange(n_samples) / RATE
    tune = np.sin(2 * np.pi * 440 * t * (1 + 0.5 * (t % 1))) * (np.sin(2 * np.pi * 2.0 * t) > 0)
    music = tune + 0.3 * rng.standard_normal(n_samples)
    return frames, voice, (music * voice.std() / music.std()).astype(np.float32)


def test_separate_takes_a_speaking_faces_voice_out_of_music(face_and_music):
    frames, voice, music = face_and_music
    mixture = voice + music
    model = AVCorrespondence()
    estimate, confidence = model.separate(mixture, frames, return_confidence=True)
    sources = np.stack([voice, music]).astype(np.float64)

    def sdr(x):
        return separation_scores(sources, np.stack([x, mixture - x]).astype(np.float64))[0][0]

    assert confidence > 0.5 and sdr(estimate) - sdr(mixture) > 6.0  # +10 dB when written
    assert estimate.dtype == np.float32 and estimate.shape == mixture.shape
    # faces off: the frames' motion guides the NMF route as before, and does worse here
    by_motion = model.separate(mixture, frames, faces=False)
    assert sdr(by_motion) < sdr(estimate)
    # a window at a time: one window shorter than the default is separate's answer
    (piece,) = model.separate_windows(mixture, frames)
    assert np.allclose(piece.target, estimate, atol=1e-5) and piece.confidence == pytest.approx(confidence)


def test_separate_keeps_a_face_whose_voice_is_not_heard_quiet(face_and_music):
    frames, voice, music = face_and_music
    mixture = music + music[::-1]  # the face's voice is not in it
    estimate, confidence = AVCorrespondence().separate(mixture, frames, return_confidence=True)
    assert confidence < 0.1
    energy = [np.sum(x.astype(np.float64) ** 2) for x in (mixture, estimate)]
    assert 10 * np.log10(energy[0] / max(energy[1], 1e-30)) >= 20.0
