"""Tests for skavc.datasets.make_av_clips: shapes, determinism and the ground truth itself."""

import numpy as np
import pytest
from scipy.stats import spearmanr

from skavc._clip import AVClip
from skavc.datasets import make_av_clips

SMALL = dict(duration=1.0, sample_rate=8000, fps=20.0, frame_size=(48, 64))


def _motion(frames):
    """Mean absolute change from frame f-1 to frame f, for f = 1 .. T-1."""
    return np.abs(np.diff(frames.astype(np.int16), axis=0)).mean(axis=(1, 2, 3))


def _onset_strength(audio, hop, n_frames, n_sub=10):
    """Largest rise of short-time RMS within [(f-1)/fps, f/fps), for f = 1 .. T-1.

    An event at time t in that interval is first visible in frame f, so this
    lines up with ``_motion`` at zero lag. Short sub-windows keep the rise
    within the interval that holds the onset rather than smearing it into the next.
    """
    sub = hop // n_sub
    rms = np.sqrt((audio[: n_frames * n_sub * sub].reshape(-1, sub) ** 2).mean(axis=1))
    rise = np.maximum(np.diff(np.concatenate([[0.0], rms])), 0.0)
    return rise.reshape(n_frames, n_sub).max(axis=1)[: n_frames - 1]


def _best_lag(motion, onset, max_lag=10):
    """Lag (frames) at which motion best follows the audio: motion[i + lag] ~ onset[i]."""
    scores = []
    for lag in range(-max_lag, max_lag + 1):
        m = motion[max(0, lag) : motion.size + min(0, lag)]
        o = onset[max(0, -lag) : onset.size + min(0, -lag)]
        scores.append(np.corrcoef(m, o)[0, 1])
    return int(np.argmax(scores)) - max_lag


def test_shapes_and_dtypes():
    n, S, D = 5, 2, 1
    clips, truth = make_av_clips(n_clips=n, n_classes=6, n_sources=S, n_distractors=D,
                                 random_state=0, **SMALL)
    T, H, W, N = 20, 48, 64, 8000
    assert len(clips) == n
    for c in clips:
        assert isinstance(c, AVClip)
        assert c.audio.dtype == np.float32 and c.audio.shape == (N,)
        assert c.frames.dtype == np.uint8 and c.frames.shape == (T, H, W, 3)
        assert c.sample_rate == 8000 and c.fps == 20.0
    assert truth.labels.shape == (n,) and truth.labels.dtype.kind == "i"
    assert truth.label_names.shape == (n,)
    assert truth.class_names.shape == (6,) and truth.object_names.shape == (6,)
    assert truth.offsets.shape == (n,) and np.all(truth.offsets == 0)
    assert truth.offset_samples.shape == (n,)
    assert truth.source_labels.shape == (n, S)
    assert truth.distractor_labels.shape == (n, D)
    for key in ("frequencies", "pitch_levels", "size_levels", "radii", "gains", "decays"):
        assert truth[key].shape == (n, S), key
    assert truth.colors.shape == (n, S, 3)
    for i in range(n):
        assert truth.source_masks[i].shape == (T, H, W) and truth.source_masks[i].dtype == bool
        assert truth.instance_masks[i].shape == (S, T, H, W)
        assert truth.sources[i].shape == (S, N) and truth.sources[i].dtype == np.float32
        assert len(truth.source_frames[i]) == S
        for sf in truth.source_frames[i]:
            assert sf.shape == (T, H, W, 3) and sf.dtype == np.uint8
        assert len(truth.onsets[i]) == S and len(truth.audio_onsets[i]) == S
        assert truth.centers[i].shape == (S, T, 2)
        assert truth.backgrounds[i].shape == (H, W, 3)
        assert truth.camera_offsets[i].shape == (T, 2)


def test_default_sizes():
    clips, truth = make_av_clips(n_clips=2, random_state=0)
    assert clips[0].frames.shape == (50, 128, 128, 3)
    assert clips[0].audio.shape == (32000,)
    assert truth.class_names.shape == (8,)


