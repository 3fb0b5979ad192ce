"""Sound-source localisation: maps, confidence, the MIL head, metrics, PNG frames and the CLI."""

import os

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from skavc import AVClip, AVCorrespondence
from skavc.datasets import make_av_clips
from skavc.features import window_means
from skavc.localization import (
    SOURCE_THRESHOLD,
    evidence_to_maps,
    mil_loss_and_grads,
    refine_shape,
    shape_to_maps,
    synchrony_cells,
    synchrony_maps,
    upsample_bilinear,
)
from skavc.localization import _maps
from skavc.localization._learned import init_spatial_params
from skavc.metrics import auc_ciou, ciou, frame_ciou

Model, FIT_PARAMS = AVCorrespondence, {"localization": True}


@pytest.fixture(scope="module")
def data():
    return make_av_clips(n_clips=20, duration=2.0, frame_size=(64, 64), random_state=21)


@pytest.fixture(scope="module")
def fitted_model(data, memory):
    clips, _ = data
    return Model(epochs=20, embedding_dim=16, n_visual_frames=4, memory=memory, random_state=0,
                 **FIT_PARAMS).fit(clips[:14])


def _silent(clip):
    return AVClip(np.zeros_like(clip.audio), clip.sample_rate, clip.frames, clip.fps)


def _still(clip):
    return AVClip(clip.audio, clip.sample_rate, np.repeat(clip.frames[:1], clip.n_frames, axis=0), clip.fps)


def _offscreen(clips):
    return [AVClip(clips[(i + 1) % len(clips)].audio, c.sample_rate, c.frames, c.fps) for i, c in enumerate(clips)]


# -- training-free maps ---------------------------------------------------------------


@pytest.mark.parametrize("size", [(37, 53), (64, 64), (45, 21)])
def test_synchrony_maps_at_the_frames_own_odd_size(size):
    clips, _ = make_av_clips(n_clips=1, duration=1.2, frame_size=size, random_state=3)
    (maps,), (confidence,) = Model().localize(clips, method="synchrony", return_confidence=True)
    assert maps.shape == (clips[0].n_frames, *size) and maps.dtype == np.float32
    assert confidence.shape == (clips[0].n_frames,)
    assert np.all((maps >= 0) & (maps <= 1)) and np.all((confidence >= 0) & (confidence <= 1))
    np.testing.assert_allclose(confidence, maps.reshape(maps.shape[0], -1).max(axis=1), rtol=1e-6)


def test_synchrony_finds_the_sounding_object(data):
    clips, truth = data
    maps = Model().localize(clips[14:], method="synchrony")
    assert ciou(maps, truth.source_masks[14:])[0] >= 0.7


def test_silence_still_picture_and_offscreen_sound_give_low_confidence(data):
    clips, _ = data
    test = clips[14:]
    model = Model()
    _, real = model.localize(test, method="synchrony", return_confidence=True)
    for variant in ([_silent(c) for c in test], [_still(c) for c in test]):
        maps, conf = model.localize(variant, method="synchrony", return_confidence=True)
        assert np.all(np.concatenate(conf) < SOURCE_THRESHOLD)
        assert all(np.all(m < SOURCE_THRESHOLD) for m in maps)  # dark, not a renormalised blob
    _, off = model.localize(_offscreen(test), method="synchrony", return_confidence=True)
    assert np.mean(np.concatenate(off)) < np.mean(np.concatenate(real)) - 0.3
    assert np.mean(np.concatenate(real) >= SOURCE_THRESHOLD) > 0.8


def test_synchrony_confidence_is_relative_to_the_clips_own_chance_level(data):
    from skavc.localization import synchrony_correlation
    from skavc.localization._synchrony import _smoothed_peaks, synchrony_shape_confidence

    clip = data[0][0]
    rho, n_eff, _, null_z = synchrony_correlation(clip.audio, clip.sample_rate, clip.frames, clip.fps)
    assert null_z.shape == (8, clip.n_frames)
    _, confidence = synchrony_shape_confidence(rho, n_eff, null_z)
    assert np.mean(confidence >= SOURCE_THRESHOLD) > 0.8
    # The same peaks against a chance level as high as themselves are not confident.
    _, z = _smoothed_peaks(rho, n_eff)
    _, at_chance = synchrony_shape_confidence(rho, n_eff, np.stack([z - 0.5, z + 0.5]))
    assert at_chance.max() < 0.05
    with pytest.raises(ValueError, match="null_z"):
        synchrony_shape_confidence(rho, n_eff, null_z[:1])
    with pytest.raises(ValueError, match="n_null"):
        synchrony_correlation(clip.audio, clip.sample_rate, clip.frames, clip.fps, n_null=1)


