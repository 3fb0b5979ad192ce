"""Lip sync on real talking heads: ``method="face"`` (the mouth) against ``method="signal"`` (the whole frame).

    python benchmarks/real_lipsync.py [--talk ../shared/media/talk] [--max-shift 15] [--step 3]

The nine talking heads of ``../shared/media/talk/`` (real recordings, in sync as published;
benchmark-only media, README there; never in tests). Each one's sound is shifted against its
frames by whole frames, -15..+15 in steps of 3 (-0.6..+0.6 s at 25 fps), both tracks cut from
inside the recording (no padding): positive = audio ahead. ``AVCorrespondence().predict_offset``
with each method; the error is the estimate less the shift. Reported: the share within one
frame and within 0.1 s, each clip's median error (its bias: what the lips do before the sound,
and a recording's own offset), and how well the confidence ranks right (within 0.1 s) above
wrong (AUROC).
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_scene import machine_line  # noqa: E402


def shifted(clip, k):
    """The clip's sound ``k`` frames ahead of its pictures (``k < 0``: behind), both cut from inside."""
    from skavc import AVClip

    n = int(round(abs(k) * clip.sample_rate / clip.fps))
    if k > 0:
        audio, frames = clip.audio[n:], clip.frames[: clip.n_frames - k]
    elif k < 0:
        audio, frames = clip.audio[: clip.audio.size - n], clip.frames[-k:]
    else:
        audio, frames = clip.audio, clip.frames
    m = min(audio.size, int(round(frames.shape[0] * clip.sample_rate / clip.fps)))
    return AVClip(audio[:m], clip.sample_rate, frames, clip.fps)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--talk", type=Path, default=HERE.parent.parent / "shared" / "media" / "talk")
    parser.add_argument("--max-shift", type=int, default=15, help="frames")
    parser.add_argument("--step", type=int, default=3, help="frames")
    args = parser.parse_args()
    from sklearn.metrics import roc_auc_score

    from skavc import AVCorrespondence, load_clip

    print(machine_line())
    files = sorted(args.talk.glob("*.mp4"))
    print(f"media: {len(files)} talking heads from {args.talk} (benchmark-only real recordings)")
    shifts = range(-args.max_shift, args.max_shift + 1, args.step)
    methods = ("signal", "face")
    results = {m: [] for m in methods}  # (error s, confidence, frame period) per case
    print("\n| clip | fps | " + " | ".join(f"{m}: within 1 frame / 0.1 s, bias (s)" for m in methods) + " |")
    print("|---|---:|" + "---|" * len(methods))
    for path in files:
        clip = load_clip(path, sample_rate=16000)
        cases = [shifted(clip, k) for k in shifts]
        truth = np.array([k / clip.fps for k in shifts])
        cells = []
        for method in methods:
            model = AVCorrespondence(max_offset=0.8)
            t0 = time.perf_counter()
            offsets, confidence = model.predict_offset(cases, return_confidence=True, method=method)
            error = offsets - truth
            results[method] += [(e, c, 1 / clip.fps) for e, c in zip(error, confidence)]
            cells.append(f"{np.mean(np.abs(error) <= 1 / clip.fps + 1e-9):.2f} / {np.mean(np.abs(error) <= 0.1):.2f}, "
                         f"{np.median(error):+.3f} ({time.perf_counter() - t0:.0f} s)")
        print(f"| {path.name} | {clip.fps:.2f} | " + " | ".join(cells) + " |")
    print("\n| method | within one frame | within 0.1 s | confidence AUROC (right = within 0.1 s) | cases at confidence >= 0.5 |")
    print("|---|---:|---:|---:|---:|")
    for method in methods:
        error, confidence, period = (np.array(v) for v in zip(*results[method]))
        right = np.abs(error) <= 0.1
        auroc = roc_auc_score(right, confidence) if 0 < right.mean() < 1 else float("nan")
        print(f"| {method} | {np.mean(np.abs(error) <= period + 1e-9):.2f} | {right.mean():.2f} | {auroc:.2f} | "
              f"{np.mean(confidence >= 0.5):.2f} |")


if __name__ == "__main__":
    main()
