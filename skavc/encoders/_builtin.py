"""The built-in pretrained encoders: ONNX graphs that skavc builds from shipped weights.

Each encoder turns one clip's audio or frames into *time-resolved* features
(one row per encoder step), which the estimator pools for clip embeddings and
later capabilities (synchronisation, localisation) use frame by frame.
"""

import warnings

import numpy as np

from ._cache import cached_graph
from ._onnx import LazyOnnx, OnnxEncoder

PRECISIONS = ("fp32", "fp16")


def _precision_graph(stem, build_float32, precision):
    """Path and sha256 of a cached graph; the fp16 one is converted from the cached fp32 one."""
    path, digest = cached_graph(f"{stem}.onnx", build_float32)
    if precision == "fp32":
        return path, digest
    from ._float16 import convert_float_to_float16

    return cached_graph(f"{stem}-fp16.onnx", lambda: convert_float_to_float16(path.read_bytes()).SerializeToString())


def _efficientnet_graph(precision="fp32"):
    from ._efficientnet import GRAPH_VERSION, build_efficientnet_lite0

    return _precision_graph(f"efficientnet-lite0-v{GRAPH_VERSION}", build_efficientnet_lite0, precision)


def _whisper_graph(precision="fp32"):
    from ._whisper import GRAPH_VERSION, build_whisper_encoder

    return _precision_graph(f"whisper-tiny.en-encoder-v{GRAPH_VERSION}", build_whisper_encoder, precision)


class _BuiltinEncoder(LazyOnnx):
    """Lazily opens its ONNX graph; pickles as its name and the graph's sha256.

    On unpickling the graph is rebuilt from the shipped weights if the cached
    file is missing, and refused if its sha256 differs from the one recorded,
    so a loaded model always runs the exact network it was fitted with.
    """

    name = None
    kind = None  # "audio" or "visual"
    _graph = None

    def __init__(self, device="auto", n_threads=None, batch_size=None, precision="fp32", io_binding=None,
                 coalesce=None):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}; got {precision!r}")
        self.device = device
        self.n_threads = n_threads
        self.batch_size = batch_size
        self.precision = precision
        self.io_binding = io_binding
        self.coalesce = coalesce
        self.sha256 = None
        self._onnx = None

    def _open(self):
        path, digest = type(self)._graph(self.precision)
        if self.sha256 is not None and digest != self.sha256:
            raise ValueError(
                f"the {self.name} graph on this machine ({path}, sha256 {digest[:12]}...) is not "
                f"the one this model was fitted with (sha256 {self.sha256[:12]}...); skavc "
                "or its pretrained weights changed version."
            )
        self.sha256 = digest
        onnx = OnnxEncoder(
            path, device=self.device, batch_size=self.batch_size, sha256=digest,
            n_threads=self.n_threads, name=self.name, io_binding=self.io_binding,
            coalesce=self.coalesce,
        )
        if self.precision == "fp16" and not onnx.on_gpu:
            warnings.warn(
                f"precision='fp16' for {self.name!r} on the CPU: onnxruntime computes most ops in "
                "float32 around casts there (slower than fp32); fp16 pays off on CUDA.",
                RuntimeWarning,
                stacklevel=4,
            )
        return onnx

    def prepare(self):
        """Build (or check) the graph now; returns its sha256."""
        return self.onnx.sha256

    @property
    def cache_key(self):
        """What identifies this encoder's outputs in a ``memory`` cache: name and graph sha256."""
        return (self.name, self.sha256)

    def for_runtime(self, device="auto", n_threads=None, precision="fp32"):
        """A new encoder of this kind with the estimator's ``device``, ``n_threads`` and ``precision``."""
        return type(self)(device=device, n_threads=n_threads, precision=precision, batch_size=self.batch_size,
                          io_binding=self.io_binding, coalesce=self.coalesce)

    def __repr__(self):
        return f"{type(self).__name__}(device={self.device!r}, precision={self.precision!r})"


