"""Clock drift on real video: ``sync_timeline``'s offsets per window against an injected drift (issue 20).

    python benchmarks/bench_drift.py [--minutes 10] [--ppm 1000] [--window 10] [--method signal|face|auto]
                                     [--talk ../shared/media/talk]

Real talking heads from ``../shared/media/talk/`` (benchmark-only media, see the README there;
never in tests): the five interview clips (224 x 224, 25 fps, 16 kHz sound, in sync as recorded)
end to end, repeated to ``--minutes``, written with libx264 and AAC. The *drifted* copy has its
sound resampled to run slow by ``--ppm`` parts per million (1000: 0.1 %, 3.6 s an hour): at video
time ``t`` it plays what was recorded at ``t / (1 + ppm 1e-6)``, so the true offset is
``-t ppm / (1e6 + ppm)`` seconds (audio behind). The *reference*, in the same run, is the same
video without drift.

Per window: the expected offset, what ``AVCorrespondence().sync_timeline`` measures on the drifted
and on the reference copy, and their difference (which cancels what the content itself does to
the estimate: the drift alone). Then the drift fitted over the trustworthy windows against the
injected one, and the share of windows within one frame (40 ms) of the expected offset, raw and
after the reference is subtracted.
"""

import argparse
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_scene import machine_line  # noqa: E402

CLIPS = ["vox_00015.mp4", "vox_00067.mp4", "vox_00086.mp4", "vox_00098.mp4", "vox_681100216.mp4"]
FPS, SR = 25, 16000


def write(path, frames_list, audio, seconds):
    """The clips' frames repeated for ``seconds`` at 25 fps, with ``audio`` (16 kHz mono) cut to that length."""
    import av

    n_frames = int(round(seconds * FPS))
    with av.open(str(path), "w") as container:
        vs = container.add_stream("libx264", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = 224, 224, "yuv420p"
        vs.options = {"preset": "ultrafast", "crf": "18"}
        ast = container.add_stream("aac", rate=SR)
        ast.layout = "mono"
        ring = [f for frames in frames_list for f in frames]
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(ring[i % len(ring)], format="rgb24")
            frame.pts = i
            container.mux(vs.encode(frame))
        container.mux(vs.encode(None))
        audio = np.asarray(audio[: int(round(seconds * SR))], dtype=np.float32)
        for start in range(0, audio.size, SR * 10):
            chunk = av.AudioFrame.from_ndarray(audio[None, start : start + SR * 10], format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts, chunk.time_base = SR, start, Fraction(1, SR)
            container.mux(ast.encode(chunk))
        container.mux(ast.encode(None))
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--ppm", type=float, default=1000.0)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--method", choices=["signal", "face", "auto"], default="signal")
    parser.add_argument("--talk", type=Path, default=HERE.parent.parent / "shared" / "media" / "talk")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "skavc-bench" / "drift")
    args = parser.parse_args()
    from scipy.signal import resample_poly

    from skavc import AVCorrespondence, load_clip
    from skavc.sync import SYNC_CONFIDENCE_THRESHOLD

    print(machine_line())
    print(f"media: {', '.join(CLIPS)} from {args.talk} (benchmark-only real talking heads)")
    clips = [load_clip(args.talk / name, fps=FPS, sample_rate=SR) for name in CLIPS]
    seconds = args.minutes * 60
    one_pass = np.concatenate([c.audio for c in clips])
    sound = np.tile(one_pass, int(np.ceil(seconds * SR / one_pass.size)) + 1)
    up = int(round(1e6 + args.ppm))  # slower sound: more samples for the same recording
    g = np.gcd(up, 1_000_000)
    drifted = resample_poly(sound, up // g, 1_000_000 // g).astype(np.float32)
    args.cache.mkdir(parents=True, exist_ok=True)
    frames = [c.frames for c in clips]
    tag = f"{args.minutes:g}min"
    files = {"reference": write(args.cache / f"talk-{tag}.mp4", frames, sound, seconds),
             "drifted": write(args.cache / f"talk-{tag}-{args.ppm:g}ppm.mp4", frames, drifted, seconds)}
    model = AVCorrespondence(max_offset=max(1.0, 1.5 * seconds * args.ppm * 1e-6))
    timelines = {}
    for name, path in files.items():
        t0 = time.perf_counter()
        (timelines[name],) = model.sync_timeline([str(path)], window=args.window, method=args.method)
        print(f"{name}: {len(timelines[name].starts)} windows of {args.window:g} s (method {args.method}) in "
              f"{time.perf_counter() - t0:.1f} s")
    ref, got = timelines["reference"], timelines["drifted"]
    centre = got.starts + got.durations / 2
    expected = -centre * args.ppm / (1e6 + args.ppm)
    frame = 1.0 / FPS
    print("\n| window start (s) | expected (s) | drifted (s) | reference (s) | drifted - reference (s) | "
          "confidence |")
    print("|---:|---:|---:|---:|---:|---:|")
    for k in range(len(centre)):
        print(f"| {got.starts[k]:.0f} | {expected[k]:+.3f} | {got.offsets[k]:+.3f} | {ref.offsets[k]:+.3f} | "
              f"{got.offsets[k] - ref.offsets[k]:+.3f} | {got.confidence[k]:.2f} |")
    raw = np.abs(got.offsets - expected) <= frame / 2 + 1e-9
    relative = np.abs(got.offsets - ref.offsets - expected) <= frame / 2 + 1e-9
    within = np.abs(got.offsets - expected) <= frame + 1e-9
    within_rel = np.abs(got.offsets - ref.offsets - expected) <= frame + 1e-9
    slope = np.polyfit(centre, got.offsets, 1)[0]
    slope_rel = np.polyfit(centre, got.offsets - ref.offsets, 1)[0]
    low, high = (3600 * v for v in got.drift_interval)
    print(f"\ninjected drift {-3600 * args.ppm / (1e6 + args.ppm):+.2f} s/h; sync_timeline's drift (Theil-Sen over "
          f"{'the trustworthy' if got.drift_trusted else 'all'} windows): {3600 * got.drift:+.2f} s/h (95 % "
          f"{low:+.2f} to {high:+.2f}); on the reference copy {3600 * ref.drift:+.2f} s/h; least squares over all "
          f"windows: {3600 * slope:+.2f} s/h, after the reference: {3600 * slope_rel:+.2f} s/h")
    print(f"windows within one frame ({1000 * frame:.0f} ms) of the expected offset: {within.mean():.2f} raw, "
          f"{within_rel.mean():.2f} after the reference (within half a frame: {raw.mean():.2f}, "
          f"{relative.mean():.2f}); trustworthy windows: {np.mean(got.confidence >= SYNC_CONFIDENCE_THRESHOLD):.2f}")


if __name__ == "__main__":
    main()
