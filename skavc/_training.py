"""The one training loop every head uses: minibatches, Adam, epochs with logging and a divergence check.

The correspondence heads (:func:`train_epoch`), the sync head and the localisation head all
train through :func:`run_epochs`, so the log lines, the ``verbose`` rule and the error on a
diverged loss are written once.
"""

import time

import numpy as np

from ._head import infonce_loss_and_grads
from ._progress import progress_bar, written_beside

# Below this many elements, allocating the update costs less than the extra in-place calls.
_IN_PLACE_MIN_SIZE = 8192


def minibatches(n, batch_size, rng):
    """Shuffled minibatches of ``range(n)``, as index arrays.

    ``rng.permutation(n)`` is drawn once, when the generator starts. A last minibatch of a
    single item is merged into the previous one: a contrastive loss needs at least one negative.

    Parameters
    ----------
    n : int
    batch_size : int
    rng : numpy.random.RandomState

    Yields
    ------
    indices : ndarray of shape (batch_size_i,)
    """
    order = rng.permutation(n)
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] < 2:
        starts.pop()
    for i, start in enumerate(starts):
        yield order[start : starts[i + 1] if i + 1 < len(starts) else n]


def progress_logger(verbose, log, what=None):
    """``log(epoch, loss)`` callback printing ``"[what ]epoch N: loss L (T s)"`` through ``log(message)``.

    ``verbose`` 1 prints every 10th epoch, 2 and above every epoch, 0 nothing (returns None);
    ``T`` is the time since the callback was made.
    """
    if not verbose:
        return None
    start = time.perf_counter()
    prefix = f"{what} epoch" if what else "epoch"

    def report(epoch, loss):
        if verbose >= 2 or epoch % 10 == 0:
            log(f"{prefix} {epoch}: loss {loss:.4f} ({time.perf_counter() - start:.1f} s)")

    report.what = f"{what} epochs" if what else "epochs"  # the progress bar's name (run_epochs)
    return report


def run_epochs(epoch, n_epochs, *, first_epoch=1, log=None, what="loss", hint="lower learning_rate"):
    """Run ``epoch()`` ``n_epochs`` times; returns the losses it gave.

    Parameters
    ----------
    epoch : callable returning float
        One pass over the training data; returns its mean loss.
    n_epochs : int
    first_epoch : int, default=1
        Number of the first epoch in log lines and errors (``partial_fit`` goes on counting).
    log : callable(epoch, loss) or None
        As :func:`progress_logger` returns; given, a progress bar over the epochs (with the
        loss) goes to stderr too.
    what : str
        Name of the loss in the error.
    hint : str
        What to do about a diverged loss.

    Returns
    -------
    losses : list of float

    Raises
    ------
    FloatingPointError
        When an epoch's loss is not finite.
    """
    losses = []
    bar = progress_bar(total=n_epochs, desc=getattr(log, "what", "epochs"), unit="epoch", enabled=log is not None)
    try:
        for number in range(first_epoch, first_epoch + n_epochs):
            loss = float(epoch())
            if not np.isfinite(loss):
                raise FloatingPointError(f"the {what} diverged at epoch {number}; {hint}")
            losses.append(loss)
            if log is not None:
                bar.set_postfix_str(f"loss {loss:.4f}", refresh=False)
                bar.update(1)
                with written_beside(bar):
                    log(number, loss)
    finally:
        if bar is not None:
            bar.close()
    return losses


def train_epoch(params, optimizer, A, V, batch_size, rng, learn_temperature=True, alpha=0.0):
    """One pass of symmetric InfoNCE over shuffled minibatches of paired rows; returns the mean loss."""
    losses = []
    for idx in minibatches(A.shape[0], batch_size, rng):
        loss, grads = infonce_loss_and_grads(params, A[idx], V[idx], learn_temperature, alpha)
        optimizer.step(params, grads)
        losses.append(loss)
    return float(np.mean(losses))


class Adam:
    """Adam (Kingma and Ba, 2015) over a dict of arrays; its state pickles with the estimator.

    Large arrays (weight matrices) and their moments are updated in place, through
    scratch buffers kept between steps, with the same arithmetic as the expression
    used for small ones: ``m = b1 m + (1 - b1) g``, ``v = b2 v + (1 - b2) g g``,
    ``p = p - lr_t m / (sqrt(v) + eps)``. A parameter that cannot be updated in place
    (a 0-d log temperature, a read-only memory map) is replaced by the update.

    Parameters
    ----------
    params : dict of str to ndarray
    learning_rate, beta1, beta2, epsilon : float
    bounds : dict of str to (float, float) or None
        Parameters clipped to ``[low, high]`` after every step (a learnt log temperature).
    """

    def __init__(self, params, learning_rate=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8, bounds=None):
        self.learning_rate = learning_rate
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon
        self.bounds = dict(bounds or {})
        self.t = 0
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_scratch", None)  # scratch space, rebuilt on the next step
        return state

    def _buffers(self, g):
        """Two scratch arrays shaped like ``g``, views of buffers kept between steps."""
        scratch = self.__dict__.setdefault("_scratch", {})
        bufs = scratch.get(g.dtype)
        if bufs is None or bufs[0].size < g.size:
            bufs = scratch[g.dtype] = (np.empty(g.size, g.dtype), np.empty(g.size, g.dtype))
        return bufs[0][: g.size].reshape(g.shape), bufs[1][: g.size].reshape(g.shape)

    def step(self, params, grads):
        """Update ``params`` in place."""
        self.t += 1
        # Python floats: numpy scalars would promote float32 parameters to float64.
        b1, b2, eps = float(self.beta1), float(self.beta2), float(self.epsilon)
        lr_t = float(self.learning_rate * np.sqrt(1 - b2**self.t) / (1 - b1**self.t))
        for key, g in grads.items():
            m, v, p = self.m[key], self.v[key], params[key]
            if getattr(g, "size", 0) < _IN_PLACE_MIN_SIZE or not (
                _in_place_ok(p, g) and _in_place_ok(m, g) and _in_place_ok(v, g)
            ):
                self.m[key] = m = b1 * m + (1 - b1) * g
                self.v[key] = v = b2 * v + (1 - b2) * g * g
                params[key] = p - lr_t * m / (np.sqrt(v) + eps)
                continue
            t1, t2 = self._buffers(g)
            m *= b1
            np.multiply(g, 1 - b1, out=t1)
            m += t1
            v *= b2
            np.multiply(g, 1 - b2, out=t1)
            t1 *= g
            v += t1
            np.sqrt(v, out=t1)
            t1 += eps
            np.multiply(m, lr_t, out=t2)
            t2 /= t1
            p -= t2
        for key, (low, high) in self.bounds.items():
            params[key] = np.clip(params[key], low, high)


def _in_place_ok(x, g):
    """Whether ``x`` (a parameter or moment) can take an in-place update by the gradient ``g``."""
    return type(x) is np.ndarray and x.flags.writeable and x.shape == g.shape and x.dtype == g.dtype
