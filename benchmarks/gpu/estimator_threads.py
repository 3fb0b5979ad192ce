"""AVCorrespondence.transform on CUDA with one thread and with many (coalesced calls), per CUDA option set.

Run on the GPU machine after the runbook's installs (docs/gpu.md). Uses the effnet-mel audio
encoder (no Whisper weights needed there). For each option set: encoder frames/s on 2048 frames,
then ``transform`` clips/s with ``n_jobs=1`` and ``n_jobs=-1``, a first call (new batch shapes:
cuDNN's algorithm search runs) and a second one (warm). Usage::

    python benchmarks/gpu/estimator_threads.py
"""

import time

import numpy as np

from skavc import AVCorrespondence, _encoding
from skavc.datasets import make_av_clips
from skavc.encoders import _onnx, make_visual_encoder

VARIANTS = {
    "prefer_nhwc (default)": {"prefer_nhwc": "1"},
    "prefer_nhwc + HEURISTIC search": {"prefer_nhwc": "1", "cudnn_conv_algo_search": "HEURISTIC"},
}


def main():
    clips, _ = make_av_clips(n_clips=48, random_state=0)
    frames = np.random.default_rng(0).integers(0, 256, size=(2048, 224, 224, 3), dtype=np.uint8)
    for label, options in VARIANTS.items():
        _onnx.CUDA_PROVIDER_OPTIONS.clear()
        _onnx.CUDA_PROVIDER_OPTIONS.update(options)
        _encoding._shared_builtin.cache_clear()
        enc = make_visual_encoder("efficientnet-lite0", device="cuda")
        enc.encode(frames[:256])
        t0 = time.perf_counter()
        enc.encode(frames)
        print(f"{label}: encoder {len(frames) / (time.perf_counter() - t0):.0f} frames/s", flush=True)
        for n_jobs in (1, -1):
            _encoding._shared_builtin.cache_clear()
            model = AVCorrespondence(audio_encoder="effnet-mel", epochs=5, device="cuda", n_jobs=n_jobs,
                                     random_state=0).fit(clips[:16])
            rates = []
            for _ in range(2):
                t0 = time.perf_counter()
                model.transform(clips)
                rates.append(len(clips) / (time.perf_counter() - t0))
            print(f"{label}: n_jobs={n_jobs} transform clips/s first {rates[0]:.1f}, warm {rates[1]:.1f}", flush=True)


if __name__ == "__main__":
    main()