def test_synchrony_confidence_is_dark_in_a_pause(data):
    clip = data[0][0]
    audio = clip.audio.copy()
    quiet = slice(int(0.6 * clip.sample_rate), int(1.4 * clip.sample_rate))
    audio[quiet] = 0.0                                   # a 0.8 s pause in the middle
    _, (confidence,) = Model().localize([AVClip(audio, clip.sample_rate, clip.frames, clip.fps)],
                                            method="synchrony", return_confidence=True)
    times = np.arange(clip.n_frames) / clip.fps
    assert confidence[(times > 0.9) & (times < 1.1)].max() < 0.05


def test_synchrony_maps_function_matches_the_estimator(data):
    clip = data[0][0]
    maps, confidence = synchrony_maps(clip.audio, clip.sample_rate, clip.frames, clip.fps)
    (expected,) = Model().localize([clip], method="synchrony")
    np.testing.assert_allclose(maps, expected, atol=1e-6)


def test_upsample_bilinear_holds_constants_and_centres():
    maps = np.arange(4, dtype=np.float32).reshape(1, 2, 2)
    up = upsample_bilinear(maps, (4, 6))
    assert up.shape == (1, 4, 6)
    assert up[0, 0, 0] == 0 and up[0, -1, -1] == 3  # held beyond the outermost centres
    np.testing.assert_allclose(upsample_bilinear(np.full((2, 7, 7), 0.3), (13, 29)), 0.3, rtol=1e-6)


def _interpolation_matrix(n_out, n_in, cell):
    """Dense bilinear weights (n_out, n_in), half-pixel convention, values held beyond the centres."""
    pos = np.clip((np.arange(n_out) + 0.5) / cell - 0.5, 0, n_in - 1)
    lo = np.floor(pos).astype(int)
    R = np.zeros((n_out, n_in))
    np.add.at(R, (np.arange(n_out), lo), 1 - (pos - lo))
    np.add.at(R, (np.arange(n_out), np.minimum(lo + 1, n_in - 1)), pos - lo)
    return R


@pytest.mark.parametrize("grid, size, cell", [((7, 7), (45, 61), None), ((36, 64), (720, 1280), 20),
                                              ((5, 1), (17, 4), 2.5), ((4, 6), (30, 40), (6.0, 7.5))])
def test_upsample_bilinear_is_the_separable_interpolation(grid, size, cell, monkeypatch):
    maps = np.random.RandomState(0).rand(5, *grid).astype(np.float32)
    cy, cx = _maps.cell_sizes(size, grid, cell)
    expected = np.einsum("yh,thw,xw->tyx", _interpolation_matrix(size[0], grid[0], cy), maps,
                         _interpolation_matrix(size[1], grid[1], cx))
    monkeypatch.setattr(_maps, "_RESIZE_CHUNK", 2)  # chunks of frames: the same result
    np.testing.assert_allclose(upsample_bilinear(maps, size, cell), expected, atol=1e-6)


@pytest.mark.parametrize("size", [(181, 397), (300, 520)])
def test_maps_refined_on_blocks_match_refining_the_full_size_shape(size, monkeypatch):
    (clip,), _ = make_av_clips(n_clips=1, duration=1.5, frame_size=size, random_state=5)
    shape, confidence, cell = synchrony_cells(clip.audio, clip.sample_rate, clip.frames, clip.fps)
    full = evidence_to_maps(refine_shape(clip.frames, upsample_bilinear(shape, size, cell=cell)), confidence)
    monkeypatch.setattr(_maps, "_REFINE_CHUNK", 3)  # chunks of frames: the same result
    maps = shape_to_maps(clip.frames, shape, confidence, cell)
    assert maps.shape == full.shape and maps.dtype == np.float32 and np.all((maps >= 0) & (maps <= 1))
    # Equal but on the blocks that straddle a cell centre (sampled there, averaged in the other).
    assert np.mean(np.abs(maps - full)) < 1e-3
    source, source_full = maps >= SOURCE_THRESHOLD, full >= SOURCE_THRESHOLD
    assert source.any() and np.sum(source & source_full) / np.sum(source | source_full) > 0.99


