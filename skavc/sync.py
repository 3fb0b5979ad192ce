"""Audio-visual synchronisation: how far the sound is ahead of (or behind) the picture.

Two estimators share one output, a *sync curve* (score per candidate offset):

- learned: a SyncNet-style head trained inside ``AVCorrespondence.fit(sync=True)``.
  Audio and visual encoder features are brought to one 50 Hz grid, stacked over a
  short temporal context, projected, and trained with InfoNCE where the negatives of
  an audio window are the *same clip's* frames at other times, so the head learns
  timing rather than semantics. The curve is the mean audio-visual similarity along
  each diagonal of the (audio time, video time) similarity matrix.
- signal: training-free, visual motion energy against audio onset strength with a
  whitened (GCC-PHAT-like) cross-correlation, see :mod:`skavc._sync_signal`.

Convention: offsets are in seconds, positive when the audio is AHEAD of the video
(a sound is heard before the picture shows its cause).
"""

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ._head import Adam, infonce_loss_and_grads, init_head_params, project
from ._inputs import check_collection, resolve_clip

# The learned head works on a fixed time grid, so a model trained at 25 fps applies at 30 or 50.
SYNC_RATE = 50.0
# Temporal context of one window, in grid steps (+-80 ms).
_CONTEXT = (-4, -2, 0, 2, 4)
_METHODS = ("auto", "learned", "signal", "naive")


def grid_times(duration, rate=SYNC_RATE):
    """Centres of the grid steps covering ``duration`` seconds, shape (n_steps,)."""
    n = max(1, int(np.floor(duration * rate)))
    return (np.arange(n) + 0.5) / rate


def resample_track(features, times, grid):
    """Linearly interpolate per-time features onto ``grid`` (held constant beyond the ends).

    Parameters
    ----------
    features : ndarray of shape (n_times, n_features)
    times : ndarray of shape (n_times,), increasing
    grid : ndarray of shape (n_grid,)

    Returns
    -------
    resampled : ndarray of shape (n_grid, n_features)
    """
    if features.shape[0] == 1:
        return np.repeat(features, grid.shape[0], axis=0)
    pos = np.interp(grid, times, np.arange(times.shape[0], dtype=np.float64))
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, times.shape[0] - 1)
    w = (pos - lo)[:, None]
    return (1 - w) * features[lo] + w * features[hi]


def context_windows(track, context=_CONTEXT):
    """Each step's features with its temporal derivative, stacked over ``context`` steps.

    Parameters
    ----------
    track : ndarray of shape (n_steps, n_features)

    Returns
    -------
    windows : ndarray of shape (n_steps, 2 * n_features * len(context))
    """
    delta = np.diff(track, axis=0, prepend=track[:1])
    both = np.hstack([track, delta])
    n = both.shape[0]
    idx = np.clip(np.arange(n)[:, None] + np.asarray(context)[None, :], 0, n - 1)
    return both[idx].reshape(n, -1)


def clip_tracks(audio_features, audio_rate, frame_features, fps, duration):
    """Audio and visual encoder features of one clip on the common sync grid.

    Parameters
    ----------
    audio_features : ndarray of shape (n_audio_steps, n_audio_features)
        Audio encoder output; step ``j`` is centred at ``(j + 0.5) / audio_rate``.
    audio_rate : float
    frame_features : ndarray of shape (n_frames, n_visual_features)
        Visual encoder output per frame; frame ``k`` is shown at ``k / fps``.
    fps : float
    duration : float
        Clip length in seconds.

    Returns
    -------
    audio_track : ndarray of shape (n_steps, n_audio_features)
    visual_track : ndarray of shape (n_steps, n_visual_features)
    """
    grid = grid_times(duration)
    a_times = (np.arange(audio_features.shape[0]) + 0.5) / audio_rate
    v_times = np.arange(frame_features.shape[0]) / fps
    return resample_track(audio_features, a_times, grid), resample_track(frame_features, v_times, grid)


