"""`OnnxEncoder`: a frozen ONNX model run by onnxruntime, picklable, built lazily."""

import hashlib
import os
import threading
import warnings
from pathlib import Path

import numpy as np

_DEVICES = ("auto", "cpu", "cuda")


def sha256_bytes(data):
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def available_providers():
    """Execution providers this onnxruntime build offers."""
    import onnxruntime as ort

    return list(ort.get_available_providers())


def resolve_providers(device):
    """Map ``device`` ("auto", "cpu" or "cuda") to an onnxruntime provider list.

    "auto" takes CUDA when onnxruntime-gpu sees a GPU and the CPU otherwise;
    "cuda" without a usable GPU falls back to the CPU with a warning.
    """
    if device not in _DEVICES:
        raise ValueError(f"device must be one of {_DEVICES}; got {device!r}")
    if device == "cpu":
        return ["CPUExecutionProvider"]
    has_cuda = "CUDAExecutionProvider" in available_providers()
    if has_cuda:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device == "cuda":
        warnings.warn(
            "device='cuda' was requested but onnxruntime has no CUDAExecutionProvider "
            "(install skavc[gpu] on a machine with an NVIDIA GPU); running on the CPU.",
            RuntimeWarning,
            stacklevel=3,
        )
    return ["CPUExecutionProvider"]


class OnnxEncoder:
    """A frozen ONNX model, run in batches by onnxruntime.

    The session is created on first use and dropped when pickled: a pickle
    keeps the model's identity (its path or its bytes, plus the sha256) and
    the session is rebuilt, and the file checked again, after loading.

    Parameters
    ----------
    model : str, os.PathLike or bytes
        Path of an ``.onnx`` file or a serialised model.
    device : {"auto", "cpu", "cuda"}, default="auto"
        Where to run. "auto" uses CUDA when onnxruntime-gpu sees a GPU.
    batch_size : int, default=32
        Largest number of items sent to the session in one call.
    sha256 : str or None, default=None
        Expected sha256 of the model bytes. A mismatch raises ``ValueError``
        (a tampered or corrupt file). Recorded on first load when None.
    n_threads : int or None, default=None
        onnxruntime intra-op threads; None lets onnxruntime decide.
    name : str or None, default=None
        Display name.
    """

    def __init__(self, model, *, device="auto", batch_size=32, sha256=None, n_threads=None, name=None):
        if isinstance(model, (bytes, bytearray)):
            self.model_bytes = bytes(model)
            self.path = None
            self.sha256 = sha256_bytes(self.model_bytes)
            if sha256 is not None and sha256 != self.sha256:
                raise ValueError("model bytes do not match the expected sha256")
        elif isinstance(model, (str, os.PathLike)):
            self.path = Path(model)
            self.model_bytes = None
            if not self.path.is_file():
                raise FileNotFoundError(f"model: no ONNX file at '{self.path}'")
            self.sha256 = sha256
        else:
            raise TypeError(f"model must be a path to an .onnx file or bytes; got {type(model).__name__}")
        if device not in _DEVICES:
            raise ValueError(f"device must be one of {_DEVICES}; got {device!r}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1; got {batch_size!r}")
        self.device = device
        self.batch_size = int(batch_size)
        self.n_threads = n_threads
        self.name = name or (self.path.stem if self.path else "onnx-model")
        self._session = None
        self._lock = threading.Lock()

    # -- session -----------------------------------------------------------------
    def _read_model(self):
        if self.model_bytes is not None:
            return self.model_bytes
        if not self.path.is_file():
            raise FileNotFoundError(f"model: no ONNX file at '{self.path}'")
        data = self.path.read_bytes()
        digest = sha256_bytes(data)
        if self.sha256 is None:
            self.sha256 = digest
        elif digest != self.sha256:
            raise ValueError(
                f"the ONNX file '{self.path}' has sha256 {digest[:12]}..., expected "
                f"{self.sha256[:12]}...: it was modified or corrupted. Delete it so that "
                "skavc rebuilds it, or pass the file it was fitted with."
            )
        return data

    @property
    def session(self):
        """The ``onnxruntime.InferenceSession``, created on first access."""
        if self._session is None:
            with self._lock:
                if self._session is None:
                    self._session = self._create_session()
        return self._session

    def _create_session(self):
        import onnxruntime as ort

        data = self._read_model()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.n_threads:
            options.intra_op_num_threads = int(self.n_threads)
        options.log_severity_level = 3
        # Audio and visual sessions alternate clip by clip: spinning worker threads of the idle
        # session would steal the cores from the busy one (2x slower on 2 cores).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = resolve_providers(self.device)
        try:
            session = ort.InferenceSession(data, sess_options=options, providers=providers)
        except Exception as exc:
            raise ValueError(f"onnxruntime could not load the model {self.name!r}: {exc}") from exc
        if providers[0] == "CUDAExecutionProvider" and session.get_providers()[0] != providers[0]:
            warnings.warn(
                f"CUDA could not be initialised for {self.name!r}; running on the CPU.",
                RuntimeWarning,
                stacklevel=4,
            )
        return session

    @property
    def providers(self):
        """Providers the live session uses."""
        return self.session.get_providers()

    @property
    def input_names(self):
        return [i.name for i in self.session.get_inputs()]

    @property
    def output_names(self):
        return [o.name for o in self.session.get_outputs()]

    def metadata(self):
        """The model's ``metadata_props`` as a dict."""
        return dict(self.session.get_modelmeta().custom_metadata_map)

    # -- running -----------------------------------------------------------------
    def run(self, inputs, output_names=None):
        """Run the model over ``inputs`` in batches along axis 0.

        Parameters
        ----------
        inputs : dict of str to ndarray
            Every array has the same first dimension ``n``.
        output_names : list of str or None
            Outputs to return; all when None.

        Returns
        -------
        outputs : list of ndarray
            One array per output, each with first dimension ``n``.
        """
        arrays = {k: np.ascontiguousarray(v) for k, v in inputs.items()}
        sizes = {v.shape[0] for v in arrays.values()}
        if len(sizes) != 1:
            raise ValueError(f"inputs must share their first dimension; got {sorted(sizes)}")
        (n,) = sizes
        session = self.session
        chunks = []
        for start in range(0, n, self.batch_size):
            feed = {k: v[start : start + self.batch_size] for k, v in arrays.items()}
            chunks.append(session.run(output_names, feed))
        if not chunks:
            raise ValueError("inputs are empty: nothing to encode")
        if len(chunks) == 1:
            return chunks[0]
        return [np.concatenate(parts, axis=0) for parts in zip(*chunks)]

    # -- pickling ----------------------------------------------------------------
    def __getstate__(self):
        state = self.__dict__.copy()
        state["_session"] = None
        state.pop("_lock", None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __repr__(self):
        where = str(self.path) if self.path else f"<{len(self.model_bytes)} bytes>"
        return f"OnnxEncoder({self.name!r}, model={where}, device={self.device!r}, batch_size={self.batch_size})"
