"""Encoders that users bring: their own ONNX exports, under the built-in encoders' contract.

:class:`OnnxAudioEncoder` and :class:`OnnxVisualEncoder` describe how to feed a user's
``.onnx`` file and read its outputs; :class:`~skavc.encoders.OnnxEncoder` runs it (sessions,
batching, CUDA, I/O binding, sha256 pinning). An ONNX file is a protobuf message, read as
data: loading one never runs Python code, and skavc registers no custom-op library.
See ``docs/encoders.md``. (Over 500 lines: both classes and the checks of a user's graph
against what they declare, about 400 lines of code and the rest docstrings.)
"""

import copy
import functools
import math
import os
import warnings
from pathlib import Path

import numpy as np

from ._cache import cached_graph
from ._onnx import LazyOnnx, OnnxEncoder, sha256_bytes

_DEVICES = (None, "auto", "cpu", "cuda")
_FLOAT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}
_CHUNK_FRAMES = 256  # frames preprocessed at a time (bounds the float copies of long clips)


def _choice(param, value, options):
    if value not in options:
        raise ValueError(f"{param} must be one of {options}; got {value!r}")
    return value


def _positive_int(param, value, allow_none=True):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{param} must be a positive integer{' or None' if allow_none else ''}; got {value!r}")
    return int(value)