class EfficientNetLite0Encoder(_BuiltinEncoder):
    """ImageNet EfficientNet-Lite0 on RGB frames: a 1280-d vector and a 7x7 map per frame.

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.encoders import EfficientNetLite0Encoder
    >>> encoder = EfficientNetLite0Encoder(device="cpu")  # the graph is built (or read from the cache) on first use
    >>> frames = np.zeros((2, 224, 224, 3), np.uint8)  # two black RGB frames
    >>> features, feature_map = encoder.encode(frames, return_feature_map=True)
    >>> features.shape, features.dtype, feature_map.shape  # per frame: a vector and a 7 x 7 map
    ((2, 1280), dtype('float32'), (2, 7, 7, 1280))
    """

    name = "efficientnet-lite0"
    kind = "visual"
    _graph = staticmethod(_efficientnet_graph)
    n_features = 1280
    has_feature_map = True

    def encode(self, frames, return_feature_map=False):
        """Per-frame features.

        Parameters
        ----------
        frames : ndarray of shape (n_frames, height, width, 3), dtype uint8
        return_feature_map : bool, default=False

        Returns
        -------
        features : ndarray of shape (n_frames, 1280), float32
        feature_map : ndarray of shape (n_frames, 7, 7, 1280)
            Only when ``return_feature_map``.
        """
        names = ["embedding", "feature_map"] if return_feature_map else ["embedding"]
        out = self.onnx.run({"frames": frames}, names)
        return tuple(out) if return_feature_map else out[0]

    has_class_logits = True

    def class_logits(self, frames):
        """ImageNet-1k logits per frame, (n_frames, 1000) float32; :attr:`class_names` names them."""
        return self.onnx.run({"frames": frames}, ["logits"])[0]

    def encode_with_class_logits(self, frames):
        """:meth:`encode` and :meth:`class_logits` of the same frames from one run of the graph."""
        features, logits = self.onnx.run({"frames": frames}, ["embedding", "logits"])
        return features, logits

    @property
    def class_names(self):
        """The 1000 ImageNet-1k class names, in the order of :meth:`class_logits`'s columns."""
        from .._vocabularies import imagenet_class_names

        return imagenet_class_names()


WHISPER_WINDOWS = ("native", "30s")


