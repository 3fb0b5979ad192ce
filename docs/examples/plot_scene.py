"""
Scene labels given at call time, and the sounds silent frames should make
=========================================================================

:meth:`skavc.AVCorrespondence.classify_scene` gives the probability of each label string you
pass, for what each clip shows: zero-shot from the frames alone, or, fitted with ``scene=True``
and captions, from the joint space of sound and picture.
:meth:`~skavc.AVCorrespondence.expected_sounds` names the AudioSet sounds the frames should
make, and when; :meth:`~skavc.AVCorrespondence.describe_expected_audio` says it in a sentence.
"""

import matplotlib.pyplot as plt
import numpy as np

from skavc import AVCorrespondence
from skavc.datasets import make_av_clips

clips, truth = make_av_clips(n_clips=80, duration=2.0, random_state=0)
train, test = clips[:60], clips[60:]
labels = list(truth.class_names)
captions = list(truth.label_names[:60])  # one label per training clip

zero_shot = AVCorrespondence().classify_scene(test, labels)  # (20, n_labels), before any fit
model = AVCorrespondence(scene=True, epochs=60, random_state=0).fit(train, captions)
fitted = model.classify_scene(test, labels)
for name, P in (("zero-shot", zero_shot), ("fitted with captions", fitted)):
    print(f"{name}: accuracy {np.mean(P.argmax(axis=1) == truth.labels[60:]):.2f} "
          f"(chance {1 / len(labels):.2f})")

# %%
# The fitted model's probabilities for the held-out clips, true label marked.
fig, ax = plt.subplots(figsize=(7, 3.6))
ax.imshow(fitted.T, aspect="auto", cmap="Blues", vmin=0, vmax=1)
ax.scatter(np.arange(len(test)), truth.labels[60:], marker="x", color="crimson", label="true label")
ax.set_yticks(range(len(labels)), labels, fontsize=8)
ax.set_xlabel("held-out clip")
ax.legend(loc="upper right", fontsize=8)
fig.tight_layout()
plt.show()

# %%
# What the first held-out clip's frames should sound like, and when.
print(model.describe_expected_audio(test[0].frames))
(expected,) = model.expected_sounds(test[:1], top_k=3)
print(expected["sounds"], expected["times"])
