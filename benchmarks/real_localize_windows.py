"""Streamed localisation against whole-file localisation on real video (issue 20).

    python benchmarks/real_localize_windows.py [--talk ../shared/media/talk]

``AVCorrespondence().localize_windows(path)`` localises a file on frames decoded at 256 pixels
(``skavc.localization.WORK_SIZE``) and gives the maps at full size; ``localize([path])`` decodes
the whole file at full size. On the nine real talking heads of ``../shared/media/talk/``
(benchmark-only media, 224-844 pixels) this prints, per clip: the correlation of the two
stacks of maps, the median distance between each frame's peaks (share of the larger side),
the largest difference of a frame's confidence and both mean confidences. Clips no larger than
256 pixels must agree exactly.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_scene import machine_line  # noqa: E402


def peaks(maps):
    """Each frame's brightest pixel, (T, 2) rows and columns."""
    return np.stack(np.unravel_index(maps.reshape(maps.shape[0], -1).argmax(axis=1), maps.shape[1:]), axis=1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--talk", type=Path, default=HERE.parent.parent / "shared" / "media" / "talk")
    args = parser.parse_args()
    from skavc import AVCorrespondence

    print(machine_line())
    print(f"media: talking heads from {args.talk} (benchmark-only real recordings)\n")
    print("| clip | side (px) | map correlation | median peak distance (share of side) | max frame confidence "
          "difference | mean confidence whole / streamed |")
    print("|---|---:|---:|---:|---:|---:|")
    model = AVCorrespondence()
    for path in sorted(args.talk.glob("*.mp4")):
        (maps,), (confidence,) = model.localize([path], return_confidence=True)
        windows = list(model.localize_windows(path, window=60.0))
        streamed = np.concatenate([np.asarray(w.maps) for w in windows])
        streamed_confidence = np.concatenate([w.confidence for w in windows])
        side = max(maps.shape[1:])
        distance = np.hypot(*(peaks(streamed) - peaks(maps)).T) / side
        r = np.corrcoef(streamed.ravel(), maps.ravel())[0, 1]
        print(f"| {path.name} | {side} | {r:.3f} | {np.median(distance):.3f} | "
              f"{np.abs(streamed_confidence - confidence).max():.3f} | {confidence.mean():.3f} / "
              f"{streamed_confidence.mean():.3f} |")


if __name__ == "__main__":
    main()
