"""`AVCorrespondence`: frozen pretrained encoders plus a trainable projection head.

The estimator only stores parameters, fits the correspondence heads and delegates each task
method to its task module (:mod:`skavc.sync`, :mod:`skavc.localization`, :mod:`skavc.retrieval`)
in a few lines; encoding goes through :class:`skavc._encoding.EncodingContext`. (Over 500 lines
for the numpydoc of its public methods, about half the module.)
"""

import os
import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, InvalidParameterError, StrOptions
from sklearn.utils.validation import check_is_fitted

from . import describe, localization, retrieval, scene, separation, speakers, sync
from ._encoding import FACE_SIDE, EncodingContext, encoder_threads, make_encoder
from ._head import LOG_TEMPERATURE_BOUNDS, init_head_params, make_preprocessor, output_dim, project
from ._clip import AVClip
from ._inputs import _is_waveform, check_collection, clip_windows, resolve_audio
from ._text_space import check_labels
from .features import MOTION_SIDE
from .index import unit_rows
from ._training import Adam, progress_logger, run_epochs, train_epoch
from ._progress import Progress
from ._threads import read_ahead
from ._validation import check_frames, check_int, check_option, check_real, check_sample_rate
from .encoders import AUDIO_ENCODERS, TEXT_ENCODERS, VISUAL_ENCODERS
from .metrics import cross_modal_recall


