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

Approximate and sharded search at scale (issue 24), each section only when asked, on clustered
synthetic unit vectors of 128 dimensions (``clustered_blocks``) and queries from the same
distribution; recall@10 is against exact search, speed against exact search in the same run::

    python benchmarks/bench_retrieval.py --approximate 1000000 10000000   # exact, IVF-PQ, HNSW
    python benchmarks/bench_retrieval.py --sharded 10000000               # shards on a 2-worker LocalCluster
    python benchmarks/bench_retrieval.py --on-disk 100000000              # 10^8 IVF-PQ shards on disk
    python benchmarks/bench_retrieval.py --real                           # recall on real embeddings

Built indexes are kept under ``--work`` (default ``~/.cache/skavc-bench/ann``; about 50 GB after
all three) and reused by later runs, their first build time with them: HNSW over 10^7 takes
about 40 minutes to build on 2 cores, the 10^8 shards about an hour. ``--real`` embeds 1-s
windows of the real videos ``real_media.py`` fetches (Debian packages) and of the talking heads
in ``--talk``.
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
from pathlib import Path  # noqa: E402

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


# -- approximate and sharded search at scale ---------------------------------------------------
#: Clustered synthetic corpora: unit vectors around N_CENTRES Gaussian centres (fixed by their own
#: seed, so queries drawn with another seed come from the same distribution), noise CLUSTER_NOISE
#: times a unit-variance centre: neighbours are close enough that recall@10 is a hard test.
N_CENTRES, CLUSTER_NOISE, CENTRES_SEED = 1000, 0.8, 12345
BLOCK_ROWS = 1 << 20  # rows generated (and added to an index) at a time


