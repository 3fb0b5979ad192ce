"""
Separation: the sound of what you point at
==========================================

:meth:`skavc.AVCorrespondence.separate` takes a mixture and frames in which the wanted source
moves (or speaks), and returns that source's sound, the rest, and a confidence that the source
is heard at all. Training-free: the mixture is factorised (NMF) and the components whose
loudness follows the frames' motion make the mask. Where the evidence is weak it returns a
quieter copy of the mixture, never worse than it.
"""

import base64
import io

import matplotlib.pyplot as plt
import numpy as np
from scipy.io import wavfile
from scipy.signal import stft

from skavc import AVCorrespondence
from skavc.datasets import make_av_clips
from skavc.metrics import si_sdr

mixes, truth = make_av_clips(n_clips=1, n_sources=2, random_state=0)  # two sounding objects
mixture, rate = mixes[0].audio, mixes[0].sample_rate
frames = truth.source_frames[0][0]  # the first object alone, moving with its sound
target, residual, confidence = AVCorrespondence().separate(mixture, frames, return_residual=True,
                                                           return_confidence=True)
source = truth.sources[0][0]
print(f"confidence {confidence:.2f}; SI-SDR of the mixture {si_sdr(source, mixture):+.1f} dB, "
      f"of the estimate {si_sdr(source, target):+.1f} dB")

# %%
# Spectrograms of the mixture, the true source and the estimate.
fig, axes = plt.subplots(1, 3, figsize=(10, 3), sharey=True)
for ax, (name, x) in zip(axes, (("mixture", mixture), ("true source", source), ("estimate", target))):
    f, t, Z = stft(x, fs=rate, nperseg=512)
    ax.pcolormesh(t, f / 1000, 20 * np.log10(np.abs(Z) + 1e-6), vmin=-90, vmax=-20, shading="auto")
    ax.set_title(name)
    ax.set_xlabel("s")
axes[0].set_ylabel("kHz")
fig.tight_layout()
plt.show()


# %%
# Listen: the mixture, then the estimate.
class Audio:
    """An audio player for the page (HTML5 ``<audio>`` with the WAV inline)."""

    def __init__(self, samples, rate):
        buffer = io.BytesIO()
        wavfile.write(buffer, rate, (np.clip(samples, -1, 1) * 32767).astype(np.int16))
        self.data = base64.b64encode(buffer.getvalue()).decode()

    def _repr_html_(self):
        return f'<audio controls src="data:audio/wav;base64,{self.data}"></audio>'


Audio(mixture, rate)

# %%
Audio(target, rate)