class AVCorrespondence(TransformerMixin, BaseEstimator):
    """Audio-visual correspondence in one shared, L2-normalised embedding space.

    Frozen pretrained encoders (ONNX graphs run by onnxruntime) turn a clip's
    audio and frames into features; one projection head per modality, trained
    with a symmetric InfoNCE loss on paired clips, maps them into a shared
    space where matching audio and video lie close together.

    Parameters
    ----------
    audio_encoder : {"whisper-tiny", "whisper-tiny-30s", "effnet-mel"} or encoder object, \
            default="whisper-tiny"
        Pretrained audio encoder. "whisper-tiny": the Whisper tiny.en encoder
        (a middle and the final layer, mean-pooled over time) run at the audio's own length.
        "whisper-tiny-30s": the same with the audio zero-padded to Whisper's 30 s window,
        pooled over the steps that cover the audio (about 25x the encoding time; chosen by
        5-fold cross-validation on real recordings, it did not beat the default:
        docs/benchmarks.md, "Defaults chosen on real data"). "effnet-mel":
        ImageNet EfficientNet-Lite0 on log-mel images. Or a user's own ONNX
        export described by :class:`skavc.encoders.OnnxAudioEncoder` (e.g. a CLAP
        audio tower; docs/encoders.md).
    visual_encoder : {"efficientnet-lite0"} or encoder object, default="efficientnet-lite0"
        Pretrained visual encoder, applied to ``n_visual_frames`` frames per clip,
        or a :class:`skavc.encoders.OnnxVisualEncoder` (e.g. ImageBind's vision
        tower). Localisation needs one with a spatial feature map.
    embedding_dim : int, default=128
        Width of the shared embedding space.
    n_components : int or None, default=32
        Encoder features are standardised, then whitened by PCA down to this
        many components per modality (at most ``n_clips - 1``) before the head:
        with hundreds of pairs and 768/1280-d features this is what keeps the
        head from memorising the training clips. None keeps all features.
    head : {"linear", "mlp"}, default="linear"
        Projection head per modality: one linear map, or one hidden ReLU layer.
    hidden_units : int, default=512
        Hidden width of the "mlp" head.
    temperature : float, default=0.1
        Softmax temperature of the InfoNCE loss (its initial value when learnt).
    learn_temperature : bool, default=False
        Whether the temperature is trained along with the heads.
    epochs : int, default=100
        Passes over the training pairs in :meth:`fit`.
    batch_size : int, default=64
        Pairs per minibatch; the other pairs of a minibatch are its negatives.
    learning_rate : float, default=1e-3
        Adam step size.
    alpha : float, default=1e-4
        L2 penalty on the head weights.
    n_visual_frames : int, default=8
        Frames sampled evenly from each clip for its visual embedding.
    sync : bool, default=False
        Also train the audio-visual synchronisation head in :meth:`fit`
        (SyncNet-style: each audio window against the same clip's frames at
        other times). Encodes every frame of every clip, so fitting costs more.
    max_offset : float, default=1.0
        Largest audio-visual offset (seconds, either way) that
        :meth:`predict_offset` searches.
    sync_epochs : int, default=30
        Passes over the clips when training the sync head.
    localization : bool, default=False
        Also train the spatial (sound-source localisation) head in :meth:`fit`
        with a multiple-instance contrastive loss over the 7x7 feature map.
    timing : bool, default=True
        Make :meth:`correspondence` weigh timing too: ``fit`` learns (logistic
        regression on the training clips against the same clips with another
        clip's frames) how the semantic cosine and the peak of the training-free
        sync curve combine into the probability that sound and frames are one
        event. Matching instances, not only classes, needs it. The probability is
        calibrated on the training clips at a 1:1 prior of matched and mismatched
        pairs, in-sample (the head was trained on the same positives): it ranks
        candidates well (docs/benchmarks.md) but is optimistic on new clips.
    scene : bool, default=False
        Also train, in :meth:`fit`, the audio class head (predicts the frames'
        ImageNet posteriors from the sound, so :meth:`classify_scene` hears what
        the camera misses) and, when ``y`` holds label or caption strings, the
        map from the shared space into the text space.
    text_encoder : {"minilm-l6"}, default="minilm-l6"
        Sentence encoder of label strings and sound names (all-MiniLM-L6-v2).
    fps : float, default=25.0
        Video frame rate assumed for ``(audio, frames)`` pairs.
    device : {"auto", "cpu", "cuda"}, default="auto"
        Where the encoders run; "auto" takes CUDA when onnxruntime-gpu sees a GPU.
        On CUDA, ``n_jobs=-1`` lets threads decode clips while each encoder's calls
        run on its one device thread (docs/gpu.md).
    precision : {"fp32", "fp16"}, default="fp32"
        Encoder graphs in float32, or converted to float16 (for CUDA; on the CPU
        onnxruntime runs fp16 graphs in float32 around casts, more slowly).
        Encoder outputs stay within cosine 0.9998 of fp32 (docs/benchmarks.md).
    memory : str, joblib.Memory or None, default=None
        Caches encoder outputs by content, so that refitting heads (a grid
        search) encodes each clip once.
    n_jobs : int or None, default=None
        Clips decoded and encoded in parallel (joblib; threads by default,
        any joblib backend such as dask through ``joblib.parallel_backend``).
    random_state : int, RandomState instance or None, default=None
        Seeds head initialisation and minibatch order.
    verbose : int, default=0
        0 is silent; 1 prints a line per stage and every 10th epoch; 2 every epoch.

    Attributes
    ----------
    audio_encoder_, visual_encoder_ : object
        The encoders used, pinned to the sha256 of their ONNX graphs.
    audio_preprocessor_, visual_preprocessor_ : Pipeline
        Standardisation (and PCA whitening) of the pooled encoder features,
        fitted by :meth:`fit` or by the first :meth:`partial_fit` call.
    head_params_ : dict of str to ndarray
        Projection head weights (float32) and the log temperature.
    temperature_ : float
        The (possibly learnt) temperature.
    loss_curve_ : list of float
        Mean InfoNCE loss per epoch.
    n_iter_ : int
        Epochs run so far (``partial_fit`` calls count one each).
    n_features_audio_, n_features_visual_ : int
        Widths of the encoder features.
    n_visual_frames_ : int
        Frames sampled per clip for its visual embedding (``n_visual_frames`` at fit).
    sync_head_ : SyncHead
        Only when fitted with ``sync=True``.
    localization_head_ : LocalizationHead
        Only when fitted with ``localization=True``.
    audio_class_head_ : AudioClassHead
        Only when fitted with ``scene=True``: predicts the frames' class
        posteriors from the sound.
    audio_weight_ : float
        Only when fitted with ``scene=True``: the audio class head's weight against
        the frames' posteriors, from its skill on clips it was not trained on
        (0 to 0.5; :func:`skavc._text_space.fit_audio_class_head`).
    text_map_ : TextMap or None
        Only when fitted with ``scene=True``; None without captions in ``y``.
    text_weight_ : float
        Only when fitted with ``scene=True``: the text map's weight against the
        zero-shot probabilities (0 without captions).
    timing_ : ndarray of shape (3,)
        Only when fitted with ``timing=True``: weights of the cosine and of the sync
        peak, and the intercept (:func:`skavc.sync.timing_probability`).

    Notes
    -----
    A fitted model answers from what it was fitted with: its encoders, the width of its heads
    (``get_feature_names_out``) and the frames it samples per clip (``n_visual_frames_``), so
    ``set_params`` after ``fit`` changes nothing until the next ``fit``. Read at call time, by
    design: ``max_offset`` (how far :meth:`predict_offset` searches; the timing of
    :meth:`correspondence` was calibrated with the value at fit), ``fps`` (how ``(audio,
    frames)`` pairs are read), and ``device``, ``precision``, ``memory``, ``n_jobs``, ``verbose``.

    Examples
    --------
    >>> from skavc import AVCorrespondence
    >>> from skavc.datasets import make_av_clips
    >>> clips, truth = make_av_clips(n_clips=40, random_state=0)
    >>> model = AVCorrespondence(epochs=20, random_state=0).fit(clips[:30])
    >>> model.transform_audio(clips[30:]).shape
    (10, 128)
    """

    _parameter_constraints = {
        "audio_encoder": [StrOptions(set(AUDIO_ENCODERS)), HasMethods(["encode", "for_runtime"])],
        "visual_encoder": [StrOptions(set(VISUAL_ENCODERS)), HasMethods(["encode", "for_runtime"])],
        "embedding_dim": [Interval(Integral, 1, None, closed="left")],
        "n_components": [Interval(Integral, 1, None, closed="left"), None],
        "head": [StrOptions({"linear", "mlp"})],
        "hidden_units": [Interval(Integral, 1, None, closed="left")],
        "temperature": [Interval(Real, 0.01, 1.0, closed="both")],
        "learn_temperature": ["boolean"],
        "epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 2, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "n_visual_frames": [Interval(Integral, 1, None, closed="left")],
        "sync": ["boolean"],
        "max_offset": [Interval(Real, 0, None, closed="neither")],
        "sync_epochs": [Interval(Integral, 1, None, closed="left")],
        "localization": ["boolean"],
        "timing": ["boolean"],
        "scene": ["boolean"],
        "text_encoder": [StrOptions(set(TEXT_ENCODERS))],
        "fps": [Interval(Real, 0, None, closed="neither")],
        "device": [StrOptions({"auto", "cpu", "cuda"})],
        "precision": [StrOptions({"fp32", "fp16"})],
        "memory": [None, str, HasMethods(["cache"])],
        "n_jobs": [Integral, None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        audio_encoder="whisper-tiny",
        visual_encoder="efficientnet-lite0",
        *,
        embedding_dim=128,
        n_components=32,
        head="linear",
        hidden_units=512,
        temperature=0.1,
        learn_temperature=False,
        epochs=100,
        batch_size=64,
        learning_rate=1e-3,
        alpha=1e-4,
        n_visual_frames=8,
        sync=False,
        max_offset=1.0,
        sync_epochs=30,
        localization=False,
        timing=True,
        scene=False,
        text_encoder="minilm-l6",
        fps=25.0,
        device="auto",
        precision="fp32",
        memory=None,
        n_jobs=None,
        random_state=None,
        verbose=0,
    ):
        self.audio_encoder = audio_encoder
        self.visual_encoder = visual_encoder
        self.embedding_dim = embedding_dim
        self.n_components = n_components
        self.head = head
        self.hidden_units = hidden_units
        self.temperature = temperature
        self.learn_temperature = learn_temperature
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.alpha = alpha
        self.n_visual_frames = n_visual_frames
        self.sync = sync
        self.max_offset = max_offset
        self.sync_epochs = sync_epochs
        self.localization = localization
        self.timing = timing
        self.scene = scene
        self.text_encoder = text_encoder
        self.fps = fps
        self.device = device
        self.precision = precision
        self.memory = memory
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose

    # -- properties of the interface -------------------------------------------------
    @property
    def audio_sample_rate(self):
        """Sample rate (Hz) the audio encoder expects; other rates are resampled to it."""
        if hasattr(self, "audio_encoder_"):  # fitted: the encoder it was fitted with
            return self.audio_encoder_.sample_rate
        if isinstance(self.audio_encoder, str):
            return AUDIO_ENCODERS[self.audio_encoder].sample_rate
        return self.audio_encoder.sample_rate  # a user's encoder object (skavc.encoders.OnnxAudioEncoder)

    @property
    def video_frame_rate(self):
        """Frame rate (frames/s) assumed for ``(audio, frames)`` pairs."""
        return float(self.fps)

    # -- encoding ---------------------------------------------------------------------
    def _log(self, message):
        if self.verbose:
            print(f"[{type(self).__name__}] {message}", flush=True)

    def _encoders(self):
        """Fitted encoders when there are any, else fresh shared ones for the current parameters.

        Every method that encodes comes through here, so the parameters are checked here (under
        their own names) for the methods that work before any fit too.
        """
        self._validate_params()
        if hasattr(self, "audio_encoder_"):
            return self.audio_encoder_, self.visual_encoder_
        runtime = dict(device=self.device, n_threads=encoder_threads(self.n_jobs), precision=self.precision)
        return (make_encoder("audio", self.audio_encoder, **runtime),
                make_encoder("visual", self.visual_encoder, **runtime))

    def _context(self):
        """The :class:`~skavc._encoding.EncodingContext` every task works through."""
        return EncodingContext(*self._encoders(), fps=self.fps, memory=self.memory, n_jobs=self.n_jobs,
                               verbose=self.verbose, log=self._log, device=self.device)

    def _pair_features(self, X):
        """Pooled audio and visual encoder features of each clip, shapes (n, Fa) and (n, Fv)."""
        return self._context().pooled(X, self._n_visual_frames())

    def _n_visual_frames(self):
        """Frames per clip for its visual embedding: the fitted model's own (``n_visual_frames_``), so
        that ``set_params`` after fitting cannot change what it answers; the parameter before any fit."""
        return getattr(self, "n_visual_frames_", self.n_visual_frames)

    def _validate_params(self):
        super()._validate_params()
        # sklearn's Interval(Integral, ...) admits True and False (bool is an int): refused here by name
        for name, constraints in self._parameter_constraints.items():
            value = getattr(self, name)
            if isinstance(value, (bool, np.bool_)) and "boolean" not in constraints and any(
                    isinstance(c, Interval) and c.type is Integral for c in constraints):
                raise InvalidParameterError(
                    f"The {name!r} parameter of {type(self).__name__} must be an int, not a bool; got {value!r}.")

    def _text_encoder(self):
        return make_encoder("text", self.text_encoder, device=self.device, n_threads=encoder_threads(self.n_jobs),
                            precision="fp32")

    def _shared_space(self, A=None, V=None):
        """Where the text map reads a clip: its audio and visual embeddings' normalised sum, or
        the visual embedding alone for silent frames (``A`` None), (n, embedding_dim)."""
        Z = project(self.head_params_, self.visual_preprocessor_.transform(V), "visual").astype(np.float64)
        if A is not None:
            Z = Z + self._embed_audio_features(A)
        return unit_rows(Z)

    def _sync_evidence(self, context, pairs):
        """Peak of the training-free sync curve of each (audio, frames) clip, in chance units: the
        speaking face's mouth where a face is seen, the whole frame's motion elsewhere."""
        return sync.peak_evidence(sync.sync_curves(context, pairs, "auto", max_offset=self.max_offset))

    def _fit_timing(self, X, A, V):
        """Coefficients combining cosine and sync evidence (:func:`skavc.sync.fit_timing`): each clip
        against itself and against the next clip's frames (a different event)."""
        other = np.roll(np.arange(len(X)), 1)
        Ea = self._embed_audio_features(A)
        Ev = project(self.head_params_, self.visual_preprocessor_.transform(V), "visual").astype(np.float64)
        cosines = np.r_[np.sum(Ea * Ev, axis=1), np.sum(Ea * Ev[other], axis=1)]
        own, mixed = sync.timing_evidence(self._context(), X, other, max_offset=self.max_offset)
        return sync.fit_timing(cosines, np.r_[own, mixed], np.r_[np.ones(len(X)), np.zeros(len(X))])

    def _embed_audio_features(self, A):
        """Unit-norm audio embeddings of pooled audio encoder features (n, Fa), float64."""
        return project(self.head_params_, self.audio_preprocessor_.transform(A), "audio")

    # -- training ---------------------------------------------------------------------
    def _fit_preprocessors(self, A, V):
        self.audio_preprocessor_ = make_preprocessor(self.n_components, A.shape).fit(A)
        self.visual_preprocessor_ = make_preprocessor(self.n_components, V.shape).fit(V)

    def _initialise(self, A, V):
        self.audio_encoder_, self.visual_encoder_ = self._encoders()
        self.n_visual_frames_ = self.n_visual_frames
        self.n_features_audio_, self.n_features_visual_ = A.shape[1], V.shape[1]
        A = self.audio_preprocessor_.transform(A[:1])
        V = self.visual_preprocessor_.transform(V[:1])
        self._rng = check_random_state(self.random_state)
        hidden = self.hidden_units if self.head == "mlp" else None
        params = init_head_params(
            A.shape[1], V.shape[1], self.embedding_dim, hidden, self.temperature, self._rng
        )
        # The head trains and projects in the dtype of its weights: float32 is about twice as
        # fast as float64 (benchmarks/bench_head.py) and moves embeddings by < 1e-4.
        self.head_params_ = {k: v.astype(np.float32) if v.ndim else v for k, v in params.items()}
        self.optimizer_ = Adam(self.head_params_, learning_rate=self.learning_rate,
                               bounds={"log_temperature": LOG_TEMPERATURE_BOUNDS})
        self.loss_curve_ = []
        self.n_iter_ = 0

    def _train(self, A, V, epochs):
        A = self.audio_preprocessor_.transform(A)
        V = self.visual_preprocessor_.transform(V)
        batch_size = min(self.batch_size, A.shape[0])

        def epoch():
            return train_epoch(self.head_params_, self.optimizer_, A, V, batch_size, self._rng,
                               learn_temperature=self.learn_temperature, alpha=self.alpha)

        losses = run_epochs(epoch, epochs, first_epoch=self.n_iter_ + 1, what="InfoNCE loss",
                            log=progress_logger(self.verbose, self._log))
        self.loss_curve_.extend(losses)
        self.n_iter_ += len(losses)
        self.temperature_ = float(np.exp(self.head_params_["log_temperature"]))

    @staticmethod
    def _check_n_pairs(X):
        X = check_collection(X)
        if len(X) < 2:
            raise ValueError(
                f"X must hold at least 2 clips: each pair is contrasted with the others; got {len(X)}"
            )
        return X

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, epochs=None):
        """Learn the projection heads from paired clips.

        Parameters
        ----------
        X : sequence of AVClip, (audio, frames) pairs or video paths, length n_clips >= 2
            Each item's audio and frames are a positive pair.
        y : None or sequence of str, length n_clips
            Label or caption strings, used only with ``scene=True`` (the text map
            of :meth:`classify_scene`); otherwise ignored, with a ``UserWarning`` that says so.
        epochs : int or None, default=None
            Overrides the ``epochs`` parameter for this call.

        Returns
        -------
        self : AVCorrespondence
        """
        epochs = check_int(epochs, name="epochs", minimum=1, allow_none=True)
        X = self._check_n_pairs(X)
        if self.scene and y is not None:
            y = scene.check_captions(y, len(X))  # before any clip is encoded
        elif y is not None:
            warnings.warn("y is ignored: only scene=True uses it, to learn a map from the joint space to the "
                          "label or caption strings it holds (AVCorrespondence(scene=True).fit(X, y)); "
                          "the correspondence heads learn from the pairs in X alone", UserWarning, stacklevel=3)
        for attr in ("audio_encoder_", "visual_encoder_", "n_visual_frames_"):
            self.__dict__.pop(attr, None)  # refit with the current parameters
        if self.scene:
            A, V, P = self._context().pooled(X, self.n_visual_frames, class_posteriors=True)
        else:
            A, V = self._pair_features(X)
        self._fit_preprocessors(A, V)
        self._initialise(A, V)
        self._train(A, V, self.epochs if epochs is None else epochs)
        for attr in ("audio_class_head_", "audio_weight_", "text_map_", "text_weight_"):
            self.__dict__.pop(attr, None)
        if self.scene:
            self.audio_class_head_, self.audio_weight_, self.text_map_, self.text_weight_ = scene.fit_scene_heads(
                self.audio_preprocessor_.transform(A), P, rng=self._rng, joint_embeddings=self._shared_space(A, V),
                y=y, text_encoder=self._text_encoder(), class_names=self.visual_encoder_.class_names,
                log=progress_logger(self.verbose, self._log, "audio class head"))
        self.__dict__.pop("sync_head_", None)
        if self.sync:
            self.sync_head_ = sync.fit_sync_head(
                self._context(), X, epochs=self.sync_epochs, rng=self._rng, learning_rate=self.learning_rate,
                alpha=self.alpha, log=progress_logger(self.verbose, self._log, "sync"))
        self.__dict__.pop("localization_head_", None)
        if self.localization:
            self.localization_head_ = localization.fit_localization_head(
                self._context(), X, self._embed_audio_features, rng=self._rng, alpha=self.alpha,
                log=progress_logger(self.verbose, self._log, "localisation"))
        self.__dict__.pop("timing_", None)
        if self.timing:
            self.timing_ = self._fit_timing(X, A, V)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """One epoch over a new batch of paired clips (for streams too large for memory).

        The first call initialises the heads and fits the feature
        standardisation and whitening, which later calls keep (so the heads'
        inputs do not drift): make the first batch representative.

        Only the correspondence heads learn here: the sync and localisation
        heads (``sync=True``, ``localization=True``), the timing combination
        (``timing=True``) and the scene heads are trained
        by :meth:`fit`; without them :meth:`predict_offset` and :meth:`localize`
        use their training-free methods (``method="auto"``) and
        :meth:`correspondence` the plain cosine.

        Parameters
        ----------
        X : sequence of AVClip, (audio, frames) pairs or video paths, length >= 2
        y : None
            Ignored, with a ``UserWarning`` when given (only :meth:`fit` with ``scene=True``
            learns from labels).

        Returns
        -------
        self : AVCorrespondence
        """
        X = self._check_n_pairs(X)
        if y is not None:
            warnings.warn("y is ignored: partial_fit learns the correspondence heads from the pairs in X alone; "
                          "labels are learnt by fit with scene=True (AVCorrespondence(scene=True).fit(X, y))",
                          UserWarning, stacklevel=3)
        first_call = not hasattr(self, "head_params_")
        A, V = self._pair_features(X)
        if first_call:
            self._fit_preprocessors(A, V)
            self._initialise(A, V)
        self._train(A, V, 1)
        return self

    # -- embeddings -------------------------------------------------------------------
    def transform_audio(self, X, sample_rate=None, *, window=None, hop=None):
        """Audio embeddings, of each recording or of each window of it.

        Parameters
        ----------
        X : sequence of AVClip, (audio, frames) pairs, video paths or 1-D waveforms
            Waveforms (and the audio of pairs) are float samples at full scale 1.0, or integer
            PCM (int16, int32, int8, uint8), which is scaled to it.
        sample_rate : int or None, default=None
            Rate of bare waveforms in ``X``; None means :attr:`audio_sample_rate`.
            Waveforms at another rate are resampled.
        window : float or None, default=None
            None: one embedding per recording (a file's sound pooled as it is decoded). Seconds:
            one per window of each recording (:func:`skavc.io.iter_audio` reads a file's sound
            a window at a time, from its first sample; long recordings in bounded memory).
        hop : float or None, default=None
            With ``window``: seconds from one window's start to the next (<= ``window``); None
            means ``window``. Window ``k`` starts at ``k * hop`` seconds; the last one holds
            what is left.

        Returns
        -------
        embeddings : ndarray of shape (n_clips, embedding_dim), float32
            L2-normalised rows; with ``window``, a list of one such array per recording, a row
            per window.
        """
        check_is_fitted(self, "head_params_")
        input_rate = None if sample_rate is None else check_sample_rate(sample_rate, minimum=1000)
        X = check_collection(X)
        if window is not None:
            return [np.concatenate([self.transform_audio(batch) for batch in self._audio_windows(
                item, f"X[{i}]", input_rate, window, hop)]) for i, item in enumerate(X)]
        A = self._context().pooled_audio(X, input_rate)
        return self._embed_audio_features(A).astype(np.float32)

    def transform_visual(self, X, *, window=None, hop=None):
        """Visual embeddings, of each recording or of each window of it.

        Parameters
        ----------
        X : sequence of AVClip, (audio, frames) pairs, video paths or uint8 frame arrays (T, H, W, 3)
        window : float or None, default=None
            None: one embedding per recording (a file decoded once, keeping only the frames
            sampled). Seconds: one per window of each recording (a file decoded a window at a
            time, at 448 pixels on its larger side; bounded memory).
        hop : float or None, default=None
            As in :meth:`transform_audio`.

        Returns
        -------
        embeddings : ndarray of shape (n_clips, embedding_dim), float32
            L2-normalised rows; with ``window``, a list of one such array per recording, a row
            per window.
        """
        check_is_fitted(self, "head_params_")
        X = check_collection(X)
        if window is not None:
            return self._per_window(X, window, hop, "transform_visual",
                                    lambda clip: self.transform_visual([clip.frames]), np.concatenate)
        V = self._context().pooled_visual(X, self._n_visual_frames())
        return project(self.head_params_, self.visual_preprocessor_.transform(V), "visual").astype(np.float32)

    def _embed_pairs(self, X):
        check_is_fitted(self, "head_params_")
        A, V = self._pair_features(check_collection(X))
        Ea = self._embed_audio_features(A)
        Ev = project(self.head_params_, self.visual_preprocessor_.transform(V), "visual")
        return Ea.astype(np.float32), Ev.astype(np.float32)

    def transform(self, X):
        """Audio and visual embeddings side by side.

        Parameters
        ----------
        X : sequence of AVClip, (audio, frames) pairs or video paths

        Returns
        -------
        embeddings : ndarray of shape (n_clips, 2 * embedding_dim), float32
            Audio embedding in the first ``embedding_dim`` columns, visual in the rest.
        """
        return np.hstack(self._embed_pairs(X))

    def get_feature_names_out(self, input_features=None):
        """Names of :meth:`transform`'s columns: ``avcorrespondence_audio0``..., then ``..._visual0``...."""
        check_is_fitted(self, "head_params_")
        prefix = type(self).__name__.lower()
        d = self._fitted_embedding_dim()
        return np.asarray(
            [f"{prefix}_audio{i}" for i in range(d)] + [f"{prefix}_visual{i}" for i in range(d)], dtype=object
        )

    def _fitted_embedding_dim(self):
        """Width of the fitted shared space (the heads' output), whatever ``embedding_dim`` says now."""
        return output_dim(self.head_params_)

    def correspondence(self, X, timing=None):
        """How well each clip's sound matches its pictures.

        Parameters
        ----------
        X : sequence of AVClip, (audio, frames) pairs or video paths

        timing : bool or None, default=None
            Weigh the timing evidence in (:func:`skavc.sync.timing_probability`); None
            means when the model was fitted with ``timing=True``. False gives the plain
            cosine.

        Returns
        -------
        scores : ndarray of shape (n_clips,)
            With timing: the probability, in [0, 1], that the sound and the frames are
            one event, from the cosine of their embeddings and the peak of their
            training-free sync curve. Without: the cosine, in [-1, 1]. Higher means a
            better match either way.
        """
        if timing is not None and not isinstance(timing, (bool, np.bool_)):
            raise TypeError(f"timing must be True, False or None; got {timing!r}")
        X = check_collection(X)  # once: a generator can be read only once
        Ea, Ev = self._embed_pairs(X)
        cosines = np.sum(Ea.astype(np.float64) * Ev, axis=1)
        coefficients = getattr(self, "timing_", None)
        if timing is False or (timing is None and coefficients is None):
            return cosines
        self._check_timing("timing=True")
        return sync.timing_probability(coefficients, cosines, self._sync_evidence(self._context(), X))

    def _check_timing(self, what):
        check_is_fitted(self, "head_params_")
        if getattr(self, "timing_", None) is None:
            raise ValueError(f"{what} needs a model fitted with timing=True: AVCorrespondence(timing=True).fit(X) "
                             "(the default), or model.set_params(timing=True).fit(X)")

    def score(self, X, y=None):
        """Cross-modal retrieval recall@1 among the clips of ``X``, both directions averaged.

        Each clip's audio queries all clips' visuals (and vice versa); a hit
        is the clip's own partner ranked first. Chance is ``1 / n_clips``.

        Parameters
        ----------
        X : sequence of AVClip, (audio, frames) pairs or video paths, length >= 2
        y : None
            Ignored.

        Returns
        -------
        score : float in [0, 1]
        """
        X = self._check_n_pairs(X)
        a2v, v2a = cross_modal_recall(*self._embed_pairs(X), k=1)
        return 0.5 * (a2v + v2a)

    # -- tasks (each delegates to its module) -----------------------------------------
    def sync_curve(self, X, method="auto"):
        """Score of every candidate offset, per clip.

        Parameters
        ----------
        X : sequence of AVClip, (audio, frames) pairs or video paths
        method : {"auto", "learned", "signal", "face", "naive"}, default="auto"
            "learned" uses the sync head trained by ``fit`` with ``sync=True``;
            "signal" the training-free motion/onset correlation (usable before
            any fit); "face" the mouth's opening of the speaking face (or its darkness, for a
            small face) against the loudness of the speech band (1-3 kHz), training-free (real
            talking heads: within 0.1 s in 1.00 of shifted cases where "signal" gives 0.34;
            docs/benchmarks.md, "Real talking heads"); "naive" plain energy cross-correlation (a baseline); "auto" is "face" when
            a face is seen in at least half of the frames and its mouth follows the sound (its
            curve peaks above chance, or above the whole frame's:
            :func:`skavc.sync.face_or_whole`), else "learned" when a sync head was trained, else
            "signal".

        Returns
        -------
        curves : list of (offsets, scores)
            Per clip, ``offsets`` (seconds, positive = audio ahead, within
            ``max_offset``) and their ``scores`` (higher = better aligned),
            both of shape (n_offsets,).
        """
        X = check_collection(X)
        method = sync.resolve_method(method, getattr(self, "sync_head_", None))
        return sync.sync_curves(self._context(), X, method, sync_head=getattr(self, "sync_head_", None),
                                max_offset=self.max_offset)

    def predict_offset(self, X, return_confidence=False, method="auto"):
        """Audio-visual offset of each clip, in seconds (positive = audio ahead of video).

        The best offset within ``max_offset`` is refined between grid points
        by parabolic interpolation of the sync curve.

        Parameters
        ----------
        X : sequence of AVClip, (audio, frames) pairs or video paths
        return_confidence : bool, default=False
            Also return a confidence per clip.
        method : {"auto", "learned", "signal", "face", "naive"}, default="auto"
            See :meth:`sync_curve`.

        Returns
        -------
        offsets : ndarray of shape (n_clips,)
        confidence : ndarray of shape (n_clips,), only when ``return_confidence``
            In [0, 1], from how far the curve's peak stands above the rest of
            it: 0 for a flat curve (silence, static frames); above
            :data:`skavc.sync.SYNC_CONFIDENCE_THRESHOLD` the estimate can be
            trusted (docs/benchmarks.md, "Synchronisation", says how it was measured).
        """
        offsets, confidence = sync.offsets_from_curves(self.sync_curve(X, method=method))
        return (offsets, confidence) if return_confidence else offsets

    def sync_timeline(self, X, *, window=10.0, hop=None, method="auto"):
        """Offset of each recording window by window, as a whole, and its drift (long videos).

        A video file is streamed a window at a time, its frames decoded at
        :data:`skavc.features.MOTION_SIDE` pixels on their larger side, so memory does not grow with
        its length; a clip in memory is sliced. Training-free (the "signal" curve of each window,
        combined over the windows for the whole recording: :func:`skavc.sync.sync_timeline`).

        Parameters
        ----------
        X : sequence of AVClip, (audio, frames) pairs or video paths
        window : float, default=10.0
            Seconds per window (the last one holds what is left).
        hop : float or None, default=None
            Seconds between window starts (<= ``window``); None means ``window``.
        method : {"auto", "signal", "face", "naive"}, default="auto"
            "face" follows the mouth of the speaking face (frames decoded at 640 pixels, which
            the landmarks need; see :meth:`sync_curve`); "auto" looks at a few frames first and,
            where it sees a face, takes for each window the mouth's curve or the whole frame's
            as :meth:`sync_curve` does, else "signal" alone; "naive" the
            energy cross-correlation baseline. The learned sync head does not read windows.

        Returns
        -------
        timelines : list of SyncTimeline
            Per recording: window starts and lengths (s), their offsets (s, positive = audio
            ahead) and confidences, the whole recording's offset and confidence, its combined
            curve, and the drift (s per s; NaN with fewer than 3 trustworthy windows). A
            recording shorter than ``window`` is one window, whose answer is
            :meth:`predict_offset`'s with the same method up to the frames' working size.
        """
        X = check_collection(X)
        method = check_option(method, name="method", options=("auto", "signal", "face", "naive"))
        context = self._context()

        def job(item, where):
            # "auto" takes a quick look for faces first: a recording without one is read as before
            chosen = "signal" if method == "auto" and not context.shows_faces(item, where) else method
            side = MOTION_SIDE if chosen in ("signal", "naive") else FACE_SIDE
            windows, duration = context.windows(item, where, window=window, hop=hop, max_side=side)
            windows = self._with_progress(windows, "sync", item, where, duration)
            return sync.sync_timeline(windows, method=chosen, max_offset=self.max_offset,
                                      face_tracks=context.face_tracks)

        return context.map(job, X, desc="sync timelines")

    def localize(self, X, method="auto", return_confidence=False, refine=True, faces=True):
        """Where the sound comes from, as a heat map per frame.

        Parameters
        ----------
        X : sequence of AVClip, (audio, frames) pairs or video paths
        method : {"auto", "learned", "synchrony", "fused"}, default="auto"
            "synchrony": training-free, pixels whose change over time follows
            the audio's (usable before any fit); "learned": the spatial head
            trained by ``fit`` with ``localization=True``, scored against the
            audio embedding of the two seconds around each frame; "fused":
            the synchrony map weighted by the learned one, with the synchrony
            confidence (:func:`skavc.localization.fuse_evidence`); "auto" is "fused" when a
            localisation head was trained, else "synchrony".
        return_confidence : bool, default=False
            Also return a per-frame confidence that a visible source is there.
        refine : bool, default=True
            Sharpen each frame's map to the outline of what the frame shows
            there (:func:`skavc.localization.refine_shape`, a colour segmentation seeded by the map).
        faces : bool, default=True
            Light each face whose mouth moves with the sound, at its probability of speaking
            (:meth:`speakers`), over the method's map; frames without a speaking face keep the
            method's map. False: the method's map alone.

        Returns
        -------
        maps : list of ndarray of shape (T, H, W), float32
            Per clip, at the frames' own size and in [0, 1]: the frame's
            confidence times the source's shape, never renormalised per frame.
            A pixel is the sound's source when its value is >=
            :data:`skavc.localization.SOURCE_THRESHOLD` (0.5); silence, sound from off screen or
            a still picture leave every pixel below it.
        confidence : list of ndarray of shape (T,), only when ``return_confidence``
            Per clip, each frame's largest map value, in [0, 1]: >= 0.5 means
            a sound source is visible in that frame. For synchrony (and fused) maps it is
            measured against the clip's own chance level (the same maps with the audio
            circularly shifted) and is 0 where nothing sounds above the clip's noise floor. On
            real video it ranks sounding above silent frames well but stays low (the evidence
            is rarely above chance there): read it as a ranking within a clip, and see
            docs/benchmarks.md, "Real video: localisation".
        """
        X = check_collection(X)
        head = getattr(self, "localization_head_", None)
        method = localization.resolve_method(method, head)
        results = localization.localize_clips(
            self._context(), X, method, localization_head=head, embed_audio=self._embed_audio_features,
            refine=bool(refine), faces=bool(faces))
        maps = [r[0] for r in results]
        return (maps, [r[1] for r in results]) if return_confidence else maps

    def localize_windows(self, video, *, window=10.0, method="auto", refine=True, chunk=None, faces=True):
        """Where the sound comes from in a long video, window by window, in bounded memory.

        A video file is localised a window at a time on frames decoded at
        ``skavc.localization.WORK_SIZE`` pixels on their larger side (all the maps need; 640
        where a first look at a few frames sees a face, for its landmarks), in a second thread,
        while its full-size frames are read alongside ``chunk`` seconds at a time and given
        out with their maps (drawing them overlaps the localisation of what follows); a clip
        in memory is sliced. Each window is localised as :meth:`localize`
        localises a clip, so a video no longer than ``window`` gets :meth:`localize`'s maps
        and confidences (exactly when its frames are no larger than ``WORK_SIZE``). With
        ``verbose`` a progress line goes to stderr.

        Parameters
        ----------
        video : AVClip, (audio, frames) pair or video path
            One recording.
        window : float, default=10.0
            Seconds per window localised (the last one holds what is left): each window's
            synchrony is measured against its own chance level, so windows much shorter than
            10 s make a noisier confidence.
        method : {"auto", "learned", "synchrony", "fused"}, default="auto"
            As in :meth:`localize`.
        refine, faces : bool, default=True
            As in :meth:`localize`.
        chunk : float or None, default=None
            Seconds of full-size frames in each item given out; None means ``window``. Memory
            follows it (one second of 720p at 30 fps: 83 MB of frames).

        Returns
        -------
        windows : iterator of skavc.localization.LocalizedWindow
            In order, ``chunk`` seconds each: ``clip`` (its frames at their own size and its
            sound, ``clip.start`` in seconds), ``maps`` (T, H, W) in [0, 1] resized from their
            grid when sliced (``maps[t0:t1]``), and ``confidence`` (T,). Read it once, an item
            at a time: an item kept while the next is read holds both.
        """
        (video,) = check_collection([video])
        head = getattr(self, "localization_head_", None)
        method = localization.resolve_method(method, head)
        chunk = window if chunk is None else check_real(chunk, name="chunk", positive=True)
        context = self._context()
        streamed = isinstance(video, (str, os.PathLike))
        # a video with faces is read at the size their landmarks need, one without as before
        faces = bool(faces) and (not streamed or context.shows_faces(video, "video"))
        side = FACE_SIDE if faces else localization.WORK_SIZE
        windows, duration = context.windows(video, "video", window=window, max_side=side if streamed else None)
        results = localization.localize_windows(context, windows, method, localization_head=head,
                                                embed_audio=self._embed_audio_features, refine=bool(refine),
                                                faces=faces)
        if streamed or chunk != window:
            shown, _ = context.windows(video, "video", window=chunk)
            results = localization.regrid_windows(read_ahead(results) if streamed else results, shown)
        return self._with_progress(results, "localize", video, "video", duration)

    def speakers(self, X):
        """Who is speaking: each face in each clip, its box per frame and its probability of speaking.

        Training-free active speaker detection (:mod:`skavc.speakers`): faces are found by
        MediaPipe's detector every few frames and followed by their Face Mesh landmarks; a face
        speaks where its mouth's opening rises and falls with the loudness of the speech band
        (1-3 kHz) over the 1.5 s around the frame, while a sound is heard. Two real talking
        heads side by side with the sound of one: the speaking face reads higher in 0.96 of
        speech frames (docs/benchmarks.md, "Real talking heads").

        Parameters
        ----------
        X : sequence of AVClip, (audio, frames) pairs or video paths

        Returns
        -------
        speakers : list of list of skavc.speakers.SpeakerTrack
            Per clip, one per face: ``track`` (its number), ``frames`` (n,) where it is seen,
            ``boxes`` (n, 4) ``(x0, y0, x1, y1)`` in pixels, ``speaking`` (n,) in [0, 1]
            (>= 0.5: speaking). An empty list for a clip without a face.
        """
        X = check_collection(X)
        return speakers.find_speakers(self._context(), X)

    def speakers_windows(self, video, *, window=10.0):
        """Who is speaking in a long video, window by window, in bounded memory.

        A video file is read a window at a time with its frames decoded at 640 pixels on their
        larger side (what the face landmarks need); a clip in memory is sliced. One tracker
        follows the faces across windows, so a face keeps its number; each window's speaking
        is judged on its own sound (see :meth:`speakers`). With ``verbose`` a progress line
        goes to stderr.

        Parameters
        ----------
        video : AVClip, (audio, frames) pair or video path
            One recording.
        window : float, default=10.0
            Seconds per window.

        Yields
        ------
        clip : AVClip
            The window as read (``clip.start``: its first frame's time in seconds; a file's
            frames at the working size).
        speakers : list of skavc.speakers.SpeakerTrack
            As :meth:`speakers` gives them for a clip; ``frames`` index the window's frames
            and ``boxes`` are in pixels of ``clip.frames``.
        """
        (video,) = check_collection([video])
        context = self._context()
        streamed = isinstance(video, (str, os.PathLike))
        windows, duration = context.windows(video, "video", window=window, max_side=FACE_SIDE if streamed else None)
        windows = self._with_progress(windows, "speakers", video, "video", duration)
        return speakers.speakers_windows(context, windows)

    def _per_window(self, X, window, hop, what, answer, join):
        """``join([answer(clip) for clip in windows])`` for each recording of ``X``, its windows
        read one at a time (a file's frames at ``WINDOW_SIDE`` pixels)."""
        context = self._context()
        results = []
        for i, item in enumerate(X):
            windows, duration = context.windows(item, f"X[{i}]", window=window, hop=hop, max_side=WINDOW_SIDE)
            results.append(join([answer(clip) for clip in self._with_progress(windows, what, item, f"X[{i}]",
                                                                             duration)]))
        return results

    def _audio_windows(self, item, where, input_rate, window, hop):
        """One recording's sound at the model's rate, a few windows at a time (lists of waveforms)."""
        from .io import check_window, cut_windows, has_video_stream, iter_audio

        rate = self.audio_sample_rate
        path = isinstance(item, (str, os.PathLike))
        if path and not has_video_stream(item):  # a sound file, on its own clock
            windows = iter_audio(item, window=window, hop=hop, sample_rate=rate, name=where)
        elif path or not _is_waveform(item):  # on the video's clock, as the other answers per window
            clips, _ = self._context().windows(item, where, window=window, hop=hop, max_side=_SOUND_ONLY_SIDE)
            windows = (clip.audio for clip in clips)
        else:
            window, hop = check_window(window, hop)
            audio = resolve_audio(item, sample_rate=rate, input_rate=input_rate or rate, where=where)
            windows = cut_windows([audio], window=window, hop=hop, sample_rate=rate)
        batch = []
        for samples in windows:
            batch.append(samples)
            if len(batch) == _AUDIO_BATCH:
                yield batch
                batch = []
        if batch:
            yield batch

    def _with_progress(self, windows, what, item, where, duration):
        """``windows`` (each with ``start`` and ``duration`` in seconds) as they are, or with
        ``verbose`` passed on through a progress line on stderr moved on as each is done with."""
        if not self.verbose:
            return windows
        name = os.path.basename(os.fspath(item)) if isinstance(item, (str, os.PathLike)) else where
        return _progress_over(windows, Progress(f"{what} {name}", duration))

    def retrieve_visuals(self, audio, visual_database, top_k=10, sample_rate=None, rerank=None):
        """Videos whose pictures best fit a sound.

        Parameters
        ----------
        audio : ndarray of shape (n_samples,), AVClip, (audio, frames) pair, path, or a list of those
            One query, or a list of queries (a batch).
        visual_database : ndarray of shape (n_items, embedding_dim), EmbeddingIndex, ApproximateIndex, ShardedIndex, or sequence of clips
            Visual embeddings (:meth:`transform_visual`), an index of them, or
            clips / frame arrays / paths to embed.
        top_k : int, default=10
            Matches per query (all items when the database is smaller).
        sample_rate : int or None, default=None
            Rate of bare query waveforms; None means ``audio_sample_rate``.
        rerank : int or None, default=None
            Re-score the best ``rerank`` (>= ``top_k``) candidates with their timing, as
            :meth:`correspondence` does (the query's sound against each candidate's
            frames), so the right instance wins among look-alikes. Needs clips (not
            embeddings) as the database and a model fitted with ``timing=True``.

        Returns
        -------
        matches : list of (int, float), or a list of such lists for a batch
            Database index and cosine similarity (with ``rerank``: the probability that
            the two are one event, :meth:`correspondence`'s), best first.
        """
        query = dict(modality="audio", embed_query=lambda items: self.transform_audio(items, sample_rate=sample_rate),
                     embed_database=self.transform_visual)
        if rerank is None:
            return retrieval.retrieve(audio, visual_database, top_k, **query)
        context = self._context()
        rate = context.sample_rate if sample_rate is None else check_sample_rate(sample_rate, minimum=1000)

        def sound(item, where):
            audio = resolve_audio(item, sample_rate=context.sample_rate, input_rate=rate, where=f"the query {where}")
            return sync.sound_series(audio, context.sample_rate)

        return self._reranked(audio, visual_database, top_k, rerank, query, sound, self._picture("the candidate"))

    def _picture(self, what):
        """A job reducing an item to its frames' motion series and frame rate (:func:`skavc.sync.motion_series`)."""
        context = self._context()

        def picture(item, where):
            frames, fps = context.frames(item, f"{what} {where}")
            return sync.motion_series(frames), fps

        return picture

    def _reranked(self, queries, database, top_k, rerank, query, reduce_query, reduce_candidate):
        """The best ``rerank`` matches of each query re-scored with their timing.

        The cosines are the retrieval's own; only the sync evidence of each (query,
        candidate) pair is new. Each query and each candidate is decoded once and reduced to
        its sound's :func:`~skavc.sync.sound_series` or to its frames' motion series
        (``reduce_query``, ``reduce_candidate``), then every pair is scored
        (:func:`~skavc.sync.pair_evidence`), all in parallel maps.
        """
        k = retrieval.check_k(top_k)
        rerank = check_int(rerank, name="rerank", minimum=k)
        self._check_timing("rerank")
        if isinstance(database, np.ndarray) and database.dtype != object or hasattr(database, "search"):
            raise ValueError("rerank needs clips (AVClip objects, (audio, frames) pairs or paths) as the database: "
                             "their sound or frames are scored again with their timing; got embeddings")
        items, is_batch = retrieval.split_queries(queries, query["modality"])
        database = check_collection(database, name="the database")
        matches = [found[:rerank] for found in retrieval.retrieve(items, database, rerank, **query)]
        context = self._context()
        reduced_queries = context.map(reduce_query, items, desc="rerank queries")
        unique = sorted({index for found in matches for index, _ in found})
        reduced_candidates = dict(zip(unique, context.map(reduce_candidate, [database[i] for i in unique], desc="rerank candidates")))
        sound_is_query = query["modality"] == "audio"

        def peak(job, where):
            q, c = reduced_queries[job[0]], reduced_candidates[job[1]]
            sound, picture = (q, c) if sound_is_query else (c, q)
            return sync.pair_evidence(sound, picture, max_offset=self.max_offset)

        jobs = [(q, index) for q, found in enumerate(matches) for index, _ in found]
        peaks = np.asarray(context.map(peak, jobs, desc="rerank pairs"), dtype=np.float64)
        cosines = np.array([score for found in matches for _, score in found], dtype=np.float64)
        scores = sync.timing_probability(self.timing_, cosines, peaks)
        results, start = [], 0
        for found in matches:
            own = scores[start : start + len(found)]
            start += len(found)
            results.append([(found[i][0], float(own[i])) for i in np.argsort(-own, kind="stable")[:k]])
        return results if is_batch else results[0]

    def retrieve_audio(self, frames, audio_database, top_k=10, rerank=None):
        """Sounds that best fit a video's pictures.

        Parameters
        ----------
        frames : ndarray of shape (T, H, W, 3) uint8, AVClip, (audio, frames) pair, path, or a list of those
            One query, or a list of queries (a batch).
        audio_database : ndarray of shape (n_items, embedding_dim), EmbeddingIndex, ApproximateIndex, ShardedIndex, or sequence of clips
            Audio embeddings (:meth:`transform_audio`), an index of them, or
            clips / waveforms (at ``audio_sample_rate``) / paths to embed.
        top_k : int, default=10
            Matches per query (all items when the database is smaller).

        rerank : int or None, default=None
            Re-score the best ``rerank`` (>= ``top_k``) candidates with their timing, as
            :meth:`correspondence` does (each candidate's sound against the query's
            frames). Needs clips as the database and a model fitted with ``timing=True``.

        Returns
        -------
        matches : list of (int, float), or a list of such lists for a batch
            Database index and cosine similarity (with ``rerank``: the probability that
            the two are one event, :meth:`correspondence`'s), best first.
        """
        query = dict(modality="visual", embed_query=self.transform_visual, embed_database=self.transform_audio)
        if rerank is None:
            return retrieval.retrieve(frames, audio_database, top_k, **query)
        context = self._context()

        def sound(item, where):
            audio = resolve_audio(item, sample_rate=context.sample_rate, input_rate=context.sample_rate,
                                  where=f"the candidate {where}")
            return sync.sound_series(audio, context.sample_rate)

        return self._reranked(frames, audio_database, top_k, rerank, query, self._picture("the query"), sound)

    def classify_scene(self, X, labels, *, window=None, hop=None):
        """Probability of each label for each clip ("what is happening here, among these?").

        Works before any fit (zero-shot, from the frames through the text space);
        a model fitted with ``scene=True`` (``AVCorrespondence(scene=True).fit(X)``) adds the sound,
        and label or caption strings in ``y`` (``AVCorrespondence(scene=True).fit(X, y)``) the captions
        (:mod:`skavc.scene`).

        Parameters
        ----------
        X : sequence of AVClip, (audio, frames) pairs or video paths
        labels : list of str
            Label strings chosen at call time ("dog park", "church bells", ...), distinct.
        window : float or None, default=None
            None: one answer per recording. Seconds: one per window of each recording (as
            :meth:`transform_visual` reads them).
        hop : float or None, default=None
            As in :meth:`transform_audio`.

        Returns
        -------
        probabilities : ndarray of shape (n_clips, n_labels)
            Rows sum to 1; ``dict(zip(labels, probabilities[i]))`` for clip ``i``; with
            ``window``, a list of one such array per recording, a row per window.
        """
        labels = check_labels(labels)
        X = check_collection(X)
        if window is not None:
            return self._per_window(X, window, hop, "classify_scene",
                                    lambda clip: self.classify_scene([clip], labels), np.concatenate)
        context = self._context()
        text_map = getattr(self, "text_map_", None)
        # A model pickled before the weight was learnt mixed its head in at the largest weight.
        audio_weight = getattr(self, "audio_weight_", scene.AUDIO_HEAD_MAX_WEIGHT)
        audio_head = getattr(self, "audio_class_head_", None) if audio_weight > 0 else None
        if audio_head is None and text_map is None:  # the frames alone: no audio encoded
            A, (V, P) = None, context.pooled_visual(X, self._n_visual_frames(), class_posteriors=True)
        else:
            A, V, P = context.pooled(X, self._n_visual_frames(), class_posteriors=True)
        return scene.classify_scene(
            P, labels, text_encoder=self._text_encoder(), class_names=context.class_names,
            audio_posteriors=None if audio_head is None else audio_head.predict_proba(
                self.audio_preprocessor_.transform(A)), audio_weight=audio_weight,
            joint_embeddings=None if text_map is None else self._shared_space(A, V), text_map=text_map,
            text_weight=getattr(self, "text_weight_", 0.0))

    def expected_sounds(self, X, top_k=5, *, window=None, hop=None):
        """The sounds the frames of each clip should make, with scores, and when (:mod:`skavc.describe`).

        Parameters
        ----------
        X : sequence of AVClip, (audio, frames) pairs, video paths, frame arrays (T, H, W, 3) or images (H, W, 3)
            Only the frames are used.
        top_k : int, default=5
            Sound-event names per clip, from AudioSet's 527.
        window : float or None, default=None
            None: one answer per recording. Seconds: one per window of each recording (as
            :meth:`transform_visual` reads them).
        hop : float or None, default=None
            As in :meth:`transform_audio`.

        Returns
        -------
        results : list of dict
            Per clip ``{"sounds": [(name, score), ...], "times": [seconds, ...]}``: names
            best first with scores in [0, 1], and the moments movement starts (where a
            sound is expected), on the video's clock; with ``window``, a list per recording
            of such a dict per window (its times still on the recording's clock).
        """
        k = check_int(top_k, name="top_k", minimum=1)
        X = check_collection(X)
        if window is not None:
            def answer(clip):
                (result,) = self.expected_sounds([clip], top_k=k)
                return {**result, "times": [clip.start + t for t in result["times"]]}

            return self._per_window(X, window, hop, "expected_sounds", answer, list)
        text_map = getattr(self, "text_map_", None)
        return describe.expected_sounds(
            self._context(), X, text_encoder=self._text_encoder(), n_visual_frames=self._n_visual_frames(), top_k=k,
            text_map=text_map, text_weight=getattr(self, "text_weight_", 0.0),
            embed=None if text_map is None else (lambda V: self._shared_space(None, V)))

    def describe_expected_audio(self, frames, *, window=None, hop=None):
        """A sentence saying what the frames should sound like, and when.

        Parameters
        ----------
        frames : ndarray of shape (T, H, W, 3) or (H, W, 3), AVClip, path, or a list of those
            One clip's frames (or one image) gives one sentence; a list gives a list.
        window : float or None, default=None
            Seconds: a sentence per window of each recording (:meth:`expected_sounds`).
        hop : float or None, default=None
            As in :meth:`transform_audio`.

        Returns
        -------
        description : str, or list of str for a list
            E.g. "Expected: dog (0.41), bark (0.22), howl (0.09); sound events likely
            near 0.4 s, 1.2 s, 2.9 s."; with ``window``, a list of sentences (one per
            window) in place of each sentence.
        """
        single = not isinstance(frames, (list, tuple))
        results = self.expected_sounds([frames] if single else frames, window=window, hop=hop)
        if window is None:
            sentences = [describe.describe_sentence(r) for r in results]
        else:
            sentences = [[describe.describe_sentence(r) for r in windows] for windows in results]
        return sentences[0] if single else sentences

    def separate(self, mixed_audio, target_visual, *, sample_rate=None, region=None, faces=True,
                 return_residual=False, return_confidence=False):
        """The sound of what ``target_visual`` shows, taken out of ``mixed_audio`` (training-free).

        Parameters
        ----------
        mixed_audio : array-like of shape (n_samples,)
            Mono mixture.
        target_visual : ndarray of shape (T, H, W, 3) or (H, W, 3), uint8
            Frames at :attr:`video_frame_rate`, aligned with the mixture, in which the target
            moves when it sounds (training-free: motion-informed NMF,
            :func:`skavc.separation.separate`), or speaks. One picture (H, W, 3) is refused
            with a ValueError: a picture does not show when its sound is heard.
        sample_rate : int or None, default=None
            Rate of ``mixed_audio``; None means :attr:`audio_sample_rate`. Any rate works (the
            output keeps it).
        region : None, (x0, y0, x1, y1) or ndarray of shape (T, H, W), default=None
            Where the target is in the frames: a box in pixels or weights (a ``localize`` map).
        faces : bool, default=True
            Frames without ``region`` in which a face is seen in at least half the frames: the
            target is that person's voice, the speech a pretrained speech enhancer finds in the
            mixture, trusted as far as the face's mouth follows it
            (:func:`skavc.separation.separate_speech`); frames without a face follow the motion.
        return_residual : bool, default=False
            Also return ``mixed_audio - target`` (they sum to the mixture exactly).
        return_confidence : bool, default=False
            Also return the confidence in [0, 1] that the target is heard in the mixture; a
            target that is not in it gives a low confidence and a near-silent output, and where
            the evidence is weak the output is a quieter copy of the mixture, never worse than it.

        Returns
        -------
        target : ndarray of shape (n_samples,), float32
        residual : ndarray of shape (n_samples,), float32, only when ``return_residual``
        confidence : float, only when ``return_confidence``
        """
        self._validate_params()
        rate = self.audio_sample_rate if sample_rate is None else sample_rate
        target_visual = separation.check_not_picture(target_visual, name="target_visual")
        return separation.separate(mixed_audio, rate, target_visual, self.video_frame_rate, region=region,
                                   face_tracks=self._context().face_tracks if faces else None,
                                   speech_enhancer=self._context().speech_enhancer() if faces else None,
                                   return_residual=return_residual, return_confidence=return_confidence)

    def separate_windows(self, mixed_audio, target_visual, *, sample_rate=None, region=None, faces=True,
                         window=20.0, overlap=2.0):
        """:meth:`separate` for long recordings: a window at a time, in bounded memory.

        The mixture is read (a file: decoded as it goes) and separated ``window`` seconds at a
        time, consecutive windows sharing ``overlap`` seconds over which their outputs are
        crossfaded; a target video is read alongside, its frames decoded at
        :data:`skavc.features.MOTION_SIDE` pixels on their larger side (only their motion is
        used), or at :data:`skavc._encoding.FACE_SIDE` when ``faces`` and a first look finds a
        face in it (its voice is then the target, window by window, as in :meth:`separate`).
        Memory follows ``window``, not the recording's length, and each window gets its
        own confidence. A mixture no longer than ``window`` gets :meth:`separate`'s answer (up
        to the frames' working size). With ``verbose`` a progress line goes to stderr.

        Parameters
        ----------
        mixed_audio : str, os.PathLike or array-like of shape (n_samples,)
            The mixture: an audio or video file with sound (read at its own rate), or samples.
        target_visual : str, os.PathLike or ndarray of shape (T, H, W, 3)
            A video file (or frames at :attr:`video_frame_rate`) in which the target moves with
            its sound (or speaks), covering the mixture from its first sample. One picture is
            refused, as in :meth:`separate`.
        sample_rate : int or None, default=None
            Rate of ``mixed_audio`` samples; None means :attr:`audio_sample_rate`. Not used
            for a file.
        region : None or (x0, y0, x1, y1), default=None
            Where the target is, a box in pixels of the target's frames as the file (or array)
            has them.
        faces : bool, default=True
            As in :meth:`separate`.
        window : float, default=20.0
            Seconds per window (longer: more sound for each window's NMF and chance level).
        overlap : float, default=2.0
            Seconds shared by consecutive windows, ``0 <= overlap < window``.

        Returns
        -------
        pieces : iterator of skavc.separation.SeparatedWindow
            In order, one per window: ``start`` (s), ``target`` and ``residual`` (float32, the
            mixture's rate; they sum to the mixture), ``confidence`` and ``sample_rate``.
            Concatenated, the targets are the whole target's sound; write each as it comes
            (``skavc separate`` does).
        """
        self._validate_params()
        window = check_real(window, name="window", positive=True)
        overlap = check_real(overlap, name="overlap", minimum=0.0)
        if overlap >= window:
            raise ValueError(f"overlap must be shorter than window ({window:g} s); got overlap={overlap!r}")
        hop = window - overlap
        if not isinstance(target_visual, (str, os.PathLike)):
            target_visual = separation.check_not_picture(target_visual, name="target_visual")
        mixture = self._mixture_windows(mixed_audio, sample_rate, window=window, hop=hop)
        rate, duration = mixture.sample_rate, mixture.duration
        context = self._context()
        faces = bool(faces) and region is None
        if faces and isinstance(target_visual, (str, os.PathLike)):  # a first look before decoding at 640 px
            faces = context.shows_faces(target_visual, "target_visual")
        targets, size, covered = self._target_windows(context, target_visual, window=window, hop=hop,
                                                      max_side=FACE_SIDE if faces else MOTION_SIDE)
        if duration is not None and covered is not None and duration > covered + _COVER_SLACK:
            # found at the end otherwise, after all the work: the frames must cover the mixture
            raise ValueError(f"target_visual covers {covered:.2f} s but mixed_audio lasts {duration:.2f} s: the "
                             "frames must cover the mixture (trim the mixture, or give the whole video)")
        pieces = separation.separate_windows(mixture, rate, ((c.frames, c.fps) for c in targets), hop=hop,
                                             region=region, region_size=size,
                                             face_tracks=context.face_tracks if faces else None,
                                             speech_enhancer=context.speech_enhancer() if faces else None)
        return self._with_progress(pieces, "separate", mixed_audio, "mixed_audio", duration)

    def _mixture_windows(self, mixed_audio, sample_rate, *, window, hop):
        """The mixture's windows (from a file, or samples in memory) with ``sample_rate`` and ``duration``."""
        from . import io  # PyAV: only when a recording is read

        if isinstance(mixed_audio, (str, os.PathLike)):
            return io.iter_audio(mixed_audio, window=window, hop=hop, name="mixed_audio")
        rate = check_sample_rate(self.audio_sample_rate if sample_rate is None else sample_rate, name="sample_rate")
        samples = resolve_audio(mixed_audio, sample_rate=rate, input_rate=rate, where="mixed_audio")
        return _InMemoryWindows(samples, rate, window, hop)

    def _target_windows(self, context, target_visual, *, window, hop, max_side):
        """The target's windows (a file's frames decoded at ``max_side`` pixels at most), the
        (height, width) its frames have before any resizing, and the seconds they cover (None
        when a file's header does not say)."""
        if isinstance(target_visual, (str, os.PathLike)):
            from .io import video_info

            info = video_info(target_visual)
            windows, covered = context.windows(target_visual, "target_visual", window=window, hop=hop,
                                               max_side=max_side, allow_missing_audio=True)  # frames only
            return windows, (info.height, info.width), covered
        frames = check_frames(target_visual, name="target_visual")
        # silent sound of the frames' length: the windows are cut on the frames' clock
        rate, fps = context.sample_rate, self.video_frame_rate
        clip = AVClip(np.zeros(max(1, round(frames.shape[0] * rate / fps)), np.float32), rate, frames, fps,
                      check_quality=False)
        return clip_windows(clip, window=window, hop=hop), frames.shape[1:3], clip.n_frames / clip.fps

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False  # X holds clips, not a feature table
        tags.target_tags.required = False
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags


