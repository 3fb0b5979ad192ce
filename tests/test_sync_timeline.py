"""Sync over time (issue 20): an offset per window, the whole recording's, and the drift."""

import numpy as np
import pytest

from skavc import AVClip, AVCorrespondence
from skavc.datasets import make_av_clips
from skavc.sync import combine_curves, fit_drift, signal_sync_curve, sync_timeline

FPS = 25.0
SEGMENT = 4.0  # seconds per generated segment, one window each
DRIFT = [-0.24, -0.12, 0.0, 0.12, 0.24]  # each segment's offset: a clock running 0.03 s/s fast


@pytest.fixture(scope="module")
def drifting():
    """One recording of five 4 s segments whose audio leads by more and more, and the truth."""
    parts = [make_av_clips(n_clips=1, n_classes=4, duration=SEGMENT, frame_size=(96, 96), offset_range=(o, o),
                           random_state=10 + i)[0][0] for i, o in enumerate(DRIFT)]
    audio = np.concatenate([p.audio for p in parts])
    frames = np.concatenate([p.frames for p in parts])
    return AVClip(audio, parts[0].sample_rate, frames, FPS, source="drifting")


def test_one_window_is_the_clips_own_answer():
    (clip,), truth = make_av_clips(n_clips=1, duration=SEGMENT, frame_size=(96, 96), offset_range=(0.2, 0.2),
                                   random_state=3)
    (timeline,) = AVCorrespondence().sync_timeline([clip], window=10.0)
    offsets, confidence = AVCorrespondence().predict_offset([clip], return_confidence=True, method="signal")
    assert timeline.starts.tolist() == [0.0] and timeline.durations.tolist() == [SEGMENT]
    assert timeline.offset == offsets[0] == timeline.offsets[0]
    assert timeline.overall_confidence == confidence[0] == timeline.confidence[0]
    np.testing.assert_array_equal(timeline.curve[1], signal_sync_curve(
        clip.audio, clip.sample_rate, clip.frames, clip.fps)[1])
    assert abs(timeline.offset - 0.2) <= 1 / FPS and np.isnan(timeline.drift) and timeline.fps == FPS


def test_windows_follow_a_drifting_clock(drifting):
    (timeline,) = AVCorrespondence().sync_timeline([drifting], window=SEGMENT)
    np.testing.assert_allclose(timeline.starts, SEGMENT * np.arange(len(DRIFT)))
    assert np.all(np.abs(timeline.offsets - DRIFT) <= 1 / FPS), timeline.offsets  # within a frame per window
    assert np.all(timeline.confidence >= 0.5)
    slope = np.polyfit(timeline.centres, DRIFT, 1)[0]
    assert abs(timeline.drift - slope) < 0.002  # 0.03 s/s injected
    # one number for the whole recording lies within the drift's range; the windows show what it hides
    assert min(DRIFT) - 1 / FPS <= timeline.offset <= max(DRIFT) + 1 / FPS


def test_overlapping_windows_and_a_short_tail(drifting):
    (timeline,) = AVCorrespondence().sync_timeline([drifting], window=SEGMENT, hop=SEGMENT / 2)
    np.testing.assert_allclose(timeline.starts, np.arange(0, 17, 2.0))  # the last one ends with the recording
    assert np.all(timeline.durations == SEGMENT)
    assert np.all(np.abs(timeline.offsets[::2] - DRIFT) <= 1 / FPS)  # those on the segments
    (tail,) = AVCorrespondence().sync_timeline([drifting], window=7.0)
    assert tail.durations.tolist() == [7.0, 7.0, 6.0]  # the last window holds what is left
    (no_tail,) = AVCorrespondence().sync_timeline([drifting], window=6.0)
    assert no_tail.durations.tolist() == [6.0, 6.0, 6.0]  # 2 s left, under half a window: left out


def test_combine_curves_keeps_chance_units_and_one_grid():
    rng = np.random.RandomState(0)
    grid = np.linspace(-1, 1, 201)
    noise = [(grid, rng.standard_normal(grid.size)) for _ in range(16)]
    _, combined = combine_curves(noise)
    assert 0.8 < np.std(combined) < 1.2  # independent chance curves stay at chance spread
    single = combine_curves(noise[:1])
    np.testing.assert_array_equal(single[1], noise[0][1])
    with pytest.raises(ValueError, match="one grid of offsets"):
        combine_curves([noise[0], (grid[:-1], grid[:-1])])
    with pytest.raises(ValueError, match="curves is empty"):
        combine_curves([])


