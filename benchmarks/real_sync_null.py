"""A lead for sync confidence on real video: the curve's peak against a block-permutation null.

    python benchmarks/real_sync_null.py [--cache ~/.cache/skavc-bench/real] [--permutations 64]

Not the product's method: an experiment, kept so that its figures (docs/benchmarks.md, "Real
video: synchronisation") can be reproduced. The training-free sync curve
(:func:`skavc.sync.signal_sync_curve`) is standardised against its own lags (median and MAD), and
its confidence starts at a peak 3 units above that. On real video the peak's height in those
units does not separate right from wrong estimates. Here the same curve's peak within
``max_offset`` is compared with the peaks of the same curve when the audio's onset series is
cut into 0.5 s blocks and shuffled (``--permutations`` times): the permutation p-value
``(1 + #{null peak >= peak}) / (1 + K)`` asks whether this alignment beats alignments of the
same sounds in a random order, accounting for the search over lags and for the series' own
heavy tails and smoothness.

Printed: on the real set of ``real_media.py`` (the same segments and shifts, zero padding), the
share of right estimates (within 0.1 s) among the most confident by each score, and how many
reach p <= 0.05; on 40 generated 4 s clips, the share of true (shifted) and of mismatched pairs
(another clip's audio) at p <= 0.05 and at the product's confidence threshold. Uses the real
media cache of ``real_media.py`` (downloads the packages when missing).
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

import real_media
from skavc.datasets import make_av_clips
from skavc.sync import _signal, motion_series

BLOCK_SECONDS = 0.5
MAX_OFFSET = 1.0


def _series(audio, sample_rate, motion, fps):
    """The onset and motion series of the signal method, on its grid (``motion``: ``motion_series(frames)``)."""
    resolution = _signal.default_resolution(fps)
    grid = _signal._common_grid(audio, sample_rate, motion.size, fps, resolution)
    a, m = _signal._signal_series(audio, sample_rate, motion, fps, grid, resolution)
    return a, m, resolution, fps


def _peak(a, m, resolution, fps):
    """Offset (s), standardised peak and raw peak of the curve within MAX_OFFSET."""
    all_lags, max_lag = _signal._lag_range(a.size, MAX_OFFSET, resolution)
    lags, scores = _signal._whitened_correlation(a, m, all_lags, cutoff=0.5 * fps * resolution)
    keep = np.abs(lags) <= max_lag
    z = _signal.null_standardise(scores)[keep]
    i = int(np.argmax(z))
    return lags[keep][i] * resolution, z[i], scores[keep][i]


def permutation_p(audio, sample_rate, motion, fps, n_permutations, rng):
    """Offset estimate, its standardised peak, and the block-permutation p-value of its raw peak."""
    a, m, resolution, fps = _series(audio, sample_rate, motion, fps)
    offset, z, peak = _peak(a, m, resolution, fps)
    block = max(1, int(round(BLOCK_SECONDS / resolution)))
    blocks = [np.arange(j, min(j + block, a.size)) for j in range(0, a.size, block)]
    null = np.array([_peak(a[np.concatenate([blocks[o] for o in rng.permutation(len(blocks))])], m,
                           resolution, fps)[2] for _ in range(n_permutations)])
    return offset, z, (1 + np.sum(null >= peak)) / (1 + n_permutations)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path("~/.cache/skavc-bench/real").expanduser())
    parser.add_argument("--permutations", type=int, default=64)
    args = parser.parse_args()
    t0 = time.time()
    labels = json.loads(real_media.LABELS.read_text())
    real = []  # (right, z, p)
    # the z at which the product's confidence reaches its threshold (peak_offset's mapping inverted)
    threshold = _signal._Z0 - _signal._Z_SCALE * np.log(1.0 - _signal.SYNC_CONFIDENCE_THRESHOLD)
    for _, _, clip in real_media.segments(args.cache, 8.0, labels):
        pad_rng = np.random.default_rng(0)
        motion = motion_series(clip.frames)  # once per segment: only the sound is shifted
        for shift in real_media.OFFSETS:
            audio = real_media.shift_audio(clip.audio, clip.sample_rate, shift, "zeros", pad_rng)
            offset, z, p = permutation_p(audio.astype(np.float32), clip.sample_rate, motion, clip.fps,
                                         args.permutations, np.random.default_rng(1))
            real.append((abs(offset - shift) <= 0.1 + 1e-9, z, p))
    right, z, p = (np.array(col, dtype=float) for col in zip(*real))
    print(f"Real set ({right.size} estimates, zero padding; right = within 0.1 s: {right.mean():.2f})\n")
    print("| score | AUROC right/wrong | right among top 5 | top 11 | top 20 |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for label, score in (("peak in the curve's own chance units (the product's)", z),
                         ("1 - block-permutation p", 1.0 - p)):
        order = np.argsort(-score, kind="stable")
        tops = " | ".join(f"{right[order[:k]].mean():.2f}" for k in (5, 11, 20))
        print(f"| {label} | {roc_auc_score(right, score):.2f} | {tops} |")
    sig = p <= 0.05
    print(f"\np <= 0.05: {sig.sum()} of {p.size} estimates, {int(right[sig].sum())} right; "
          f"product confidence >= {_signal.SYNC_CONFIDENCE_THRESHOLD}: {(z >= threshold).sum()}\n")

    clips, _ = make_av_clips(n_clips=40, duration=4.0, random_state=0)
    rng = np.random.default_rng(0)
    true, mismatched = [], []
    for i, clip in enumerate(clips):
        shift = float(rng.choice(real_media.OFFSETS))
        audio = real_media.shift_audio(clip.audio, clip.sample_rate, shift, "zeros", rng)
        motion = motion_series(clip.frames)
        offset, zt, pt = permutation_p(audio.astype(np.float32), clip.sample_rate, motion, clip.fps,
                                       args.permutations, np.random.default_rng(1))
        true.append((abs(offset - shift) <= 0.1 + 1e-9, zt, pt))
        other = clips[(i + 1) % len(clips)].audio.astype(np.float32)
        _, zm, pm = permutation_p(other, clip.sample_rate, motion, clip.fps, args.permutations,
                                  np.random.default_rng(1))
        mismatched.append((zm, pm))
    true, mismatched = np.array(true, dtype=float), np.array(mismatched, dtype=float)
    print("Generated clips (40, 4 s; true = own audio shifted, mismatched = the next clip's audio)\n")
    print(f"| pairs | right | p <= 0.05 | product confidence >= {_signal.SYNC_CONFIDENCE_THRESHOLD} |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| true | {true[:, 0].mean():.2f} | {(true[:, 2] <= 0.05).mean():.3f} | {(true[:, 1] >= threshold).mean():.3f} |")
    print(f"| mismatched | | {(mismatched[:, 1] <= 0.05).mean():.3f} | {(mismatched[:, 0] >= threshold).mean():.3f} |")
    print(f"\n{time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
