"""Projection-head training time against the number of pairs, skavc (numpy) against PyTorch.

Prints one table. For each number of pairs n, both implementations train the same heads
from the same initial parameters on the same random standardised features, with the same
minibatches (one ``numpy.random.RandomState`` permutation per epoch, a lone last pair merged
into the previous batch). Their epochs run in alternating blocks (skavc, torch, torch, skavc,
...; at least 0.3 s each, with a 0.2 s pause before each block so that the other library's
idle worker threads stop spinning first), so that load from other processes hits them alike.

skavc runs exactly the calls ``AVCorrespondence._train`` makes: ``train_epoch(params,
Adam(...), A, V, batch_size, rng, learn_temperature=..., alpha=...)`` on float64 features,
with weights and biases cast to float32 before ``Adam`` is created, as the estimator does
(skavc then computes in float32), or kept float64 with ``--skavc-dtype float64``. The reference is the same computation in PyTorch eager (``TorchHead`` below:
linear or one-hidden-ReLU heads, L2 normalisation, symmetric cross-entropy at temperature
``exp(log_temperature)``, L2 penalty ``alpha`` on the weight matrices, skavc's Adam variant
through ``torch.optim.Adam(fused=True)``, torch's fastest on CPU, log temperature clipped to
[0.01, 1]) in ``--torch-dtype`` (float32 by default), with ``torch.set_num_threads(--threads)``;
numpy's BLAS is limited to the same number of threads. ``tests/test_head.py`` checks that
both take the same steps (same losses, same parameters after each Adam step).

Reported per n: median seconds per epoch over at least ``--epochs`` epochs, and over at least
``--min-seconds`` of training per implementation (more epochs for small n; after a short
warm-up), pairs per second, the ratio skavc/torch (below 1: skavc is faster), seconds per
epoch per 1000 pairs (flat when time grows linearly in n, as it should at a fixed batch
size), the number of epochs timed (skavc/torch), and the mean loss of the last epoch both ran
(the same to rounding: a check that both trained alike). Usage::

    python benchmarks/bench_head.py [--pairs 1000 10000 100000] [--epochs 5] [--features 32]
        [--head linear|mlp] [--hidden-units 512] [--embedding-dim 128] [--batch-size 64]
        [--skavc-dtype float32|float64] [--torch-dtype float32|float64] [--threads 2]
        [--learn-temperature] [--min-seconds 1]

``--features 0`` uses the raw encoder widths (768 audio, 1280 visual) instead of the
``n_components=32`` PCA-whitened features the estimator feeds the head by default. The
default run (1000 to 100000 pairs, 5 epochs, linear head) takes about 30 s on 2 cores; wide
MLP heads take minutes at 10^5 pairs.
"""

import argparse
import os
import platform
import statistics
import time

import numpy as np

RAW_WIDTHS = (768, 1280)  # Whisper tiny.en (two pooled layers) and EfficientNet-Lite0 features
# The two run in alternating blocks of epochs (at least BLOCK_SECONDS each), with a pause before
# each block: an idle OpenBLAS or OpenMP worker thread spins for a while before it sleeps, and on
# a 2-core machine that spinning would slow down the other library's next epochs.
BLOCK_SECONDS, PAUSE_SECONDS = 0.3, 0.2
MIN_LOG_TEMPERATURE, MAX_LOG_TEMPERATURE = float(np.log(0.01)), float(np.log(1.0))


# -- data ----------------------------------------------------------------------------------------
def make_pairs(n, n_audio, n_visual, seed=0, n_latent=16):
    """Paired float64 features, each column standardised, sharing a latent (so the loss falls)."""
    rng = np.random.RandomState(seed)
    latent = rng.standard_normal((n, n_latent))
    out = []
    for width in (n_audio, n_visual):
        X = latent @ rng.standard_normal((n_latent, width)) + rng.standard_normal((n, width))
        out.append((X - X.mean(axis=0)) / X.std(axis=0))
    return out


def minibatches(n, batch_size, rng):
    """Index arrays of one epoch's minibatches, as ``skavc._training.train_epoch`` draws them."""
    order = rng.permutation(n)
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] < 2:
        starts.pop()
    return [order[start : starts[i + 1] if i + 1 < len(starts) else n] for i, start in enumerate(starts)]