def _positive_real(param, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not 0 < value < math.inf:
        raise ValueError(f"{param} must be a positive number; got {value!r}")
    return float(value)


def _name(param, value):
    if value is not None and not (isinstance(value, str) and value):
        raise ValueError(f"{param} must be a non-empty string or None; got {value!r}")
    return value


def _describe(values):
    return ", ".join(f"{v.name!r} {v.type} {v.shape}" for v in values) or "none"


def _pixels(param, value):
    """``mean``/``std`` as a float32 (3,) array in 0..255 pixel units, or None."""
    if value is None:
        return None
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        array = np.full(0, np.nan)
    if array.shape not in ((), (3,)) or not np.all(np.isfinite(array)) or (param == "std" and np.any(array <= 0)):
        raise ValueError(f"{param} must be a number or 3 numbers (R, G, B) in 0..255 pixel units"
                         f"{' (positive)' if param == 'std' else ''}, or None; got {value!r}")
    return np.broadcast_to(array, (3,)).astype(np.float32)


@functools.lru_cache(maxsize=4)
def _resizer(size):
    """A CPU session resizing float32 (N, H, W, 3) frames to ``size`` as the built-in graph does."""
    from ._graph import GraphBuilder

    g = GraphBuilder("resize")
    x = g.input("x", np.float32, ["N", "H", "W", 3])
    y = g.op("Resize", x, "", "", g.const(np.array(size, np.int64)), mode="linear", antialias=1,
             axes=[1, 2], coordinate_transformation_mode="half_pixel")
    g.output(y, "y", np.float32, ["N", size[0], size[1], 3])
    return OnnxEncoder(g.to_bytes(), device="cpu", batch_size=64, name=f"resize-{size[0]}x{size[1]}")


class _UserEncoder(LazyOnnx):
    """Shared by the user encoders: lazy session, runtime configuration, pinning and pickling."""

    kind = None

    def __init__(self, path, *, input_name, output_name, name, device, n_threads, batch_size):
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be the path of an .onnx file; got {type(path).__name__}")
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"path: no ONNX file at '{self.path}'")
        self.input_name = _name("input_name", input_name)
        self.output_name = _name("output_name", output_name)
        self.name = _name("name", name) or self.path.stem
        self.device = _choice("device", device, _DEVICES)
        self.n_threads = _positive_int("n_threads", n_threads)
        self.batch_size = _positive_int("batch_size", batch_size)
        self.precision = "fp32"
        self.runtime_device = "auto"  # the estimator's device, used when ``device`` is None
        self.source_sha256 = None  # of the user's file, pinned when first read
        self.sha256 = None  # of the graph run: the user's file, or its float16 conversion
        self._n_features = None
        self._onnx = None
        self._io = None

    # -- runtime -------------------------------------------------------------------------
    def for_runtime(self, device="auto", n_threads=None, precision="fp32"):
        """A copy configured by the estimator; ``device``/``n_threads`` given to the constructor win.

        Parameters
        ----------
        device : {"auto", "cpu", "cuda"}
            Used when this encoder's ``device`` is None.
        n_threads : int or None
            Used when this encoder's ``n_threads`` is None.
        precision : {"fp32", "fp16"}
            "fp16" runs a float16 conversion of the file, cached in :func:`skavc.encoders.cache_dir`.
        """
        new = copy.copy(self)  # through __getstate__: no session is shared
        new.runtime_device = _choice("device", device, _DEVICES[1:])
        if self.n_threads is None:
            new.n_threads = _positive_int("n_threads", n_threads)
        if _choice("precision", precision, ("fp32", "fp16")) != self.precision:
            new.precision, new.sha256, new._n_features = precision, None, None
        return new

    def _changed(self, digest):
        return ValueError(
            f"the ONNX file '{self.path}' of encoder {self.name!r} has sha256 {digest[:12]}..., but this "
            f"encoder was prepared (or fitted) with sha256 {self.source_sha256[:12]}...: the file was "
            "modified or replaced. Restore that file, or build a new encoder and refit."
        )

    def _open(self):
        path, expected = self.path, self.source_sha256
        if self.precision == "fp16":
            path, expected = self._float16_graph()
            if self.sha256 is not None and expected != self.sha256:
                raise ValueError(f"the float16 conversion of '{self.path}' ({path}) differs from the one "
                                 f"{self.name!r} was fitted with (skavc's converter changed version)")
        onnx = OnnxEncoder(path, device=self.device or self.runtime_device, batch_size=self.batch_size,
                           sha256=expected, n_threads=self.n_threads, name=self.name)
        try:
            session = onnx.session
        except ValueError as exc:
            if self.precision == "fp32" and expected is not None and "sha256" in str(exc):
                raise self._changed(sha256_bytes(self.path.read_bytes())) from exc
            raise ValueError(f"{exc}{self._external_data_hint()}") from exc
        if self.precision == "fp16" and not onnx.on_gpu:
            warnings.warn(f"precision='fp16' for {self.name!r} on the CPU is slower than fp32; it pays off "
                          "on CUDA.", RuntimeWarning, stacklevel=4)
        self.sha256 = onnx.sha256
        if self.precision == "fp32":
            self.source_sha256 = onnx.sha256
        self._io = self._check_graph(session)
        if self._io["in_shape"][0] == 1:  # exported without a batch axis: one item per session call
            onnx.batch_size = 1
        return onnx

    def _external_data_hint(self):
        import onnx

        try:
            graph = onnx.load(str(self.path), load_external_data=False).graph
        except Exception:
            return ""
        if any(t.data_location == onnx.TensorProto.EXTERNAL for t in graph.initializer):
            return (" (its weights are in external data files, which skavc does not read: export a "
                    "model under 2 GB in one file, e.g. in float16)")
        return ""

    def _float16_graph(self):
        data = self.path.read_bytes()
        digest = sha256_bytes(data)
        if self.source_sha256 is None:
            self.source_sha256 = digest
        elif digest != self.source_sha256:
            raise self._changed(digest)

        def build():
            from ._float16 import convert_float_to_float16

            try:
                return convert_float_to_float16(data).SerializeToString()
            except Exception as exc:
                raise ValueError(
                    f"precision='fp16': skavc cannot convert '{self.path}' to float16 ({exc}). Use "
                    "precision='fp32', or export the model in float16 yourself."
                ) from exc

        return cached_graph(f"user-{digest}-fp16.onnx", build)

    def _check_graph(self, session):
        """Input and output the encoder uses, checked against the graph (errors list what it has)."""
        inputs, outputs = session.get_inputs(), session.get_outputs()
        where = f"the graph '{self.path.name}'"
        if self.input_name is not None and self.input_name not in [i.name for i in inputs]:
            raise ValueError(f"input_name={self.input_name!r} is not an input of {where}; its inputs: "
                             f"{_describe(inputs)}")
        if len(inputs) != 1:
            raise ValueError(f"{where} has {len(inputs)} inputs ({_describe(inputs)}); skavc feeds one")
        io = {"input": inputs[0].name, **self._check_input(inputs[0])}
        batch = io["in_shape"][0]
        if isinstance(batch, int) and batch != 1:
            raise ValueError(f"{where} takes a fixed batch of {batch} (input {inputs[0].name!r} {io['in_shape']}): "
                             f"export it with a dynamic batch axis, dynamic_axes={{{inputs[0].name!r}: {{0: 'N'}}}}")
        names = [o.name for o in outputs]
        for param in ("output_name", "feature_map_output"):
            value = getattr(self, param, None)
            if value is not None and value not in names:
                raise ValueError(f"{param}={value!r} is not an output of {where}; its outputs: {_describe(outputs)}")
        rest = [o for o in outputs if o.name != getattr(self, "feature_map_output", None)]
        if self.output_name is None and len(rest) != 1:
            raise ValueError(f"{where} has several outputs ({_describe(rest)}): give output_name=")
        output = next(o for o in rest if self.output_name in (None, o.name))
        return {**io, "output": output.name, "out_shape": list(output.shape)}

    @property
    def _graph_io(self):
        self.onnx  # opens the session and checks the graph
        return self._io

    def _check_input(self, value):
        if value.type not in _FLOAT_TYPES:
            raise ValueError(f"input={self.input!r} but the graph's input {value.name!r} is {value.type} "
                             f"{value.shape}; skavc feeds it float32 or float16")
        return {"dtype": _FLOAT_TYPES[value.type], "in_shape": list(value.shape)}

    # -- contract ------------------------------------------------------------------------
    def prepare(self):
        """Open the session and check the graph against the settings; returns the graph's sha256."""
        io = self._graph_io
        if self._n_features is None:
            steps = self.kind == "audio" and self.output == "steps"
            dims = io["out_shape"][-1:] if steps else io["out_shape"][1:]
            static = dims and all(isinstance(d, int) for d in dims)
            self._n_features = int(np.prod(dims) if static else self._probe().shape[-1])
        return self.sha256

    @property
    def n_features(self):
        """Width of the features (read from the graph, or from one run on zeros); prepares the encoder."""
        if self._n_features is None:
            self.prepare()
        return self._n_features

    @property
    def cache_key(self):
        """What identifies this encoder's outputs: name, graph sha256 and how inputs are made."""
        settings = {k: v for k, v in self.__dict__.items() if not k.startswith("_") and k not in
                    ("device", "runtime_device", "n_threads", "batch_size", "sha256")}
        return (self.name, self.sha256, repr(sorted((k, repr(v)) for k, v in settings.items())))

    def __getstate__(self):
        state = super().__getstate__()
        state["_io"] = None
        return state

    def __repr__(self):
        return f"{type(self).__name__}('{self.path}', input={self.input!r}, name={self.name!r})"