def clustered_blocks(n, d, seed, start=0, stop=None):
    """Rows ``start`` to ``stop`` (default ``n``) of the clustered corpus of ``n`` rows drawn with
    ``seed``, as float32 unit-vector blocks.

    Block ``b`` (rows ``b * BLOCK_ROWS`` on) is drawn from its own generator (``seed``, ``b``),
    so any range can be regenerated alone (shards of a 10^8 corpus are built without the rest
    in memory) and is the same whichever way the corpus is cut.
    """
    stop = n if stop is None else stop
    centres = np.random.default_rng(CENTRES_SEED).standard_normal((N_CENTRES, d), dtype=np.float32)
    for b in range(start // BLOCK_ROWS, -(-stop // BLOCK_ROWS)):
        rng = np.random.default_rng([seed, b])
        rows = min(BLOCK_ROWS, n - b * BLOCK_ROWS)
        X = centres[rng.integers(N_CENTRES, size=rows)]
        X += CLUSTER_NOISE * rng.standard_normal((rows, d), dtype=np.float32)
        X /= np.linalg.norm(X, axis=1, keepdims=True)
        yield X[max(start - b * BLOCK_ROWS, 0) : stop - b * BLOCK_ROWS]


def clustered_rows(n, d, start, stop):
    """Rows ``start`` to ``stop`` of the clustered corpus of ``n`` rows (seed 0), as one array
    (filled block by block: no second copy)."""
    X = np.empty((stop - start, d), dtype=np.float32)
    at = 0
    for block in clustered_blocks(n, d, 0, start, stop):
        X[at : at + block.shape[0]] = block
        at += block.shape[0]
    return X


def clustered_vectors(n, d, seed):
    return np.concatenate(list(clustered_blocks(n, d, seed)))


def built_approximate(kind, n, d, cache, **params):
    """An :class:`~skavc.index.ApproximateIndex` over the first ``n`` rows of corpus seed 0, and its
    build time in seconds: loaded from ``cache`` when an earlier run saved it there."""
    from skavc.index import ApproximateIndex

    name = f"{kind}-{n}x{d}-" + "-".join(f"{key}{value}" for key, value in sorted(params.items()))
    path = os.path.join(cache, name)
    if os.path.exists(path + ".build.json"):
        return ApproximateIndex.load(path), json.load(open(path + ".build.json"))["seconds"]
    index = ApproximateIndex(kind, **params)
    t0 = time.perf_counter()
    for X in clustered_blocks(n, d, seed=0):
        index.add(X)
        print(f"  {kind}: {len(index):,} of {n:,} added ({time.perf_counter() - t0:.0f} s)", file=sys.stderr,
              flush=True)
    seconds = time.perf_counter() - t0
    os.makedirs(cache, exist_ok=True)
    index.save(path)
    json.dump({"seconds": seconds}, open(path + ".build.json", "w"))
    return index, seconds


def rss_gib():
    return _status_kib("VmRSS") / 2**20


def timed_search(index, Q, k, repeats=2):
    """Best wall time of ``index.search(Q, k)`` over ``repeats`` runs, and its result."""
    best, result = np.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = index.search(Q, top_k=k)
        best = min(best, time.perf_counter() - t0)
    return best, result


def recall_against(found, exact):
    """Mean share of each query's exact top-k that ``found`` also returns."""
    return float(np.mean([len(set(f) & set(e)) / len(e) for f, e in zip(found, exact)]))


#: Search-time settings measured for each approximate kind, in order.
IVFPQ_SETTINGS = [{"n_probe": 16, "rerank": 0}, {"n_probe": 16, "rerank": 4}, {"n_probe": 16, "rerank": 10},
                  {"n_probe": 16, "rerank": 20}, {"n_probe": 32, "rerank": 20}, {"n_probe": 32, "rerank": 40}]
HNSW_SETTINGS = [{"ef_search": 64}, {"ef_search": 128}, {"ef_search": 256}]


def bench_approximate(n, d, nq, k, cache, kinds=("ivfpq", "hnsw")):
    """Rows for exact / IVF-PQ / HNSW over the first ``n`` rows of the clustered corpus (one process)."""
    from skavc import EmbeddingIndex

    Q = clustered_vectors(nq, d, seed=1)
    rows = []
    before = rss_gib()
    exact = EmbeddingIndex()
    t0 = time.perf_counter()
    for X in clustered_blocks(n, d, seed=0):
        exact.add(X)
    build = time.perf_counter() - t0
    exact_seconds, (truth, _) = timed_search(exact, Q, k)
    rows.append(dict(n=n, index="exact (EmbeddingIndex, float32)", setting="", build=build, memory=rss_gib() - before,
                     recall=1.0, qps=nq / exact_seconds))
    print(f"  exact {n:,}: {nq / exact_seconds:,.0f} q/s", file=sys.stderr, flush=True)
    del exact
    for kind, params, settings in (("ivfpq", {"rerank": 10}, IVFPQ_SETTINGS), ("hnsw", {}, HNSW_SETTINGS)):
        if kind not in kinds:
            continue
        before = rss_gib()
        index, build = built_approximate(kind, n, d, cache, **params)
        memory = rss_gib() - before
        label = (f"IVF-PQ ({index._index.nlist:,} lists, {index._index.pq.M} bytes)" if kind == "ivfpq"
                 else "HNSW (M 32, ef_construction 80)")
        for setting in settings:
            for name, value in setting.items():
                setattr(index, name, value)
            seconds, (found, _) = timed_search(index, Q, k)
            rows.append(dict(n=n, index=label, setting=", ".join(f"{a} {b}" for a, b in setting.items()),
                             build=build, memory=memory, recall=recall_against(found, truth), qps=nq / seconds))
            print(f"  {kind} {rows[-1]['setting']}: recall {rows[-1]['recall']:.3f}, {rows[-1]['qps']:,.0f} q/s",
                  file=sys.stderr, flush=True)
        del index
    for r in rows:
        r["vs_exact"] = r["qps"] * exact_seconds / nq
    return rows


def workers_rss(client):
    """Resident memory of each worker (GiB), mapped shard pages included, largest first."""
    return sorted(client.run(rss_gib).values(), reverse=True)


def local_cluster(n_workers):
    from dask.distributed import Client, LocalCluster

    # No memory limit: the pages of memory-mapped shards count towards a worker's RSS (page
    # cache the OS reclaims, not a leak), and would otherwise make the nanny pause or restart it.
    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None, memory_limit=0)
    return cluster, Client(cluster)


SHARDED_SETTINGS = {"exact": [{}], "ivfpq": [{"n_probe": 16, "rerank": 10}, {"n_probe": 16, "rerank": 20}]}


