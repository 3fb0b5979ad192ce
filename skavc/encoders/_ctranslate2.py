"""Read CTranslate2 ``model.bin`` files with numpy only (no ``ctranslate2`` at run time).

The layout (CTranslate2 ``src/models/model.cc``, little endian)::

    uint32 binary_version
    if version >= 2: string spec_name; uint32 spec_revision
    uint32 n_variables
    n_variables x:
        string name; uint8 rank; uint32 dims[rank]
        version >= 4: uint8 dtype_id; uint32 n_bytes          (n_bytes of raw data)
        version <  4: uint8 item_size; uint32 n_items         (4 float32, 2 int16, 1 int8)
        raw data
    if version >= 3: uint32 n_aliases; n_aliases x (string alias; string target)

where ``string`` is a uint16 length (counting the trailing NUL) followed by that many bytes.
"""

import os
import struct

import numpy as np

__all__ = ["read_ctranslate2_model", "CTranslate2Model"]

# Order of CTranslate2's DataType enum (include/ctranslate2/types.h).
_DTYPES = {
    0: np.dtype("<f4"),
    1: np.dtype("i1"),
    2: np.dtype("<i2"),
    3: np.dtype("<i4"),
    4: np.dtype("<f2"),
    5: "bfloat16",  # no numpy dtype: widened by hand to float32
}
_ITEM_SIZE_DTYPES = {4: np.dtype("<f4"), 2: np.dtype("<i2"), 1: np.dtype("i1")}
_MAX_KNOWN_VERSION = 6


class CTranslate2Model(dict):
    """``dict`` of variable name -> array, with the file's ``spec_name``, ``spec_revision``,
    ``binary_version`` and ``stored_dtypes`` (name -> dtype string as stored) as attributes."""

    spec_name = ""
    spec_revision = 1
    binary_version = 0
    stored_dtypes = None


class _Reader:
    def __init__(self, data, path):
        self.data = memoryview(data)
        self.pos = 0
        self.path = path

    def take(self, n):
        if n < 0 or self.pos + n > len(self.data):
            raise ValueError(
                f"{self.path}: truncated CTranslate2 model file "
                f"(wanted {n} bytes at offset {self.pos}, file has {len(self.data)})"
            )
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt):
        size = struct.calcsize(fmt)
        return struct.unpack("<" + fmt, self.take(size))[0]

    def string(self):
        n = self.unpack("H")
        raw = bytes(self.take(n))
        if n == 0 or raw[-1] != 0:
            raise ValueError(f"{self.path}: not a CTranslate2 model file (bad string record)")
        try:
            return raw[:-1].decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{self.path}: not a CTranslate2 model file (bad string record)")


def _to_float32(raw, dtype, shape):
    if dtype == "bfloat16":
        # bfloat16 is the upper half of a float32: shift it back into place.
        bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        return bits.view(np.float32).reshape(shape)
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def read_ctranslate2_model(path, dequantize=True):
    """Read every variable of a CTranslate2 model.

    Parameters
    ----------
    path : str or os.PathLike
        ``model.bin`` itself or the model directory holding it.
    dequantize : bool, default=True
        Return float weights as float32: float16/bfloat16 are widened (exactly), and int8/int16
        weights that have a ``<name>_scale`` companion are divided by it (CTranslate2 stores
        ``round(w * scale)``) and the ``_scale`` entries are dropped. Integer variables without a
        scale (flags, head counts) keep their integer dtype. With ``False`` arrays are returned as
        stored.

    Returns
    -------
    CTranslate2Model
        A ``dict`` name -> ``np.ndarray`` (aliases resolved to the same array), with
        ``spec_name``, ``spec_revision``, ``binary_version`` and ``stored_dtypes`` attributes.

    Raises
    ------
    ValueError
        If the file is not a CTranslate2 model, is truncated, or uses an unknown data type.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, "model.bin")
    with open(path, "rb") as f:
        data = f.read()
    r = _Reader(data, path)

    version = r.unpack("I")
    if not 1 <= version <= _MAX_KNOWN_VERSION:
        raise ValueError(
            f"{path}: not a CTranslate2 model file (binary version {version}, "
            f"expected 1..{_MAX_KNOWN_VERSION})"
        )
    model = CTranslate2Model()
    model.binary_version = version
    if version >= 2:
        model.spec_name = r.string()
        model.spec_revision = r.unpack("I")

    raw_vars = {}
    stored = {}
    for _ in range(r.unpack("I")):
        name = r.string()
        rank = r.unpack("B")
        shape = tuple(r.unpack("I") for _ in range(rank))
        if version >= 4:
            type_id = r.unpack("B")
            if type_id not in _DTYPES:
                raise ValueError(f"{path}: variable {name!r} has unknown data type id {type_id}")
            dtype = _DTYPES[type_id]
            n_bytes = r.unpack("I")
        else:
            item_size = r.unpack("B")
            if item_size not in _ITEM_SIZE_DTYPES:
                raise ValueError(f"{path}: variable {name!r} has unknown item size {item_size}")
            dtype = _ITEM_SIZE_DTYPES[item_size]
            n_bytes = r.unpack("I") * item_size
        itemsize = 2 if dtype == "bfloat16" else dtype.itemsize
        if n_bytes != int(np.prod(shape, dtype=np.int64)) * itemsize:
            raise ValueError(
                f"{path}: variable {name!r} has {n_bytes} bytes, which does not fit shape {shape}"
            )
        raw_vars[name] = _to_float32(r.take(n_bytes), dtype, shape)
        stored[name] = str(dtype)

    aliases = {}
    if version >= 3:
        for _ in range(r.unpack("I")):
            alias = r.string()
            aliases[alias] = r.string()
    if r.pos != len(data):
        raise ValueError(f"{path}: {len(data) - r.pos} unexpected trailing bytes")

    for name, arr in raw_vars.items():
        if not dequantize:
            model[name] = arr.copy()
            continue
        if name.endswith("_scale") and name[: -len("_scale")] in raw_vars:
            continue  # folded into its weight below
        scale = raw_vars.get(name + "_scale")
        if arr.dtype.kind == "i" and scale is not None:
            # Per-row scale for int8 (shape [rows]), one global scale for int16.
            s = scale.astype(np.float32)
            if s.ndim == 1 and arr.ndim >= 1 and s.shape[0] == arr.shape[0]:
                s = s.reshape((-1,) + (1,) * (arr.ndim - 1))
            model[name] = (arr.astype(np.float32) / s).astype(np.float32)
        elif arr.dtype.kind == "f":
            model[name] = arr.astype(np.float32)  # always a fresh, writable copy
        else:
            model[name] = arr.copy()

    for alias, target in aliases.items():
        # CTranslate2 ignores aliases to variables it does not have; do the same.
        if target in model:
            model[alias] = model[target]
            stored[alias] = stored[target]
    model.stored_dtypes = stored
    return model