def test_names_describe_sounds_and_objects():
    clips, truth = make_av_clips(n_clips=24, n_classes=12, random_state=0, **SMALL)
    assert len(set(truth.class_names)) == 12 and len(set(truth.object_names)) == 12
    assert all(isinstance(s, str) and s for s in truth.class_names)
    np.testing.assert_array_equal(truth.label_names, truth.class_names[truth.labels])
    # Balanced labels: each class exactly twice.
    np.testing.assert_array_equal(np.bincount(truth.labels, minlength=12), 2)


def test_deterministic():
    a_clips, a = make_av_clips(n_clips=3, n_sources=2, noise_level=0.01, random_state=7, **SMALL)
    b_clips, b = make_av_clips(n_clips=3, n_sources=2, noise_level=0.01,
                               random_state=np.random.RandomState(7), **SMALL)
    c_clips, _ = make_av_clips(n_clips=3, n_sources=2, noise_level=0.01, random_state=8, **SMALL)
    for x, y, z in zip(a_clips, b_clips, c_clips):
        np.testing.assert_array_equal(x.audio, y.audio)
        np.testing.assert_array_equal(x.frames, y.frames)
        assert not np.array_equal(x.frames, z.frames)
    np.testing.assert_array_equal(a.labels, b.labels)
    for i in range(3):
        np.testing.assert_array_equal(a.source_masks[i], b.source_masks[i])


def test_masks_cover_the_sounding_object():
    clips, truth = make_av_clips(n_clips=6, n_classes=12, n_distractors=0, random_state=1, **SMALL)
    for c, mask, bg, alone in zip(clips, truth.source_masks, truth.backgrounds, truth.source_frames):
        assert mask.any(axis=(1, 2)).all(), "the sounding object is visible in every frame"
        diff = np.abs(c.frames.astype(int) - bg.astype(int)).sum(axis=-1)
        # Without distractors or camera shake, only the object departs from the background.
        assert np.all(diff[~mask] == 0)
        assert np.mean(diff[mask] > 0) > 0.97
        # With a single source the clip frames are the source frames.
        np.testing.assert_array_equal(alone[0], c.frames)


def test_masks_with_distractors_and_several_sources():
    S = 3
    clips, truth = make_av_clips(n_clips=5, n_classes=8, n_sources=S, n_distractors=3,
                                 random_state=2, **SMALL)
    for i, c in enumerate(clips):
        inst = truth.instance_masks[i]
        np.testing.assert_array_equal(truth.source_masks[i], inst.any(axis=0))
        assert inst.sum(axis=0).max() <= 1, "visible pixels belong to one source at most"
        assert len(set(truth.source_labels[i])) == S
        assert not set(truth.distractor_labels[i]) & set(truth.source_labels[i])
        for j in range(S):
            # What is visible of source j looks the same in the clip and in its own frames.
            m = inst[j]
            np.testing.assert_array_equal(c.frames[m], truth.source_frames[i][j][m])
            own = (truth.source_frames[i][j] != truth.backgrounds[i]).any(axis=-1)
            assert own[m].mean() > 0.97
    np.testing.assert_array_equal(truth.source_labels[:, 0], truth.labels)


def test_distractor_pool():
    _, out = make_av_clips(n_clips=6, n_classes=4, n_distractors=3, random_state=12, **SMALL)
    assert np.all(out.distractor_labels >= 4)  # rows beyond the labelled classes
    _, ins = make_av_clips(n_clips=6, n_classes=4, n_distractors=3, distractor_pool="inside",
                           random_state=12, **SMALL)
    assert np.all(ins.distractor_labels < 4)
    assert np.all(ins.distractor_labels != ins.labels[:, None])
    _, full = make_av_clips(n_clips=6, n_classes=12, n_distractors=2, random_state=12, **SMALL)
    assert np.all(full.distractor_labels != full.labels[:, None])


def test_sources_sum_to_audio():
    clips, truth = make_av_clips(n_clips=4, n_sources=3, n_classes=5, random_state=3, **SMALL)
    for c, s in zip(clips, truth.sources):
        np.testing.assert_array_equal(s.sum(axis=0), c.audio)
    noisy, truth_n = make_av_clips(n_clips=4, n_sources=3, n_classes=5, noise_level=0.02,
                                   random_state=3, **SMALL)
    for c, s, clean in zip(noisy, truth_n.sources, truth.sources):
        np.testing.assert_array_equal(s, clean)  # noise does not change the sources
        assert abs(np.std(c.audio - s.sum(axis=0)) - 0.02) < 0.002


