"""The pure feature functions (skavc.features): shapes, units, conventions, bad input."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

import skavc.features.video as video
from skavc.features import (
    audio_changes,
    audio_envelope,
    block_size,
    estimate_shifts,
    frame_changes,
    grey_blocks,
    grid_times,
    level_rises,
    motion_energy,
    motion_energy_times,
    onset_envelope,
    resample_track,
    sample_frame_indices,
    sound_presence,
    shift_frames,
    window_means,
)

SR = 16000


def _texture(size=64, seed=0, sigma=1.5):
    """A smooth random grey image (float64, about 60-200 grey levels)."""
    t = gaussian_filter(np.random.RandomState(seed).uniform(0, 1, size=(size, size)), sigma)
    return 60 + 140 * (t - t.min()) / (t.max() - t.min())


def _smooth_at(y, x):
    """A smooth pattern that can be sampled at any (sub-pixel) position, grey levels."""
    return 128 + 40 * np.sin(0.31 * y + 0.2) * np.cos(0.23 * x) + 30 * np.sin(0.17 * (x + y))


def _rgb(grey):
    return np.repeat(np.clip(np.round(grey), 0, 255).astype(np.uint8)[..., None], 3, axis=-1)


# ---------------------------------------------------------------------------
# Greyscale blocks
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("height, width, max_size, expected", [
    (96, 96, 64, 2), (64, 64, 64, 1), (65, 30, 64, 2), (720, 1280, 64, 20), (1080, 1920, 64, 30),
    (5, 1000, 64, 5),   # capped at the shorter side: at least one block along it
    (1, 1, 64, 1), (90, 130, 32, 5),
])
def test_block_size(height, width, max_size, expected):
    k = block_size(height, width, max_size)
    assert k == expected and isinstance(k, int)
    assert max(height, width) // k <= max_size or k == min(height, width)


def test_grey_blocks_is_the_luma_mean_of_each_block():
    frames = np.zeros((2, 7, 9, 3), np.uint8)
    frames[0, :, :, 0] = 255                        # red: luma 0.299 * 255
    frames[1, :4, :, 1] = 200                       # a green band in the top block row
    grey = grey_blocks(frames, 3)
    assert grey.shape == (2, 2, 3) and grey.dtype == np.float32   # the last row and no column dropped
    np.testing.assert_allclose(grey[0], 0.299 * 255, rtol=1e-6)
    np.testing.assert_allclose(grey[1, 0], 0.587 * 200, rtol=1e-6)      # rows 0-2: all green
    np.testing.assert_allclose(grey[1, 1], 0.587 * 200 / 3, rtol=1e-6)  # rows 3-5: one green row


@pytest.mark.parametrize("k", [1, 2, 5, 260])  # 260: row sums beyond uint16
def test_colour_blocks_is_the_mean_colour_of_each_block(k):
    frames = np.random.RandomState(0).randint(0, 256, size=(2, 263, 271, 3)).astype(np.uint8)
    h, w = 263 // k, 271 // k
    expected = frames[:, : h * k, : w * k].reshape(2, h, k, w, k, 3).mean(axis=(2, 4))
    colour = video.colour_blocks(frames, k)
    assert colour.shape == (2, h, w, 3) and colour.dtype == np.float32
    np.testing.assert_allclose(colour, expected, rtol=1e-6)
    np.testing.assert_allclose(grey_blocks(frames, k), expected @ [0.299, 0.587, 0.114], rtol=1e-5)


# ---------------------------------------------------------------------------
# Camera motion
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dy, dx", [(0, 0), (1, 0), (0, -2), (-1, 2), (2, 1)])
def test_estimate_shifts_recovers_a_whole_block_shift_and_its_sign(dy, dx):
    prev = _texture()
    cur = np.roll(prev, (-dy, -dx), axis=(0, 1))    # cur[y, x] = prev[y + dy, x + dx]
    shifts = estimate_shifts(cur[None], prev[None], 3)
    assert shifts.shape == (1, 2) and shifts.dtype == np.float64
    np.testing.assert_allclose(shifts[0], [dy, dx], atol=0.05)
    # shift_frames undoes it: prev moved by the estimate matches cur away from the borders
    aligned = shift_frames(prev[None], shifts)[0]
    assert np.abs(aligned - cur)[4:-4, 4:-4].max() < 2.0


@pytest.mark.parametrize("dy, dx", [(0.4, -0.3), (-0.25, 0.0), (1.3, 0.5)])
def test_estimate_shifts_follows_a_sub_block_shift(dy, dx):
    y, x = np.mgrid[0:64, 0:64].astype(np.float64)
    prev = _smooth_at(y, x)
    cur = _smooth_at(y + dy, x + dx)
    shifts = estimate_shifts(cur[None], prev[None], 3)[0]
    # the parabola through an L1-type cost is biased towards the whole shift: within 0.2 block
    assert np.abs(shifts - [dy, dx]).max() <= 0.2
    true = np.array([dy, dx])
    assert np.linalg.norm(shifts - true) < np.linalg.norm(np.round(true) - true)  # better than whole blocks
    # and the compensated difference is much smaller than the raw one
    inner = (slice(5, -5), slice(5, -5))
    residual = np.abs(cur - shift_frames(prev[None], shifts[None])[0])[inner].mean()
    assert residual < 0.6 * np.abs(cur - prev)[inner].mean()


def test_estimate_shifts_keeps_a_still_camera_still():
    frames = np.full((64, 64), 40.0)
    frames[10:30, 5:20] = 220.0   # sharp edges: a sub-block refinement would blur them
    assert not estimate_shifts(frames[None], frames[None], 3).any()
    # an object moving over a still background does not read as a pan
    cur = _texture()
    prev = cur.copy()
    prev[20:36, 20:36] = cur[20:36, 20:36] + 60
    assert np.all(np.abs(estimate_shifts(cur[None], prev[None], 3)) < 0.5)


def test_estimate_shifts_radius():
    prev = _texture()
    cur = np.roll(prev, -2, axis=1)
    assert not estimate_shifts(cur[None], prev[None], 0).any()        # no search
    assert np.all(np.abs(estimate_shifts(cur[None], prev[None], 1)) <= 1.5)
    tiny = _texture(7)
    assert not estimate_shifts(tiny[None], np.roll(tiny, 1, 0)[None], 3).any()  # too small to search
    assert estimate_shifts(np.zeros((0, 16, 16)), np.zeros((0, 16, 16)), 2).shape == (0, 2)


def test_shift_frames_conventions():
    ramp = np.tile(np.arange(10.0), (8, 1))          # value = column index
    out = shift_frames(np.stack([ramp, ramp, ramp]), [[0, 0], [0, 2], [0, 0.25]])
    assert out.shape == (3, 8, 10) and out.dtype == np.float64
    np.testing.assert_array_equal(out[0], ramp)                       # zero shift: unchanged
    np.testing.assert_array_equal(out[1, :, :8], ramp[:, 2:])         # out[y, x] = in[y, x + 2]
    np.testing.assert_array_equal(out[1, :, 8:], 9.0)                 # beyond the border: held
    np.testing.assert_allclose(out[2, :, :9], ramp[:, :9] + 0.25)     # bilinear: exact on a ramp


# ---------------------------------------------------------------------------
# Frame changes and motion energy
# ---------------------------------------------------------------------------


def test_frame_changes_shapes_sign_and_noise_floor():
    grey = np.full((4, 16, 20), 100.0, np.float32)
    grey[2:, 4:8, 4:8] = 150.0     # an object brightens at frame 2 ...
    grey[3:, 4:8, 4:8] = 101.0     # ... and darkens at frame 3, to just above where it began
    changes = frame_changes(grey, max_shift=1, noise_floor=2.0)
    assert changes.shape == grey.shape and changes.dtype == np.float32
    assert not changes[0].any() and not changes[1].any()
    np.testing.assert_allclose(changes[2, 4:8, 4:8], 48.0)          # +50, shrunk by the floor
    np.testing.assert_allclose(changes[3, 4:8, 4:8], -47.0)         # -49, sign kept
    assert not changes[2][grey[2] == 100].any()                       # the rest did not change
    flicker = grey + np.array([0, 30, 0, -20], np.float32)[:, None, None]   # whole-frame brightness
    np.testing.assert_array_equal(frame_changes(flicker), changes)
    small = grey.copy()
    small[1] += np.random.RandomState(0).uniform(-1.9, 1.9, size=small[1].shape)  # noise < floor
    assert not frame_changes(small, max_shift=0)[1].any()


def test_frame_changes_compensates_a_camera_shift_and_flicker():
    base = _texture(64, seed=3)
    grey = np.stack([base, np.roll(base, (-1, 1), axis=(0, 1)) + 12.0]).astype(np.float32)  # pan + flicker
    raw = np.abs(frame_changes(grey, max_shift=0))[1, 4:-4, 4:-4].mean()
    compensated = np.abs(frame_changes(grey, max_shift=1))[1, 4:-4, 4:-4].mean()
    assert compensated < 0.05 * raw
    assert frame_changes(grey[:1]).shape == (1, 64, 64)


def test_motion_energy_static_moving_and_short():
    frames = np.full((5, 64, 64, 3), 40, np.uint8)
    frames[:, 10:30, 5:20] = 220                      # sharp-edged still objects
    assert not motion_energy(frames).any()            # static frames: exactly zero
    frames[3:, 40:60, 40:60] = 250                    # something appears at frame 3
    energy = motion_energy(frames)
    assert energy.shape == (5,) and energy.dtype == np.float64
    assert np.argmax(energy) == 3 and energy[0] == 0 and energy[4] == 0
    assert not motion_energy(frames[:1]).any() and motion_energy(frames[:1]).shape == (1,)


def test_motion_energy_chunking_does_not_change_the_result(monkeypatch):
    rng = np.random.RandomState(1)
    base = _texture(96, seed=1)
    frames = _rgb(np.stack([np.roll(base, (rng.randint(-2, 3), rng.randint(-2, 3)), axis=(0, 1))
                            for _ in range(9)]))
    whole = motion_energy(frames)
    monkeypatch.setattr(video, "_CHUNK_VALUES", 48 * 48 * 4 * 2)
    np.testing.assert_array_equal(motion_energy(frames), whole)


def test_motion_energy_times():
    np.testing.assert_allclose(motion_energy_times(3, 25.0), [-0.02, 0.02, 0.06])
    assert motion_energy_times(0, 30.0).shape == (0,)


# ---------------------------------------------------------------------------
# Audio
# ---------------------------------------------------------------------------


def test_audio_envelope_of_a_sine():
    t = np.arange(2 * SR) / SR
    audio = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    env = audio_envelope(audio, SR, np.array([0.5, 1.0, 1.5]), 0.1)
    assert env.shape == (3,) and env.dtype == np.float64
    np.testing.assert_allclose(env, 0.5 / np.sqrt(2), rtol=1e-3)
    # the window is cut at the ends; wholly outside it is 0
    edge = audio_envelope(audio, SR, np.array([0.0, 2.0, -1.0, 5.0]), 0.1)
    np.testing.assert_allclose(edge[:2], 0.5 / np.sqrt(2), rtol=2e-2)
    np.testing.assert_array_equal(edge[2:], 0.0)


def test_audio_envelope_tiles_blocks():
    audio = np.random.RandomState(0).standard_normal(1000).astype(np.float32)
    hop = 160
    times = (np.arange(7) + 0.5) * hop / SR
    blocks = np.sqrt((audio[: 6 * hop].astype(np.float64).reshape(6, hop) ** 2).mean(axis=1))
    env = audio_envelope(audio, SR, times, hop / SR)
    np.testing.assert_allclose(env[:6], blocks, rtol=1e-9)
    np.testing.assert_allclose(env[6], np.sqrt((audio[960:].astype(np.float64) ** 2).mean()), rtol=1e-9)


def test_audio_changes_follow_a_step():
    audio = np.zeros(SR, np.float32)
    audio[SR // 2 :] = 0.3                               # loud from 0.5 s
    changes = audio_changes(audio, SR, 25, 25.0)
    assert changes.shape == (25,) and changes[0] == 0
    assert np.argmax(changes) in (12, 13) and changes.min() > -1e-12
    np.testing.assert_allclose(changes.sum(), 0.3, rtol=1e-6)        # from silence to RMS 0.3


def test_level_rises_count_onsets_in_db_not_decays():
    audio = np.zeros(SR, np.float32)
    audio[: SR // 2] = 0.01                             # -40 dB re RMS 1 ...
    audio[SR // 2 : 3 * SR // 4] = 0.1                  # ... up 20 dB at 0.5 s, back down at 0.75 s
    audio[3 * SR // 4 :] = 0.01
    rises = level_rises(audio, SR, 25, 25.0)
    assert rises.shape == (25,) and rises[0] == 0 and rises.min() >= 0
    np.testing.assert_allclose(rises.sum(), 20.0, rtol=1e-6)      # the fall adds nothing
    assert np.argmax(rises) in (12, 13)
    silent_then_sound = np.r_[np.zeros(SR // 2), np.full(SR // 2, 0.1)].astype(np.float32)
    np.testing.assert_allclose(level_rises(silent_then_sound, SR, 25, 25.0).sum(), 60.0, rtol=1e-6)  # from -80 dB


def test_sound_presence_is_relative_to_the_clips_noise_floor():
    rng = np.random.default_rng(0)
    times = np.arange(20) / 10.0 + 0.05                 # 2 s, every 0.1 s
    room = rng.normal(0, 10 ** (-45 / 20), 2 * SR)      # room tone at -45 dB, louder than -50 dBFS
    speech = room.copy()
    speech[SR : SR + SR // 2] += rng.normal(0, 10 ** (-20 / 20), SR // 2)   # a burst at 1.0-1.5 s
    presence = sound_presence(speech.astype(np.float32), SR, times, 0.1)
    assert presence.shape == (20,) and np.all((presence >= 0) & (presence <= 1))
    assert presence[:9].max() < 0.05 and presence[11:14].min() > 0.95 and presence[16:].max() < 0.05
    # No quiet moments: a sound heard throughout is present, room tone or hiss throughout is not.
    motor = rng.normal(0, 10 ** (-20 / 20), 2 * SR).astype(np.float32)
    assert sound_presence(motor, SR, times, 0.1).min() > 0.95
    hiss = rng.normal(0, 10 ** (-80 / 20), 2 * SR).astype(np.float32)
    assert sound_presence(hiss, SR, times, 0.1).max() < 0.05
    assert np.all(sound_presence(np.zeros(2 * SR, np.float32), SR, times, 0.1) < 1e-3)


def test_onset_envelope_shape_and_timing():
    audio = np.zeros(SR, np.float32)
    audio[8000:8800] = 0.5 * np.sin(2 * np.pi * 440 * np.arange(800) / SR)   # onset at 0.5 s
    env, times = onset_envelope(audio, SR, hop_seconds=0.01)
    assert env.shape == times.shape == (1 + SR // 160,) and env[0] == 0 and np.all(env >= 0)
    np.testing.assert_allclose(times[:3], [0.0, 0.01, 0.02])
    assert abs(times[np.argmax(env)] - 0.5) <= 0.01
    assert not onset_envelope(np.zeros(SR, np.float32), SR)[0].any()


# ---------------------------------------------------------------------------
# Time axes
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("n_frames, n_samples, repeat, expected", [
    (10, 4, False, [1, 3, 6, 8]),
    (10, 4, True, [1, 3, 6, 8]),       # enough frames: the same either way
    (3, 5, False, [0, 1, 2]),          # a short clip: every frame once ...
    (3, 5, True, [0, 0, 1, 2, 2]),     # ... or always n_samples, repeated evenly
    (1, 3, True, [0, 0, 0]),
    (7, 7, False, list(range(7))),
    (7, 7, True, list(range(7))),
    (0, 3, False, []),
    (0, 3, True, []),
])
def test_sample_frame_indices(n_frames, n_samples, repeat, expected):
    idx = sample_frame_indices(n_frames, n_samples, repeat=repeat)
    np.testing.assert_array_equal(idx, expected)
    assert np.issubdtype(idx.dtype, np.integer)


def test_sample_frame_indices_are_segment_centres():
    idx = sample_frame_indices(1000, 10)
    np.testing.assert_array_equal(idx, np.arange(10) * 100 + 50)
    assert sample_frame_indices(np.int64(5), 2).tolist() == [1, 3]


def test_window_means_grid_times_and_resample_track():
    features = np.arange(10.0)[:, None] * [1.0, -1.0]          # step j at (j + 0.5) / 10 s
    means = window_means(features, 10.0, np.array([0.0, 0.5, 5.0]), 0.2)
    np.testing.assert_allclose(means[:, 0], [0.0, 4.5, 9.0])  # cut at the ends, never empty
    np.testing.assert_allclose(grid_times(0.1, 50.0), [0.01, 0.03, 0.05, 0.07, 0.09])
    assert grid_times(0.001, 50.0).shape == (1,)
    times = np.array([0.0, 1.0, 3.0])
    track = np.array([[0.0], [2.0], [6.0]])
    out = resample_track(track, times, np.array([-1.0, 0.5, 2.0, 4.0]))
    np.testing.assert_allclose(out[:, 0], [0.0, 1.0, 4.0, 6.0])  # linear inside, held outside
    np.testing.assert_allclose(resample_track(track[:1], times[:1], np.zeros(3)), np.zeros((3, 1)))


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("call, error, match", [
    (lambda: motion_energy(np.zeros((2, 8, 8, 3), np.uint8), max_shift=-1), ValueError, "max_shift"),
    (lambda: motion_energy(np.zeros((2, 8, 8, 3), np.uint8), max_shift=1.5), ValueError, "max_shift"),
    (lambda: motion_energy(np.zeros((2, 8, 8, 3), np.uint8), max_size=0), ValueError, "max_size"),
    (lambda: motion_energy(np.zeros((2, 8, 8, 3), np.uint8), threshold=-1), ValueError, "threshold"),
    (lambda: motion_energy(np.zeros((2, 8, 8, 3), np.uint8), threshold="2"), TypeError, "threshold"),
    (lambda: motion_energy(np.zeros((2, 8, 8, 3), np.float32)), TypeError, "frames must be uint8"),
    (lambda: motion_energy_times(3, 0.0), ValueError, "fps"),
    (lambda: frame_changes(np.zeros((8, 8))), ValueError, r"grey must have shape \(T, h, w\)"),
    (lambda: frame_changes(np.zeros((2, 8, 8)), max_shift=True), ValueError, "max_shift"),
    (lambda: frame_changes(np.zeros((2, 8, 8)), noise_floor=-1.0), ValueError, "noise_floor"),
    (lambda: onset_envelope(np.zeros(100, np.float32), SR, hop_seconds=0), ValueError, "hop_seconds"),
    (lambda: onset_envelope(np.zeros(100, np.float32), SR, n_mels=0), ValueError, "n_mels"),
    (lambda: onset_envelope(np.zeros((100, 2), np.float32), SR), ValueError, "audio must be mono"),
    (lambda: audio_envelope(np.zeros(100, np.float32), SR, [0.0], 0.0), ValueError, "window"),
    (lambda: audio_envelope(np.zeros(100, np.float32), 0, [0.0], 0.1), ValueError, "sample_rate"),
    (lambda: audio_changes(np.zeros(100, np.float32), SR, 0, 25.0), ValueError, "n_frames"),
    (lambda: level_rises(np.zeros(100, np.float32), SR, 3, 0.0), ValueError, "fps"),
    (lambda: sound_presence(np.zeros((100, 2), np.float32), SR, [0.0], 0.1), ValueError, "audio must be mono"),
    (lambda: sound_presence(np.zeros(100, np.float32), SR, [0.0], 0.0), ValueError, "window"),
    (lambda: sample_frame_indices(10, 0), ValueError, "n_samples"),
    (lambda: sample_frame_indices(True, 3), ValueError, "n_frames"),
    (lambda: sample_frame_indices(-1, 3), ValueError, "n_frames"),
])
def test_bad_input_names_the_parameter(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_edge_silence_marks_only_the_padding_at_the_ends():
    from skavc.features import edge_silence

    audio = np.r_[np.zeros(60), np.ones(80), np.zeros(20), np.ones(80), np.zeros(60)]  # sounds: 60..239
    points = np.arange(0, 300, 10)
    padded = edge_silence(audio, points, points + 1)  # the samples at these points
    np.testing.assert_array_equal(padded, (points < 60) | (points > 239))  # the gap at 140..159 is real
    spans = edge_silence(audio, points - 15, points + 15)  # a span touching a sound is not padding
    np.testing.assert_array_equal(spans, (points + 15 <= 60) | (points - 15 > 239))
    assert edge_silence(np.zeros(10), [0, 5], [1, 6]).all()  # nothing recorded at all
    click = np.zeros(1000)
    click[500] = 1.0  # a lone click in silence: most spans would be "padding", so none is
    assert not edge_silence(click, np.arange(0, 1000, 10), np.arange(0, 1000, 10)).any()


def test_rises_count_only_increases_along_time():
    from skavc.features import rises

    np.testing.assert_array_equal(rises([1.0, 3.0, 2.0, 5.0]), [0.0, 2.0, 0.0, 3.0])
    np.testing.assert_array_equal(rises(np.array([[1, 3, 2], [4, 4, 6]])), [[0, 2, 0], [0, 0, 2]])
