"""Exact top-k retrieval: skavc against FAISS and scikit-learn, plus held-out recall on generated clips.

Prints Markdown tables:

1. Top-k query latency (ms per batch and per query) and throughput (queries/s)
   on random unit vectors, for skavc's :func:`skavc.retrieval.top_k`, FAISS
   ``IndexFlatIP`` (faiss-cpu) and scikit-learn ``NearestNeighbors(metric="cosine",
   algorithm="brute")``, measured in the same run with the methods interleaved
   repeat by repeat (best time kept), so that load from other processes hits
   them alike. All use every core (FAISS: OpenMP, run with
   ``OMP_WAIT_POLICY=PASSIVE``; scikit-learn: BLAS; skavc: its own threads with
   single-threaded BLAS).
2. Memory of each method, measured in a fresh subprocess per method (the
   database is read from a temporary ``.npy``): "index" is the RSS growth from
   building the index over the loaded database (FAISS copies it); "search" is
   the peak RSS above the pre-search RSS during one query batch (Linux VmHWM,
   reset through ``/proc/self/clear_refs``).
3. Held-out recall@1/5/10 both ways: ``AVCorrespondence`` fitted on 150
   generated clips (``make_av_clips``, as ``skavc demo``), 50 held out, queried
   through ``retrieve_visuals`` / ``retrieve_audio`` against ``EmbeddingIndex`` objects.

Usage::

    python benchmarks/bench_retrieval.py [--sizes 100000 1000000] [--dims 128 512]
        [--batches 1 100 1000] [--top-k 10] [--memory-batch 100] [--no-memory] [--no-recall]

A full run takes about 10 minutes on 2 cores (the 10^6 x 512 database is 2 GB).
"""

import os

# FAISS's OpenMP threads spin while waiting by default; on a machine shared with other
# processes that cost it 2-6x at 1000 queries, so it runs with passive waiting (its faster
# setting here). Set before libgomp loads; an explicit OMP_WAIT_POLICY wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

# scikit-learn at 10^6 x 512 with 1000 queries takes minutes per batch: skipped above this many
# multiply-adds (n_items * dim * n_queries), and reported as skipped.
SKLEARN_MAX_WORK = 2e11


# -- data ------------------------------------------------------------------------------------
def unit_vectors(n, d, seed):
    """``n`` random unit vectors of width ``d``, float32, generated in blocks (little temporary memory)."""
    rng = np.random.default_rng(seed)
    X = np.empty((n, d), dtype=np.float32)
    for lo in range(0, n, 65536):
        block = rng.standard_normal((min(65536, n - lo), d), dtype=np.float32)
        X[lo : lo + block.shape[0]] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return X


# -- methods -----------------------------------------------------------------------------------
def build(method, X, k):
    """A ``search(Q) -> indices`` callable for ``method`` over database ``X``."""
    if method == "skavc":
        from skavc.retrieval import top_k

        return lambda Q: top_k(Q, X, top_k=k)[0]
    if method == "faiss":
        import faiss

        index = faiss.IndexFlatIP(X.shape[1])
        index.add(X)
        return lambda Q: index.search(Q, k)[1]
    if method == "sklearn":
        from sklearn.neighbors import NearestNeighbors

        nn = NearestNeighbors(n_neighbors=k, metric="cosine", algorithm="brute").fit(X)
        return lambda Q: nn.kneighbors(Q, return_distance=False)
    raise ValueError(method)


def available_methods():
    methods = ["skavc"]
    try:
        import faiss  # noqa: F401

        methods.append("faiss")
    except ImportError:
        print("faiss-cpu is not installed (pip install skavc[bench]): FAISS column skipped", file=sys.stderr)
    methods.append("sklearn")
    return methods


def skipped(method, n, d, nq):
    return method == "sklearn" and n * d * nq > SKLEARN_MAX_WORK


def wanted_repeats(first_seconds):
    """More repeats for fast batches; slow ones are timed once or twice."""
    return 5 if first_seconds < 1 else 3 if first_seconds < 5 else 2 if first_seconds < 20 else 1


def time_interleaved(searches, Q):
    """Best wall time of each search on ``Q``, methods alternating repeat by repeat."""
    times = {m: [] for m in searches}
    target = {m: 1 for m in searches}
    while any(len(times[m]) < target[m] for m in searches):
        for m, search in searches.items():
            if len(times[m]) < target[m]:
                t0 = time.perf_counter()
                search(Q)
                times[m].append(time.perf_counter() - t0)
                target[m] = wanted_repeats(times[m][0])
    return {m: min(v) for m, v in times.items()}


