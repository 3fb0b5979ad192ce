"""Read PyTorch checkpoints into numpy arrays without importing torch.

``torch.save`` files are pickles, and unpickling runs whatever callables the file names.
This reader admits only the handful of globals a plain state dict needs and maps each to
an inert numpy-based stand-in, so a hostile checkpoint fails with
``pickle.UnpicklingError`` before anything of it runs.

Two layouts are supported:

* the zip format of ``torch.save`` since torch 1.6 (``<prefix>/data.pkl`` plus one member
  ``<prefix>/data/<key>`` of raw bytes per storage);
* the legacy format before it: a run of pickles (magic number, protocol version,
  ``sys_info``, the object, the list of storage keys) followed, for each key, by an int64
  element count and the storage's raw bytes.
"""

import collections
import io
import os
import pickle
import struct
import zipfile

import numpy as np

__all__ = ["load_torch_state_dict"]

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

# numpy has no bfloat16: such storages are read as uint16 and widened to float32 later.
_BFLOAT16 = "bfloat16"

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "BFloat16Storage": _BFLOAT16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
    "ComplexFloatStorage": np.complex64,
    "ComplexDoubleStorage": np.complex128,
    "UntypedStorage": np.uint8,
}


class _StorageType:
    """Inert token standing for a torch storage class; never called, only inspected."""

    __slots__ = ("name", "dtype")

    def __init__(self, name, dtype):
        self.name = name
        self.dtype = dtype

    def __repr__(self):
        return f"<storage type {self.name}>"


class _Storage:
    """A flat buffer of one dtype; ``array`` is filled once the bytes have been read."""

    def __init__(self, dtype, numel):
        self.dtype = dtype
        self.numel = numel
        self.array = None


class _StorageView:
    """Legacy-format storage view: ``size`` elements of ``root`` from ``offset``."""

    def __init__(self, root, offset, size):
        self.root = root
        self.offset = offset
        self.size = size

    @property
    def array(self):
        if self.root.array is None:
            return None
        return self.root.array[self.offset : self.offset + self.size]


class _LazyTensor:
    """What ``_rebuild_tensor*`` returns: resolved to an ndarray once storages are read."""

    __slots__ = ("storage", "offset", "size", "stride")

    def __init__(self, storage, offset, size, stride):
        self.storage = storage
        self.offset = offset
        self.size = size
        self.stride = stride

    def to_numpy(self):
        flat = self.storage.array
        if flat is None:
            raise pickle.UnpicklingError("a tensor refers to a storage whose data is missing")
        size, stride, offset = self.size, self.stride, self.offset
        if len(size) != len(stride) or any(s < 0 for s in size) or any(s < 0 for s in stride):
            raise pickle.UnpicklingError(f"bad tensor geometry size={size} stride={stride}")
        if 0 in size:
            return np.zeros(size, dtype=flat.dtype)
        # as_strided trusts its arguments: check the view stays inside the buffer first.
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if offset < 0 or last >= flat.size:
            raise pickle.UnpicklingError(
                f"tensor (offset={offset}, size={size}, stride={stride}) reaches past the "
                f"end of its storage of {flat.size} elements"
            )
        base = flat[offset:]
        itemsize = base.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            base, shape=size, strides=[s * itemsize for s in stride], writeable=False
        )
        return np.array(view, copy=True)


def _rebuild_tensor(storage, storage_offset, size, stride):
    if not isinstance(storage, (_Storage, _StorageView)):
        raise pickle.UnpicklingError("_rebuild_tensor called without a storage")
    return _LazyTensor(storage, int(storage_offset), tuple(size), tuple(stride))


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, *args):
    # backward_hooks and the optional metadata are irrelevant for inference weights.
    return _rebuild_tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *args):
    return data


def _allowed_globals():
    allowed = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    }
    for name, dtype in _STORAGE_DTYPES.items():
        token = _StorageType(name, dtype)
        for module in ("torch", "torch.storage", "torch.cuda"):
            allowed[(module, name)] = token
    return allowed


