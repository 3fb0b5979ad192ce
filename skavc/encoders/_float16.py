"""Float16 versions of our float32 ONNX graphs, for ``precision="fp16"`` on the GPU.

Weights and activations become float16 while the graph's inputs and outputs keep
their types, so callers feed and receive the same arrays as with the float32 graph.
Written with the ``onnx`` package only (the graphs are ours: every op they use is
listed in :data:`FLOAT16_OPS`, and anything else is refused rather than guessed).
"""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

_FLOAT16_MAX = float(np.finfo(np.float16).max)

#: Ops whose float inputs and outputs may all be float16 (ONNX type constraint "T" covers it).
FLOAT16_OPS = frozenset(
    {
        "Add", "Sub", "Mul", "Div", "Conv", "Clip", "Relu", "Sigmoid", "Erf", "Tanh",
        "MatMul", "Gemm", "Softmax", "LayerNormalization", "GlobalAveragePool",
        "ReduceMean", "Transpose", "Reshape", "Flatten", "Split", "Slice", "Concat",
        "Identity", "Resize", "Pad", "Sqrt", "Pow", "Unsqueeze", "Squeeze", "Gather",
        "Shape", "Cast",
    }
)


def _float_values(model):
    """Names of every float32 tensor in ``model`` (inputs, initializers, node outputs)."""
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    graph = inferred.graph
    names = {
        v.name
        for v in list(graph.input) + list(graph.value_info) + list(graph.output)
        if v.type.tensor_type.elem_type == TensorProto.FLOAT
    }
    names.update(t.name for t in graph.initializer if t.data_type == TensorProto.FLOAT)
    return names


def _to_float16_array(array):
    # Weights beyond float16's range would become inf; saturate instead.
    return np.clip(array, -_FLOAT16_MAX, _FLOAT16_MAX).astype(np.float16)


def convert_float_to_float16(model):
    """A float16 copy of a float32 ONNX model whose inputs and outputs keep their types.

    Parameters
    ----------
    model : onnx.ModelProto or bytes
        A float32 graph using only :data:`FLOAT16_OPS` (opset >= 13).

    Returns
    -------
    model16 : onnx.ModelProto
        Float initializers and ``Cast(to=FLOAT)`` nodes become float16; a float
        graph input is cast to float16 on entry and a float output back to
        float32 on exit. Metadata gains ``precision: fp16``.

    Raises
    ------
    ValueError
        When the graph holds an op outside :data:`FLOAT16_OPS`.
    """
    if isinstance(model, (bytes, bytearray)):
        model = onnx.load_from_string(bytes(model))
    nodes = list(model.graph.node)
    unknown = sorted({n.op_type for n in nodes if n.domain not in ("", "ai.onnx")}
                     | {n.op_type for n in nodes} - FLOAT16_OPS)
    if unknown:
        raise ValueError(f"convert_float_to_float16: no float16 rule for op(s) {unknown}")
    floats = _float_values(model)
    model16 = onnx.ModelProto()
    model16.CopyFrom(model)
    graph = model16.graph

    for init in graph.initializer:
        if init.data_type == TensorProto.FLOAT:
            init.CopyFrom(numpy_helper.from_array(_to_float16_array(numpy_helper.to_array(init)), init.name))
    for node in graph.node:
        for attr in node.attribute:
            if node.op_type == "Cast" and attr.name == "to" and attr.i == TensorProto.FLOAT:
                attr.i = TensorProto.FLOAT16

    # Float inputs: rename the input's consumers to a float16 copy made on entry.
    entry_casts = []
    for value in graph.input:
        if value.name in floats:
            cast_name = f"{value.name}__fp16"
            for node in graph.node:
                node.input[:] = [cast_name if i == value.name else i for i in node.input]
            entry_casts.append(helper.make_node("Cast", [value.name], [cast_name], to=TensorProto.FLOAT16,
                                                name=f"cast_in_{value.name}"))

    # Float outputs: the producing node writes a float16 tensor that is cast back on exit.
    for value in graph.output:
        if value.name in floats:
            inner = f"{value.name}__fp16"
            for node in graph.node:
                node.output[:] = [inner if o == value.name else o for o in node.output]
            graph.node.append(helper.make_node("Cast", [inner], [value.name], to=TensorProto.FLOAT,
                                               name=f"cast_out_{value.name}"))

    nodes = entry_casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]  # float32 annotations would now be wrong; onnxruntime infers them
    entry = model16.metadata_props.add()
    entry.key, entry.value = "precision", "fp16"
    onnx.checker.check_model(model16)
    return model16