def bench_sharded(n, d, nq, k, directory, n_workers=2, n_lists=4096):
    """Exact and IVF-PQ shards (built here, with the float16 vectors for re-ranking), one per
    worker of a ``n_workers``-process LocalCluster, searched at each of ``SHARDED_SETTINGS``,
    against one exact index searched in this process in the same run."""
    from skavc import EmbeddingIndex
    from skavc.index import ShardedIndex

    Q = clustered_vectors(nq, d, seed=1)
    exact = EmbeddingIndex()
    for X in clustered_blocks(n, d, seed=0):
        exact.add(X)
    exact_seconds, (truth, _) = timed_search(exact, Q, k)
    del exact
    cluster, client = local_cluster(n_workers)
    rows = [dict(n=n, index="exact, one index in this process", build=None, recall=1.0, qps=nq / exact_seconds,
                 same=1.0, workers=[])]
    try:
        for kind, params in (("exact", {}), ("ivfpq", {"rerank": 10, "n_lists": n_lists})):
            path = os.path.join(directory, f"sharded-{kind}-{n}x{d}")
            if os.path.exists(os.path.join(path, "index.json")):
                sharded, build = ShardedIndex.load(path), json.load(open(path + ".build.json"))["seconds"]
            else:
                sharded = ShardedIndex(path, kind, shard_size=-(-n // n_workers), **params)
                t0 = time.perf_counter()
                for lo in range(0, n, sharded.shard_size):  # a shard a call
                    sharded.add(clustered_rows(n, d, lo, min(n, lo + sharded.shard_size)))
                build = time.perf_counter() - t0
                json.dump({"seconds": build}, open(path + ".build.json", "w"))
            sharded.client = client
            sharded.search(Q[:1], top_k=k)  # the workers open their shards
            for setting in SHARDED_SETTINGS[kind]:
                sharded.index_params.update(setting)  # search-time parameters: no rebuild
                seconds, (found, _) = timed_search(sharded, Q, k)
                name = f"{kind} shards x {n_workers} on a {n_workers}-worker LocalCluster"
                rows.append(dict(n=n, index=", ".join([name] + [f"{a} {b}" for a, b in setting.items()]),
                                 build=build, recall=recall_against(found, truth), qps=nq / seconds,
                                 same=float(np.mean(found == truth)), workers=workers_rss(client)))
                print(f"  {rows[-1]['index']}: recall {rows[-1]['recall']:.3f}, {rows[-1]['qps']:,.0f} q/s",
                      file=sys.stderr, flush=True)
    finally:
        client.close()
        cluster.close()
    for r in rows:
        r["vs_exact"] = r["qps"] * exact_seconds / nq
    return rows


def bench_on_disk(n, d, k, directory, shard_size, n_workers=2, batch=100, n_lists=1024):
    """A ``n``-row IVF-PQ index (rerank 10) in shards of ``shard_size`` on disk, searched on a
    LocalCluster: time for a batch of ``batch`` queries (first, then again), recall@k against
    exact search over the float16 vectors the shards keep (itself timed, shard by shard, here)."""
    from skavc.index import EmbeddingIndex, ShardedIndex, merge_top_k

    path = os.path.join(directory, f"disk-ivfpq-{n}x{d}")
    if os.path.exists(path + ".build.json"):
        sharded, build = ShardedIndex.load(path), json.load(open(path + ".build.json"))["seconds"]
    else:
        sharded = ShardedIndex(path, "ivfpq", shard_size=shard_size, rerank=10, n_lists=n_lists)
        t0 = time.perf_counter()
        for lo in range(0, n, shard_size):
            sharded.add(clustered_rows(n, d, lo, min(n, lo + shard_size)))
            print(f"  on disk: {len(sharded):,} of {n:,} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr,
                  flush=True)
        build = time.perf_counter() - t0
        json.dump({"seconds": build}, open(path + ".build.json", "w"))
    disk_gib = sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path)) / 2**30
    Q = clustered_vectors(batch, d, seed=1)
    t0 = time.perf_counter()
    parts = [EmbeddingIndex.load(str(p) + ".vectors").search(Q, top_k=k) for p in sharded.shards]
    truth, _ = merge_top_k(parts, sharded.offsets, k)
    exact = time.perf_counter() - t0
    rows = []
    cluster, client = local_cluster(n_workers)
    try:
        sharded.client = client
        for setting in SHARDED_SETTINGS["ivfpq"]:
            sharded.index_params.update(setting)
            t0 = time.perf_counter()
            sharded.search(Q, top_k=k)
            first = time.perf_counter() - t0
            again, (found, _) = timed_search(sharded, Q, k, repeats=1)
            rows.append(dict(setting=", ".join(f"{a} {b}" for a, b in setting.items()), first=first, again=again,
                             recall=recall_against(found, truth), workers=workers_rss(client)))
    finally:
        client.close()
        cluster.close()
    return dict(n=n, shards=len(sharded.shards), disk_gib=disk_gib, build=build, exact=exact, batch=batch,
                lists=n_lists, rows=rows)