def diagonal_curve(audio_embeddings, visual_embeddings, max_steps):
    """Mean similarity of audio step ``i`` with video step ``i + lag`` for each lag.

    Parameters
    ----------
    audio_embeddings, visual_embeddings : ndarray of shape (n_steps, dim)
    max_steps : int
        Largest lag tried, in grid steps.

    Returns
    -------
    lags : ndarray of shape (2 * max_steps + 1,)
    scores : ndarray of shape (2 * max_steps + 1,)
        Positive lags mean the video matches the audio later: audio ahead.
    """
    n = audio_embeddings.shape[0]
    lags = np.arange(-max_steps, max_steps + 1)
    scores = np.empty(lags.shape[0])
    for j, lag in enumerate(lags):
        a = audio_embeddings[max(0, -lag) : n - max(0, lag)]
        v = visual_embeddings[max(0, lag) : n - max(0, -lag)]
        scores[j] = np.mean(np.sum(a * v, axis=1))
    return lags, scores


class SyncHead:
    """The learned sync model: preprocessing and projection heads over context windows.

    Parameters
    ----------
    n_components : int
        PCA-whitened width per modality before the context stacking.
    embedding_dim : int
    temperature : float
    learning_rate : float
    alpha : float
        L2 penalty.
    """

    def __init__(self, n_components=24, embedding_dim=32, temperature=0.1, learning_rate=1e-3, alpha=1e-4):
        self.n_components = n_components
        self.embedding_dim = embedding_dim
        self.temperature = temperature
        self.learning_rate = learning_rate
        self.alpha = alpha

    def _windows(self, track, modality):
        pre = self.preprocessors_[modality]
        return context_windows(pre.transform(track))

    def fit(self, audio_tracks, visual_tracks, epochs, rng, log=None):
        """Train on per-clip tracks (lists of (n_steps_i, F) arrays); returns self."""
        from ._correspondence import _make_preprocessor

        A_all, V_all = np.vstack(audio_tracks), np.vstack(visual_tracks)
        self.preprocessors_ = {
            "audio": _make_preprocessor(self.n_components, A_all.shape).fit(A_all),
            "visual": _make_preprocessor(self.n_components, V_all.shape).fit(V_all),
        }
        windows = [(self._windows(a, "audio"), self._windows(v, "visual")) for a, v in zip(audio_tracks, visual_tracks)]
        n_in_a, n_in_v = windows[0][0].shape[1], windows[0][1].shape[1]
        self.params_ = init_head_params(n_in_a, n_in_v, self.embedding_dim, None, self.temperature, rng)
        optimizer = Adam(self.params_, learning_rate=self.learning_rate)
        self.loss_curve_ = []
        for epoch in range(epochs):
            losses = []
            # One minibatch per clip: every other time step of the same clip is a negative.
            for i in rng.permutation(len(windows)):
                Wa, Wv = windows[i]
                if Wa.shape[0] < 2:
                    continue
                loss, grads = infonce_loss_and_grads(self.params_, Wa, Wv, learn_temperature=False, alpha=self.alpha)
                optimizer.step(self.params_, grads)
                losses.append(loss)
            self.loss_curve_.append(float(np.mean(losses)) if losses else float("nan"))
            if log is not None:
                log(epoch + 1, self.loss_curve_[-1])
        return self

    def embed(self, audio_track, visual_track):
        """Unit-norm sync embeddings of one clip's tracks, each (n_steps, embedding_dim)."""
        return (
            project(self.params_, self._windows(audio_track, "audio"), "audio"),
            project(self.params_, self._windows(visual_track, "visual"), "visual"),
        )

    def curve(self, audio_track, visual_track, max_offset):
        """Sync curve of one clip: offsets (s) and scores."""
        from ._sync_signal import null_standardise

        Ea, Ev = self.embed(audio_track, visual_track)
        # Score every lag with at least half the clip overlapping, express the scores in chance
        # units over all of them (as the signal curve does, so one confidence scale serves
        # both), then keep the lags within max_offset.
        lags, scores = diagonal_curve(Ea, Ev, max(1, Ea.shape[0] // 2))
        scores = null_standardise(scores)
        keep = np.abs(lags) <= _max_lag_steps(Ea.shape[0], max_offset, SYNC_RATE)
        return lags[keep] / SYNC_RATE, scores[keep]


def _max_lag_steps(n_steps, max_offset, rate):
    """Lags searched: ``max_offset`` seconds, but never beyond half the clip (too little overlap)."""
    return int(max(1, min(round(max_offset * rate), n_steps // 2)))


def _check_method(method):
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}; got {method!r}")


class SyncMixin:
    """``predict_offset`` and ``sync_curve`` for :class:`skavc.AVCorrespondence`."""

    def _resolve_method(self, method):
        _check_method(method)
        if method == "auto":
            return "learned" if hasattr(self, "sync_head_") else "signal"
        if method == "learned":
            check_is_fitted(self, "sync_head_", msg=(
                "method='learned' needs a sync head: fit with sync=True first, or use method='signal'"
            ))
        return method

    def _sync_job(self, method):
        from . import _sync_signal

        max_offset = self.max_offset
        if method == "learned":
            track_job = self._track_job()

            def job(item, where):
                a_track, v_track, _ = track_job(item, where)
                return self.sync_head_.curve(a_track, v_track, max_offset)

            return job

        curve_fn = _sync_signal.signal_sync_curve if method == "signal" else _sync_signal.naive_sync_curve
        sr = self.audio_sample_rate

        def job(item, where):
            clip = resolve_clip(item, sample_rate=sr, fps=self.fps, where=where)
            return curve_fn(clip.audio, clip.sample_rate, clip.frames, clip.fps, max_offset=max_offset)

        return job

    def sync_curve(self, X, method="auto"):
        """Score of every candidate offset, per clip.

        Parameters
        ----------
        X : sequence of AVClip, (audio, frames) pairs or video paths
        method : {"auto", "learned", "signal", "naive"}, default="auto"
            "learned" uses the sync head trained by ``fit`` with ``sync=True``;
            "signal" the training-free motion/onset correlation (usable before
            any fit); "naive" plain energy cross-correlation (a baseline);
            "auto" is "learned" when a sync head was trained, else "signal".

        Returns
        -------
        curves : list of (offsets, scores)
            Per clip, ``offsets`` (seconds, positive = audio ahead, within
            ``max_offset``) and their ``scores`` (higher = better aligned),
            both of shape (n_offsets,).
        """
        method = self._resolve_method(method)
        X = check_collection(X)
        return self._map(self._sync_job(method), X)

    def predict_offset(self, X, return_confidence=False, method="auto"):
        """Audio-visual offset of each clip, in seconds (positive = audio ahead of video).

        The best offset within ``max_offset`` is refined between grid points
        by parabolic interpolation of the sync curve.

        Parameters
        ----------
        X : sequence of AVClip, (audio, frames) pairs or video paths
        return_confidence : bool, default=False
            Also return a confidence per clip.
        method : {"auto", "learned", "signal", "naive"}, default="auto"
            See :meth:`sync_curve`.

        Returns
        -------
        offsets : ndarray of shape (n_clips,)
        confidence : ndarray of shape (n_clips,), only when ``return_confidence``
            In [0, 1], from how far the curve's peak stands above the rest of
            it: 0 for a flat curve (silence, static frames); above
            :data:`skavc._sync_signal.SYNC_CONFIDENCE_THRESHOLD` the estimate can be
            trusted (see docs/sync.md for how that threshold was measured).
        """
        from ._sync_signal import peak_offset

        results = [peak_offset(offsets, scores) for offsets, scores in self.sync_curve(X, method=method)]
        offsets = np.array([r[0] for r in results], dtype=np.float64)
        if not return_confidence:
            return offsets
        return offsets, np.array([r[1] for r in results], dtype=np.float64)

    # -- training, called from AVCorrespondence.fit -------------------------------------
    def _track_job(self):
        """Job mapping an item to its (audio_track, visual_track, clip_duration) on the sync grid."""
        from ._correspondence import _encode_audio, _encode_frames

        audio_encoder, visual_encoder = self._encoders()
        encode_audio = self._cached(_encode_audio, audio_encoder)
        encode_frames = self._cached(_encode_frames, visual_encoder)
        sr = audio_encoder.sample_rate

        def job(item, where):
            clip = resolve_clip(item, sample_rate=sr, fps=self.fps, where=where)
            a = encode_audio(clip.audio)
            v = encode_frames(clip.frames)
            duration = min(clip.duration, clip.n_frames / clip.fps)
            a_track, v_track = clip_tracks(a, audio_encoder.frame_rate, v, clip.fps, duration)
            return a_track, v_track, duration

        return job

    def _fit_sync(self, X, rng):
        tracks = self._map(self._track_job(), X)

        def log(epoch, loss):
            if self.verbose >= 2 or (self.verbose and epoch % 10 == 0):
                self._log(1, f"sync epoch {epoch}: loss {loss:.4f}")

        self.sync_head_ = SyncHead(learning_rate=self.learning_rate, alpha=self.alpha).fit(
            [t[0] for t in tracks], [t[1] for t in tracks], self.sync_epochs, rng, log
        )