def test_window_means_is_cut_at_the_clip_ends():
    features = np.arange(10, dtype=float)[:, None]  # steps centred at 0.05, 0.15, ... s (10 per second)
    means = window_means(features, 10.0, np.array([0.0, 0.5, 5.0]), 0.2)
    np.testing.assert_allclose(means[:, 0], [0.0, 4.5, 9.0])


# -- the learned head -------------------------------------------------------------------


@pytest.mark.parametrize("pooling", ["lse", "max"])
def test_mil_gradients_match_finite_differences(pooling):
    rng = np.random.RandomState(0)
    B, K, D, d = 4, 5, 6, 3
    A = rng.standard_normal((B, d))
    A /= np.linalg.norm(A, axis=1, keepdims=True)
    P = rng.standard_normal((B, K, D))
    params = init_spatial_params(D, d, rng)
    params["b"] = 0.1 * rng.standard_normal(d)
    kwargs = dict(temperature=0.2, pooling=pooling, sharpness=5.0, alpha=0.01)
    _, grads = mil_loss_and_grads(params, A, P, **kwargs)
    eps = 1e-6
    for key in ("W", "b"):
        numeric = np.zeros_like(params[key])
        for idx in np.ndindex(params[key].shape):
            for sign in (1, -1):
                moved = {k: v.copy() for k, v in params.items()}
                moved[key][idx] += sign * eps
                numeric[idx] += sign * mil_loss_and_grads(moved, A, P, **kwargs)[0] / (2 * eps)
        np.testing.assert_allclose(grads[key], numeric, rtol=1e-5, atol=1e-8)


def test_fit_trains_a_localisation_head(fitted_model):
    head = fitted_model.localization_head_
    assert np.all(np.isfinite(head.loss_curve_)) and head.loss_curve_[-1] < head.loss_curve_[0]
    slope, _ = head.calibration_
    assert slope > 0  # higher similarity, more likely the source


@pytest.mark.parametrize("method", ["learned", "fused"])
def test_learned_and_fused_maps(fitted_model, data, method):
    clips, truth = data
    maps, conf = fitted_model.localize(clips[14:17], method=method, return_confidence=True)
    for m, c, clip in zip(maps, conf, clips[14:17]):
        assert m.shape == clip.frames.shape[:3] and c.shape == (clip.n_frames,)
        assert np.all((m >= 0) & (m <= 1)) and np.all((c >= 0) & (c <= 1))
    silent_maps, silent_conf = fitted_model.localize([_silent(c) for c in clips[14:17]], method=method,
                                                     return_confidence=True)
    assert np.all(np.concatenate(silent_conf) < SOURCE_THRESHOLD)


def test_fused_still_picture_is_dark(fitted_model, data):
    clips, _ = data
    _, conf = fitted_model.localize([_still(c) for c in clips[14:17]], method="fused", return_confidence=True)
    assert np.all(np.concatenate(conf) < SOURCE_THRESHOLD)


def test_auto_method(fitted_model, data):
    clip = data[0][14]
    np.testing.assert_array_equal(fitted_model.localize([clip])[0], fitted_model.localize([clip], method="fused")[0])
    np.testing.assert_array_equal(Model().localize([clip])[0], Model().localize([clip], method="synchrony")[0])


def test_method_errors(data):
    clip = data[0][0]
    with pytest.raises(NotFittedError, match="localization=True"):
        Model().localize([clip], method="learned")
    with pytest.raises(ValueError, match="method must be one of"):
        Model().localize([clip], method="psychic")


# -- metrics -------------------------------------------------------------------------------