def test_fit_drift_trusts_the_trustworthy_and_outvotes_wild_windows():
    centres = np.arange(10.0)
    offsets = 0.01 * centres
    confidence = np.full(10, 0.9)
    drift, intercept, (low, high), trusted = fit_drift(centres, offsets + 0.3, confidence)
    assert (drift, intercept) == pytest.approx((0.01, 0.3)) and low <= 0.01 <= high and trusted
    offsets[3], confidence[3] = 5.0, 0.1  # a wild window nobody trusts
    assert fit_drift(centres, offsets, confidence)[:2] == pytest.approx((0.01, 0.0), abs=1e-9)
    # nothing trustworthy (real video): all windows vote. 30 windows of 10 s drifting 1 ms/s under
    # 20 ms of noise, 6 of them wild: the line holds where least squares is moved off
    rng = np.random.RandomState(0)
    times = 10.0 * np.arange(30) + 5
    noisy = 0.001 * times + 0.02 * rng.standard_normal(30)
    noisy[[2, 7, 11, 19, 23, 28]] = [0.8, -0.9, 0.7, -0.8, 0.9, -0.7]
    drift, _, (low, high), trusted = fit_drift(times, noisy, np.full(30, 0.1))
    assert not trusted and abs(drift - 0.001) < 0.0003 and low <= 0.001 <= high and low > 0
    assert abs(np.polyfit(times, noisy, 1)[0] - 0.001) > 0.0005
    still = 0.02 * rng.standard_normal(30)  # no drift at all: the interval holds 0
    _, _, (low, high), _ = fit_drift(times, still, np.full(30, 0.1))
    assert low <= 0 <= high
    drift, intercept, interval, _ = fit_drift(centres[:2], offsets[:2], confidence[:2])
    assert np.isnan([drift, intercept, *interval]).all()


def test_bad_window_and_method_are_named(drifting):
    with pytest.raises(ValueError, match="window must be a finite number > 0"):
        AVCorrespondence().sync_timeline([drifting], window=0)
    with pytest.raises(ValueError, match="hop must be at most window"):
        AVCorrespondence().sync_timeline([drifting], window=2.0, hop=3.0)
    with pytest.raises(ValueError, match="method must be one of"):
        AVCorrespondence().sync_timeline([drifting], method="learned")
    with pytest.raises(ValueError, match="windows is empty"):
        sync_timeline([])


def test_a_file_is_streamed_window_by_window(drifting, tmp_path):
    from skavc import load_clip, save_clip

    path = save_clip(drifting, tmp_path / "drifting.mp4")
    (from_file,) = AVCorrespondence().sync_timeline([str(path)], window=SEGMENT)
    (in_memory,) = AVCorrespondence().sync_timeline([load_clip(path)], window=SEGMENT)
    np.testing.assert_allclose(from_file.starts, in_memory.starts)
    assert np.all(np.abs(from_file.offsets - in_memory.offsets) <= 1 / FPS)
    assert np.all(np.abs(from_file.offsets - DRIFT) <= 1 / FPS)


def test_skavc_sync_prints_each_window_and_the_drift(drifting, tmp_path, capsys):
    import re

    from skavc import save_clip
    from skavc.cli import main

    path = save_clip(drifting, tmp_path / "drifting.mp4")
    assert main(["sync", str(path), "--window", str(SEGMENT), "--plot", str(tmp_path / "curve.png")]) == 0
    out, err = capsys.readouterr()
    assert f"{len(DRIFT)} windows of {SEGMENT:g} s" in out
    rows = re.findall(r"^  (\d:\d\d)-(\d:\d\d) +([+-]\d\.\d{3}) +(\d\.\d\d)$", out, re.M)
    assert [r[0] for r in rows] == ["0:00", "0:04", "0:08", "0:12", "0:16"]
    assert np.all(np.abs(np.array([float(r[2]) for r in rows]) - DRIFT) <= 1 / FPS)
    per_hour = float(re.search(r"drift: ([+-][\d.]+) s per hour", out).group(1))
    assert abs(per_hour - 3600 * 0.03) < 3600 * 0.002
    assert "sync drifting.mp4:" in err and "x real time" in err  # the progress line
    assert (tmp_path / "curve.png").stat().st_size > 0
    assert main(["sync", str(path), "--window", str(SEGMENT), "--quiet"]) == 0
    assert capsys.readouterr().err == ""
    assert main(["sync", str(path), "--window", "2", "--hop", "3"]) == 2
    assert "hop must be at most window" in capsys.readouterr().err


def test_a_short_file_at_the_work_size_gives_the_whole_file_answer(tmp_path):
    """A file larger than MOTION_SIDE is decoded smaller for sync: the answer stays predict_offset's."""
    from skavc import save_clip
    from skavc.features import MOTION_SIDE

    (clip,), _ = make_av_clips(n_clips=1, duration=SEGMENT, frame_size=(240, 400), offset_range=(-0.3, -0.3),
                               random_state=5)
    assert max(clip.frames.shape[1:3]) > MOTION_SIDE
    path = str(save_clip(clip, tmp_path / "wide.mp4"))
    (timeline,) = AVCorrespondence().sync_timeline([path])
    (offset,), (confidence,) = AVCorrespondence().predict_offset([path], return_confidence=True)
    assert abs(timeline.offset - offset) <= 0.25 / FPS and abs(timeline.overall_confidence - confidence) < 0.1
    assert abs(offset + 0.3) <= 1 / FPS


def test_a_tail_that_searches_a_narrower_range_is_kept_apart(drifting):
    (timeline,) = AVCorrespondence().sync_timeline([drifting], window=2.6)
    np.testing.assert_allclose(timeline.durations, [2.6] * 7 + [1.8])  # 1.8 s >= half a window: kept
    # the tail searches +-0.9 s (half its length), the others +-1.0 s: only theirs are combined
    assert timeline.curve[0][0] == pytest.approx(-1.0) and timeline.curve[0][-1] == pytest.approx(1.0)
    assert np.isfinite(timeline.offsets[-1]) and abs(timeline.offsets[-1]) <= 0.9 + 1e-9
