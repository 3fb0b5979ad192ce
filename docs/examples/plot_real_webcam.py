"""
A real recording: a man speaking to a webcam
============================================

The other examples use generated clips, whose ground truth proves the machinery. This one runs
on a real recording: the webcam clip Debian's ``kphotoalbum`` package ships (160x120 pixels,
15 frames a second, 4.5 s), fetched the way skavc's benchmarks fetch Debian media
(``apt-get download`` and ``dpkg-deb -x``). Where that is not possible (no ``apt-get``, no
network), the example says so and stops.

His face is about 60 pixels high: the face layer finds and follows it, but its lips are a few
pixels apart, so the evidence that they move with the sound stays weak, and the speaking
probability and the map's confidence stay low. That is what skavc says here, and it is right to:
docs/benchmarks.md ("Real talking heads") has the figures on larger faces.
"""

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from skavc import AVCorrespondence, load_clip

cache = Path(os.environ.get("SKAVC_HOME", Path.home() / ".cache" / "skavc")) / "docs-media"
try:
    from real_media import fetch  # benchmarks/real_media.py: apt-get download + dpkg-deb -x

    root = fetch("kphotoalbum", cache)
except Exception as error:  # noqa: BLE001 - any failure to fetch: say so and stop
    print(f"skipped: the real recording could not be fetched ({error}); the package kphotoalbum "
          "comes from Debian through apt-get")
    root = None

# %%
# The clip, who speaks in it, the map of where the sound comes from, and its offset.
if root is not None:
    clip = load_clip(root / "usr/share/kphotoalbum/demo/movie.avi")
    print(clip)
    model = AVCorrespondence()
    (faces,) = model.speakers([clip])
    maps, frame_confidence = model.localize([clip], return_confidence=True)
    offset, confidence = model.predict_offset([clip], return_confidence=True)
    print(f"{len(faces)} face(s); offset {offset[0]:+.3f} s at confidence {confidence[0]:.2f}")

    t = np.arange(clip.n_frames) / clip.fps
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.2), gridspec_kw={"width_ratios": [1, 2]})
    middle = clip.n_frames // 2
    left.imshow(clip.frames[middle])
    left.imshow(maps[0][middle], cmap="inferno", alpha=0.5, vmin=0, vmax=1)
    for face in faces:
        seen = np.flatnonzero(face.frames == middle)
        if seen.size:
            x0, y0, x1, y1 = face.boxes[seen[0]]
            left.plot([x0, x1, x1, x0, x0], [y0, y0, y1, y1, y0], color="lime")
    left.set_title(f"frame {middle}: map and face", fontsize=9)
    left.axis("off")
    loudness = np.sqrt(np.convolve(clip.audio ** 2, np.ones(800) / 800, mode="same"))
    right.plot(np.arange(clip.audio.size) / clip.sample_rate, loudness / loudness.max(), color="0.7",
               label="loudness (relative)")
    for face in faces:
        right.plot(face.frames / clip.fps, face.speaking, label="speaking probability")
    right.plot(t, frame_confidence[0], label="map confidence")
    right.set_ylim(0, 1)
    right.set_xlabel("s")
    right.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    plt.show()