def bench_latency(sizes, dims, batches, k, methods):
    rows, agreement = [], []
    for n in sizes:
        for d in dims:
            X = unit_vectors(n, d, seed=0)
            rng = np.random.default_rng(1)
            searches = {m: build(m, X, k) for m in methods}
            warm = unit_vectors(1, d, seed=2)
            for search in searches.values():
                search(warm)  # first-call set-up, page faults
            for nq in batches:
                Q = unit_vectors(nq, d, seed=int(rng.integers(1 << 31)))
                run = {m: s for m, s in searches.items() if not skipped(m, n, d, nq)}
                best = time_interleaved(run, Q)
                if "faiss" in run:
                    agreement.append(float(np.mean(run["skavc"](Q) == run["faiss"](Q))))
                for m in methods:
                    rows.append(dict(n=n, d=d, nq=nq, method=m, seconds=best.get(m)))
                print(f"  n={n} d={d} queries={nq}: " + ", ".join(f"{m} {t * 1e3:.1f} ms" for m, t in best.items()),
                      file=sys.stderr, flush=True)
            del searches, X
    return rows, agreement


# -- memory (one subprocess per method) -------------------------------------------------------
def _status_kib(key):
    return int(re.search(rf"{key}:\s+(\d+) kB", open("/proc/self/status").read()).group(1))


def memory_worker(method, path, nq, k):
    """Run in a subprocess: RSS growth (MiB) for building the index, and peak extra RSS for one search."""
    X = np.load(path)
    Q = unit_vectors(nq, X.shape[1], seed=3)
    build(method, X[:1000].copy(), k)(Q)  # imports and library set-up, not counted
    before_build = _status_kib("VmRSS")
    search = build(method, X, k)
    search(Q[:1])
    before_search = _status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the RSS high-water mark (VmHWM)
    search(Q)
    peak = _status_kib("VmHWM")
    print(json.dumps({"index_mib": (before_search - before_build) / 1024, "search_mib": (peak - before_search) / 1024}))


def bench_memory(sizes, dims, nq, k, methods):
    rows = []
    if not os.path.exists("/proc/self/clear_refs"):
        print("no /proc/self/clear_refs (not Linux): memory skipped", file=sys.stderr)
        return rows
    with tempfile.TemporaryDirectory(prefix="skavc-bench-") as tmp:
        for n in sizes:
            for d in dims:
                path = os.path.join(tmp, f"db-{n}-{d}.npy")
                np.save(path, unit_vectors(n, d, seed=0))
                for m in methods:
                    if skipped(m, n, d, nq):
                        rows.append(dict(n=n, d=d, method=m, index_mib=None, search_mib=None))
                        continue
                    out = subprocess.run(
                        [sys.executable, __file__, "--memory-worker", m, path, str(nq), str(k)],
                        check=True, capture_output=True, text=True,
                    ).stdout
                    rows.append(dict(n=n, d=d, method=m, **json.loads(out.strip().splitlines()[-1])))
                os.unlink(path)
    return rows


# -- held-out recall ---------------------------------------------------------------------------
def recall_at(matches, ks):
    """Recall@k for each k: query i's true match is database item i."""
    ranks = np.array([next((r for r, (j, _) in enumerate(m) if j == i), len(m)) for i, m in enumerate(matches)])
    return [float(np.mean(ranks < k)) for k in ks]


def bench_recall(ks=(1, 5, 10), seed=0):
    from skavc import AVCorrespondence, EmbeddingIndex
    from skavc.datasets import make_av_clips

    clips, _ = make_av_clips(n_clips=200, random_state=seed)
    order = np.random.RandomState(seed).permutation(len(clips))  # the split of `skavc demo`
    test = [clips[i] for i in order[:50]]
    train = [clips[i] for i in order[50:]]
    t0 = time.perf_counter()
    model = AVCorrespondence(random_state=seed).fit(train)
    fit_seconds = time.perf_counter() - t0
    Ea, Ev = model.transform_audio(test), model.transform_visual(test)
    visual_index, audio_index = EmbeddingIndex(), EmbeddingIndex(dtype="float16")
    visual_index.add(Ev)
    audio_index.add(Ea)
    a2v = model.retrieve_visuals([c.audio for c in test], visual_index, top_k=max(ks))
    v2a = model.retrieve_audio([c.frames for c in test], audio_index, top_k=max(ks))
    return {
        "audio -> visual (float32 index)": recall_at(a2v, ks),
        "visual -> audio (float16 index)": recall_at(v2a, ks),
        "chance": [k / len(test) for k in ks],
    }, fit_seconds