def test_ciou_on_hand_made_masks():
    masks = np.zeros((3, 10, 10), dtype=bool)
    masks[:, 2:6, 2:6] = True  # 16 pixels
    assert ciou(masks.astype(np.float32), masks) == (1.0, 1.0)
    assert ciou(np.zeros((3, 10, 10)), masks) == (0.0, 0.0)
    assert auc_ciou(masks.astype(float), masks) == pytest.approx(1.0)
    assert auc_ciou(np.zeros((3, 10, 10)), masks) == pytest.approx(0.05 / 2)  # success 1 only at t = 0
    half = np.zeros((3, 10, 10))
    half[:, 2:6, 2:4] = 0.9  # 8 of the 16 pixels: IoU exactly 0.5
    half[1, 6:8, 2:6] = 0.9  # frame 1 also claims 8 pixels outside: 8 / 24
    np.testing.assert_allclose(frame_ciou(half, masks), [0.5, 8 / 24, 0.5])
    assert ciou(half, masks) == pytest.approx((2 / 3, (0.5 + 8 / 24 + 0.5) / 3))
    assert ciou(half, masks, threshold=0.95)[0] == 0.0  # binarised at a fixed threshold


def test_ciou_consensus_weights_and_empty_masks():
    g = np.array([[[1.0, 0.5, 0.0, 0.0]]])  # LVS consensus: the half-agreed pixel counts by its weight
    p = np.array([[[1.0, 1.0, 1.0, 0.0]]])
    np.testing.assert_allclose(frame_ciou(p, g), [1.5 / (1.5 + 1)])
    empty = np.zeros((2, 3, 3), bool)
    np.testing.assert_allclose(frame_ciou(np.stack([np.zeros((3, 3)), np.ones((3, 3))]), empty), [1.0, 0.0])
    # A list of clips of different sizes is scored frame by frame.
    values = frame_ciou([np.ones((2, 3, 3)), np.zeros((1, 4, 5))], [np.ones((2, 3, 3), bool), np.ones((1, 4, 5), bool)])
    np.testing.assert_allclose(values, [1.0, 1.0, 0.0])
    with pytest.raises(ValueError, match="same shape"):
        frame_ciou(np.ones((2, 3, 3)), np.ones((2, 3, 4)))


# -- PNG frames and the command line ---------------------------------------------------------


def test_save_heatmap_frames(tmp_path):
    pytest.importorskip("matplotlib")
    from PIL import Image

    from skavc.plotting import save_heatmap_frames

    frames = np.full((5, 21, 33, 3), 100, dtype=np.uint8)
    maps = np.zeros((5, 21, 33), dtype=np.float32)
    maps[:, 5:15, 10:20] = 0.9
    paths = save_heatmap_frames(frames, maps, tmp_path / "out", every=2)
    assert [os.path.basename(p) for p in paths] == ["frame_00000.png", "frame_00002.png", "frame_00004.png"]
    img = np.asarray(Image.open(paths[0]).convert("RGB"))
    assert img.shape == (21, 33, 3)
    np.testing.assert_array_equal(img[0, 0], [100, 100, 100])  # a zero map leaves the frame as it is
    assert np.any(img[10, 15] != [100, 100, 100])
    with pytest.raises(ValueError, match="maps must have shape"):
        save_heatmap_frames(frames, maps[:, :-1], tmp_path / "bad")


