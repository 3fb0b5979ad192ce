"""`OnnxEncoder`: a frozen ONNX model run by onnxruntime, picklable, built lazily."""

import functools
import hashlib
import os
import threading
import warnings
from pathlib import Path

import numpy as np

_DEVICES = ("auto", "cpu", "cuda")

#: Items per session call when ``batch_size=None``. On 2 CPU cores EfficientNet-Lite0 at
#: 224x224 peaks at 8 frames (202 frames/s; 172 at 1, 184 at 64); a GPU wants
#: hundreds of frames per call before kernel launches stop dominating.
AUTO_BATCH_SIZE = {"CPUExecutionProvider": 8, "CUDAExecutionProvider": 256}
# Input shapes kept ready per thread: each with its bound buffers and, on CUDA, its own session.
_MAX_SHAPES = 8


def sha256_bytes(data):
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def available_providers():
    """Execution providers this onnxruntime build offers.

    Examples
    --------
    >>> from skavc.encoders import available_providers
    >>> "CPUExecutionProvider" in available_providers()
    True
    """
    import onnxruntime as ort

    return list(ort.get_available_providers())


#: CUDA provider options. NHWC convolutions: EfficientNet-Lite0 ran 1.33x faster on an H200 (fp32
#: 8,932 -> 11,884 frames/s, fp16 11,073 -> 13,691; benchmarks/gpu/provider_sweep.py, docs/benchmarks.md).
CUDA_PROVIDER_OPTIONS = {"prefer_nhwc": "1"}


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
        return [("CUDAExecutionProvider", dict(CUDA_PROVIDER_OPTIONS)), "CPUExecutionProvider"]
    if device == "cuda":
        warnings.warn(
            "device='cuda' was requested but onnxruntime has no CUDAExecutionProvider "
            "(install skavc[gpu] on a machine with an NVIDIA GPU); running on the CPU.",
            RuntimeWarning,
            stacklevel=3,
        )
    return ["CPUExecutionProvider"]