def real_windows(cache, talk, window=1.0, hop=0.25):
    """1-s windows (``hop`` apart) of the real videos the sync benchmark fetches (their Debian
    packages, ``benchmarks/real_media_labels.json``) and of the talking heads in ``talk``."""
    import real_media

    from skavc import load_clip

    labels = json.loads(real_media.LABELS.read_text())
    clips = [clip for _, clip in real_media.videos(cache, labels)]
    if os.path.isdir(talk):
        clips += [load_clip(os.path.join(talk, f), sample_rate=16000) for f in sorted(os.listdir(talk))
                  if f.endswith(".mp4")]
    windows = []
    for clip in clips:
        duration = min(clip.audio.size / clip.sample_rate, clip.frames.shape[0] / clip.fps)
        for t in np.arange(0, duration - window, hop):
            try:
                windows.append(real_media._cut(clip, t, t + window))
            except ValueError:  # the last window of a track a few samples short
                pass
    return windows


def bench_real(k, cache, talk, seed=0):
    """Recall@k against exact search on real embeddings: audio windows query the visual embeddings
    of all windows, from a model fitted on generated clips as ``skavc demo`` fits it."""
    from skavc import AVCorrespondence, EmbeddingIndex
    from skavc.datasets import make_av_clips
    from skavc.index import ApproximateIndex

    windows = real_windows(cache, talk)
    clips, _ = make_av_clips(n_clips=200, random_state=seed)
    model = AVCorrespondence(random_state=seed).fit(clips[:150])
    V, A = model.transform_visual(windows), model.transform_audio(windows)
    exact = EmbeddingIndex()
    exact.add(V)
    truth, _ = exact.search(A, top_k=k)
    rows = []
    for label, index in (("HNSW, ef_search 64 (default)", ApproximateIndex("hnsw")),
                         ("IVF-PQ, n_probe 16 (default)", ApproximateIndex("ivfpq")),
                         ("IVF-PQ, rerank 10", ApproximateIndex("ivfpq", rerank=10))):
        index.add(V)
        rows.append(dict(index=label, recall=recall_against(index.search(A, top_k=k)[0], truth)))
    return dict(n=len(windows), dim=V.shape[1], rows=rows)


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


def _gib(values):
    return " + ".join(f"{v:.1f}" for v in values) + " GiB" if values else ""


def _seconds(x):
    return "" if x is None else f"{x:,.0f} s"


