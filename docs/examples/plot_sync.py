"""
Synchronisation: how far the sound runs ahead of the picture
============================================================

:meth:`skavc.AVCorrespondence.predict_offset` estimates, per clip, the offset in seconds between
sound and picture (positive: the audio is ahead) and a confidence in [0, 1]. Training-free, it
compares the frames' motion with the sound's onsets at every offset within ``max_offset``;
:meth:`~skavc.AVCorrespondence.sync_curve` gives the whole curve. Here the clips are generated
with a known shift.
"""

import matplotlib.pyplot as plt
import numpy as np

from skavc import AVCorrespondence
from skavc.datasets import make_av_clips

clips, truth = make_av_clips(n_clips=6, duration=4.0, offset_range=(-0.4, 0.4), random_state=1)
model = AVCorrespondence()  # training-free: no fit needed
offsets, confidence = model.predict_offset(clips, return_confidence=True)
for true, found, c in zip(truth.offsets, offsets, confidence):
    print(f"true {true:+.3f} s, found {found:+.3f} s, confidence {c:.2f}")

# %%
# Each curve peaks at the estimated offset; the dashed line is the truth.
curves = model.sync_curve(clips)
fig, axes = plt.subplots(2, 3, figsize=(9, 4.5), sharex=True, sharey=True)
for ax, (lags, scores), true in zip(axes.flat, curves, truth.offsets):
    ax.plot(lags, scores)
    ax.axvline(true, color="k", linestyle="--", linewidth=1)
    ax.set_title(f"shift {true:+.2f} s", fontsize=9)
for ax in axes[-1]:
    ax.set_xlabel("offset (s, + = audio ahead)")
for ax in axes[:, 0]:
    ax.set_ylabel("score")
fig.tight_layout()
plt.show()
