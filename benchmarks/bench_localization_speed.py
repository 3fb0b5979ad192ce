"""Speed of training-free localisation on 720p video: ``localize`` against real time.

Builds an 8 s 1280x720 clip at 30 fps with sound (``make_av_clips`` at 320x180, each pixel
repeated 4x4: a pulsing object that sounds, two silent distractors), or decodes ``--video``, and
times ``AVCorrespondence().localize`` (method "synchrony", the one without a fit) with and
without the colour refinement. A reference row per setting runs, in the same process and
interleaved with the new code, the pre-change implementation (commit 8a74178: every stage at
the frames' full size, in float64 where numpy defaulted to it), copied below as
``reference_*``, and the maps of the two are compared. Times are the best of ``--repeat`` runs
(the machine is shared: wall time is noisy, CPU time less so); "x real time" is video seconds
per wall second; peak memory is what ``tracemalloc`` saw numpy allocate in one more run.

With ``--cli`` it also times ``skavc localize VIDEO --out out.mp4`` stage by stage, as the
command ran before (commit 97a2da7: ``overlay_frames`` blending every pixel in float with a
matplotlib colormap call per frame, copied below as ``reference_overlay_frames``, then the whole
overlaid video handed to ``save_clip``: libx264 preset "medium") and as it runs now (a 256-level
blend table, the frames streamed to ``save_heatmap_video``: libx264 preset "veryfast"), the two
interleaved in one process; it reports the largest difference between the two overlays in
uint8 levels and the numpy memory each overlay-and-encode stage peaked at.

    python benchmarks/bench_localization_speed.py                  # 8 s of 720p, refine on and off
    python benchmarks/bench_localization_speed.py --cli            # also `skavc localize --out`, by stage
    python benchmarks/bench_localization_speed.py --cli-only       # only `skavc localize --out`
    python benchmarks/bench_localization_speed.py --video in.mp4   # a video of your own
"""

import argparse
import os
import tempfile
import time
import tracemalloc

import numpy as np
from threadpoolctl import threadpool_limits

from skavc import AVClip, AVCorrespondence
from skavc.datasets import make_av_clips
from skavc.features import audio_changes, block_size, frame_changes
from skavc.features import window_weights, windowed_correlation
from skavc.localization._synchrony import _time_interp, significance