class WhisperTinyEncoder(_BuiltinEncoder):
    """Whisper tiny.en encoder: a middle and the final layer, concatenated, at 50 steps per second.

    Parameters
    ----------
    device, n_threads, batch_size, precision, io_binding, coalesce
        As for every built-in encoder.
    window : {"native", "30s"}, default="native"
        "native" encodes the audio at its own length (the positional table is sliced, nothing
        is padded: cheapest, and a clip's steps attend only to the clip). "30s" zero-pads the
        audio to Whisper's 30 s training window, as Whisper itself does, encodes the whole
        window (1500 steps, the cost of 30 s of audio whatever the length) and keeps the steps
        covering the audio, so both give the same number of steps, on the same time grid. The
        registry name "whisper-tiny-30s" is this encoder with ``window="30s"``.

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.encoders import WhisperTinyEncoder
    >>> encoder = WhisperTinyEncoder(device="cpu")  # the graph is built (or read from the cache) on first use
    >>> features = encoder.encode(np.zeros(16000, np.float32))  # 1 s of silence at 16 kHz
    >>> features.shape, features.dtype  # 50 steps per second: the middle layer's 384 columns, then the final's
    ((50, 768), dtype('float32'))
    """

    name = "whisper-tiny"
    kind = "audio"
    _graph = staticmethod(_whisper_graph)
    sample_rate = 16000
    frame_rate = 50.0
    n_features = 768
    window = "native"  # also what models pickled before the option existed unpickle with
    # Whisper was trained on 30 s windows; longer audio is encoded window by window.
    _max_mel_frames = 3000
    _min_samples = 1600

    def __init__(self, device="auto", n_threads=None, batch_size=None, precision="fp32", io_binding=None,
                 coalesce=None, window=None):
        window = type(self).window if window is None else window
        if window not in WHISPER_WINDOWS:
            raise ValueError(f"window must be one of {WHISPER_WINDOWS}; got {window!r}")
        super().__init__(device=device, n_threads=n_threads, batch_size=batch_size, precision=precision,
                         io_binding=io_binding, coalesce=coalesce)
        self.window = window

    @property
    def cache_key(self):
        """Name and graph sha256 (as every built-in), plus the window when it is not the native one.

        The base name is used for both registry names, so ``"whisper-tiny-30s"`` and
        ``WhisperTinyEncoder(window="30s")`` share cached outputs, and native keys are the ones
        they were before the option existed.
        """
        key = (WhisperTinyEncoder.name, self.sha256)
        return key if self.window == "native" else key + (f"window={self.window}",)

    def for_runtime(self, device="auto", n_threads=None, precision="fp32"):
        """A new encoder of this kind and window with the estimator's ``device``, ``n_threads`` and ``precision``."""
        return type(self)(device=device, n_threads=n_threads, precision=precision, batch_size=self.batch_size,
                          io_binding=self.io_binding, coalesce=self.coalesce, window=self.window)

    def __repr__(self):
        extra = "" if self.window == type(self).window else f", window={self.window!r}"
        return f"{type(self).__name__}(device={self.device!r}, precision={self.precision!r}{extra})"

    def _n_steps(self, n_samples):
        # Steps of the native encoding: log-mel frames of the (at least _min_samples) audio,
        # made even, halved by the stride-2 convolution.
        n_mel = max(n_samples, self._min_samples) // 160
        return (n_mel + 1) // 2

    def _run_windows(self, mel):
        parts = []
        for start in range(0, mel.shape[1], self._max_mel_frames):
            chunk = mel[:, start : start + self._max_mel_frames]
            mid, final = self.onnx.run({"mel": chunk[None]}, ["hidden_mid", "hidden_final"])
            parts.append(np.concatenate([mid[0], final[0]], axis=1))
        return np.concatenate(parts, axis=0)

    def _encode_30s_windows(self, audio):
        """Every step of the zero-padded 30 s windows, (1500 * n_windows, 768), and how many cover audio."""
        from ._whisper import whisper_log_mel

        window = self._max_mel_frames * 160  # 480000 samples
        n_windows = max(1, -(-audio.shape[0] // window))
        padded = np.zeros(n_windows * window, dtype=np.float32)
        padded[: audio.shape[0]] = audio
        # One log-mel over the padded audio: its floor (max - 8) comes from the audio, and the
        # padding reads as Whisper's silence, as in whisper.pad_or_trim + log_mel_spectrogram.
        return self._run_windows(whisper_log_mel(padded)), self._n_steps(audio.shape[0])

    def encode(self, audio):
        """Time-resolved features of one waveform.

        Parameters
        ----------
        audio : ndarray of shape (n_samples,)
            Mono audio at 16 kHz.

        Returns
        -------
        features : ndarray of shape (n_steps, 768), float32
            ``n_steps`` is about ``50 * duration`` (the same for both windows); columns 0-383
            are the middle layer, 384-767 the final layer (after its layer norm).
        """
        from ._whisper import whisper_log_mel

        if self.window == "30s":
            steps, n_steps = self._encode_30s_windows(audio)
            return steps[:n_steps]
        if audio.shape[0] < self._min_samples:  # the STFT needs some context
            audio = np.pad(audio, (0, self._min_samples - audio.shape[0]))
        mel = whisper_log_mel(audio)
        if mel.shape[1] % 2:  # the stride-2 convolution wants an even length
            mel = np.concatenate([mel, mel[:, -1:]], axis=1)
        return self._run_windows(mel)


class WhisperTiny30sEncoder(WhisperTinyEncoder):
    """:class:`WhisperTinyEncoder` with ``window="30s"``: Whisper's zero-padded 30 s window.

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.encoders import WhisperTiny30sEncoder
    >>> encoder = WhisperTiny30sEncoder(device="cpu")
    >>> encoder.name, encoder.window
    ('whisper-tiny-30s', '30s')
    >>> encoder.encode(np.zeros(16000, np.float32)).shape  # 1 s at 16 kHz: the steps that cover it, 50 per second
    (50, 768)
    """

    name = "whisper-tiny-30s"
    window = "30s"


def mel_images(audio, sample_rate=16000, n_mels=128, window=0.96, step=0.25, top_db=80.0):
    """Log-mel windows as uint8 grey images, one centred every ``step`` seconds.

    Parameters
    ----------
    audio : ndarray of shape (n_samples,)
    sample_rate : int
    n_mels : int
    window : float
        Image width in seconds.
    step : float
        Seconds between window centres.
    top_db : float
        Dynamic range mapped to 0..255.

    Returns
    -------
    images : ndarray of shape (n_windows, n_mels, n_columns, 3), dtype uint8
        Low frequencies at the bottom, as a spectrogram is drawn.

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.encoders import mel_images
    >>> t = np.arange(16000) / 16000
    >>> images = mel_images(np.sin(2 * np.pi * 440 * t), step=0.25)  # 1 s at 16 kHz: a window every 0.25 s
    >>> images.shape, images.dtype  # (windows, mel bands, 96 columns of 10 ms, RGB)
    ((4, 128, 96, 3), dtype('uint8'))
    """
    import librosa

    hop = sample_rate // 100
    S = librosa.feature.melspectrogram(
        y=audio, sr=sample_rate, n_fft=int(2 ** np.ceil(np.log2(0.064 * sample_rate))),
        hop_length=hop, n_mels=n_mels, power=2.0,
    )
    db = librosa.power_to_db(S, ref=np.max(S) if np.max(S) > 0 else 1.0, top_db=top_db)
    grey = np.clip((db + top_db) / top_db * 255.0, 0, 255).astype(np.uint8)[::-1]
    width = int(round(window * 100))
    n_windows = max(1, int(np.ceil(audio.shape[0] / sample_rate / step)))
    padded = np.pad(grey, ((0, 0), (width // 2, width)), constant_values=0)
    centres = np.round(np.arange(n_windows) * step * 100).astype(int)
    cols = centres[:, None] + np.arange(width)[None, :]
    images = padded[:, cols].transpose(1, 0, 2)  # (n_windows, n_mels, width)
    return np.repeat(images[..., None], 3, axis=-1)


class EffnetMelEncoder(EfficientNetLite0Encoder):
    """EfficientNet-Lite0 on log-mel spectrogram images (the DeepSpectrum approach), 4 steps per second.

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.encoders import EffnetMelEncoder
    >>> t = np.arange(16000) / 16000
    >>> audio = (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)  # 1 s at 16 kHz
    >>> EffnetMelEncoder(device="cpu").encode(audio).shape  # 4 steps per second
    (4, 1280)
    """

    name = "effnet-mel"
    kind = "audio"
    has_feature_map = False  # an audio encoder: no spatial map of the picture
    sample_rate = 16000
    frame_rate = 4.0

    def encode(self, audio):
        """Time-resolved features of one 16 kHz waveform, shape (n_windows, 1280)."""
        images = mel_images(audio, self.sample_rate, step=1.0 / self.frame_rate)
        return self.onnx.run({"frames": images}, ["embedding"])[0]


AUDIO_ENCODERS = {
    "whisper-tiny": WhisperTinyEncoder,
    "whisper-tiny-30s": WhisperTiny30sEncoder,
    "effnet-mel": EffnetMelEncoder,
}
VISUAL_ENCODERS = {"efficientnet-lite0": EfficientNetLite0Encoder}


def _make(registry, kind, name, **kwargs):
    if not isinstance(name, str) or name not in registry:
        raise ValueError(f"{kind} must be one of {sorted(registry)}; got {name!r}")
    return registry[name](**kwargs)


def make_audio_encoder(name, **kwargs):
    """A built-in audio encoder by name (see ``AUDIO_ENCODERS``).

    Examples
    --------
    >>> from skavc.encoders import make_audio_encoder
    >>> encoder = make_audio_encoder("whisper-tiny", device="cpu")  # nothing is built until it encodes
    >>> encoder.name, encoder.sample_rate, encoder.frame_rate, encoder.n_features
    ('whisper-tiny', 16000, 50.0, 768)
    """
    return _make(AUDIO_ENCODERS, "audio_encoder", name, **kwargs)


def make_visual_encoder(name, **kwargs):
    """A built-in visual encoder by name (see ``VISUAL_ENCODERS``).

    Examples
    --------
    >>> from skavc.encoders import make_visual_encoder
    >>> encoder = make_visual_encoder("efficientnet-lite0", device="cpu")  # nothing is built until it encodes
    >>> encoder.name, encoder.n_features, encoder.has_feature_map
    ('efficientnet-lite0', 1280, True)
    """
    return _make(VISUAL_ENCODERS, "visual_encoder", name, **kwargs)