def print_scale_tables(approximate, sharded, on_disk, real, k, nq):
    """The tables of the approximate, sharded, on-disk and real-embedding sections that ran."""
    print(f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, {os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / 2**30:.0f} GiB. "
          f"{versions()}. Load average (1 min) now: {os.getloadavg()[0]:.1f}.")
    if approximate:
        print()
        print(f"### Approximate search ({nq:,} queries, top {k}, clustered vectors; ratios against exact in the same run)")
        print()
        print("| corpus | index | setting | build | memory (RSS growth) | recall@10 | queries/s | vs exact |")
        print("|---|---|---|---:|---:|---:|---:|---:|")
        for r in approximate:
            print(f"| {r['n']:,} x 128 | {r['index']} | {r['setting']} | {_seconds(r['build'])} | "
                  f"{r['memory']:.2f} GiB | {r['recall']:.3f} | {r['qps']:,.0f} | {r['vs_exact']:.1f}x |")
    if sharded:
        print()
        print(f"### Shards on a LocalCluster ({nq:,} queries, top {k}; ratios against one exact index in the same run)")
        print()
        print("| corpus | index | build | recall@10 | same ids as exact | queries/s | vs exact | workers' RSS |")
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        for r in sharded:
            print(f"| {r['n']:,} x 128 | {r['index']} | {_seconds(r['build'])} | {r['recall']:.3f} | "
                  f"{r['same']:.4f} | {r['qps']:,.0f} | {r['vs_exact']:.1f}x | {_gib(r['workers'])} |")
    if on_disk:
        r = on_disk
        print()
        print(f"### {r['n']:,} x 128 on disk: {r['shards']} IVF-PQ shards ({r['lists']:,} lists each, codes and "
              f"float16 vectors: {r['disk_gib']:.1f} GiB, built in {_seconds(r['build'])}) on a 2-worker LocalCluster")
        print()
        print(f"A batch of {r['batch']} queries, top {k}. Exact search over the shards' float16 vectors, shard by shard "
              f"in this process (the recall reference): {r['exact']:.1f} s.")
        print()
        print("| setting | first search (workers open the shards) | again | recall@10 | workers' RSS |")
        print("|---|---:|---:|---:|---:|")
        for row in r["rows"]:
            print(f"| {row['setting']} | {row['first']:.2f} s | {row['again']:.2f} s | {row['recall']:.3f} | "
                  f"{_gib(row['workers'])} |")
    if real:
        print()
        print(f"### Real embeddings ({real['n']:,} one-second windows of real videos, {real['dim']} dimensions; "
              f"audio windows query the visual embeddings; recall@{k} against exact)")
        print()
        print("| index | recall@10 |")
        print("|---|---:|")
        for r in real["rows"]:
            print(f"| {r['index']} | {r['recall']:.3f} |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--dims", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 100, 1000])
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--memory-batch", type=int, default=100)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--no-recall", action="store_true")
    scale = parser.add_argument_group("approximate and sharded search at scale (each section runs only when asked)")
    scale.add_argument("--approximate", type=int, nargs="+", metavar="N",
                       help="exact / IVF-PQ / HNSW over N clustered vectors (e.g. 1000000 10000000)")
    scale.add_argument("--kinds", nargs="+", default=["ivfpq", "hnsw"], choices=["ivfpq", "hnsw"],
                       help="the approximate indexes of --approximate")
    scale.add_argument("--sharded", type=int, metavar="N", help="exact and IVF-PQ shards on a 2-worker LocalCluster")
    scale.add_argument("--on-disk", type=int, metavar="N", help="an N-row IVF-PQ index in shards on disk (1e8)")
    scale.add_argument("--shard-size", type=int, default=10_000_000)
    scale.add_argument("--real", action="store_true", help="recall on real embeddings of the benchmark media")
    scale.add_argument("--queries", type=int, default=1000, help="queries of the approximate and sharded sections")
    scale.add_argument("--work", default=os.path.expanduser("~/.cache/skavc-bench/ann"),
                       help="where built indexes are kept for later runs (tens of GB for --on-disk)")
    scale.add_argument("--media", default=os.path.expanduser("~/.cache/skavc-bench/real"))
    scale.add_argument("--talk", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "media", "talk"))
    parser.add_argument("--memory-worker", nargs=4, metavar=("METHOD", "NPY", "N_QUERIES", "K"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_worker:
        method, path, nq, k = args.memory_worker
        return memory_worker(method, path, int(nq), int(k))
    if args.approximate or args.sharded or args.on_disk or args.real:
        t0 = time.perf_counter()
        approximate = [r for n in args.approximate or [] for r in
                       bench_approximate(n, 128, args.queries, args.top_k, args.work, args.kinds)]
        sharded = bench_sharded(args.sharded, 128, args.queries, args.top_k, args.work) if args.sharded else []
        on_disk = (bench_on_disk(args.on_disk, 128, args.top_k, args.work, args.shard_size)
                   if args.on_disk else None)
        real = bench_real(args.top_k, Path(args.media), args.talk) if args.real else None
        print_scale_tables(approximate, sharded, on_disk, real, args.top_k, args.queries)
        print(f"\n(total {time.perf_counter() - t0:.0f} s; peak RSS of this process {_status_kib('VmHWM') / 2**20:.1f} GiB)")
        return 0
    methods = available_methods()
    t0 = time.perf_counter()
    latency, agreement = bench_latency(args.sizes, args.dims, args.batches, args.top_k, methods)
    memory = [] if args.no_memory else bench_memory(args.sizes, args.dims, args.memory_batch, args.top_k, methods)
    recall = None if args.no_recall else bench_recall()
    print_tables(latency, memory, agreement, args.top_k, recall, args.memory_batch)
    print(f"\n(total {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    sys.exit(main())