@functools.lru_cache(maxsize=1)
def _preload_cuda_libraries():
    """Load the CUDA and cuDNN libraries onnxruntime-gpu needs (from the NVIDIA pip packages when present).

    onnxruntime-gpu >= 1.21 offers ``preload_dlls``; without it, or when it fails,
    the CUDA provider still finds system libraries on its own (or falls back, with
    the warning below).
    """
    import onnxruntime as ort

    preload = getattr(ort, "preload_dlls", None)
    if preload is not None:
        try:
            preload()
        except Exception:  # libraries may be on the system path instead
            pass


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
    batch_size : int or None, default=None
        Largest number of items sent to the session in one call; None picks
        ``AUTO_BATCH_SIZE`` for the provider in use (8 on the CPU, 256 on CUDA).
    sha256 : str or None, default=None
        Expected sha256 of the model bytes. A mismatch raises ``ValueError``
        (a tampered or corrupt file). Recorded on first load when None.
    n_threads : int or None, default=None
        onnxruntime intra-op threads; None lets onnxruntime decide.
    name : str or None, default=None
        Display name.
    io_binding : bool or None, default=None
        Run through an ``IOBinding`` whose device buffers are reused from call to
        call (inputs are copied to the device once, in their own dtype: uint8
        frames move 4x fewer bytes than float32). None: only on CUDA.
    coalesce : bool or None, default=None
        Merge small concurrent calls (one clip's frames from each of several
        threads, e.g. ``AVCorrespondence(n_jobs=-1)``) into one session call of up
        to ``batch_size`` items. None: off. On an H100 the merged batches' changing
        sizes made ``transform`` with ``n_jobs=-1`` 1.7 clips/s against 115.6 unmerged
        (one session for every shape, before sessions per shape; docs/benchmarks.md).

    Notes
    -----
    On CUDA every input shape gets its own session (at most ``_MAX_SHAPES`` per encoder; a
    new shape beyond them takes over the least recently used shape's session). onnxruntime's
    CUDA convolutions rebuild their cuDNN state whenever a session's input shape differs from
    its previous run, already-seen shapes included: 2.4-3.1 s per change for EfficientNet-Lite0
    with NHWC convolutions on an H100, 0.5-0.9 s with NCHW, against 2 ms (8 frames) to 50 ms
    (128 frames) for a repeated shape.

    Attributes
    ----------
    n_session_runs_ : int
        Session calls made so far (coalesced calls count once).

    Examples
    --------
    >>> import numpy as np
    >>> import onnx
    >>> from skavc.encoders import OnnxEncoder
    >>> model = onnx.parser.parse_model('<ir_version: 8, opset_import: ["" : 17]>'
    ...                                 ' relu (float[N, 3] x) => (float[N, 3] y) {y = Relu (x)}')
    >>> encoder = OnnxEncoder(model.SerializeToString(), device="cpu", batch_size=2)  # bytes, or an .onnx file's path
    >>> (y,) = encoder.run({"x": np.array([[-1, 0, 2]] * 5, np.float32)})  # 5 rows, in batches of 2
    >>> y.shape, y[0], encoder.n_session_runs_
    ((5, 3), array([0., 0., 2.], dtype=float32), 3)
    """

    def __init__(
        self, model, *, device="auto", batch_size=None, sha256=None, n_threads=None, name=None,
        io_binding=None, coalesce=None,
    ):
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
        if batch_size is not None and int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1 or None; got {batch_size!r}")
        self.device = device
        self.batch_size = None if batch_size is None else int(batch_size)
        self.n_threads = n_threads
        self.name = name or (self.path.stem if self.path else "onnx-model")
        self.io_binding = io_binding
        self.coalesce = coalesce
        self.n_session_runs_ = 0
        self._init_runtime_state()

    def _init_runtime_state(self):
        # Locks, thread-local bindings and the coalescing queue cannot be pickled.
        self._session = None
        self._lock = threading.Lock()
        self._local = threading.local()  # per thread: input shapes -> _ShapeState
        self._queue_cv = threading.Condition()
        self._pending = []
        self._busy = False
        self._device_thread = None

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
        on_cuda = providers[0] != "CPUExecutionProvider"  # ("CUDAExecutionProvider", options)
        if on_cuda:
            _preload_cuda_libraries()
        try:
            session = ort.InferenceSession(data, sess_options=options, providers=providers)
        except Exception as exc:
            raise ValueError(f"onnxruntime could not load the model {self.name!r}: {exc}") from exc
        if on_cuda and session.get_providers()[0] != "CUDAExecutionProvider":
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
    def on_gpu(self):
        """Whether the live session runs on CUDA."""
        return self.providers[0] == "CUDAExecutionProvider"

    @property
    def effective_batch_size(self):
        """``batch_size``, or the provider's default when it is None."""
        if self.batch_size is not None:
            return self.batch_size
        return AUTO_BATCH_SIZE.get(self.providers[0], AUTO_BATCH_SIZE["CPUExecutionProvider"])

    def _use(self, option):
        return self.on_gpu if option is None else bool(option)

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
        if n == 0:
            raise ValueError("inputs are empty: nothing to encode")
        output_names = list(output_names) if output_names is not None else self.output_names
        batch_size = self.effective_batch_size
        if n < batch_size and self.coalesce:
            return self._run_coalesced(arrays, output_names)
        chunks = [
            self._on_device_thread(self._run_batch, {k: v[start : start + batch_size] for k, v in arrays.items()},
                                   output_names)
            for start in range(0, n, batch_size)
        ]
        return _concatenate(chunks)

    def _calls_on_device_thread(self):
        return self.on_gpu

    def _on_device_thread(self, func, *args):
        """``func(*args)``, on the one long-lived thread that makes every CUDA call of this encoder.

        That thread owns the encoder's sessions per shape and their device buffers
        (:meth:`_shape_state`): joblib's worker threads, new for every ``transform``, would each
        open their own, and pay onnxruntime's cuDNN set-up (seconds per shape) again. On the CPU
        calls run in place.
        """
        if not self._calls_on_device_thread():
            return func(*args)
        with self._lock:
            if self._device_thread is None:
                from concurrent.futures import ThreadPoolExecutor

                self._device_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"skavc-{self.name}")
        return self._device_thread.submit(func, *args).result()

    def _run_batch(self, feed, output_names):
        """One session call, through reused I/O bindings when enabled.

        With I/O binding or on CUDA, a batch is padded (its last item repeated) up to
        :func:`bucket_size`, so that batches of every size share a few shapes: a few sets of
        device buffers and, on CUDA, a few sessions (:meth:`_shape_state`).
        """
        self.n_session_runs_ += 1
        binding = self._use(self.io_binding)
        n = next(iter(feed.values())).shape[0]
        size = bucket_size(n, self.effective_batch_size) if binding or self.on_gpu else n
        if size > n:
            feed = {k: np.concatenate([v, np.repeat(v[-1:], size - n, axis=0)]) for k, v in feed.items()}
        if binding:
            # Fresh host arrays on every device (a CPU value's numpy() would be a view of the reused buffer).
            results = self._run_bound(feed, output_names).copy_outputs_to_cpu()
        else:
            session = self._shape_state(feed).session if self.on_gpu else self.session
            results = session.run(output_names, feed)
        return [r[:n] for r in results] if size > n else results

    def _shape_state(self, feed):
        """This thread's :class:`_ShapeState` for ``feed``'s input shapes (the most recent ``_MAX_SHAPES``).

        On the CPU every shape runs on the one session. On CUDA (where one thread makes every
        call) each shape gets a session of its own, at most ``_MAX_SHAPES`` of them: its
        convolutions then never see another shape.
        """
        key = tuple((k, v.shape, v.dtype.str) for k, v in sorted(feed.items()))
        states = getattr(self._local, "shapes", None)
        if states is None:
            states = self._local.shapes = {}
        state = states.pop(key, None)
        if state is None:
            if len(states) >= _MAX_SHAPES:
                # The least recently used shape's buffers go; its session serves the new shape
                # (re-planned once, as one session for every shape would be each time).
                session = states.pop(next(iter(states))).session
            elif self._calls_on_device_thread() and any(s.session is self.session for s in states.values()):
                session = self._create_session()
            else:
                session = self.session
            state = _ShapeState(session)
        states[key] = state  # most recently used last
        return state

    def _run_bound(self, feed, output_names):
        """Run ``feed`` through an ``IOBinding`` kept for its shapes and outputs; returns the binding.

        The first run allocates device inputs and lets onnxruntime allocate the outputs,
        which are then bound in their turn; later runs copy the new inputs into the same
        buffers and write into the same outputs.
        """
        import onnxruntime as ort

        state = self._shape_state(feed)
        bound = state.bindings.get(tuple(output_names))
        if bound is not None:
            binding, inputs, _ = bound
            for name, value in feed.items():
                inputs[name].update_inplace(value)
            state.session.run_with_iobinding(binding)
            return binding
        device = "cuda" if self.on_gpu else "cpu"
        binding = state.session.io_binding()
        inputs = {}
        for name, value in feed.items():
            # Owned buffers: on the CPU `ortvalue_from_numpy` would wrap (and later
            # `update_inplace` overwrite) the caller's own array.
            inputs[name] = ort.OrtValue.ortvalue_from_shape_and_type(value.shape, value.dtype, device, 0)
            inputs[name].update_inplace(value)
            binding.bind_ortvalue_input(name, inputs[name])
        for name in output_names:
            binding.bind_output(name, device)
        state.session.run_with_iobinding(binding)
        outputs = binding.get_outputs()
        for name, value in zip(output_names, outputs):
            binding.bind_ortvalue_output(name, value)
        state.bindings[tuple(output_names)] = (binding, inputs, outputs)
        return binding

    def _run_coalesced(self, arrays, output_names):
        """Run ``arrays`` merged with other threads' pending calls of the same shape.

        Leader/follower: a caller that finds the session idle takes the oldest
        pending calls that fit one batch, runs them as one, and hands each caller
        its rows; the others wait. While the session runs (the GIL released),
        other threads go on decoding and queueing, so the next batch is full.
        """
        request = _Request(arrays, output_names)
        cv = self._queue_cv
        with cv:
            self._pending.append(request)
            while not request.done:
                if self._busy:
                    cv.wait()
                    continue
                group = self._take_group()
                self._busy = True
                cv.release()
                try:
                    self._on_device_thread(_serve, group, self._run_batch)
                finally:
                    cv.acquire()
                    self._busy = False
                    cv.notify_all()
        if request.error is not None:
            raise request.error
        return request.result

    def _take_group(self):
        """Pop the oldest pending call and those after it that share its shapes, up to one batch."""
        first = self._pending[0]
        group, rest, total = [], [], 0
        for request in self._pending:
            if request.key == first.key and total + request.n <= self.effective_batch_size:
                group.append(request)
                total += request.n
            else:
                rest.append(request)
        self._pending[:] = rest
        return group

    # -- pickling ----------------------------------------------------------------
    def __getstate__(self):
        state = self.__dict__.copy()
        for key in ("_session", "_lock", "_local", "_queue_cv", "_pending", "_busy", "_device_thread"):
            state.pop(key, None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._init_runtime_state()

    def __repr__(self):
        where = str(self.path) if self.path else f"<{len(self.model_bytes)} bytes>"
        return f"OnnxEncoder({self.name!r}, model={where}, device={self.device!r}, batch_size={self.batch_size})"


def bucket_size(n, batch_size, smallest=8):
    """Batch size ``n`` is padded to: the next power of two, at least ``smallest``, at most ``batch_size``.

    ``n >= batch_size`` stays as it is. For ``batch_size=256`` six sizes occur (8 to 256), so
    an encoder needs few sessions on CUDA (one per shape; see :class:`OnnxEncoder`). Padding
    at most doubles a batch: on an H100, 8 and 128 frames take 2 and 50 ms, a new shape
    2.5 s.
    """
    if n >= batch_size:
        return n
    size = max(smallest, 1 << (n - 1).bit_length())
    return min(size, batch_size)


class _ShapeState:
    """A session that runs one set of input shapes, and its I/O bindings by output names."""

    def __init__(self, session):
        self.session = session
        self.bindings = {}  # tuple of output names -> (IOBinding, input OrtValues by name, output OrtValues)


class _Request:
    """One caller's inputs waiting to be merged into a batch, and then its outputs."""

    def __init__(self, arrays, output_names):
        self.arrays = arrays
        self.output_names = output_names
        self.n = next(iter(arrays.values())).shape[0]
        self.key = (
            tuple((k, v.shape[1:], v.dtype.str) for k, v in sorted(arrays.items())),
            tuple(output_names),
        )
        self.done = False
        self.result = None
        self.error = None


def _serve(group, run_batch):
    """Run a group of compatible requests as one batch and give each its rows back."""
    try:
        feed = {k: np.concatenate([r.arrays[k] for r in group]) for k in group[0].arrays}
        outputs = run_batch(feed, group[0].output_names)
        start = 0
        for request in group:
            request.result = [out[start : start + request.n] for out in outputs]
            start += request.n
    except Exception as exc:  # every waiting caller sees the failure, not a hang
        for request in group:
            request.error = exc
    finally:
        for request in group:
            request.done = True


def _concatenate(chunks):
    """Per-output concatenation of the batches' outputs."""
    if len(chunks) == 1:
        return chunks[0]
    return [np.concatenate(parts, axis=0) for parts in zip(*chunks)]


# Threads encoding clips of an unpickled model may open its graph at once: one session each.
_OPEN_LOCK = threading.Lock()


class LazyOnnx:
    """Mixin of the encoders: ``onnx``, the :class:`OnnxEncoder` that ``self._open()`` returns,
    opened on first use, once, even when threads ask at the same time."""

    _onnx = None

    @property
    def onnx(self):
        """The :class:`OnnxEncoder` running the graph, opened (and checked) on first use."""
        if self._onnx is None:
            with _OPEN_LOCK:
                if self._onnx is None:
                    self._onnx = self._open()
        return self._onnx

    def __getstate__(self):
        # the session is not pickled: the copy opens its own on first use
        state = self.__dict__.copy()
        state["_onnx"] = None
        return state
