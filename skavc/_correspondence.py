"""`AVCorrespondence`: frozen pretrained encoders plus a trainable projection head."""

import os
import time
from functools import lru_cache
from numbers import Integral, Real

import numpy as np
from joblib import Parallel, delayed, effective_n_jobs
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.decomposition import PCA
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, check_memory
from threadpoolctl import threadpool_limits

from ._head import Adam, init_head_params, project, train_epoch
from ._inputs import check_collection, resolve_audio, resolve_frames, resolve_pair
from .encoders import AUDIO_ENCODERS, VISUAL_ENCODERS, make_audio_encoder, make_visual_encoder
from ._validation import check_sample_rate
from .metrics import cross_modal_recall
from .localization import LocalizationMixin
from .retrieval import RetrievalMixin
from .sync import SyncMixin


@lru_cache(maxsize=8)
def _shared_encoder(kind, name, device, n_threads, precision):
    # Clones made by GridSearchCV share one onnxruntime session per encoder.
    make = make_audio_encoder if kind == "audio" else make_visual_encoder
    encoder = make(name, device=device, n_threads=n_threads, precision=precision)
    encoder.prepare()
    return encoder


def _encode_audio(audio, encoder, encoder_key):
    """Time-resolved features of one waveform (``encoder_key`` keys the cache)."""
    return encoder.encode(audio)


def _encode_frames(frames, encoder, encoder_key):
    """Per-frame features of uint8 frames (``encoder_key`` keys the cache)."""
    return encoder.encode(frames)


def sample_frame_indices(n_frames, n_samples):
    """``n_samples`` indices spread evenly over ``n_frames`` frames (centres of equal segments)."""
    if n_frames <= n_samples:
        return np.arange(n_frames)
    return np.floor((np.arange(n_samples) + 0.5) * n_frames / n_samples).astype(int)


def _make_preprocessor(n_components, shape):
    """Standardise, then PCA-whiten to ``n_components`` (capped by what the data can support)."""
    if n_components is None:
        return make_pipeline(StandardScaler())
    k = max(1, min(n_components, shape[0] - 1, shape[1]))
    return make_pipeline(StandardScaler(), PCA(n_components=k, whiten=True, random_state=0))