# -- the PyTorch reference -------------------------------------------------------------------------
class TorchHead:
    """skavc's heads, loss and Adam in PyTorch eager: the reference of the benchmark and of the parity test.

    Parameters
    ----------
    params : dict of str to ndarray
        skavc head parameters (``init_head_params`` layout), copied.
    learning_rate, beta1, beta2, epsilon : float
        skavc's ``Adam`` hyper-parameters. skavc folds the bias corrections into the step
        size, ``lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)``; ``torch.optim.Adam``
        computes ``lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps')``, the same update
        when ``eps' = eps / sqrt(1 - b2^t)``, which ``step`` sets before each update
        (``fused=True``: torch's fastest Adam on CPU).
    learn_temperature : bool
    alpha : float
        L2 penalty on the weight matrices (Adam's coupled ``weight_decay``, as skavc adds
        ``alpha * W`` to the gradient; the penalty is added to the reported loss).
    dtype : torch.dtype
    """

    def __init__(self, params, learning_rate=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8,
                 learn_temperature=True, alpha=0.0, dtype=None):
        import torch

        self.torch = torch
        self.dtype = dtype or torch.float32
        self.p = {k: torch.tensor(np.asarray(v), dtype=self.dtype) for k, v in params.items()}
        self.n_layers = {pre: sum(k.startswith(f"{pre}_W") for k in params) for pre in ("audio", "visual")}
        self.learn_temperature, self.alpha = learn_temperature, alpha
        weights = [v for k, v in self.p.items() if "_W" in k]
        others = [v for k, v in self.p.items() if "_b" in k]
        if learn_temperature:
            others.append(self.p["log_temperature"])
        for v in weights + others:
            v.requires_grad_(True)
        self.epsilon, self.beta2 = epsilon, beta2
        self.optimizer = torch.optim.Adam(
            [{"params": weights, "weight_decay": alpha}, {"params": others, "weight_decay": 0.0}],
            lr=learning_rate, betas=(beta1, beta2), eps=epsilon, fused=True,
        )
        self.t = 0

    def as_tensor(self, X):
        return self.torch.as_tensor(X, dtype=self.dtype)

    def project(self, X, prefix):
        """L2-normalised embeddings of the tensor ``X`` through the ``prefix`` head."""
        F = self.torch.nn.functional
        h = X
        for layer in range(self.n_layers[prefix]):
            h = self.torch.addmm(self.p[f"{prefix}_b{layer}"], h, self.p[f"{prefix}_W{layer}"])
            if layer < self.n_layers[prefix] - 1:
                h = self.torch.relu(h)
        return F.normalize(h, dim=1, eps=1e-12)

    def loss(self, A, V):
        """Symmetric InfoNCE of paired rows of the tensors ``A`` and ``V`` (without the L2 penalty)."""
        F = self.torch.nn.functional
        logits = (self.project(A, "audio") @ self.project(V, "visual").T) / self.p["log_temperature"].exp()
        labels = self.torch.arange(A.shape[0])
        return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))

    def penalty(self):
        with self.torch.no_grad():
            return 0.5 * self.alpha * sum(float((v * v).sum()) for k, v in self.p.items() if "_W" in k)

    def step(self, A, V):
        """One Adam step on one minibatch (tensors); returns the loss before the step, penalty included."""
        torch = self.torch
        self.t += 1
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss(A, V)
        loss.backward()
        eps_t = self.epsilon / np.sqrt(1.0 - self.beta2**self.t)
        for group in self.optimizer.param_groups:
            group["eps"] = eps_t
        value = float(loss.detach()) + (self.penalty() if self.alpha else 0.0)
        self.optimizer.step()
        if self.learn_temperature:
            with torch.no_grad():
                self.p["log_temperature"].clamp_(MIN_LOG_TEMPERATURE, MAX_LOG_TEMPERATURE)
        return value

    def train_epoch(self, A, V, batch_size, rng):
        """One pass over ``train_epoch``'s minibatches of the tensors ``A``, ``V``; the mean loss."""
        losses = []
        for idx in minibatches(A.shape[0], batch_size, rng):
            idx = self.torch.from_numpy(idx)
            losses.append(self.step(A[idx], V[idx]))
        return float(np.mean(losses))

    def numpy_params(self):
        return {k: v.detach().double().numpy().copy() for k, v in self.p.items()}


# -- the benchmark ---------------------------------------------------------------------------------
def as_dtype(params, dtype):
    """A copy of head parameters with the weights and biases in ``dtype`` (the log temperature as is)."""
    return {k: v.astype(dtype) if np.ndim(v) else np.array(v) for k, v in params.items()}