_ALLOWED = _allowed_globals()


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only allowlisted globals and torch storage references.

    ``storage_source(key, dtype, numel)`` returns the storage for a persistent id; it
    lets the zip and legacy readers fetch the bytes their own way.
    """

    def __init__(self, file, storage_source):
        super().__init__(file)
        self._storage_source = storage_source

    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: a weights file may only "
                "contain tensors, storages and OrderedDicts"
            ) from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        storage_type, key, _location, numel = pid[1:5]
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"persistent id names no storage type: {pid!r}")
        view_metadata = pid[5] if len(pid) > 5 else None
        storage = self._storage_source(str(key), storage_type.dtype, int(numel))
        if view_metadata is not None:
            _view_key, offset, size = view_metadata
            return _StorageView(storage, int(offset), int(size))
        return storage


def _buffer_to_array(raw, dtype, byteorder):
    """Interpret raw storage bytes; bfloat16 is widened to float32 (numpy lacks it)."""
    if dtype is _BFLOAT16:
        bits = np.frombuffer(raw, dtype=np.dtype(np.uint16).newbyteorder(byteorder))
        return (bits.astype(np.uint32) << 16).view(np.float32)
    arr = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder(byteorder))
    return arr.astype(arr.dtype.newbyteorder("="), copy=False)


def _resolve(obj):
    """Replace every ``_LazyTensor`` inside ``obj`` by its ndarray."""
    if isinstance(obj, _LazyTensor):
        return obj.to_numpy()
    if isinstance(obj, dict):
        out = type(obj)() if isinstance(obj, collections.OrderedDict) else {}
        for key, value in obj.items():
            out[key] = _resolve(value)
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(_resolve(v) for v in obj)
    return obj


def _load_zip(path):
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pkl = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
        if len(pkl) != 1:
            raise pickle.UnpicklingError(f"{path}: zip checkpoint without a single */data.pkl")
        prefix = pkl[0][: -len("data.pkl")]
        byteorder = "<"
        if prefix + "byteorder" in names:
            byteorder = "<" if archive.read(prefix + "byteorder").strip() == b"little" else ">"
        storages = {}

        def storage_source(key, dtype, numel):
            if key not in storages:
                storage = _Storage(dtype, numel)
                try:
                    raw = archive.read(f"{prefix}data/{key}")
                except KeyError:
                    raise pickle.UnpicklingError(f"storage {key!r} missing from {path}") from None
                storage.array = _buffer_to_array(raw, dtype, byteorder)
                storages[key] = storage
            return storages[key]

        with archive.open(pkl[0]) as f:
            obj = _RestrictedUnpickler(io.BytesIO(f.read()), storage_source).load()
        return _resolve(obj)


def _load_legacy(path):
    with open(path, "rb") as f:

        def no_storage(*_):
            raise pickle.UnpicklingError("unexpected storage reference in checkpoint header")

        def header():
            return _RestrictedUnpickler(f, no_storage).load()

        magic = header()
        if magic != _LEGACY_MAGIC:
            raise pickle.UnpicklingError(
                f"{path} is neither a zip nor a legacy torch checkpoint (bad magic number)"
            )
        protocol = header()
        if protocol != _LEGACY_PROTOCOL:
            raise pickle.UnpicklingError(f"unsupported legacy protocol version {protocol}")
        sys_info = header()
        little = sys_info.get("little_endian", True) if isinstance(sys_info, dict) else True
        byteorder = "<" if little else ">"

        storages = {}

        def storage_source(key, dtype, numel):
            # Legacy data follows all pickles: record the storage now, fill it later.
            if key not in storages:
                storages[key] = _Storage(dtype, numel)
            return storages[key]

        obj = _RestrictedUnpickler(f, storage_source).load()
        keys = _RestrictedUnpickler(f, no_storage).load()
        if not isinstance(keys, list):
            raise pickle.UnpicklingError("legacy checkpoint: storage key list missing")
        remaining = os.fstat(f.fileno()).st_size - f.tell()
        count_fmt = byteorder + "q"
        for key in keys:
            storage = storages.get(str(key))
            if storage is None:
                raise pickle.UnpicklingError(f"legacy checkpoint: unknown storage key {key!r}")
            itemsize = 2 if storage.dtype is _BFLOAT16 else np.dtype(storage.dtype).itemsize
            (count,) = struct.unpack(count_fmt, f.read(8))
            nbytes = count * itemsize
            if count < 0 or nbytes > remaining:
                raise pickle.UnpicklingError(f"legacy checkpoint: storage {key!r} is truncated")
            raw = f.read(nbytes)
            remaining -= 8 + nbytes
            storage.array = _buffer_to_array(raw, storage.dtype, byteorder)
    return _resolve(obj)


def load_torch_state_dict(path):
    """Load the tensors of a PyTorch checkpoint as numpy arrays, without torch.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by ``torch.save``, in the zip format (torch >= 1.6) or the
        legacy pre-1.6 format.

    Returns
    -------
    dict of str to numpy.ndarray
        The state dict, in file order. A checkpoint that wraps it under a
        ``"state_dict"`` or ``"model"`` key is unwrapped; entries that are not tensors
        are dropped. bfloat16 tensors come back as float32.

    Raises
    ------
    pickle.UnpicklingError
        If the file names any global other than ``collections.OrderedDict``, the
        ``torch._utils._rebuild_*`` tensor helpers and torch storage types (nothing
        from the file is executed), or if it is malformed.
    """
    path = os.fspath(path)
    obj = _load_zip(path) if zipfile.is_zipfile(path) else _load_legacy(path)
    if isinstance(obj, dict):
        for wrapper in ("state_dict", "model"):
            if isinstance(obj.get(wrapper), dict):
                obj = obj[wrapper]
                break
    if not isinstance(obj, dict):
        raise pickle.UnpicklingError(f"{path} holds a {type(obj).__name__}, not a state dict")
    return {str(k): v for k, v in obj.items() if isinstance(v, np.ndarray)}