def test_audio_levels():
    for S in (1, 2, 4):
        clips, truth = make_av_clips(n_clips=12, n_classes=12, n_sources=S, random_state=4, **SMALL)
        peaks = np.array([np.abs(c.audio).max() for c in clips])
        assert peaks.max() < 0.95 and peaks.min() > 0.15, (S, peaks)


@pytest.mark.parametrize("d", [0.1234, -0.37, 0.49, 1.0 / 8000])
def test_offset_ground_truth_is_sample_exact(d):
    kw = dict(n_clips=4, n_sources=2, noise_level=0.01, random_state=5, **SMALL)
    base_clips, base = make_av_clips(**kw)
    clips, truth = make_av_clips(offset_range=(d, d), **kw)
    shift = int(round(d * 8000))
    np.testing.assert_array_equal(truth.offset_samples, shift)
    np.testing.assert_allclose(truth.offsets, shift / 8000)
    for a, b in zip(base_clips, clips):
        np.testing.assert_array_equal(a.frames, b.frames)
        # Audio ahead by d: the shifted clip's sample n is the aligned clip's sample n + shift.
        if shift >= 0:
            np.testing.assert_array_equal(b.audio[: b.audio.size - shift], a.audio[shift:])
        else:
            np.testing.assert_array_equal(b.audio[-shift:], a.audio[: a.audio.size + shift])
    for i in range(4):
        for j in range(2):
            np.testing.assert_array_equal(base.onsets[i][j], truth.onsets[i][j])
            expected = truth.onsets[i][j] - truth.offsets[i]
            assert np.all(np.isin(np.round(expected[(expected >= 0) & (expected < 1)], 9),
                                  np.round(truth.audio_onsets[i][j], 9)))


def test_offset_range_draws():
    clips, truth = make_av_clips(n_clips=30, offset_range=(-0.3, 0.2), random_state=6, **SMALL)
    assert np.all(truth.offsets >= -0.3) and np.all(truth.offsets <= 0.2)
    assert truth.offsets.std() > 0.05
    np.testing.assert_allclose(truth.offsets * 8000, truth.offset_samples)


def test_audio_onsets_are_audible():
    clips, truth = make_av_clips(n_clips=8, n_classes=12, n_sources=2, random_state=7, **SMALL)
    win = int(0.015 * 8000)
    for i in range(8):
        for j in range(2):
            s = truth.sources[i][j]
            for t in truth.audio_onsets[i][j]:
                n = int(np.ceil(t * 8000))
                if n < win or n + win > s.size:
                    continue
                before = np.sqrt(np.mean(s[n - win : n] ** 2))
                after = np.sqrt(np.mean(s[n : n + win] ** 2))
                assert after > 1.5 * before + 1e-4, (i, j, t)


@pytest.mark.parametrize("d", [0.0, 0.25, -0.3])
def test_motion_follows_audio_onsets(d):
    # Sync and localisation rely on this: frame-difference energy peaks with
    # the audio onsets, at a lag of exactly the offset.
    clips, truth = make_av_clips(n_clips=10, n_distractors=2, offset_range=(d, d), random_state=8,
                                 duration=2.0, sample_rate=8000, fps=20.0, frame_size=(64, 64))
    lags, corrs = [], []
    for c in clips:
        motion = _motion(c.frames)
        onset = _onset_strength(c.audio, 400, c.n_frames)
        lags.append(_best_lag(motion, onset))
        if d == 0:
            corrs.append(np.corrcoef(motion, onset)[0, 1])
    # The detector's own frame quantisation puts an onset that falls just
    # before a frame boundary one frame late, so allow a few +-1 misses.
    err = np.array(lags) - round(d * 20)
    assert np.median(err) == 0 and np.mean(err == 0) >= 0.6 and np.mean(np.abs(err) <= 1) >= 0.9, lags
    if d == 0:
        assert np.median(corrs) > 0.5, corrs