# -- report ----------------------------------------------------------------------------------
def versions():
    import sklearn

    import skavc

    parts = [f"Python {platform.python_version()}", f"numpy {np.__version__}", f"scikit-learn {sklearn.__version__}",
             f"skavc {skavc.__version__}"]
    try:
        import faiss

        parts.append(f"faiss-cpu {faiss.__version__}")
    except ImportError:
        pass
    # numpy's own BLAS (faiss-cpu bundles another OpenBLAS, scipy a third).
    blas = next((i for i in _threadpool_info() if i.get("user_api") == "blas" and "numpy" in i.get("filepath", "")),
                {})
    if blas:
        parts.append(f"numpy BLAS {blas.get('internal_api')} {blas.get('version')} ({blas.get('num_threads')} threads)")
    return ", ".join(parts)


def _threadpool_info():
    from threadpoolctl import threadpool_info

    return threadpool_info()


def _fmt(x, spec):
    return "skipped (minutes)" if x is None else format(x, spec)


def print_tables(latency, memory, agreement, k, recall, memory_batch):
    print(f"Machine: {platform.machine()}, {os.cpu_count()} CPUs. {versions()}. "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}.")
    print(f"Load average (1 min) at the end of the run: {os.getloadavg()[0]:.1f} "
          "(other processes share the machine: compare methods within a row group, not across runs).")
    print()
    print(f"### Top-{k} latency (best of up to 5 interleaved repeats)")
    print()
    print("| database | queries | method | ms per batch | ms per query | queries/s | vs FAISS |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    faiss_time = {(r["n"], r["d"], r["nq"]): r["seconds"] for r in latency if r["method"] == "faiss"}
    for r in latency:
        t = r["seconds"]
        ref = faiss_time.get((r["n"], r["d"], r["nq"]))
        ratio = "" if t is None or ref is None else f"{t / ref:.2f}x"
        print(f"| {r['n']:,} x {r['d']} | {r['nq']} | {r['method']} | {_fmt(t and t * 1e3, '.1f')} | "
              f"{_fmt(t and t * 1e3 / r['nq'], '.3f')} | {_fmt(t and r['nq'] / t, ',.0f')} | {ratio} |")
    if agreement:
        print()
        print(f"skavc and FAISS returned the same top-{k} ids for {100 * min(agreement):.2f}% or more of the "
              "entries of every batch (exact search both; differences are float rounding among near ties).")
    if memory:
        print()
        print(f"### Memory ({memory_batch} queries, top-{k}; one subprocess per method)")
        print()
        print("| database | method | index: RSS growth (MiB) | search: peak extra RSS (MiB) |")
        print("| --- | --- | --- | --- |")
        for r in memory:
            print(f"| {r['n']:,} x {r['d']} | {r['method']} | {_fmt(r['index_mib'], '.0f')} | "
                  f"{_fmt(r['search_mib'], '.0f')} |")
    if recall:
        scores, fit_seconds = recall
        print()
        print(f"### Held-out recall (150 training / 50 held-out generated clips; fit {fit_seconds:.1f} s)")
        print()
        print("| direction | recall@1 | recall@5 | recall@10 |")
        print("| --- | --- | --- | --- |")
        for name, values in scores.items():
            print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in values) + " |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--dims", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 100, 1000])
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--memory-batch", type=int, default=100)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--no-recall", action="store_true")
    parser.add_argument("--memory-worker", nargs=4, metavar=("METHOD", "NPY", "N_QUERIES", "K"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_worker:
        method, path, nq, k = args.memory_worker
        return memory_worker(method, path, int(nq), int(k))
    methods = available_methods()
    t0 = time.perf_counter()
    latency, agreement = bench_latency(args.sizes, args.dims, args.batches, args.top_k, methods)
    memory = [] if args.no_memory else bench_memory(args.sizes, args.dims, args.memory_batch, args.top_k, methods)
    recall = None if args.no_recall else bench_recall()
    print_tables(latency, memory, agreement, args.top_k, recall, args.memory_batch)
    print(f"\n(total {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    sys.exit(main())