class OnnxAudioEncoder(_UserEncoder):
    """An audio encoder from the user's ONNX file (e.g. the audio tower of a CLAP model).

    Parameters
    ----------
    path : str or os.PathLike
        The ``.onnx`` file (weights inside it; external data files are not read).
    input : {"waveform", "log-mel"}, default="waveform"
        "waveform": the graph takes float samples, shape ``(batch, n_samples)`` (or more axes of
        size 1 before ``n_samples``). "log-mel": skavc computes a log-mel spectrogram (see
        ``log_mel``) and feeds ``(batch, n_mels, n_frames)`` (``mel_layout="mel-time"``) or
        ``(batch, n_frames, n_mels)`` (``"time-mel"``), with axes of size 1 added after ``batch``
        if the graph has more.
    sample_rate : int, default=16000
        Rate (Hz) of the waveforms the graph expects; the estimator resamples audio to it.
    input_name, output_name : str or None, default=None
        The graph input fed and the output read; None: the graph's only input / output.
    output : {"steps", "clip"}, default="steps"
        "steps": the output is ``(batch, n_steps, n_features)``, ``frame_rate`` steps per second.
        "clip": one vector per input, ``(batch, n_features)``; ``encode`` returns ``(1, n_features)``.
    frame_rate : float or None, default=None
        Output steps per second, required for "steps" (step ``j`` is centred at ``(j + 0.5) /
        frame_rate`` s); must be None for "clip", whose encoders have ``frame_rate = None``.
    log_mel : {"whisper", "librosa"}, default="whisper"
        With ``input="log-mel"``. "whisper": :func:`skavc.encoders._whisper.whisper_log_mel` (16 kHz,
        n_fft 400, hop 160, Slaney mel, ``log10`` clamped to max - 8, ``(x + 4) / 4``).
        "librosa": ``librosa.feature.melspectrogram(y, sr=sample_rate, n_fft, hop_length, n_mels,
        fmin, fmax, power=2, center=True, pad_mode="reflect")`` (Slaney mel) in decibels,
        ``10 * log10(max(S, 1e-10))`` (``power_to_db`` with ``ref=1``, no ``top_db``), as
        torchlibrosa's ``LogmelFilterBank`` in CLAP computes it.
    n_mels, n_fft, hop_length : int, default=80, 400, 160
        Mel bands, FFT size and hop (samples); "whisper" needs 400 and 160.
    fmin, fmax : float, default=0.0, None
        Mel range in Hz for "librosa" (None: ``sample_rate / 2``).
    mel_layout : {"mel-time", "time-mel"}, default="mel-time"
        Axis order of the spectrogram fed to the graph.
    max_samples : int or None, default=None
        Audio longer than this is encoded in windows of ``max_samples`` samples: "steps" outputs
        are concatenated, "clip" vectors averaged weighted by window length. A graph with a fixed
        length sets it (a static samples axis, or ``n_frames * hop_length`` samples for "whisper",
        ``(n_frames - 1) * hop_length`` for "librosa"), and every window is zero-padded to that
        length (steps beyond the audio dropped). None: the whole waveform at once.
    name : str or None, default=None
        Display name (and part of the estimator's cache key); default the file's stem.
    device : {"auto", "cpu", "cuda"} or None, default=None
        None takes the estimator's ``device``.
    n_threads, batch_size : int or None, default=None
        onnxruntime threads (None: the estimator's choice) and windows per session call.

    Examples
    --------
    >>> import os, tempfile, onnx
    >>> import numpy as np
    >>> from skavc.encoders import OnnxAudioEncoder
    >>> model = onnx.parser.parse_model('<ir_version: 8, opset_import: ["" : 17]> steps (float[N, n] waveform) => '
    ...     '(float[N, T, 160] steps) {s = Constant <value = int64[3] {0, -1, 160}> () steps = Reshape (waveform, s)}')
    >>> path = os.path.join(tempfile.mkdtemp(), "steps.onnx"); onnx.save(model, path)  # steps: 10 ms of samples each
    >>> encoder = OnnxAudioEncoder(path, frame_rate=100, device="cpu")
    >>> encoder.encode(np.zeros(16000, np.float32)).shape, encoder.n_features  # 1 s at 16 kHz
    ((100, 160), 160)
    """

    kind = "audio"

    def __init__(self, path, *, input="waveform", sample_rate=16000, input_name=None, output_name=None,
                 output="steps", frame_rate=None, log_mel="whisper", n_mels=80, n_fft=400, hop_length=160,
                 fmin=0.0, fmax=None, mel_layout="mel-time", max_samples=None, name=None, device=None,
                 n_threads=None, batch_size=None):
        super().__init__(path, input_name=input_name, output_name=output_name, name=name, device=device,
                         n_threads=n_threads, batch_size=batch_size)
        self.input = _choice("input", input, ("waveform", "log-mel"))
        self.sample_rate = _positive_int("sample_rate", sample_rate, allow_none=False)
        self.output = _choice("output", output, ("steps", "clip"))
        if output == "steps":
            if frame_rate is None:
                raise ValueError("frame_rate (output steps per second) is required with output='steps'")
            frame_rate = _positive_real("frame_rate", frame_rate)
        elif frame_rate is not None:
            raise ValueError(f"frame_rate must be None with output='clip' (one vector per clip); got {frame_rate!r}")
        self.frame_rate = frame_rate
        self.log_mel = _choice("log_mel", log_mel, ("whisper", "librosa"))
        self.n_mels = _positive_int("n_mels", n_mels, allow_none=False)
        self.n_fft = _positive_int("n_fft", n_fft, allow_none=False)
        self.hop_length = _positive_int("hop_length", hop_length, allow_none=False)
        self.fmin = float(fmin) if fmin == 0 else _positive_real("fmin", fmin)
        self.fmax = None if fmax is None else _positive_real("fmax", fmax)
        self.mel_layout = _choice("mel_layout", mel_layout, ("mel-time", "time-mel"))
        self.max_samples = _positive_int("max_samples", max_samples)
        if input == "log-mel":
            if log_mel == "whisper" and (self.sample_rate, self.n_fft, self.hop_length) != (16000, 400, 160):
                raise ValueError("log_mel='whisper' needs sample_rate=16000, n_fft=400 and hop_length=160; got "
                                 f"{self.sample_rate}, {self.n_fft}, {self.hop_length}")
            if self.fmax is not None and not self.fmin < self.fmax <= self.sample_rate / 2:
                raise ValueError(f"fmax must be in (fmin, sample_rate / 2]; got {fmax!r}")
            if self.max_samples is not None and self.max_samples < self.n_fft:
                raise ValueError(f"max_samples must be at least n_fft ({self.n_fft}); got {max_samples}")

    def _check_input(self, value):
        io = super()._check_input(value)
        shape, mel = io["in_shape"], self.input == "log-mel"
        if len(shape) < (3 if mel else 2):
            needs = "(batch, n_mels, n_frames) or (batch, n_frames, n_mels)" if mel else "(batch, n_samples)"
            raise ValueError(f"the graph's input {value.name!r} has shape {shape}: input={self.input!r} needs {needs}")
        length = shape[-1] if not mel or self.mel_layout == "mel-time" else shape[-2]
        bands = None if not mel else shape[-2] if self.mel_layout == "mel-time" else shape[-1]
        if isinstance(bands, int) and bands != self.n_mels:
            raise ValueError(f"n_mels={self.n_mels} but the graph's input {value.name!r} {shape} has {bands} mel "
                             "bands (or check mel_layout)")
        io["fixed"] = length if isinstance(length, int) else None
        chunk = self.max_samples
        if io["fixed"] is not None:
            # Whisper's log-mel drops the last centred frame; librosa's keeps it (1 + n // hop frames).
            samples = (io["fixed"] - (self.log_mel == "librosa")) * self.hop_length if mel else io["fixed"]
            if chunk is not None and chunk != samples:
                raise ValueError(f"max_samples={chunk} but the graph's input {value.name!r} {shape} takes "
                                 f"{samples} samples per window: give max_samples={samples} or None")
            chunk = samples
        io["chunk"] = chunk
        return io

    def _model_input(self, audio, io):
        if self.input == "waveform":
            return audio
        if self.log_mel == "whisper":
            from ._whisper import whisper_log_mel

            mel = whisper_log_mel(audio, n_mels=self.n_mels)
        else:
            import librosa

            S = librosa.feature.melspectrogram(
                y=audio, sr=self.sample_rate, n_fft=self.n_fft, hop_length=self.hop_length, n_mels=self.n_mels,
                fmin=self.fmin, fmax=self.fmax, power=2.0, center=True, pad_mode="reflect")
            mel = (10.0 * np.log10(np.maximum(S, 1e-10))).astype(np.float32)
        if io["fixed"] is not None:  # fit the frames to the graph's length (padding with the last frame)
            mel = np.pad(mel[:, : io["fixed"]], ((0, 0), (0, max(0, io["fixed"] - mel.shape[1]))), mode="edge")
        return mel if self.mel_layout == "mel-time" else mel.T

    def _run(self, items, io):
        """Graph outputs of each item; items of one shape go through the session together."""
        outputs, groups, rank = [None] * len(items), {}, len(io["in_shape"])
        for i, item in enumerate(items):
            groups.setdefault(item.shape, []).append(i)
        for shape, index in groups.items():
            batch = np.stack([items[i] for i in index]).reshape((len(index),) + (1,) * (rank - 1 - len(shape)) + shape)
            (result,) = self.onnx.run({io["input"]: batch.astype(io["dtype"])}, [io["output"]])
            for j, i in enumerate(index):
                outputs[i] = np.asarray(result[j], dtype=np.float32)
        return outputs

    def encode(self, audio):
        """Features of one mono waveform.

        Parameters
        ----------
        audio : ndarray of shape (n_samples,)
            float32 samples at ``sample_rate``, roughly in [-1, 1].

        Returns
        -------
        features : ndarray of shape (n_steps, n_features), float32
            ``n_steps`` about ``frame_rate * duration`` for ``output="steps"``; 1 for "clip".
        """
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 1 or audio.shape[0] == 0:
            raise ValueError(f"audio must be a non-empty mono waveform of shape (n_samples,); got {audio.shape}")
        io = self._graph_io
        chunk, n = io["chunk"] or audio.shape[0], audio.shape[0]
        minimum = io["chunk"] if io["fixed"] is not None else self.n_fft if self.input == "log-mel" else 1
        items, lengths = [], []
        for start in range(0, n, chunk):
            piece = audio[start : start + chunk]
            lengths.append(piece.shape[0])
            items.append(self._model_input(np.pad(piece, (0, max(0, minimum - piece.shape[0]))), io))
        parts = []
        for out, length in zip(self._run(items, io), lengths):
            if self.output == "clip":
                if out.size != out.shape[-1]:
                    raise ValueError(f"output {io['output']!r} gives {out.shape} per input: output='clip' needs "
                                     "one vector (batch, n_features)")
                parts.append(out.reshape(1, -1))
                continue
            while out.ndim > 2 and out.shape[0] == 1:
                out = out[0]
            if out.ndim != 2:
                raise ValueError(f"output {io['output']!r} gives {out.shape} per input: output='steps' needs "
                                 "(batch, n_steps, n_features)")
            if length < minimum:  # the graph saw padding: keep the steps of the audio
                out = out[: max(1, math.ceil(length / self.sample_rate * self.frame_rate - 1e-6))]
            parts.append(out)
        if self.output == "clip":
            return np.average(np.concatenate(parts), axis=0, weights=lengths)[None].astype(np.float32)
        return np.concatenate(parts).astype(np.float32, copy=False)

    def _probe(self):
        return self.encode(np.zeros(self.sample_rate, np.float32))


