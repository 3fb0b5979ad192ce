"""
Localisation: where in the frame the sound comes from
=====================================================

:meth:`skavc.AVCorrespondence.localize` gives, per clip, a map of shape ``(T, H, W)`` in
[0, 1] (0.5 and above marks the source) and a confidence per frame that a visible source sounds
there. Training-free, it finds the regions whose motion follows the sound, each against the
clip's own chance level (the same maps with the sound shifted). The generated clips carry the
true mask of the sounding object.
"""

import matplotlib.pyplot as plt

from skavc import AVCorrespondence
from skavc.datasets import make_av_clips

clips, truth = make_av_clips(n_clips=2, duration=2.0, random_state=3)
maps, frame_confidence = AVCorrespondence().localize(clips, return_confidence=True)
print("maps of the first clip:", maps[0].shape, "confidence of its first frames:",
      frame_confidence[0][:5].round(2))

# %%
# Frames of the first clip with the map blended in; the white outline is the true source.
frames = clips[0].frames
fig, axes = plt.subplots(1, 4, figsize=(10, 2.8))
for ax, t in zip(axes, (5, 15, 30, 45)):
    ax.imshow(frames[t])
    ax.imshow(maps[0][t], cmap="inferno", alpha=0.55, vmin=0, vmax=1)
    ax.contour(truth.source_masks[0][t], levels=[0.5], colors="white", linewidths=1.2)
    ax.set_title(f"frame {t}, confidence {frame_confidence[0][t]:.2f}", fontsize=8)
    ax.axis("off")
fig.tight_layout()
plt.show()