class AVCorrespondence(LocalizationMixin, RetrievalMixin, SyncMixin, TransformerMixin, BaseEstimator):
    """Audio-visual correspondence in one shared, L2-normalised embedding space.

    Frozen pretrained encoders (ONNX graphs run by onnxruntime) turn a clip's
    audio and frames into features; one projection head per modality, trained
    with a symmetric InfoNCE loss on paired clips, maps them into a shared
    space where matching audio and video lie close together.

    Parameters
    ----------
    audio_encoder : {"whisper-tiny", "effnet-mel"}, default="whisper-tiny"
        Pretrained audio encoder. "whisper-tiny": the Whisper tiny.en encoder
        (a middle and the final layer, mean-pooled over time). "effnet-mel":
        ImageNet EfficientNet-Lite0 on log-mel images.
    visual_encoder : {"efficientnet-lite0"}, default="efficientnet-lite0"
        Pretrained visual encoder, applied to ``n_visual_frames`` frames per clip.
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
    fps : float, default=25.0
        Video frame rate assumed for ``(audio, frames)`` pairs.
    device : {"auto", "cpu", "cuda"}, default="auto"
        Where the encoders run; "auto" takes CUDA when onnxruntime-gpu sees a GPU.
        On CUDA, ``n_jobs=-1`` lets threads decode clips while the encoders merge
        their frames into full GPU batches.
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
    sync_head_ : SyncHead
        Only when fitted with ``sync=True``.
    localization_head_ : LocalizationHead
        Only when fitted with ``localization=True``.

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
        "audio_encoder": [StrOptions(set(AUDIO_ENCODERS))],
        "visual_encoder": [StrOptions(set(VISUAL_ENCODERS))],
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
        return AUDIO_ENCODERS[self.audio_encoder].sample_rate

    @property
    def video_frame_rate(self):
        """Frame rate (frames/s) assumed for ``(audio, frames)`` pairs."""
        return float(self.fps)

    # -- encoding ---------------------------------------------------------------------
    def _log(self, level, message):
        if self.verbose >= level:
            print(f"[{type(self).__name__}] {message}", flush=True)

    def _n_threads(self):
        n_jobs = effective_n_jobs(self.n_jobs)
        return None if n_jobs == 1 else max(1, (os.cpu_count() or 1) // n_jobs)

    def _encoders(self):
        """Fitted encoders when there are any, else fresh shared ones for the current parameters."""
        if hasattr(self, "audio_encoder_"):
            return self.audio_encoder_, self.visual_encoder_
        n_threads = self._n_threads()
        return (
            _shared_encoder("audio", self.audio_encoder, self.device, n_threads, self.precision),
            _shared_encoder("visual", self.visual_encoder, self.device, n_threads, self.precision),
        )

    def _cached(self, func, encoder):
        """``func(x, encoder, key)`` as ``encode(x)``, cached by ``x``'s content when ``memory`` is set.

        The encoder object is not hashed; its name and graph sha256 (the key) are.
        """
        cached = check_memory(self.memory).cache(func, ignore=["encoder"])
        key = (encoder.name, encoder.sha256)
        return lambda x: cached(x, encoder, key)

    def _map(self, func, items):
        """``[func(item, where) ...]``, in parallel when ``n_jobs`` or a joblib backend asks for it.

        Under ``joblib.parallel_backend(...)`` / ``parallel_config(backend=...)`` (dask,
        ray, loky...) the jobs always go through ``Parallel`` without a ``prefer``
        hint, so the user's backend decides where they run even with ``n_jobs=None``
        (a one-thread dask cluster included), in chunks of clips.
        """
        from joblib import parallel

        # joblib >= 1.3 keeps the context's backend here (unset: a `default(None)` sentinel);
        # joblib's sequential backend, set in its workers for nested calls, asks for none.
        backend = (getattr(parallel._backend, "config", None) or {}).get("backend")
        user_backend = isinstance(backend, parallel.ParallelBackendBase) and not isinstance(
            backend, parallel.SequentialBackend
        )
        items = list(items)
        verbose = max(0, self.verbose - 1)
        # numpy's BLAS threads spin after each call and take the cores of the onnxruntime run
        # that follows (a BLAS matmul in the Whisper log-mel made it 1.4x slower on 2 cores).
        with threadpool_limits(limits=1, user_api="blas"):
            return self._map_items(func, items, user_backend, verbose)

    def _map_items(self, func, items, user_backend, verbose):
        if user_backend:
            # Clips travel in chunks: each task unpickles the encoders and opens their
            # onnxruntime sessions (~1 s), which one task per clip would pay per clip.
            # ~4 chunks per worker balance the load; at most 64 clips keep results small.
            size = max(1, min(64, -(-len(items) // (4 * effective_n_jobs(self.n_jobs)))))

            def run_chunk(start, chunk):
                return [func(item, f"X[{start + j}]") for j, item in enumerate(chunk)]

            chunks = Parallel(n_jobs=self.n_jobs, verbose=verbose)(
                delayed(run_chunk)(lo, items[lo : lo + size]) for lo in range(0, len(items), size)
            )
            return [result for chunk in chunks for result in chunk]
        if effective_n_jobs(self.n_jobs) == 1:
            return [func(item, f"X[{i}]") for i, item in enumerate(items)]
        jobs = (delayed(func)(item, f"X[{i}]") for i, item in enumerate(items))
        return Parallel(n_jobs=self.n_jobs, prefer="threads", verbose=verbose)(jobs)

    def _audio_job(self, encoder):
        encode = self._cached(_encode_audio, encoder)
        sr = encoder.sample_rate

        def job(item, where, input_rate=None):
            audio = resolve_audio(item, sample_rate=sr, input_rate=input_rate or sr, where=where)
            return encode(audio).mean(axis=0)

        return job

    def _frame_sampler(self):
        n = self.n_visual_frames
        return lambda n_frames: sample_frame_indices(n_frames, n)

    def _visual_job(self, encoder):
        encode = self._cached(_encode_frames, encoder)
        sampler = self._frame_sampler()

        def job(item, where):
            frames = resolve_frames(item, sample_rate=self.audio_sample_rate, where=where, frame_sampler=sampler)
            return encode(frames).mean(axis=0)

        return job

    def _pair_features(self, X):
        """Pooled audio and visual encoder features of each clip, shapes (n, Fa) and (n, Fv)."""
        audio_encoder, visual_encoder = self._encoders()
        audio_job, visual_job = self._audio_job(audio_encoder), self._visual_job(visual_encoder)
        sr, fps, sampler = audio_encoder.sample_rate, self.fps, self._frame_sampler()

        def job(item, where):
            # Frames come sampled already; the visual job's sampler then keeps them all.
            audio, frames = resolve_pair(item, sample_rate=sr, fps=fps, where=where, frame_sampler=sampler)
            return audio_job(audio, where), visual_job(frames, where)

        t0 = time.perf_counter()
        pairs = self._map(job, X)
        self._log(1, f"encoded {len(X)} clips in {time.perf_counter() - t0:.1f} s")
        A = np.stack([p[0] for p in pairs]).astype(np.float64)
        V = np.stack([p[1] for p in pairs]).astype(np.float64)
        return A, V

    def _audio_features(self, X, sample_rate=None):
        audio_encoder, _ = self._encoders()
        job = self._audio_job(audio_encoder)
        input_rate = None if sample_rate is None else check_sample_rate(sample_rate, minimum=1000)
        X = check_collection(X)
        return np.stack(self._map(lambda item, where: job(item, where, input_rate), X)).astype(np.float64)

    def _visual_features(self, X):
        _, visual_encoder = self._encoders()
        X = check_collection(X)
        return np.stack(self._map(self._visual_job(visual_encoder), X)).astype(np.float64)

    # -- training ---------------------------------------------------------------------
    def _fit_preprocessors(self, A, V):
        self.audio_preprocessor_ = _make_preprocessor(self.n_components, A.shape).fit(A)
        self.visual_preprocessor_ = _make_preprocessor(self.n_components, V.shape).fit(V)

    def _initialise(self, A, V):
        self.audio_encoder_, self.visual_encoder_ = self._encoders()
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
        self.optimizer_ = Adam(self.head_params_, learning_rate=self.learning_rate)
        self.loss_curve_ = []
        self.n_iter_ = 0

    def _train(self, A, V, epochs):
        A = self.audio_preprocessor_.transform(A)
        V = self.visual_preprocessor_.transform(V)
        batch_size = min(self.batch_size, A.shape[0])
        t0 = time.perf_counter()
        for epoch in range(epochs):
            loss = train_epoch(
                self.head_params_, self.optimizer_, A, V, batch_size, self._rng,
                learn_temperature=self.learn_temperature, alpha=self.alpha,
            )
            if not np.isfinite(loss):
                raise FloatingPointError(
                    f"the InfoNCE loss diverged at epoch {self.n_iter_ + 1}; lower learning_rate"
                )
            self.loss_curve_.append(loss)
            self.n_iter_ += 1
            if self.verbose >= 2 or (self.verbose and (epoch + 1) % 10 == 0):
                self._log(1, f"epoch {self.n_iter_}: loss {loss:.4f} ({time.perf_counter() - t0:.1f} s)")
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
        y : None
            Ignored; present for API consistency (pipelines pass labels through).
        epochs : int or None, default=None
            Overrides the ``epochs`` parameter for this call.

        Returns
        -------
        self : AVCorrespondence
        """
        if epochs is not None and (not isinstance(epochs, Integral) or epochs < 1):
            raise ValueError(f"epochs must be a positive integer; got {epochs!r}")
        X = self._check_n_pairs(X)
        for attr in ("audio_encoder_", "visual_encoder_"):
            self.__dict__.pop(attr, None)  # refit with the current encoder parameters
        A, V = self._pair_features(X)
        self._fit_preprocessors(A, V)
        self._initialise(A, V)
        self._train(A, V, self.epochs if epochs is None else epochs)
        self.__dict__.pop("sync_head_", None)
        if self.sync:
            self._fit_sync(X, self._rng)
        self.__dict__.pop("localization_head_", None)
        if self.localization:
            self._fit_localization(X, self._rng)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """One epoch over a new batch of paired clips (for streams too large for memory).

        The first call initialises the heads and fits the feature
        standardisation and whitening, which later calls keep (so the heads'
        inputs do not drift): make the first batch representative.

        Only the correspondence heads learn here: the sync and localisation
        heads (``sync=True``, ``localization=True``) are trained by :meth:`fit`,
        and without them :meth:`predict_offset` and :meth:`localize` use their
        training-free methods (``method="auto"``).

        Parameters
        ----------
        X : sequence of AVClip, (audio, frames) pairs or video paths, length >= 2
        y : None
            Ignored.

        Returns
        -------
        self : AVCorrespondence
        """
        X = self._check_n_pairs(X)
        first_call = not hasattr(self, "head_params_")
        A, V = self._pair_features(X)
        if first_call:
            self._fit_preprocessors(A, V)
            self._initialise(A, V)
        self._train(A, V, 1)
        return self

    # -- embeddings -------------------------------------------------------------------
    def transform_audio(self, X, sample_rate=None):
        """Audio embeddings.

        Parameters
        ----------
        X : sequence of AVClip, (audio, frames) pairs, video paths or 1-D waveforms
        sample_rate : int or None, default=None
            Rate of bare waveforms in ``X``; None means :attr:`audio_sample_rate`.
            Waveforms at another rate are resampled.

        Returns
        -------
        embeddings : ndarray of shape (n_clips, embedding_dim), float32
            L2-normalised rows.
        """
        check_is_fitted(self, "head_params_")
        A = self.audio_preprocessor_.transform(self._audio_features(X, sample_rate))
        return project(self.head_params_, A, "audio").astype(np.float32)

    def transform_visual(self, X):
        """Visual embeddings.

        Parameters
        ----------
        X : sequence of AVClip, (audio, frames) pairs, video paths or uint8 frame arrays (T, H, W, 3)

        Returns
        -------
        embeddings : ndarray of shape (n_clips, embedding_dim), float32
            L2-normalised rows.
        """
        check_is_fitted(self, "head_params_")
        V = self.visual_preprocessor_.transform(self._visual_features(X))
        return project(self.head_params_, V, "visual").astype(np.float32)

    def _embed_pairs(self, X):
        check_is_fitted(self, "head_params_")
        A, V = self._pair_features(check_collection(X))
        Ea = project(self.head_params_, self.audio_preprocessor_.transform(A), "audio")
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
        d = self.embedding_dim
        return np.asarray(
            [f"{prefix}_audio{i}" for i in range(d)] + [f"{prefix}_visual{i}" for i in range(d)], dtype=object
        )

    def correspondence(self, X):
        """How well each clip's sound matches its pictures.

        Parameters
        ----------
        X : sequence of AVClip, (audio, frames) pairs or video paths

        Returns
        -------
        scores : ndarray of shape (n_clips,)
            Cosine similarity of the audio and visual embeddings, in [-1, 1];
            higher means a better match.
        """
        Ea, Ev = self._embed_pairs(X)
        return np.sum(Ea.astype(np.float64) * Ev, axis=1)

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

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False  # X holds clips, not a feature table
        tags.target_tags.required = False
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags
