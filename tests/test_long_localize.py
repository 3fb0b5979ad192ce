"""Localisation of long videos window by window (issue 20): the same answers as ``localize`` on a
clip that is one window, each window as ``localize`` of that span, the overlay video and PNG frames
written as the windows are read, atomically, and the command line's progress line."""

import os

import numpy as np
import pytest

from skavc import AVClip, AVCorrespondence, load_clip, save_clip
from skavc.datasets import make_av_clips
from skavc.localization import GridMaps, LocalizedWindow, upsample_bilinear


@pytest.fixture(scope="module")
def clip():
    (clip,), _ = make_av_clips(n_clips=1, duration=3.0, frame_size=(72, 128), random_state=3)
    return clip


@pytest.fixture(scope="module")
def video(tmp_path_factory, clip):
    path = tmp_path_factory.mktemp("long") / "clip.mp4"
    save_clip(clip, path)
    return path


@pytest.mark.parametrize("refine", [True, False])
def test_one_window_is_localize_exactly(clip, refine):
    model = AVCorrespondence()
    (maps,), (confidence,) = model.localize([clip], return_confidence=True, refine=refine)
    (window,) = list(model.localize_windows(clip, window=10.0, refine=refine))
    assert isinstance(window, LocalizedWindow) and window.start == 0.0
    np.testing.assert_array_equal(np.asarray(window.maps), maps)
    np.testing.assert_array_equal(window.confidence, confidence)
    np.testing.assert_array_equal(window.maps[5:9], maps[5:9])
    np.testing.assert_array_equal(window.maps[7], maps[7])


def test_a_video_file_is_streamed_and_one_window_is_localize_exactly(video):
    model = AVCorrespondence()
    (maps,), (confidence,) = model.localize([video], return_confidence=True)
    (window,) = list(model.localize_windows(video))
    np.testing.assert_array_equal(np.asarray(window.maps), maps)
    np.testing.assert_array_equal(window.confidence, confidence)


def test_each_window_is_localize_of_its_span(clip):
    model = AVCorrespondence()
    windows = list(model.localize_windows(clip, window=1.0))
    assert [w.start for w in windows] == pytest.approx([0.0, 1.0, 2.0])
    assert sum(w.clip.n_frames for w in windows) == clip.n_frames
    for w in windows:
        first = int(round(w.start * clip.fps))
        span = AVClip(w.clip.audio, clip.sample_rate, clip.frames[first : first + w.clip.n_frames], clip.fps)
        (maps,), (confidence,) = model.localize([span], return_confidence=True)
        np.testing.assert_array_equal(np.asarray(w.maps), maps)
        np.testing.assert_array_equal(w.confidence, confidence)


def test_grid_maps_slice_as_the_resized_array():
    rng = np.random.default_rng(0)
    grid = rng.random((5, 4, 6)).astype(np.float32)
    maps = GridMaps(grid, (40, 60), 10)
    full = upsample_bilinear(grid, (40, 60), cell=10)
    assert maps.shape == (5, 40, 60) and len(maps) == 5
    np.testing.assert_array_equal(maps[1:4], full[1:4])
    np.testing.assert_array_equal(maps.peaks(), full.reshape(5, -1).max(axis=1))


def test_the_overlay_video_is_written_from_windows(clip, tmp_path):
    pytest.importorskip("matplotlib")
    from skavc.plotting import save_heatmap_video, save_heatmap_video_windows

    model = AVCorrespondence()
    pairs = [(w.clip, w.maps) for w in model.localize_windows(clip, window=1.0)]
    path = save_heatmap_video_windows(iter(pairs), tmp_path / "windows.mp4", legend=True)
    # the same maps drawn over the whole clip at once: the streamed video must be frame for frame the same
    maps = np.concatenate([np.asarray(m[0:len(w.frames)]) for w, m in pairs])
    whole = save_heatmap_video(clip, maps, tmp_path / "whole.mp4", legend=True)
    back, expected = load_clip(path), load_clip(whole)
    assert back.frames.shape == clip.frames.shape
    np.testing.assert_array_equal(back.frames, expected.frames)
    np.testing.assert_array_equal(back.audio, expected.audio)  # the same sound, written window by window


def test_an_error_part_way_leaves_no_overlay_file(clip, tmp_path):
    pytest.importorskip("matplotlib")
    from skavc.plotting import save_heatmap_video_windows

    model = AVCorrespondence()

    def failing():
        for k, w in enumerate(model.localize_windows(clip, window=1.0)):
            if k == 2:
                raise KeyboardInterrupt
            yield w.clip, w.maps

    with pytest.raises(KeyboardInterrupt):
        save_heatmap_video_windows(failing(), tmp_path / "overlay.mp4")
    assert os.listdir(tmp_path) == []
    with pytest.raises(ValueError, match="windows is empty"):
        save_heatmap_video_windows(iter([]), tmp_path / "overlay.mp4")


