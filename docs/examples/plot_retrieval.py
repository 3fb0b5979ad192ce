"""
Retrieval: which pictures fit a sound
=====================================

Fit :class:`skavc.AVCorrespondence` on generated clips, embed held-out clips' sound and frames in
the shared space, and retrieve, for each sound, the clips whose pictures fit it best. The
retrieval matrix shows every held-out sound against every held-out clip's pictures.
"""

import matplotlib.pyplot as plt
import numpy as np

from skavc import AVCorrespondence, EmbeddingIndex
from skavc.datasets import make_av_clips
from skavc.metrics import cross_modal_recall

clips, truth = make_av_clips(n_clips=60, duration=2.0, random_state=0)
train, test = clips[:40], clips[40:]
model = AVCorrespondence(embedding_dim=64, epochs=60, random_state=0).fit(train)

audio = model.transform_audio(test)     # (20, 64) unit rows
visual = model.transform_visual(test)   # (20, 64)
audio_to_visual, visual_to_audio = cross_modal_recall(audio, visual, k=1)
print(f"recall@1 audio -> visual {audio_to_visual:.2f}, visual -> audio {visual_to_audio:.2f} "
      f"(chance {1 / len(test):.2f})")

# %%
# An index of the pictures' embeddings answers the queries; ``rerank`` re-scores the best
# candidates with the timing of the sound against each clip's frames.
index = EmbeddingIndex()
index.add(visual)
for query in range(3):
    matches = model.retrieve_visuals(test[query].audio, index, top_k=3)
    print(f"sound of clip {query} ({truth.label_names[40 + query]}): pictures of",
          ", ".join(f"clip {i} ({score:.2f})" for i, score in matches))

# %%
# Cosine similarity of every held-out sound with every held-out clip's pictures: the diagonal
# holds the true pairs.
fig, ax = plt.subplots(figsize=(5, 4.2))
image = ax.imshow(audio @ visual.T, cmap="viridis")
ax.set_xlabel("clip (pictures)")
ax.set_ylabel("clip (sound)")
fig.colorbar(image, label="cosine")
ax.set_title("sound against pictures, held out")
plt.show()
