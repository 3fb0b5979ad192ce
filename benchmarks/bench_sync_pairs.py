"""Timing evidence for many pairs: each sound analysed once against the pair-by-pair reference.

    python benchmarks/bench_sync_pairs.py [--n-pictures 50] [--duration 4] [--repeats 3]

``fit``'s timing (each sound against its own and another clip's frames) and ``rerank`` (a
query's sound against every candidate's frames) score many (sound, picture) pairs. Most of a
sync curve's time is the sound's onset envelope, so the sound is reduced once
(:func:`skavc.sync.sound_series`) and paired through :func:`skavc.sync.pair_evidence`; the
reference, measured in the same run, computes :func:`skavc.sync.motion_sync_curve` pair by pair
from the raw audio. Both sides start from the pictures' motion series (reduced once either way).
Prints the median of ``--repeats`` runs and checks the evidence is the same.
"""

import argparse
import time

import numpy as np

from skavc.datasets import make_av_clips
from skavc.sync import motion_series, motion_sync_curve, pair_evidence, peak_evidence, sound_series


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-pictures", type=int, default=50)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    clips, _ = make_av_clips(n_clips=args.n_pictures, duration=args.duration, random_state=0)
    pictures = [(motion_series(c.frames), c.fps) for c in clips]
    sound = clips[0]

    def reference():
        return [peak_evidence([motion_sync_curve(sound.audio, sound.sample_rate, m, fps)])[0] for m, fps in pictures]

    def once():
        reduced = sound_series(sound.audio, sound.sample_rate)
        return [pair_evidence(reduced, picture) for picture in pictures]

    rows = []
    for name, job in (("pair by pair (reference)", reference), ("sound analysed once", once)):
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            evidence = job()
            times.append(time.perf_counter() - t0)
        rows.append((name, float(np.median(times)), np.asarray(evidence)))
    gap = np.abs(rows[0][2] - rows[1][2]).max()
    print(f"one {args.duration:g} s sound against {args.n_pictures} pictures; largest evidence difference {gap:.1e}\n")
    print("| method | ms | x reference |")
    print("| --- | ---: | ---: |")
    for name, seconds, _ in rows:
        print(f"| {name} | {1000 * seconds:.0f} | {rows[0][1] / seconds:.1f} |")


if __name__ == "__main__":
    main()