def bench_n(n, n_audio, n_visual, args, torch_dtype):
    from skavc._head import init_head_params
    from skavc._training import Adam, train_epoch

    A, V = make_pairs(n, n_audio, n_visual, seed=n)
    hidden = args.hidden_units if args.head == "mlp" else None
    init = init_head_params(n_audio, n_visual, args.embedding_dim, hidden, 0.1, np.random.RandomState(0))
    kw = dict(learn_temperature=args.learn_temperature, alpha=args.alpha)

    params = as_dtype(init, args.skavc_dtype)
    opt = Adam(params, learning_rate=args.learning_rate)
    ref = TorchHead(init, learning_rate=args.learning_rate, dtype=torch_dtype, **kw)
    At, Vt = ref.as_tensor(A), ref.as_tensor(V)
    rng_ours, rng_ref = np.random.RandomState(1), np.random.RandomState(1)

    # Warm-up: a few minibatches each, on throwaway copies.
    warm = slice(0, min(n, 8 * args.batch_size))
    wp = as_dtype(init, args.skavc_dtype)
    train_epoch(wp, Adam(wp), A[warm], V[warm], args.batch_size, np.random.RandomState(2), **kw)
    TorchHead(init, dtype=torch_dtype, **kw).train_epoch(At[warm], Vt[warm], args.batch_size,
                                                          np.random.RandomState(2))

    def run_ours():
        return train_epoch(params, opt, A, V, args.batch_size, rng_ours, **kw)

    def run_ref():
        return ref.train_epoch(At, Vt, args.batch_size, rng_ref)

    times = {run_ours: [], run_ref: []}
    losses = {run_ours: [], run_ref: []}
    order = [run_ours, run_ref]
    while min(map(len, times.values())) < args.epochs or min(map(sum, times.values())) < args.min_seconds:
        for run in order:
            time.sleep(PAUSE_SECONDS)
            start = time.perf_counter()
            while time.perf_counter() - start < BLOCK_SECONDS:
                t0 = time.perf_counter()
                losses[run].append(run())
                times[run].append(time.perf_counter() - t0)
        order.reverse()
    k = min(len(losses[run_ours]), len(losses[run_ref]))  # the last epoch both ran
    return (statistics.median(times[run_ours]), statistics.median(times[run_ref]),
            (losses[run_ours][k - 1], losses[run_ref][k - 1]), (len(times[run_ours]), len(times[run_ref])))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--min-seconds", type=float, default=1.0,
                        help="more epochs (for small n) until each implementation has run this long")
    parser.add_argument("--features", type=int, default=32,
                        help="audio and visual input width; 0: raw encoder widths 768/1280")
    parser.add_argument("--head", choices=["linear", "mlp"], default="linear")
    parser.add_argument("--hidden-units", type=int, default=512)
    parser.add_argument("--embedding-dim", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--alpha", type=float, default=1e-4)
    parser.add_argument("--learn-temperature", action="store_true")
    parser.add_argument("--skavc-dtype", choices=["float64", "float32"], default="float32",
                        help="dtype of skavc's head parameters (its features are float64, as from the estimator)")
    parser.add_argument("--torch-dtype", choices=["float32", "float64"], default="float32",
                        help="dtype of the PyTorch reference (parameters and features)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)
    torch_dtype = getattr(torch, args.torch_dtype)
    n_audio, n_visual = RAW_WIDTHS if args.features == 0 else (args.features, args.features)

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}, numpy {np.__version__}, torch {torch.__version__}, "
          f"{args.threads} threads each")
    head = "linear" if args.head == "linear" else f"mlp({args.hidden_units})"
    print(f"head {head}, features {n_audio}/{n_visual} -> {args.embedding_dim}, batch {args.batch_size}, "
          f"learn_temperature={args.learn_temperature}, alpha={args.alpha}, skavc {args.skavc_dtype}, "
          f"torch {args.torch_dtype}; median of >= {args.epochs} epochs, >= {args.min_seconds} s each")
    print()
    print(f"{'pairs':>8}{'epochs':>9}{'skavc s/ep':>12}{'torch s/ep':>12}{'skavc pairs/s':>15}{'torch pairs/s':>15}"
          f"{'ratio':>7}{'skavc s/ep/1k':>15}{'torch s/ep/1k':>15}{'loss skavc':>12}{'loss torch':>12}")
    per_1k = []
    for n in args.pairs:
        ours, theirs, (loss_ours, loss_ref), epochs = bench_n(n, n_audio, n_visual, args, torch_dtype)
        per_1k.append((n, 1000 * ours / n, 1000 * theirs / n))
        print(f"{n:>8}{'/'.join(map(str, epochs)):>9}{ours:>12.3f}{theirs:>12.3f}{n / ours:>15.0f}{n / theirs:>15.0f}"
              f"{ours / theirs:>7.2f}{1000 * ours / n:>15.4f}{1000 * theirs / n:>15.4f}"
              f"{loss_ours:>12.4f}{loss_ref:>12.4f}", flush=True)
    if len(per_1k) > 1:
        (n0, ours0, ref0), (n1, ours1, ref1) = per_1k[0], per_1k[-1]
        print(f"scaling: seconds per epoch per 1000 pairs at n={n1} over n={n0}: skavc x{ours1 / ours0:.2f}, "
              f"torch x{ref1 / ref0:.2f} (1.00: linear in n)")


if __name__ == "__main__":
    main()
