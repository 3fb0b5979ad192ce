"""Synchronisation accuracy: learned sync head vs training-free estimate vs naive baseline.

Fits ``AVCorrespondence(sync=True)`` on synchronised generated clips at 25 fps, then
estimates offsets of held-out clips with true offsets in [-1, 1] s at 25 and 30 fps.
Confidence AUROC compares the shifted clips (synchronisable) with the same clips made
unsynchronisable: silent audio, a static frame, or another clip's audio. Usage::

    python benchmarks/bench_sync.py [--train 60] [--test 40] [--duration 4]
"""

import argparse
import time

import numpy as np
from sklearn.metrics import roc_auc_score

from skavc import AVClip, AVCorrespondence
from skavc.datasets import make_av_clips
from skavc.metrics import sync_accuracy, sync_mean_absolute_error


def unsynchronisable(clips):
    """Silent, static and mismatched-audio versions of ``clips``."""
    out = []
    for i, c in enumerate(clips):
        other = clips[(i + 1) % len(clips)].audio
        out.append(AVClip(np.zeros_like(c.audio), c.sample_rate, c.frames, c.fps))
        out.append(AVClip(c.audio, c.sample_rate, np.repeat(c.frames[:1], c.n_frames, axis=0), c.fps))
        out.append(AVClip(other, c.sample_rate, c.frames, c.fps))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=60)
    parser.add_argument("--test", type=int, default=40)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--n-negative", type=int, default=10, help="clips turned unsynchronisable per fps")
    args = parser.parse_args()

    t0 = time.perf_counter()
    train, _ = make_av_clips(n_clips=args.train, duration=args.duration, random_state=1)
    model = AVCorrespondence(sync=True, epochs=20, random_state=0).fit(train)
    print(f"fit on {args.train} clips of {args.duration:g} s (sync=True): {time.perf_counter() - t0:.0f} s")
    print()
    print(f"{'fps':>6} {'method':<8}{'<=1 frame':>10}{'<=0.1 s':>9}{'MAE ms':>8}{'AUROC':>7}{'s/clip':>8}")
    for fps in (25.0, 30.0):
        clips, truth = make_av_clips(n_clips=args.test, duration=args.duration, fps=fps,
                                     offset_range=(-1, 1), random_state=2)
        negatives = unsynchronisable(clips[: args.n_negative])
        for method in ("learned", "signal", "naive"):
            t0 = time.perf_counter()
            est, conf = model.predict_offset(clips, return_confidence=True, method=method)
            seconds = (time.perf_counter() - t0) / len(clips)
            _, neg_conf = model.predict_offset(negatives, return_confidence=True, method=method)
            labels = np.r_[np.ones(len(conf)), np.zeros(len(neg_conf))]
            auroc = roc_auc_score(labels, np.r_[conf, neg_conf])
            print(f"{fps:>6g} {method:<8}{sync_accuracy(truth.offsets, est, 1 / fps):>10.3f}"
                  f"{sync_accuracy(truth.offsets, est, 0.1):>9.3f}"
                  f"{1000 * sync_mean_absolute_error(truth.offsets, est):>8.1f}{auroc:>7.3f}{seconds:>8.2f}")


if __name__ == "__main__":
    main()