class OnnxVisualEncoder(_UserEncoder):
    """A visual encoder from the user's ONNX file (e.g. ImageBind's vision tower).

    Parameters
    ----------
    path : str or os.PathLike
        The ``.onnx`` file.
    input : {"uint8", "float"}, default="uint8"
        "uint8": RGB pixels as they are (the graph normalises them). "float": pixels as float,
        ``(x - mean) / std`` in the graph input's float type.
    size : (int, int), int or None, default=(224, 224)
        (height, width) frames are resized to before the graph, bilinearly with antialiasing
        (ONNX ``Resize``, half-pixel, as the built-in graph; frames already at ``size`` pass
        unchanged). For "uint8" the resized pixels are rounded; give None to hand a graph that
        resizes itself the frames at their own size.
    layout : {"NHWC", "NCHW"}, default="NHWC"
        Axis order of the graph input: (frames, height, width, 3) or (frames, 3, height, width).
    mean, std : float, 3 floats or None, default=None
        In 0..255 pixel units, e.g. ImageNet's ``mean=(123.675, 116.28, 103.53)``, ``std=(58.395,
        57.12, 57.375)``. None: no shift / no scaling. Only with ``input="float"``.
    input_name, output_name : str or None, default=None
        Graph input, and the output giving one vector per frame; None: the only one (besides
        ``feature_map_output``).
    output : {"frame"}, default="frame"
        The output holds one vector per frame, shape (frames, n_features) (trailing axes of size 1
        allowed). Pool tokens or maps in the export.
    feature_map_output : str or None, default=None
        Output holding a spatial map per frame, needed for localisation.
    feature_map_layout : {"NCHW", "NHWC"}, default="NCHW"
        That output's layout, (frames, C, h, w) or (frames, h, w, C); returned as NHWC.
    name, device, n_threads, batch_size
        As for :class:`OnnxAudioEncoder` (``batch_size``: frames per session call).

    Examples
    --------
    >>> import os, tempfile, onnx
    >>> import numpy as np
    >>> from skavc.encoders import OnnxVisualEncoder
    >>> model = onnx.parser.parse_model('<ir_version: 8, opset_import: ["" : 17]> colour (uint8[N, 8, 8, 3] frames) => '
    ...     '(float[N, 3] rgb) {x = Cast <to = 1> (frames) rgb = ReduceMean <axes = [1, 2], keepdims = 0> (x)}')
    >>> path = os.path.join(tempfile.mkdtemp(), "colour.onnx"); onnx.save(model, path)  # the mean colour of a frame
    >>> encoder = OnnxVisualEncoder(path, size=(8, 8), device="cpu")  # frames are resized to 8 x 8
    >>> encoder.encode(np.full((2, 32, 32, 3), (255, 0, 0), np.uint8))  # two red frames
    array([[255.,   0.,   0.],
           [255.,   0.,   0.]], dtype=float32)
    """

    kind = "visual"

    def __init__(self, path, *, input="uint8", size=(224, 224), layout="NHWC", mean=None, std=None,
                 input_name=None, output_name=None, output="frame", feature_map_output=None,
                 feature_map_layout="NCHW", name=None, device=None, n_threads=None, batch_size=None):
        super().__init__(path, input_name=input_name, output_name=output_name, name=name, device=device,
                         n_threads=n_threads, batch_size=batch_size)
        self.input = _choice("input", input, ("uint8", "float"))
        if size is not None:
            pair = (size, size) if isinstance(size, (int, np.integer)) else tuple(size) if np.ndim(size) == 1 else ()
            if len(pair) != 2:
                raise ValueError(f"size must be (height, width), an int or None; got {size!r}")
            size = tuple(_positive_int("size", s, allow_none=False) for s in pair)
        self.size = size
        self.layout = _choice("layout", layout, ("NHWC", "NCHW"))
        self.mean, self.std = _pixels("mean", mean), _pixels("std", std)
        if input == "uint8" and (mean is not None or std is not None):
            raise ValueError("mean and std apply to input='float'; with input='uint8' the graph normalises "
                             "the pixels itself (leave them None)")
        self.output = _choice("output", output, ("frame",))
        self.feature_map_output = _name("feature_map_output", feature_map_output)
        if feature_map_output is not None and feature_map_output == output_name:
            raise ValueError(f"output_name and feature_map_output name the same output {output_name!r}")
        self.feature_map_layout = _choice("feature_map_layout", feature_map_layout, ("NCHW", "NHWC"))

    @property
    def has_feature_map(self):
        """Whether ``encode(..., return_feature_map=True)`` works (``feature_map_output`` was given)."""
        return self.feature_map_output is not None

    def _check_input(self, value):
        kind = "uint8" if value.type == "tensor(uint8)" else "float" if value.type in _FLOAT_TYPES else None
        if kind != self.input:
            fix = f"give input={kind!r}" if kind else "skavc feeds uint8 or float frames"
            raise ValueError(f"input={self.input!r} but the graph's input {value.name!r} is {value.type} "
                             f"{value.shape}: {fix}")
        shape = list(value.shape)
        if len(shape) != 4:
            raise ValueError(f"the graph's input {value.name!r} has shape {shape}: expected (frames, height, "
                             "width, 3) or (frames, 3, height, width)")
        nhwc = self.layout == "NHWC"
        hw, channels, other = (shape[1:3], shape[3], shape[1]) if nhwc else (shape[2:4], shape[1], shape[3])
        if channels != 3 and (isinstance(channels, int) or other == 3):
            raise ValueError(f"layout={self.layout!r} but the graph's input {value.name!r} {shape} does not "
                             "have 3 colour channels there: check layout")
        if all(isinstance(d, int) for d in hw) and tuple(hw) != self.size:
            raise ValueError(f"size={self.size} but the graph's input {value.name!r} {shape} takes "
                             f"{hw[0]}x{hw[1]} images: give size={tuple(hw)}")
        return {"dtype": _FLOAT_TYPES.get(value.type, np.uint8), "in_shape": shape}

    def _preprocess(self, frames, dtype):
        x = frames
        if self.size is not None and x.shape[1:3] != self.size:
            x = _resizer(self.size).run({"x": x.astype(np.float32)})[0]
            if self.input == "uint8":
                x = np.clip(np.rint(x), 0, 255).astype(np.uint8)
        if self.input == "float":
            x = x.astype(np.float32)
            if self.mean is not None:
                x -= self.mean
            if self.std is not None:
                x /= self.std
            x = x.astype(dtype, copy=False)
        return x.transpose(0, 3, 1, 2) if self.layout == "NCHW" else x

    def encode(self, frames, return_feature_map=False):
        """Per-frame features.

        Parameters
        ----------
        frames : ndarray of shape (n_frames, height, width, 3), dtype uint8
            RGB frames.
        return_feature_map : bool, default=False
            Also return the spatial map (needs ``feature_map_output``).

        Returns
        -------
        features : ndarray of shape (n_frames, n_features), float32
        feature_map : ndarray of shape (n_frames, h, w, channels), float32
            Only when ``return_feature_map``; NHWC whatever ``feature_map_layout`` is.
        """
        frames = np.asarray(frames)
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
            raise ValueError("frames must be uint8 RGB of shape (n_frames, height, width, 3); got "
                             f"{frames.dtype} {frames.shape}")
        if return_feature_map and not self.has_feature_map:
            raise ValueError(f"localisation needs a spatial feature map: encoder {self.name!r} has none "
                             "(give feature_map_output=... naming the graph output that holds it)")
        io = self._graph_io
        names = [io["output"]] + ([self.feature_map_output] if return_feature_map else [])
        chunks = [self.onnx.run({io["input"]: np.ascontiguousarray(self._preprocess(frames[i : i + _CHUNK_FRAMES],
                                                                                    io["dtype"]))}, names)
                  for i in range(0, frames.shape[0], _CHUNK_FRAMES)]
        features, *maps = [np.concatenate(parts).astype(np.float32, copy=False) for parts in zip(*chunks)]
        if sum(d > 1 for d in features.shape[1:]) > 1:
            raise ValueError(f"output {io['output']!r} gives {features.shape}: output='frame' needs one vector "
                             "per frame (frames, n_features); pool tokens or maps in the export")
        features = features.reshape(features.shape[0], -1)
        if not return_feature_map:
            return features
        (fmap,) = maps
        if fmap.ndim != 4:
            raise ValueError(f"feature_map_output {self.feature_map_output!r} gives {fmap.shape}: expected "
                             "(frames, C, h, w) or (frames, h, w, C)")
        return features, fmap.transpose(0, 2, 3, 1) if self.feature_map_layout == "NCHW" else fmap

    def _probe(self):
        h, w = self.size or (224, 224)
        return self.encode(np.zeros((1, h, w, 3), np.uint8))