def test_png_frames_from_windows_are_those_of_the_whole_clip(clip, tmp_path):
    pytest.importorskip("matplotlib")
    from PIL import Image

    from skavc.plotting import save_heatmap_frames, save_heatmap_frames_windows

    pairs = [(w.clip, w.maps) for w in AVCorrespondence().localize_windows(clip, window=1.0)]
    maps = np.concatenate([np.asarray(m) for _, m in pairs])
    whole = save_heatmap_frames(clip.frames, maps, tmp_path / "whole", every=7)
    streamed = save_heatmap_frames_windows(iter(pairs), tmp_path / "streamed", every=7)
    assert [os.path.basename(p) for p in streamed] == [os.path.basename(p) for p in whole]
    for a, b in zip(whole, streamed):
        np.testing.assert_array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))


def test_cli_streams_with_a_progress_line_unless_quiet(video, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from skavc.cli import main

    out = tmp_path / "overlay.mp4"
    status = main(["localize", str(video), "--out", str(out), "--window", "1", "--png", str(tmp_path / "f"),
                   "--every", "30"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "localize clip.mp4" in captured.err and "real time" in captured.err
    assert f"of {load_clip(video).n_frames} frames (confidence" in captured.out
    assert load_clip(out).n_frames == load_clip(video).n_frames
    assert sorted(os.listdir(tmp_path / "f")) == ["frame_00000.png", "frame_00030.png", "frame_00060.png"]
    status = main(["localize", str(video), "--quiet"])
    captured = capsys.readouterr()
    assert status == 0 and captured.err == ""


def test_a_bad_window_is_refused_at_the_call(clip):
    with pytest.raises(ValueError, match="window"):
        AVCorrespondence().localize_windows(clip, window=0.0)


# -- localised small, shown full size: regrid_windows and the read-ahead thread ---------------------


def test_read_ahead_keeps_order_raises_where_it_stopped_and_stops_when_closed():
    import threading
    import time

    from skavc._threads import read_ahead

    assert list(read_ahead(iter(range(50)), depth=2)) == list(range(50))

    def failing():
        yield 1
        yield 2
        raise KeyError("part way")

    got = []
    with pytest.raises(KeyError, match="part way"):
        for item in read_ahead(failing()):
            got.append(item)
    assert got == [1, 2]
    made = []

    def endless():
        while True:
            made.append(len(made))
            yield made[-1]

    ahead = read_ahead(endless(), depth=1)
    assert next(ahead) == 0
    ahead.close()  # as a `break` or Ctrl-C in the caller does
    n_made = len(made)
    time.sleep(0.3)
    assert len(made) == n_made <= 3  # the thread stopped, after at most the items it held
    assert not any(t.name == "skavc-read-ahead" for t in threading.enumerate())


def test_chunks_of_a_file_carry_the_windows_maps(video, clip):
    model = AVCorrespondence()
    (whole,) = list(model.localize_windows(video))
    chunks = list(model.localize_windows(video, chunk=0.4))
    assert [round(c.start, 6) for c in chunks] == pytest.approx([0.0, 0.4, 0.8, 1.2, 1.6, 2.0, 2.4, 2.8])
    np.testing.assert_array_equal(np.concatenate([c.clip.frames for c in chunks]), whole.clip.frames)
    np.testing.assert_array_equal(np.concatenate([np.asarray(c.maps) for c in chunks]), np.asarray(whole.maps))
    np.testing.assert_array_equal(np.concatenate([c.confidence for c in chunks]), whole.confidence)
    # two windows of 1.5 s, shown a second at a time: chunk 1 straddles both windows' maps
    windows = list(model.localize_windows(clip, window=1.5))
    pieces = list(model.localize_windows(clip, window=1.5, chunk=1.0))
    assert len(windows) == 2 and len(pieces) == 3
    np.testing.assert_array_equal(np.concatenate([np.asarray(p.maps) for p in pieces]),
                                  np.concatenate([np.asarray(w.maps) for w in windows]))
    with pytest.raises(ValueError, match="chunk must be"):
        model.localize_windows(clip, chunk=0)


def test_a_large_video_is_localised_small_and_drawn_full_size(tmp_path):
    (big,), _ = make_av_clips(n_clips=1, duration=3.0, frame_size=(288, 512), random_state=3)
    path = save_clip(big, tmp_path / "big.mp4")
    model = AVCorrespondence()
    (maps,), (confidence,) = model.localize([path], return_confidence=True)  # whole, at full size
    (window,) = list(model.localize_windows(path))  # localised at 256 px, maps given at full size
    streamed = np.asarray(window.maps)
    assert streamed.shape == maps.shape == big.frames.shape[:3]
    # the same places, nearly the same values: frames averaged by FFmpeg's scaler, not in blocks
    assert np.corrcoef(streamed.ravel(), maps.ravel())[0, 1] > 0.95
    assert np.max(np.abs(window.confidence - confidence)) < 0.1
    def peaks(m):  # each frame's brightest pixel, (T, 2)
        return np.stack(np.unravel_index(m.reshape(m.shape[0], -1).argmax(axis=1), m.shape[1:]), axis=1)

    assert np.median(np.hypot(*(peaks(streamed) - peaks(maps)).T)) < 0.05 * 512
