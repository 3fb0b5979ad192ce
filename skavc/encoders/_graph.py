"""A small helper to write ONNX graphs from numpy weights with the ``onnx`` package only."""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 18

_ELEM_TYPES = {
    np.dtype(np.float32): TensorProto.FLOAT,
    np.dtype(np.float16): TensorProto.FLOAT16,
    np.dtype(np.uint8): TensorProto.UINT8,
    np.dtype(np.int64): TensorProto.INT64,
    np.dtype(np.int32): TensorProto.INT32,
    np.dtype(np.bool_): TensorProto.BOOL,
}


def elem_type(dtype):
    """ONNX element type of a numpy dtype."""
    return _ELEM_TYPES[np.dtype(dtype)]


class GraphBuilder:
    """Accumulates nodes and initializers; names are generated so callers only pass values around.

    Examples
    --------
    >>> g = GraphBuilder("double")
    >>> x = g.input("x", np.float32, ["N", 3])
    >>> y = g.op("Mul", x, g.const(np.float32(2.0)))
    >>> g.output(y, "y", np.float32, ["N", 3])
    >>> model_bytes = g.to_bytes()
    """

    def __init__(self, name):
        self.name = name
        self._nodes = []
        self._initializers = []
        self._inputs = []
        self._outputs = []
        self._count = 0

    def _fresh(self, prefix):
        self._count += 1
        return f"{prefix}_{self._count}"

    def input(self, name, dtype, shape):
        """Declare a graph input; ``shape`` entries are ints or symbolic names."""
        self._inputs.append(helper.make_tensor_value_info(name, elem_type(dtype), shape))
        return name

    def const(self, array, name=None):
        """Add ``array`` as an initializer and return its name."""
        name = name or self._fresh("const")
        self._initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def op(self, op_type, *inputs, n_outputs=1, **attrs):
        """Append one node; returns its output name (or a list when ``n_outputs > 1``).

        An input given as ``""`` is an omitted optional input.
        """
        base = self._fresh(op_type.lower())
        outputs = [base] if n_outputs == 1 else [f"{base}_{i}" for i in range(n_outputs)]
        self._nodes.append(helper.make_node(op_type, list(inputs), outputs, name=base, **attrs))
        return outputs[0] if n_outputs == 1 else outputs

    def output(self, value, name, dtype, shape):
        """Expose ``value`` as graph output ``name``."""
        self._nodes.append(helper.make_node("Identity", [value], [name], name=f"out_{name}"))
        self._outputs.append(helper.make_tensor_value_info(name, elem_type(dtype), shape))

    def to_model(self, doc_string="", metadata=None):
        """Build and check the ``onnx.ModelProto``."""
        graph = helper.make_graph(
            self._nodes, self.name, self._inputs, self._outputs, initializer=self._initializers
        )
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            producer_name="skavc",
            doc_string=doc_string,
        )
        model.ir_version = 8  # readable by every onnxruntime from 1.14 on
        for key, value in (metadata or {}).items():
            entry = model.metadata_props.add()
            entry.key, entry.value = str(key), str(value)
        onnx.checker.check_model(model)
        return model

    def to_bytes(self, doc_string="", metadata=None):
        """Serialised model, ready for ``onnxruntime.InferenceSession``."""
        return self.to_model(doc_string, metadata).SerializeToString()
