"""Where ``AVCorrespondence.transform`` with ``n_jobs > 1`` loses its time on CUDA.

Run on the GPU machine after the runbook's installs (benchmarks/gpu/README.md). Uses the effnet-mel audio
encoder (no Whisper weights needed there). The model is fitted once with ``n_jobs=1``; each row
then sets ``n_jobs`` (and whether calls from several threads are coalesced) on the same fitted
encoders, runs ``transform`` on 16 clips to warm up and times it on 32 more. Beside clips/s it
prints what the encoders did: session calls, the batch sizes they ran, and the seconds spent
inside session runs (copies to and from the device included) against the wall time, so a slow row
says whether the device or the Python side is slow. First, the same at encoder level: 64 calls
of 8 frames from 1 and from 16 threads, with and without coalescing, and one thread alternating
8 and 128 frames (on one session, each change of shape cost 2.5 s on an H100; now each shape
has its own session). GPU memory in use is printed after each part. Usage::

    python benchmarks/gpu/estimator_threads.py [--device cuda]
"""

import argparse
import shutil
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from skavc import AVCorrespondence
from skavc.datasets import make_av_clips
from skavc.encoders import _onnx, make_visual_encoder

_CALLS = []  # (encoder name, batch size, seconds in the session run) of every device call
_CALLS_LOCK = threading.Lock()


def _instrument():
    """Record every session run's batch size and device seconds (class-level wrappers)."""
    run_batch = _onnx.OnnxEncoder._run_batch

    def timed_run_batch(self, feed, output_names):
        t0 = time.perf_counter()
        outputs = run_batch(self, feed, output_names)
        with _CALLS_LOCK:
            _CALLS.append((self.name, next(iter(feed.values())).shape[0], time.perf_counter() - t0))
        return outputs

    _onnx.OnnxEncoder._run_batch = timed_run_batch


def _summary(wall):
    calls = list(_CALLS)
    _CALLS.clear()
    sizes = sorted({size for _, size, _ in calls})
    inside = sum(seconds for *_, seconds in calls)
    return f"{len(calls)} session runs, batch sizes {sizes}, {inside:.2f} s inside runs of {wall:.2f} s wall"


def _gpu_memory():
    """Memory in use on the GPU, as nvidia-smi reports it (sessions per shape each keep an arena)."""
    if shutil.which("nvidia-smi") is None:
        return "no nvidia-smi"
    out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader"],
                         capture_output=True, text=True, check=False).stdout.strip()
    return f"GPU memory used: {out}"


def _set_coalesce(encoders, coalesce):
    for encoder in encoders:
        encoder.onnx.coalesce = coalesce


def encoder_level(device):
    frames = np.random.default_rng(0).integers(0, 256, size=(64, 8, 224, 224, 3), dtype=np.uint8)
    for n_threads, coalesce in ((1, False), (16, False), (16, True)):
        encoder = make_visual_encoder("efficientnet-lite0", device=device, coalesce=coalesce)
        encoder.encode(frames[0])
        for rep in ("first", "warm"):
            _CALLS.clear()
            t0 = time.perf_counter()
            with ThreadPoolExecutor(n_threads) as pool:
                list(pool.map(encoder.encode, frames))
            wall = time.perf_counter() - t0
            print(f"encoder, {n_threads:2d} threads, coalesce={coalesce}, {rep}: {64 * 8 / wall:7.0f} frames/s; "
                  f"{_summary(wall)}", flush=True)
    batches = frames.reshape(-1, 224, 224, 3)
    for rep in ("first", "warm"):
        _CALLS.clear()
        t0 = time.perf_counter()
        for _ in range(4):
            encoder.encode(batches[:8])
            encoder.encode(batches[:128])
        wall = time.perf_counter() - t0
        print(f"encoder, 8 and 128 frames alternating, {rep}: {4 * 136 / wall:7.0f} frames/s; {_summary(wall)}",
              flush=True)


def estimator_level(device):
    clips, _ = make_av_clips(n_clips=64, random_state=0)
    model = AVCorrespondence(audio_encoder="effnet-mel", epochs=5, device=device, n_jobs=1,
                             random_state=0).fit(clips[:16])
    encoders = (model.audio_encoder_, model.visual_encoder_)
    rows = [("n_jobs=1", 1, False), ("n_jobs=-1", -1, False), ("n_jobs=-1, coalesced", -1, True),
            ("n_jobs=4, coalesced", 4, True)]
    for label, n_jobs, coalesce in rows:
        model.set_params(n_jobs=n_jobs)
        _set_coalesce(encoders, coalesce)
        model.transform(clips[16:32])
        _CALLS.clear()
        t0 = time.perf_counter()
        model.transform(clips[32:])
        wall = time.perf_counter() - t0
        print(f"transform, {label}: {32 / wall:6.1f} clips/s; {_summary(wall)}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=["cpu", "cuda"])
    args = parser.parse_args()
    _instrument()
    encoder_level(args.device)
    print(_gpu_memory(), flush=True)
    estimator_level(args.device)
    print(_gpu_memory(), flush=True)


if __name__ == "__main__":
    main()