def test_instance_coupling_size_loudness_pitch_colour():
    # One class so that shapes and timbres are alike and only instances vary.
    clips, truth = make_av_clips(n_clips=30, n_classes=1, n_distractors=0, random_state=9, **SMALL)
    radius = np.array([np.sqrt(m.sum(axis=(1, 2))).min() for m in truth.source_masks])
    loudness = np.array([np.abs(s[0]).max() for s in truth.sources])
    assert spearmanr(radius, loudness)[0] > 0.8
    assert spearmanr(truth.radii[:, 0], truth.gains[:, 0])[0] > 0.99

    centroid = []
    for s in truth.sources:
        spec = np.abs(np.fft.rfft(s[0]))
        centroid.append((spec * np.fft.rfftfreq(s[0].size, 1 / 8000)).sum() / spec.sum())
    assert spearmanr(centroid, truth.frequencies[:, 0])[0] > 0.9

    # Brightness of the object when it is at rest (lowest pulse) follows pitch.
    brightness = []
    for c, m in zip(clips, truth.source_masks):
        rest = np.argmin(m.sum(axis=(1, 2)))
        brightness.append(np.median(c.frames[rest][m[rest]].max(axis=-1)))
    assert spearmanr(brightness, truth.frequencies[:, 0])[0] > 0.8


def test_hue_within_colour_family():
    clips, truth = make_av_clips(n_clips=24, n_classes=12, n_distractors=0, random_state=10, **SMALL)
    rgb = truth.colors[:, 0]
    r, g, b = rgb.T
    hue = np.degrees(np.arctan2(np.sqrt(3) * (g - b), 2 * r - g - b)) % 360
    family = 30.0 * truth.labels
    err = (hue - family + 180) % 360 - 180
    assert np.all(np.abs(err) < 15)


def test_camera_shake_moves_frames_not_audio():
    kw = dict(n_clips=3, random_state=11, **SMALL)
    still, t0 = make_av_clips(**kw)
    shaky, t1 = make_av_clips(camera_shake=1.5, **kw)
    assert any(np.abs(o).max() > 0 for o in t1.camera_offsets)
    for a, b, m in zip(still, shaky, t1.source_masks):
        np.testing.assert_array_equal(a.audio, b.audio)
        assert m.any(axis=(1, 2)).all()


def test_edge_sizes():
    clips, truth = make_av_clips(n_clips=2, n_classes=12, n_sources=12, n_distractors=2, duration=0.1,
                                 sample_rate=8000.0, fps=29.97, frame_size=(16, 16), random_state=0)
    assert clips[0].frames.shape == (3, 16, 16, 3)
    assert truth.distractor_labels.shape == (2, 2)
    clips, truth = make_av_clips(n_clips=1, n_classes=1, n_distractors=0, random_state=0, **SMALL)
    assert truth.distractor_labels.shape == (1, 0)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(n_clips=0), ValueError, "n_clips"),
        (dict(n_clips=2.5), TypeError, "n_clips"),
        (dict(n_clips=True), TypeError, "n_clips"),
        (dict(n_classes=0), ValueError, "n_classes"),
        (dict(n_classes=13), ValueError, "n_classes"),
        (dict(duration=0), ValueError, "duration"),
        (dict(duration=float("nan")), ValueError, "duration"),
        (dict(duration="2"), TypeError, "duration"),
        (dict(sample_rate=4000), ValueError, "sample_rate"),
        (dict(sample_rate=16000.5), TypeError, "sample_rate"),
        (dict(fps=0), ValueError, "fps"),
        (dict(frame_size=(8, 128)), ValueError, "frame_size"),
        (dict(frame_size=(128,)), ValueError, "frame_size"),
        (dict(frame_size=(128.0, 128)), TypeError, "frame_size"),
        (dict(n_sources=0), ValueError, "n_sources"),
        (dict(n_classes=3, n_sources=4), ValueError, "n_sources"),
        (dict(n_distractors=-1), ValueError, "n_distractors"),
        (dict(offset_range=(0.5, 0.1)), ValueError, "offset_range"),
        (dict(offset_range=(-1.0, 0.0)), ValueError, "offset_range"),
        (dict(offset_range=(0.0, 1.5)), ValueError, "offset_range"),
        (dict(offset_range=0.3), ValueError, "offset_range"),
        (dict(noise_level=-0.1), ValueError, "noise_level"),
        (dict(camera_shake=-1), ValueError, "camera_shake"),
        (dict(distractor_pool="all"), ValueError, "distractor_pool"),
        (dict(duration=0.01, fps=25.0), ValueError, "duration"),
    ],
)
def test_parameter_validation(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        make_av_clips(**{"n_clips": 2, **kwargs})
