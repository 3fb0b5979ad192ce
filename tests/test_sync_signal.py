"""Training-free audio-visual synchronisation (skavc.sync._signal): conventions, accuracy, errors."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from skavc.datasets import make_av_clips
from skavc.features import motion_energy, motion_energy_times, onset_envelope
from skavc.metrics import sync_accuracy, sync_mean_absolute_error
from skavc.sync._signal import (
    SYNC_CONFIDENCE_THRESHOLD,
    estimate_offset,
    naive_sync_curve,
    null_standardise,
    peak_offset,
    signal_sync_curve,
)

SR = 16000


@pytest.fixture(scope="module")
def clips25():
    """Six 3 s clips at 25 fps, offsets U(-0.8, 0.8) s."""
    return make_av_clips(n_clips=6, n_classes=6, duration=3.0, frame_size=(64, 64),
                         offset_range=(-0.8, 0.8), fps=25.0, random_state=0)


def _impulses(offset, fps, duration=10.0, seed=0, size=32):
    """Events at random instants: a click in the audio (``offset`` s early), a jump of a square."""
    rng = np.random.RandomState(seed)
    events = np.cumsum(rng.uniform(0.25, 0.6, size=int(duration / 0.25)))
    events = events[events < duration - 0.1]
    t = np.arange(int(round(duration * fps))) / fps
    seen = np.searchsorted(events, t, side="right")  # events that have happened by each frame
    corners = rng.randint(0, size - 8, size=(events.size + 1, 2))[seen]
    rows = np.arange(size)[None, :, None]
    cols = np.arange(size)[None, None, :]
    inside = ((rows >= corners[:, 0, None, None]) & (rows < corners[:, 0, None, None] + 8)
              & (cols >= corners[:, 1, None, None]) & (cols < corners[:, 1, None, None] + 8))
    frames = np.where(inside[..., None], 220, 40).astype(np.uint8).repeat(3, axis=-1)
    audio = 0.001 * rng.standard_normal(int(round(duration * SR)))
    idx = np.round((events - offset) * SR).astype(int)
    audio[idx[(idx >= 0) & (idx < audio.size)]] += 0.9
    return audio.astype(np.float32), SR, frames, fps


# ---------------------------------------------------------------------------
# Shapes and building blocks
# ---------------------------------------------------------------------------


def test_shapes(clips25):
    clip = clips25[0][0]
    T = clip.n_frames
    energy = motion_energy(clip.frames)
    assert energy.shape == (T,) and energy.dtype == np.float64
    assert energy[0] == energy[1] and np.all(energy >= 0) and energy.max() > 0  # nothing before frame 0
    times = motion_energy_times(T, clip.fps)
    np.testing.assert_allclose(times[:2], [-0.5 / 25, 0.5 / 25])
    env, env_times = onset_envelope(clip.audio, SR, hop_seconds=0.01)
    assert env.shape == env_times.shape == (1 + clip.audio.size // 160,)
    assert np.all(env >= 0) and env.max() > 0
    offsets, scores = signal_sync_curve(clip.audio, SR, clip.frames, clip.fps, max_offset=1.0)
    assert offsets.shape == scores.shape == (201,)
    np.testing.assert_allclose(offsets, np.arange(-100, 101) * 0.01, atol=1e-12)
    assert np.all(np.isfinite(scores))
    offsets_n, scores_n = naive_sync_curve(clip.audio, SR, clip.frames, clip.fps, max_offset=1.0)
    np.testing.assert_array_equal(offsets_n, offsets)
    assert scores_n.shape == offsets.shape and np.all(np.isfinite(scores_n))
    offset, confidence = estimate_offset(clip.audio, SR, clip.frames, clip.fps)
    assert isinstance(offset, float) and isinstance(confidence, float) and 0 <= confidence <= 1


def test_resolution_follows_fps():
    audio, sr, frames, fps = _impulses(0.0, 100.0, duration=2.0)
    offsets, _ = signal_sync_curve(audio, sr, frames, fps, max_offset=0.1)
    np.testing.assert_allclose(np.diff(offsets), 0.005)  # min(0.01, 0.5 / fps)
    offsets, _ = signal_sync_curve(audio, sr, frames, fps, max_offset=0.1, resolution=0.02)
    np.testing.assert_allclose(offsets, np.arange(-5, 6) * 0.02, atol=1e-12)


def test_onset_envelope_is_timed_at_the_onset():
    audio = np.zeros(SR, np.float32)
    audio[8000:8800] = 0.5 * np.sin(2 * np.pi * 440 * np.arange(800) / SR)  # onset at 0.5 s
    env, times = onset_envelope(audio, SR)
    assert abs(times[np.argmax(env)] - 0.5) <= 0.01
    silent, _ = onset_envelope(np.zeros(SR, np.float32), SR)
    assert not silent.any()


def test_motion_energy_ignores_brightness_camera_shift_and_noise():
    rng = np.random.RandomState(0)
    texture = gaussian_filter(rng.uniform(0, 1, size=(96, 96)), 1.5)
    texture = (texture - texture.min()) / (texture.max() - texture.min())
    scene = (60 + 80 * texture + 40 * np.sin(np.arange(96) / 5)[None, :]).astype(np.float32)
    scene = np.repeat(scene[..., None], 3, axis=-1)
    static = np.stack([scene] * 6).astype(np.uint8)
    assert not motion_energy(static).any()
    brighter = np.stack([scene + 12 * k for k in range(6)]).clip(0, 255).astype(np.uint8)  # a fade
    # a shaking camera: moves of 1 and 3 full-size pixels are half-pixel moves at the 48 px analysed
    shaken = np.stack([np.roll(scene, (k % 2, 3 * (k % 2)), axis=(0, 1)) for k in range(6)]).astype(np.uint8)
    noisy = (static + rng.normal(0, 1.5, size=static.shape)).clip(0, 255).astype(np.uint8)
    event = static.copy()
    event[3:, 30:60, 30:60] = 250  # an object appears at frame 3
    reference = motion_energy(event)
    assert np.argmax(reference) == 3
    for frames in (brighter, shaken, noisy):
        assert motion_energy(frames).max() < 0.1 * reference.max()


# ---------------------------------------------------------------------------
# Convention and accuracy
# ---------------------------------------------------------------------------


def test_sign_convention_audio_later_gives_negative_offset(clips25):
    clips, truth = clips25
    i = int(np.argmin(np.abs(truth.offsets)))
    clip, base = clips[i], truth.offsets[i]
    for delay in (0.2, 0.4):  # delay the audio: it now lags the picture more
        n = int(delay * SR)
        late = np.concatenate([np.zeros(n, np.float32), clip.audio[:-n]])
        est, _ = estimate_offset(late, SR, clip.frames, clip.fps)
        assert abs(est - (base - delay)) <= 1 / clip.fps
        assert est < 0 if base - delay < 0 else True
    # and generated clips whose audio lags: negative estimates
    lagging, truth_l = make_av_clips(n_clips=3, n_classes=3, duration=3.0, frame_size=(48, 48),
                                     offset_range=(-0.6, -0.3), random_state=1)
    for clip, true in zip(lagging, truth_l.offsets):
        est, _ = estimate_offset(clip.audio, SR, clip.frames, clip.fps)
        assert est < 0 and abs(est - true) <= 1 / clip.fps


@pytest.mark.parametrize("fps", [25.0, 29.97, 30.0, 50.0])
def test_recovers_generated_offsets_within_one_frame(fps):
    clips, truth = make_av_clips(n_clips=4, n_classes=4, duration=3.0, frame_size=(48, 48),
                                 offset_range=(-0.8, 0.8), fps=fps, camera_shake=1.0, random_state=2)
    est = np.array([estimate_offset(c.audio, c.sample_rate, c.frames, c.fps)[0] for c in clips])
    assert sync_accuracy(truth.offsets, est, 1 / fps) == 1.0


@pytest.mark.parametrize("fraction", [0.25, 0.5, 0.75])
def test_sub_frame_refinement(fraction):
    fps = 25.0
    true = -0.3 + fraction / fps
    audio, sr, frames, fps = _impulses(true, fps)
    # a half-frame grid: the parabola has to do the rest
    offsets, scores = signal_sync_curve(audio, sr, frames, fps, max_offset=0.5, resolution=0.02)
    est, confidence = peak_offset(offsets, scores)
    assert abs(est - true) <= 0.3 / fps
    assert confidence > SYNC_CONFIDENCE_THRESHOLD


def test_peak_offset_parabolic_vertex_and_ends():
    x = np.arange(-5, 6) * 0.1
    y = -((x - 0.137) ** 2) + 10
    est, confidence = peak_offset(x, y)
    assert est == pytest.approx(0.137)
    assert confidence == pytest.approx(1 - np.exp(-(y.max() - 3) * np.log(2) / 2))
    assert peak_offset(x, np.where(x == 0.2, 5.0, 0.0))[1] == pytest.approx(0.5)  # z = 5: the threshold
    est, _ = peak_offset(x, x)  # increasing: peak at the end, not moved
    assert est == pytest.approx(0.5)


# ---------------------------------------------------------------------------
# Confidence
# ---------------------------------------------------------------------------


def test_flat_curve_gives_zero_confidence_and_zero_offset():
    assert peak_offset(np.linspace(-1, 1, 201), np.zeros(201)) == (0.0, 0.0)
    assert peak_offset(np.linspace(-1, 1, 201), np.full(201, 3.0)) == (0.0, 0.0)
    assert not null_standardise(np.full(5, 2.0)).any()


def test_silence_and_static_frames_give_zero_confidence(clips25):
    clip = clips25[0][0]
    for method in ("signal", "naive"):
        for audio, frames in [(np.zeros_like(clip.audio), clip.frames),
                              (clip.audio, np.repeat(clip.frames[:1], clip.n_frames, axis=0))]:
            offsets, scores = (signal_sync_curve if method == "signal" else naive_sync_curve)(audio, SR, frames, clip.fps)
            assert not scores.any() and np.all(np.isfinite(scores))
            assert estimate_offset(audio, SR, frames, clip.fps, method=method) == (0.0, 0.0)


def test_mismatched_audio_scores_lower_than_matched(clips25):
    clips, _ = clips25
    n = len(clips)
    matched = [estimate_offset(c.audio, SR, c.frames, c.fps)[1] for c in clips]
    mismatched = [estimate_offset(clips[(i + 1) % n].audio, SR, c.frames, c.fps)[1]
                  for i, c in enumerate(clips)]
    assert np.mean(matched) > np.mean(mismatched) + 0.3
    assert np.mean(np.array(matched) >= SYNC_CONFIDENCE_THRESHOLD) >= 5 / 6
    assert np.mean(np.array(mismatched) < SYNC_CONFIDENCE_THRESHOLD) >= 4 / 6


# ---------------------------------------------------------------------------
# max_offset and bad input
# ---------------------------------------------------------------------------


def test_max_offset_is_clipped_to_half_the_clip():
    audio, sr, frames, fps = _impulses(0.1, 25.0, duration=2.0)
    offsets, _ = signal_sync_curve(audio, sr, frames, fps, max_offset=0.3)
    assert offsets[0] == pytest.approx(-0.3) and offsets[-1] == pytest.approx(0.3)
    offsets, scores = signal_sync_curve(audio, sr, frames, fps, max_offset=10.0)
    assert offsets[-1] == pytest.approx(1.0) and offsets[0] == pytest.approx(-1.0)
    # audio longer than the video: the shorter span decides
    offsets, _ = signal_sync_curve(np.tile(audio, 3), sr, frames, fps, max_offset=10.0)
    assert offsets[-1] == pytest.approx(1.0)
    # a one-frame clip still answers, with no confidence
    est, confidence = estimate_offset(audio[:640], sr, frames[:1], fps)
    assert confidence == 0.0 and np.isfinite(est)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(audio=np.zeros(0, np.float32)), ValueError, "audio is empty"),
        (dict(audio=np.zeros((100, 2), np.float32)), ValueError, "audio must be mono"),
        (dict(sample_rate=0), ValueError, "sample_rate"),
        (dict(fps=0), ValueError, "fps"),
        (dict(fps=-25.0), ValueError, "fps"),
        (dict(frames=np.zeros((5, 32, 32), np.uint8)), ValueError, r"frames must have shape \(T, H, W, 3\)"),
        (dict(frames=np.zeros((5, 32, 32, 3), np.float32)), TypeError, "frames must be uint8"),
        (dict(frames=np.zeros((0, 32, 32, 3), np.uint8)), ValueError, "frames is empty"),
        (dict(max_offset=0.0), ValueError, "max_offset"),
        (dict(max_offset=-1.0), ValueError, "max_offset"),
        (dict(max_offset="1"), TypeError, "max_offset"),
        (dict(method="xcorr"), ValueError, "method"),
    ],
)
def test_bad_input_names_the_parameter(kwargs, error, match):
    args = dict(audio=np.zeros(SR, np.float32), sample_rate=SR, frames=np.zeros((25, 32, 32, 3), np.uint8),
                fps=25.0, max_offset=1.0, method="signal")
    args.update(kwargs)
    with pytest.raises(error, match=match):
        estimate_offset(args.pop("audio"), args.pop("sample_rate"), args.pop("frames"), args.pop("fps"),
                        **args)


def test_bad_curve_and_parameters():
    with pytest.raises(ValueError, match="resolution"):
        signal_sync_curve(np.zeros(SR, np.float32), SR, np.zeros((25, 8, 8, 3), np.uint8), 25.0, resolution=0)
    with pytest.raises(ValueError, match="scores must have the shape"):
        peak_offset(np.arange(5.0), np.arange(4.0))
    with pytest.raises(ValueError, match="finite"):
        peak_offset(np.arange(3.0), np.array([0.0, np.nan, 1.0]))
    with pytest.raises(ValueError, match="increasing"):
        peak_offset(np.array([0.0, 2.0, 1.0]), np.arange(3.0))
    with pytest.raises(ValueError, match="hop_seconds"):
        onset_envelope(np.zeros(100, np.float32), SR, hop_seconds=0)
    with pytest.raises(ValueError, match="max_shift"):
        motion_energy(np.zeros((2, 8, 8, 3), np.uint8), max_shift=-1)


# ---------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------


def test_sync_metrics():
    y = np.array([0.0, 0.1, -0.5, 0.3])
    pred = np.array([0.04, 0.0, -0.5, 0.5])
    assert sync_accuracy(y, pred, 0.04) == 0.5  # 0.04 exactly counts
    assert sync_accuracy(y, pred, 0.1) == 0.75
    assert sync_mean_absolute_error(y, pred) == pytest.approx(0.085)
    with pytest.raises(ValueError, match="y_pred must have the shape"):
        sync_accuracy(y, pred[:3], 0.1)
    with pytest.raises(ValueError, match="tolerance"):
        sync_accuracy(y, pred, -1)
    with pytest.raises(ValueError, match="y_true must be a non-empty"):
        sync_mean_absolute_error([], [])


# ---------------------------------------------------------------------------
# Padding (issue 13): digital silence at the ends of a shifted track
# ---------------------------------------------------------------------------


def test_zero_padding_is_no_onset():
    rng = np.random.RandomState(0)
    audio = (0.05 * rng.standard_normal(2 * SR)).astype(np.float32)  # steady background, no event
    padded = np.concatenate([np.zeros(SR // 2, np.float32), audio])
    env, times = onset_envelope(padded, SR, hop_seconds=0.01)
    ref, _ = onset_envelope(audio, SR, hop_seconds=0.01)
    assert env.max() < 2 * ref.max() + 1.0  # no jump from the -80 dB floor into the recording
    # a lone click in digital silence is a recording of silence, not padding: still an onset
    click = np.zeros(SR, np.float32)
    click[SR // 2] = 0.9
    env, times = onset_envelope(click, SR, hop_seconds=0.01)
    assert abs(times[np.argmax(env)] - 0.5) <= 0.01


@pytest.mark.parametrize("seed", range(4))
def test_zero_padded_delay_does_not_capture_the_estimate(seed):
    """Audio delayed by padding exact zeros at its start (a user's misaligned file): the estimate
    follows the delay instead of the jump from digital silence into the recording."""
    audio, sr, frames, fps = _impulses(0.0, 25.0, duration=4.0, seed=seed)
    audio = audio + (0.05 * np.random.RandomState(seed).standard_normal(audio.size)).astype(np.float32)
    for delay in (0.3, 0.6):
        n = int(delay * SR)
        late = np.concatenate([np.zeros(n, np.float32), audio[:-n]])
        est, _ = estimate_offset(late, SR, frames, fps)
        assert abs(est + delay) <= 1 / fps


def test_motion_series_gives_the_frames_curve():
    """A clip's frames reduced once to their motion series give the same curve with any sound."""
    from skavc.sync import motion_series, motion_sync_curve

    audio, sr, frames, fps = _impulses(0.2, 25.0, duration=3.0, seed=1)
    other, _, _, _ = _impulses(0.0, 25.0, duration=3.0, seed=2)
    motion = motion_series(frames)
    for sound in (audio, other):
        expected = signal_sync_curve(sound, sr, frames, fps, max_offset=0.5)
        got = motion_sync_curve(sound, sr, motion, fps, max_offset=0.5)
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_allclose(got[1], expected[1], atol=1e-12)
    with pytest.raises(ValueError, match="motion must be a non-empty 1-D series"):
        motion_sync_curve(audio, sr, frames, fps)


def test_a_sound_analysed_once_gives_each_pair_the_same_evidence():
    """sound_series + pair_evidence (a sound paired with many pictures, analysed once) equal the
    sync curve of each pair computed from scratch; onsets of another sound are refused."""
    from skavc.sync import motion_series, motion_sync_curve, pair_evidence, peak_evidence, sound_series

    audio, sr, frames, fps = _impulses(0.2, 25.0, duration=3.0, seed=1)
    other, _, other_frames, _ = _impulses(0.0, 25.0, duration=3.0, seed=2)
    sound = sound_series(audio, sr)
    for f, rate in ((frames, fps), (other_frames, fps), (frames[::2], fps / 2), (np.repeat(frames, 3, axis=0), 75.0)):
        expected = peak_evidence([signal_sync_curve(audio, sr, f, rate, max_offset=0.5)])[0]
        assert pair_evidence(sound, (motion_series(f), rate), max_offset=0.5) == pytest.approx(expected, abs=1e-12)
    with pytest.raises(ValueError, match="onsets must be onset_envelope"):
        motion_sync_curve(audio, sr, motion_series(frames), fps, onsets=sound_series(other[: sr], sr)[2])


def test_the_tracks_cut_edges_are_no_event():
    """A clip cut from a longer recording starts mid-motion and mid-sound: neither start is an
    event. The first motion value is a placeholder (no frame before the first), and the first
    onset frames see the zeros before the first sample; read as measurements, both make a rise
    at t = 0 that pulls any estimate towards the alignment of the two cuts."""
    from skavc.sync import motion_series
    from skavc.sync._signal import _common_grid, _onset_cut_edge, _signal_series

    rng = np.random.RandomState(0)
    frames = np.full((50, 48, 64, 3), 100, np.uint8)
    frames[:, 10:30, 20:40] = rng.randint(0, 256, size=(50, 20, 20, 3))  # steady flicker, no event
    motion = motion_series(frames)
    assert motion[1] <= 1.2 * np.median(motion[1:])  # no rise from the placeholder into the clip
    audio = (0.1 * rng.standard_normal(2 * SR)).astype(np.float32)  # loud from the first sample
    grid = _common_grid(audio, SR, frames.shape[0], 25.0, 0.01)
    a, _ = _signal_series(audio, SR, motion, 25.0, grid, 0.01)
    edge = grid < _onset_cut_edge(0.01)
    assert edge.sum() == 2 and np.all(a[edge] == 0.0)  # unknown (the series' mean), not an onset: 20 ms only
    assert abs(a[~edge][0]) < 3.0  # and the first value kept is an ordinary one