#: Larger side (pixels) a long video's frames are decoded at for embeddings and scene answers per
#: window: the visual encoders see 224 x 224 pixels, which this keeps sharp, while a window of 10 s
#: at 30 fps holds 100 MB of frames instead of the 830 MB of 720p.
WINDOW_SIDE = 448

#: Larger side (pixels) of frames decoded only for their clock (their windows' sound is what is
#: used): small, but not under the 32 pixels a side below which a clip warns, even at 2.4:1.
_SOUND_ONLY_SIDE = 96

#: Windows of sound encoded at once by transform_audio(..., window=...): 16 of 10 s at 16 kHz, 10 MB.
_AUDIO_BATCH = 16

#: Seconds a mixture may outlast its target video's header duration before it is refused up front
#: (headers round; what is within it is checked window by window, to one frame).
_COVER_SLACK = 0.5


class _InMemoryWindows:
    """Samples in memory cut into windows as :func:`skavc.io.iter_audio` cuts a file's."""

    def __init__(self, samples, sample_rate, window, hop):
        self.samples, self.sample_rate, self.window, self.hop = samples, sample_rate, window, hop
        self.duration = samples.size / sample_rate

    def __iter__(self):
        from .io import cut_windows

        return cut_windows([self.samples], window=self.window, hop=self.hop, sample_rate=self.sample_rate)


def _progress_over(windows, progress):
    """``windows`` passed on, ``progress`` moved on as each one is done with (closed at the end)."""
    try:
        for window in windows:
            yield window
            progress.update(window.start + window.duration)
            del window  # let go of the window before the next is read
    finally:
        progress.close()