def _float_overlay(frames, maps, threshold=0.5, cmap="inferno", strength=0.6):
    """The blend overlay_frames approximates, pixel by pixel in floats (the pre-table code)."""
    import matplotlib

    heat = np.clip(maps, 0.0, 1.0)
    colour = matplotlib.colormaps[cmap](heat)[..., :3]
    alpha = (strength * heat)[..., None]
    out = frames / 255.0 * (1 - alpha) + colour * alpha
    inside = maps >= threshold
    edge = np.zeros_like(inside)
    edge[:, :-1] |= inside[:, :-1] != inside[:, 1:]
    edge[:, :, :-1] |= inside[:, :, :-1] != inside[:, :, 1:]
    out[edge & inside] = 1.0
    return (np.clip(out, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


@pytest.mark.parametrize("cmap", ["inferno", "viridis", "tab10"])
@pytest.mark.parametrize("shape", [(3, 21, 33), (2, 301, 517), (2, 1, 9), (2, 9, 1)])
def test_overlay_frames_matches_the_float_blend(shape, cmap):
    pytest.importorskip("matplotlib")
    from skavc.plotting import overlay_frames

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    maps = rng.random(shape)
    maps[0] = 0.0
    maps[-1, : shape[1] // 2] = 1.0
    out = overlay_frames(frames, maps, cmap=cmap)
    assert out.dtype == np.uint8 and out.shape == frames.shape
    assert np.abs(out.astype(int) - _float_overlay(frames, maps, cmap=cmap)).max() <= 1
    np.testing.assert_array_equal(out[0], frames[0])  # a zero map leaves the frame as it is
    np.testing.assert_array_equal(overlay_frames(frames, maps.astype(np.float32), cmap=cmap), out)
    maps[1, 0, 0] = np.nan  # counts as 0
    np.testing.assert_array_equal(overlay_frames(frames, maps, cmap=cmap)[1, 0, 0], frames[1, 0, 0])


def test_save_heatmap_video(tmp_path):
    pytest.importorskip("matplotlib")
    from skavc.io import load_clip
    from skavc.plotting import overlay_frames, save_heatmap_video

    rng = np.random.default_rng(0)
    frames = np.full((12, 21, 33, 3), 100, dtype=np.uint8)  # odd sizes: padded to 22 x 34
    maps = np.zeros((12, 21, 33), dtype=np.float32)
    maps[:, 5:15, 10:20] = 0.9
    clip = AVClip(rng.uniform(-0.5, 0.5, 8000).astype(np.float32), 16000, frames, 24.0)
    path = save_heatmap_video(clip, maps, tmp_path / "out.mp4", preset="ultrafast")
    written = load_clip(path)
    assert written.frames.shape == (12, 22, 34, 3) and abs(written.duration - 0.5) < 0.05
    assert written.audio.size > 0.45 * written.sample_rate  # the sound kept
    expected = overlay_frames(frames, maps)  # what was encoded, give or take the codec
    assert np.abs(written.frames[:, :21, :33].astype(int) - expected).mean() < 3
    with pytest.raises(ValueError, match="preset"):
        save_heatmap_video(clip, maps, tmp_path / "bad.mp4", preset="warp")
    with pytest.raises(ValueError, match="maps must have shape"):
        save_heatmap_video(clip, maps[:, :-1], tmp_path / "bad.mp4")
    with pytest.raises(FileNotFoundError):
        save_heatmap_video(clip, maps, tmp_path / "missing" / "out.mp4")
    with pytest.raises(ValueError, match="crf must be an integer"):
        save_heatmap_video(clip, maps, tmp_path / "bad.mp4", crf=80)
    with pytest.raises(TypeError, match="threshold"):
        save_heatmap_video(clip, maps, tmp_path / "bad.mp4", threshold="high")
    with pytest.raises(ValueError, match="could not write video file"):  # an unknown container
        save_heatmap_video(clip, maps, tmp_path / "bad.nosuchformat")
    assert sorted(os.listdir(tmp_path)) == ["out.mp4"]  # nothing half-written left behind


def test_cli_localize(tmp_path, data, capsys):
    pytest.importorskip("matplotlib")
    from skavc.cli import main
    from skavc.io import save_clip

    path = tmp_path / "clip.mp4"
    save_clip(data[0][15], path)
    out = tmp_path / "frames"
    video = tmp_path / "overlay.mp4"
    assert main(["localize", str(path), "--out", str(video), "--png", str(out), "--every", "10"]) == 0
    printed = capsys.readouterr().out
    assert "sound source visible in" in printed and "heat-map frames written" in printed
    assert sorted(os.listdir(out)) == [f"frame_{t:05d}.png" for t in range(0, 50, 10)]
    from skavc.io import load_clip

    written = load_clip(video)  # one playable video, the maps blended in, the original sound kept
    assert written.n_frames == data[0][15].n_frames and abs(written.duration - data[0][15].duration) < 0.05
    assert main(["localize", str(path), "--png", str(out), "--method", "learned"]) == 2  # no fitted model
