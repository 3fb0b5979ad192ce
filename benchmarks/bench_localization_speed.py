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

    python benchmarks/bench_localization_speed.py                  # 8 s of 720p, refine on and off
    python benchmarks/bench_localization_speed.py --cli            # also `skavc localize --out`, by stage
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
from skavc.localization._synchrony import (
    _time_interp,
    synchrony_shape_confidence,
    window_weights,
    windowed_correlation,
)

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
        shape, confidence = synchrony_shape_confidence(rho, n_eff)
        shape = reference_upsample_bilinear(shape, clip.frames.shape[1:3], cell=k)
        if refine:
            shape = reference_refine_shape(clip.frames, shape)
        maps = np.clip(np.asarray(confidence, dtype=np.float32)[:, None, None] * shape, 0.0, 1.0)
    return maps, maps.reshape(maps.shape[0], -1).max(axis=1).astype(np.float64)


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


def _cli_stages(clip, out_dir):
    """Seconds of each stage of ``skavc localize VIDEO --out out.mp4`` (as skavc/cli.py runs it)."""
    from skavc import load_clip, save_clip
    from skavc.plotting import overlay_frames

    video = save_clip(clip, os.path.join(out_dir, "in.mp4"))
    model = AVCorrespondence()
    stages = []
    loaded, wall, _ = _timed(lambda: load_clip(video, sample_rate=model.audio_sample_rate))
    stages.append(("decode", wall))
    (maps,), wall, _ = _timed(lambda: model.localize([loaded]))
    stages.append(("localize", wall))
    overlaid, wall, _ = _timed(lambda: overlay_frames(loaded.frames, maps))
    stages.append(("overlay_frames", wall))
    _, wall, _ = _timed(lambda: save_clip(AVClip(loaded.audio, loaded.sample_rate, overlaid, loaded.fps),
                                          os.path.join(out_dir, "out.mp4"), pad_odd=True))
    stages.append(("encode out.mp4", wall))
    return stages, loaded.n_frames / loaded.fps


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", help="time this video instead of the generated one")
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per row (the best is shown)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cli", action="store_true", help="also time `skavc localize --out`, by stage")
    args = parser.parse_args(argv)

    if args.video:
        from skavc import load_clip

        clip = load_clip(args.video, sample_rate=AVCorrespondence().audio_sample_rate)
    else:
        clip = make_clip(args.duration, seed=args.seed)
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
        with tempfile.TemporaryDirectory(prefix="skavc-bench-") as tmp:
            stages, duration = _cli_stages(clip, tmp)
        total = sum(s for _, s in stages)
        print()
        print(f"`skavc localize VIDEO --out out.mp4` by stage ({duration:.1f} s of video):")
        print("| stage | wall s | x real time |")
        print("|---|---:|---:|")
        for name, s in stages + [("total", total)]:
            print(f"| {name} | {s:.2f} | {duration / s:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