# ---------------------------------------------------------------------------
# The pre-change implementation (8a74178), kept here to be timed against.
# ---------------------------------------------------------------------------

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def reference_grey_blocks(frames, k):
    """Old ``grey_blocks``: float32 luma of every pixel, then block means (64 MB chunks)."""
    T, H, W, _ = frames.shape
    h, w = H // k, W // k
    out = np.empty((T, h, w), dtype=np.float32)
    chunk = max(1, (1 << 24) // (H * W * 3))
    for t0 in range(0, T, chunk):
        block = frames[t0 : t0 + chunk, : h * k, : w * k].astype(np.float32) @ _LUMA
        out[t0 : t0 + chunk] = block.reshape(-1, h, k, w, k).mean(axis=(2, 4))
    return out


def reference_synchrony_correlation(audio, sample_rate, frames, fps, max_size=64, window=1.0, hop=0.2):
    """Old ``synchrony_correlation`` (defaults only), on :func:`reference_grey_blocks`."""
    T, H, W, _ = frames.shape
    k = block_size(H, W, max_size)
    grey = reference_grey_blocks(frames, k)
    h, w = grey.shape[1:]
    x = np.abs(frame_changes(grey, max_shift=1, noise_floor=2.0)).reshape(T, -1)
    a = np.abs(audio_changes(audio, sample_rate, T, fps))
    centres, weights = window_weights(T, fps, window, int(round(hop * fps)))
    rho, n_eff = windowed_correlation(x, a, weights)
    M = _time_interp(T, centres)
    return (M @ rho).reshape(T, h, w), M @ n_eff, k


def reference_shape_confidence(rho, n_eff):
    """Old ``synchrony_shape_confidence``: an absolute logistic in the peak's Fisher z (0.5 at 3.8).

    Since the confidence became relative to the clip's own null (8 circularly shifted copies of
    the audio, each correlated again) and gated by the sound's presence, the maps of the two
    differ by the confidence; the agreement table then compares different rules."""
    from scipy.ndimage import gaussian_filter
    from scipy.special import expit

    smooth = gaussian_filter(np.asarray(rho, dtype=np.float64), (0, 1.0, 1.0), mode="nearest")
    peak = smooth.reshape(smooth.shape[0], -1).max(axis=1)
    confidence = np.where(peak > 0, expit((significance(peak, n_eff) - 3.8) / 0.3), 0.0)
    relative = rho / np.maximum(peak, 1e-12)[:, None, None]
    shape = np.where(peak[:, None, None] > 0, expit((relative - 0.62) / 0.05), 0.0)
    return shape, confidence


def _reference_interp_matrix(n_out, n_in, cell=None):
    cell = n_out / n_in if cell is None else cell
    pos = np.clip((np.arange(n_out) + 0.5) / cell - 0.5, 0, n_in - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = pos - lo
    R = np.zeros((n_out, n_in))
    np.add.at(R, (np.arange(n_out), lo), 1 - frac)
    np.add.at(R, (np.arange(n_out), hi), frac)
    return R


def reference_upsample_bilinear(maps, size, cell=None):
    """Old ``upsample_bilinear``: one einsum over the whole stack."""
    maps = np.asarray(maps, dtype=np.float32)
    H, W = size
    Ry = _reference_interp_matrix(H, maps.shape[1], cell).astype(np.float32)
    Rx = _reference_interp_matrix(W, maps.shape[2], cell).astype(np.float32)
    return np.einsum("yh,thw,xw->tyx", Ry, maps, Rx, optimize=True)


def reference_refine_shape(frames, shape, max_size=256, bins=8, blur=0.025):
    """Old ``refine_shape``: frame by frame, float64 block means of the full-size frame and shape."""
    from scipy.ndimage import gaussian_filter

    T, H, W, _ = frames.shape
    k = block_size(H, W, max_size)
    h, w = H // k, W // k
    n_bins = bins**3
    out = np.empty((T, h, w), dtype=np.float32)
    for t in range(T):
        colour = frames[t, : h * k, : w * k].reshape(h, k, w, k, 3).mean(axis=(1, 3))
        q = np.minimum((colour * (bins / 256.0)).astype(np.int64), bins - 1)
        idx = ((q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]).ravel()
        s = shape[t, : h * k, : w * k].reshape(h, k, w, k).mean(axis=(1, 3))
        prior = np.clip(gaussian_filter(s, blur * min(h, w), mode="nearest"), 0.02, 0.98).ravel()
        hf = np.bincount(idx, weights=(s**2).ravel(), minlength=n_bins) + 1.0 / n_bins
        hb = np.bincount(idx, weights=((1 - s) ** 2).ravel(), minlength=n_bins) + 1.0 / n_bins
        lf, lb = hf[idx] / hf.sum(), hb[idx] / hb.sum()
        out[t] = (prior * lf / (prior * lf + (1 - prior) * lb)).reshape(h, w)
    return reference_upsample_bilinear(out, (H, W), cell=k)


def reference_localize(clip, refine=True):
    """Old ``localize`` for one clip, method "synchrony": (maps (T, H, W), confidence (T,))."""
    with threadpool_limits(limits=1, user_api="blas"):  # as the estimator's map over clips runs
        rho, n_eff, k = reference_synchrony_correlation(clip.audio, clip.sample_rate, clip.frames, clip.fps)
        shape, confidence = reference_shape_confidence(rho, n_eff)
        shape = reference_upsample_bilinear(shape, clip.frames.shape[1:3], cell=k)
        if refine:
            shape = reference_refine_shape(clip.frames, shape)
        maps = np.clip(np.asarray(confidence, dtype=np.float32)[:, None, None] * shape, 0.0, 1.0)
    return maps, maps.reshape(maps.shape[0], -1).max(axis=1).astype(np.float64)


# ---------------------------------------------------------------------------
# The pre-change overlay of `skavc localize --out` (97a2da7), kept here to be timed against.
# ---------------------------------------------------------------------------


def _reference_overlay(frame, heat, cmap, threshold, strength=0.6):
    rgb = frame.astype(np.float32) / 255.0
    colour = cmap(np.clip(heat, 0.0, 1.0))[..., :3].astype(np.float32)
    alpha = (strength * np.clip(heat, 0.0, 1.0))[..., None]
    out = rgb * (1 - alpha) + colour * alpha
    inside = heat >= threshold
    edge = np.zeros_like(inside)
    edge[:-1] |= inside[:-1] != inside[1:]
    edge[:, :-1] |= inside[:, :-1] != inside[:, 1:]
    out[edge & inside] = 1.0
    return (np.clip(out, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def reference_overlay_frames(frames, maps, *, threshold=0.5, cmap="inferno"):
    """Old ``skavc.plotting.overlay_frames``: per frame, a matplotlib colormap call and a float blend."""
    import matplotlib

    colormap = matplotlib.colormaps[cmap]
    return np.stack([_reference_overlay(f, m, colormap, threshold) for f, m in zip(frames, maps)])


# ---------------------------------------------------------------------------
# The benchmark
# ---------------------------------------------------------------------------


def make_clip(duration=8.0, fps=30.0, scale=4, seed=0):
    """A 1280x720 (for ``scale=4``) clip of a sounding object: a generated 320x180 clip, upscaled."""
    (clip,), _ = make_av_clips(n_clips=1, n_classes=8, duration=duration, fps=fps,
                               frame_size=(720 // scale, 1280 // scale), random_state=seed)
    frames = np.repeat(np.repeat(clip.frames, scale, axis=1), scale, axis=2)
    return AVClip(clip.audio, clip.sample_rate, frames, clip.fps)


def _timed(func):
    """(result, wall seconds, CPU seconds) of ``func()``."""
    c0, t0 = time.process_time(), time.perf_counter()
    result = func()
    return result, time.perf_counter() - t0, time.process_time() - c0


def _peak_mb(func):
    """Peak of the memory traced while ``func()`` runs, in MB (numpy reports its arrays)."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        func()
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def _agreement(new, reference):
    """Max and mean |difference| of the maps, max of the confidences', IoU of the maps >= 0.5."""
    (new_maps,), (new_conf,) = new
    ref_maps, ref_conf = reference
    diff = np.abs(new_maps - ref_maps)
    a, b = new_maps >= 0.5, ref_maps >= 0.5
    iou = np.sum(a & b) / max(np.sum(a | b), 1)
    return float(diff.max()), float(diff.mean()), float(np.abs(new_conf - ref_conf).max()), float(iou)


def _cli_stages(clip, out_dir, repeat):
    """Best-of-``repeat`` seconds of each stage of ``skavc localize VIDEO --out out.mp4``, before
    (97a2da7) and now, interleaved; the largest overlay difference; each overlay-and-encode
    stage's peak numpy memory (MB); the video's length (s); the new file read back."""
    from skavc import load_clip, save_clip
    from skavc.plotting import overlay_frames, save_heatmap_video

    video = save_clip(clip, os.path.join(out_dir, "in.mp4"))
    model = AVCorrespondence()
    old_out, new_out = os.path.join(out_dir, "old.mp4"), os.path.join(out_dir, "new.mp4")
    times = {}

    def timed(name, func):
        result, wall, _ = _timed(func)
        times.setdefault(name, []).append(wall)
        return result

    def old_stage(loaded, maps):  # as skavc/cli.py ran at 97a2da7
        overlaid = timed("old overlay", lambda: reference_overlay_frames(loaded.frames, maps))
        timed("old encode", lambda: save_clip(AVClip(loaded.audio, loaded.sample_rate, overlaid, loaded.fps),
                                              old_out, pad_odd=True))

    for _ in range(repeat):
        loaded = timed("decode", lambda: load_clip(video, sample_rate=model.audio_sample_rate))
        (maps,) = timed("localize", lambda: model.localize([loaded]))
        old_stage(loaded, maps)
        new = timed("new overlay", lambda: overlay_frames(loaded.frames, maps))
        del new
        timed("new overlay+encode", lambda: save_heatmap_video(loaded, maps, new_out))
    best = {name: min(walls) for name, walls in times.items()}
    old = reference_overlay_frames(loaded.frames, maps)
    diff = np.abs(old.astype(np.int16) - overlay_frames(loaded.frames, maps))
    max_diff, mean_diff = int(diff.max()), float(diff.mean())
    del old, diff
    peak = {"old": _peak_mb(lambda: old_stage(loaded, maps)),
            "new": _peak_mb(lambda: save_heatmap_video(loaded, maps, new_out))}
    written = load_clip(new_out)
    sizes = {"old": os.path.getsize(old_out) / 1e6, "new": os.path.getsize(new_out) / 1e6}
    return best, (max_diff, mean_diff), peak, loaded.n_frames / loaded.fps, written, sizes


def _print_cli(clip, repeat):
    with tempfile.TemporaryDirectory(prefix="skavc-bench-") as tmp:
        best, (max_diff, mean_diff), peak, duration, written, sizes = _cli_stages(clip, tmp, repeat)
    H, W = clip.frames.shape[1:3]
    old_total = best["decode"] + best["localize"] + best["old overlay"] + best["old encode"]
    new_total = best["decode"] + best["localize"] + best["new overlay+encode"]
    rows = [
        ("decode", best["decode"], best["decode"]),
        ("localize", best["localize"], best["localize"]),
        ("overlay_frames (whole video in memory)", best["old overlay"], best["new overlay"]),
        ("encode out.mp4 (libx264 medium, after the overlay)", best["old encode"], None),
        ("overlay + encode (old: one after the other; new: streamed, libx264 veryfast)",
         best["old overlay"] + best["old encode"], best["new overlay+encode"]),
        ("total", old_total, new_total),
    ]
    print()
    print(f"`skavc localize VIDEO --out out.mp4` by stage ({duration:.1f} s of {W}x{H} video, "
          f"best of {repeat}, wall s; x real time = video s per wall s):")
    print("| stage | before (97a2da7) s | x real time | now s | x real time | speed-up |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, old, new in rows:
        now = ("—", "—", "—") if new is None else (f"{new:.2f}", f"{duration / new:.2f}", f"{old / new:.2f}")
        print(f"| {name} | {old:.2f} | {duration / old:.2f} | {now[0]} | {now[1]} | {now[2]} |")
    print()
    print(f"overlay now against before: max abs difference {max_diff} uint8 levels, mean {mean_diff:.3f}")
    print(f"peak numpy memory of overlay + encode: before {peak['old']:.0f} MB, now {peak['new']:.0f} MB")
    print(f"out.mp4: before {sizes['old']:.2f} MB, now {sizes['new']:.2f} MB; now read back: "
          f"{written.n_frames} frames, {written.duration:.2f} s with {written.audio.size / written.sample_rate:.2f} s "
          f"of sound at {written.sample_rate} Hz")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", help="time this video instead of the generated one")
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per row (the best is shown)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cli", action="store_true", help="also time `skavc localize --out`, by stage")
    parser.add_argument("--cli-only", action="store_true", help="time only `skavc localize --out`, by stage")
    args = parser.parse_args(argv)

    if args.video:
        from skavc import load_clip

        clip = load_clip(args.video, sample_rate=AVCorrespondence().audio_sample_rate)
    else:
        clip = make_clip(args.duration, seed=args.seed)
    if args.cli_only:
        _print_cli(clip, args.repeat)
        return 0
    seconds = clip.n_frames / clip.fps
    model = AVCorrespondence()
    runs = {
        ("reference (8a74178)", True): lambda: reference_localize(clip, refine=True),
        ("localize", True): lambda: model.localize([clip], method="synchrony", return_confidence=True, refine=True),
        ("reference (8a74178)", False): lambda: reference_localize(clip, refine=False),
        ("localize", False): lambda: model.localize([clip], method="synchrony", return_confidence=True, refine=False),
    }
    wall = {key: [] for key in runs}
    cpu = {key: [] for key in runs}
    agreement = {}
    for rep in range(args.repeat):  # interleaved, so that both see the same load
        reference = None
        for (name, refine), run in runs.items():
            result, w, c = _timed(run)
            wall[name, refine].append(w)
            cpu[name, refine].append(c)
            if rep == 0 and name == "localize":  # the maps compared once, then let go (3.5 GB in all)
                agreement[refine] = _agreement(result, reference)
            reference = result
            del result
        del reference
    peak = {key: _peak_mb(run) for key, run in runs.items()}

    T, H, W = clip.frames.shape[:3]
    print(f"skavc localisation speed: {W}x{H}, {clip.fps:g} fps, {seconds:.1f} s ({T} frames), "
          f"method 'synchrony', best of {args.repeat}, {os.cpu_count()} CPU cores")
    print()
    print("| code | refine | wall s | CPU s | x real time | speed-up | peak MB |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for (name, refine), times in wall.items():
        best = min(times)
        speedup = min(wall["reference (8a74178)", refine]) / best
        print(f"| {name} | {'yes' if refine else 'no'} | {best:.2f} | {min(cpu[name, refine]):.2f} | "
              f"{seconds / best:.2f} | {speedup:.2f} | {peak[name, refine]:.0f} |")
    print()
    print("new maps against the reference's (same clip):")
    print("| refine | max abs diff | mean abs diff | max confidence diff | IoU of maps >= 0.5 |")
    print("|---|---:|---:|---:|---:|")
    for refine, (max_diff, mean_diff, conf_diff, iou) in agreement.items():
        print(f"| {'yes' if refine else 'no'} | {max_diff:.2e} | {mean_diff:.2e} | {conf_diff:.2e} | {iou:.4f} |")

    if args.cli:
        _print_cli(clip, args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
