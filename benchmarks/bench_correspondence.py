"""Instance matching through ``correspondence``: each clip's sound against every clip's frames.

    python benchmarks/bench_correspondence.py [--n-train 160] [--n-test 40] [--no-real]

``AVCorrespondence(timing=True)`` (the default) is fitted on generated clips; then every held-out
clip's audio is scored against every held-out clip's frames (``n_test^2`` pairs) with
``correspondence(timing=False)`` (the semantic cosine alone: the heads match classes) and with
timing (the cosine and the peak of the training-free sync curve, combined as learnt in ``fit``).
Pairwise recall@1: the share of sounds whose own frames score highest (audio -> visual), and of
frames whose own sound does (visual -> audio); chance is ``1 / n_test``.

Real: the videos of ``benchmarks/real_media.py`` (Debian packages it downloads into ``--cache``)
cut into 4 s segments; the same model (fitted on generated clips only) matches each segment's
sound among all segments' frames. Segments of one video look and sound alike: only timing tells
them apart.
"""

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from skavc import AVClip, AVCorrespondence
from skavc.datasets import make_av_clips
from skavc.metrics import recall_at_k


def pairwise_recall(model, clips, timing):
    """Recall@1 both ways of each clip's audio against every clip's frames."""
    n = len(clips)
    pairs = [AVClip(a.audio, a.sample_rate, b.frames, b.fps) for a in clips for b in clips]
    S = model.correspondence(pairs, timing=timing).reshape(n, n)
    return recall_at_k(S), recall_at_k(S.T)


def _row(name, n, model, clips):
    t0 = time.time()
    plain = pairwise_recall(model, clips, timing=False)
    timed = pairwise_recall(model, clips, timing=True)
    print(f"| {name} | {n} | {plain[0]:.3f} / {plain[1]:.3f} | {timed[0]:.3f} / {timed[1]:.3f} | "
          f"{1 / n:.3f} | {time.time() - t0:.0f} s |", flush=True)


def real_segments(cache, seconds=4.0):
    """4 s segments of the real videos (every whole 4 s of each labelled segment)."""
    sys.path.insert(0, str(Path(__file__).parent))
    import json

    from real_media import LABELS, segments

    labels = json.loads(LABELS.read_text())
    out = []
    for _, _, clip in segments(cache, 8.0, labels):
        per = int(round(seconds * clip.fps))
        for f0 in range(0, clip.n_frames - per + 1, per):
            a0 = int(round(f0 / clip.fps * clip.sample_rate))
            a1 = a0 + int(round(per / clip.fps * clip.sample_rate))
            if a1 <= clip.audio.size:
                out.append(AVClip(clip.audio[a0:a1], clip.sample_rate, clip.frames[f0 : f0 + per], clip.fps))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=160)
    parser.add_argument("--n-test", type=int, default=40)
    parser.add_argument("--no-real", action="store_true", help="generated clips only (no download)")
    parser.add_argument("--cache", default="~/.cache/skavc-bench/real")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print("command: python benchmarks/" + " ".join([Path(sys.argv[0]).name] + sys.argv[1:]))
    clips, _ = make_av_clips(n_clips=args.n_train + args.n_test, random_state=0)
    t0 = time.time()
    model = AVCorrespondence(random_state=0).fit(clips[: args.n_train])
    print(f"fit on {args.n_train} generated clips: {time.time() - t0:.0f} s; timing coefficients "
          f"(cosine, sync peak, intercept) {np.round(model.timing_, 3).tolist()}\n")
    print("| clips | candidates | recall@1 a->v / v->a, cosine only | with timing | chance | time |")
    print("|---|---:|---:|---:|---:|---:|")
    _row("generated, held out", args.n_test, model, clips[args.n_train :])
    if not args.no_real:
        segments = real_segments(Path(args.cache).expanduser())
        _row("real 4 s segments (real_media.py videos)", len(segments), model, segments)


if __name__ == "__main__":
    main()
