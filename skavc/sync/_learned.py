"""The learned sync model: a SyncNet-style head over both modalities' tracks on one grid.

Audio and visual encoder features are brought to one 50 Hz grid (:meth:`skavc._encoding.
EncodingContext.tracks`), stacked over a short temporal context, projected, and trained with
InfoNCE where the negatives of an audio window are the *same clip's* frames at other times, so
the head learns timing rather than semantics. The curve is the mean audio-visual similarity along
each diagonal of the (audio time, video time) similarity matrix.
"""

import numpy as np

from .._encoding import TRACK_RATE
from .._head import infonce_loss_and_grads, init_head_params, make_preprocessor, project
from .._training import Adam, run_epochs
from ._signal import null_standardise

# The learned head works on a fixed time grid, so a model trained at 25 fps applies at 30 or 50.
SYNC_RATE = TRACK_RATE
# Temporal context of one window, in grid steps (+-80 ms).
_CONTEXT = (-4, -2, 0, 2, 4)


def context_windows(track, context=_CONTEXT):
    """Each step's features with its temporal derivative, stacked over ``context`` steps.

    Parameters
    ----------
    track : ndarray of shape (n_steps, n_features)

    Returns
    -------
    windows : ndarray of shape (n_steps, 2 * n_features * len(context))

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.sync import context_windows
    >>> track = np.arange(12.0).reshape(6, 2)  # 6 grid steps of 2 features
    >>> context_windows(track).shape  # features and deltas, at 5 steps from -4 to +4 (clipped at the ends)
    (6, 20)
    >>> context_windows(track, context=(-1, 0, 1))[2]  # step 2: steps 1, 2 and 3, each (features, deltas)
    array([2., 3., 2., 2., 4., 5., 2., 2., 6., 7., 2., 2.])
    """
    delta = np.diff(track, axis=0, prepend=track[:1])
    both = np.hstack([track, delta])
    n = both.shape[0]
    idx = np.clip(np.arange(n)[:, None] + np.asarray(context)[None, :], 0, n - 1)
    return both[idx].reshape(n, -1)


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

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.sync import diagonal_curve
    >>> audio = np.random.default_rng(0).standard_normal((50, 4))
    >>> audio /= np.linalg.norm(audio, axis=1, keepdims=True)  # unit-norm embeddings, one per grid step
    >>> visual = np.roll(audio, 3, axis=0)  # the picture shows each sound 3 steps later
    >>> lags, scores = diagonal_curve(audio, visual, 5)
    >>> lags.shape, int(lags[scores.argmax()]), round(float(scores.max()), 2)  # positive: audio ahead
    ((11,), 3, 1.0)
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

    Examples
    --------
    >>> import numpy as np
    >>> from skavc.sync import SyncHead
    >>> rng = np.random.RandomState(0)
    >>> audio = [rng.randn(200, 8) for _ in range(4)]  # 4 clips' tracks (n_steps, F) on the 50 Hz grid: 4 s
    >>> visual = [a + 0.5 * rng.randn(200, 8) for a in audio]  # features that follow the sound's
    >>> head = SyncHead(n_components=4, embedding_dim=8).fit(audio, visual, epochs=20, rng=rng)
    >>> offsets, scores = head.curve(audio[0], np.roll(visual[0], 5, axis=0), max_offset=0.5)  # picture 0.1 s late
    >>> offsets.shape, round(float(offsets[scores.argmax()]), 2), bool(scores.max() > 5)  # s, audio ahead
    ((51,), 0.1, True)
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
        """Train on per-clip tracks (lists of (n_steps_i, F) arrays); returns self.

        ``log(epoch, loss)`` is called after every epoch (:func:`skavc._training.progress_logger`).
        """
        A_all, V_all = np.vstack(audio_tracks), np.vstack(visual_tracks)
        self.preprocessors_ = {
            "audio": make_preprocessor(self.n_components, A_all.shape).fit(A_all),
            "visual": make_preprocessor(self.n_components, V_all.shape).fit(V_all),
        }
        windows = [(self._windows(a, "audio"), self._windows(v, "visual")) for a, v in zip(audio_tracks, visual_tracks)]
        if not any(Wa.shape[0] >= 2 for Wa, _ in windows):
            raise ValueError("the sync head needs clips of at least two grid steps (40 ms); all are shorter")
        n_in_a, n_in_v = windows[0][0].shape[1], windows[0][1].shape[1]
        self.params_ = init_head_params(n_in_a, n_in_v, self.embedding_dim, None, self.temperature, rng)
        optimizer = Adam(self.params_, learning_rate=self.learning_rate)

        def epoch():
            losses = []
            # One minibatch per clip: every other time step of the same clip is a negative.
            for i in rng.permutation(len(windows)):
                Wa, Wv = windows[i]
                if Wa.shape[0] < 2:
                    continue
                loss, grads = infonce_loss_and_grads(self.params_, Wa, Wv, learn_temperature=False, alpha=self.alpha)
                optimizer.step(self.params_, grads)
                losses.append(loss)
            return np.mean(losses)

        self.loss_curve_ = run_epochs(epoch, epochs, log=log, what="sync head's InfoNCE loss")
        return self

    def embed(self, audio_track, visual_track):
        """Unit-norm sync embeddings of one clip's tracks, each (n_steps, embedding_dim)."""
        return (
            project(self.params_, self._windows(audio_track, "audio"), "audio"),
            project(self.params_, self._windows(visual_track, "visual"), "visual"),
        )

    def curve(self, audio_track, visual_track, max_offset):
        """Sync curve of one clip: offsets (s) and scores."""
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
