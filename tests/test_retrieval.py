"""Exact top-k search, EmbeddingIndex, the estimator's retrieval methods, and encoding on dask."""

import copy
import json
import tracemalloc

import joblib
import numpy as np
import pytest

from skavc import EmbeddingIndex
from skavc import _search
from skavc.retrieval import top_k

N_TRAIN = 60  # as in conftest.py: the shared fitted model saw clips[:60]


def _reference(Q, D, k):
    S = np.asarray(Q, np.float32) @ np.asarray(D, np.float32).T
    order = np.argsort(-S, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(S, order, axis=1)


def _unit(rng, n, d, dtype=np.float32):
    X = rng.standard_normal((n, d)).astype(np.float32)
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(dtype)


# -- top_k -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "n, d, n_queries, k, chunk_size, n_threads",
    [
        (1000, 16, 7, 10, 100, 1),  # database a multiple of the chunk
        (1001, 16, 50, 10, 64, 2),  # a short last chunk, two threads
        (5003, 8, 3, 20, 7, 3),  # top_k larger than the chunk; ranges split across 3 threads
        (37, 4, 5, 5, 1, 2),  # one row per chunk
        (300, 8, 2500, 4, 128, 2),  # many blocks of queries
        (2048, 32, 1, 1, 4096, None),  # one chunk larger than the database
        (100, 8, 500, 5, 4096, 2),  # one chunk, many queries: the queries are split between threads
    ],
)
def test_top_k_matches_brute_force(n, d, n_queries, k, chunk_size, n_threads, monkeypatch):
    monkeypatch.setattr(_search, "_MIN_WORK_PER_THREAD", 1)  # split even these small searches
    monkeypatch.setattr(_search, "_SCORE_BUDGET", 1 << 14)  # and cut the queries into blocks
    rng = np.random.default_rng(n)
    D, Q = _unit(rng, n, d), rng.standard_normal((n_queries, d)).astype(np.float32)
    idx, scores = top_k(Q, D, top_k=k, chunk_size=chunk_size, n_threads=n_threads)
    ref_idx, ref_scores = _reference(Q, D, k)
    assert idx.shape == scores.shape == (n_queries, k)
    assert idx.dtype == np.int64 and scores.dtype == np.float32
    np.testing.assert_array_equal(idx, ref_idx)  # random floats: no ties
    np.testing.assert_allclose(scores, ref_scores, atol=1e-5)
    assert np.all(np.diff(scores, axis=1) <= 0)


def test_top_k_larger_than_database_returns_all_sorted():
    rng = np.random.default_rng(1)
    D, Q = _unit(rng, 9, 4), rng.standard_normal((3, 4))
    idx, scores = top_k(Q, D, top_k=50, chunk_size=4)
    assert idx.shape == (3, 9)
    np.testing.assert_array_equal(np.sort(idx, axis=1), np.tile(np.arange(9), (3, 1)))
    np.testing.assert_array_equal(idx, _reference(Q, D, 9)[0])


def test_adversarial_order_falls_back_to_argpartition():
    # Every chunk beats the last one: the threshold test lets everything through.
    rng = np.random.default_rng(2)
    D = _unit(rng, 5000, 8)
    D = D[np.argsort(D[:, 0])]
    Q = np.tile(np.eye(8, dtype=np.float32)[0], (4, 1))
    idx, _ = top_k(Q, D, top_k=10, chunk_size=64, n_threads=1)
    np.testing.assert_array_equal(idx, np.tile(np.arange(4999, 4989, -1), (4, 1)))


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_other_database_dtypes_are_converted_chunk_by_chunk(dtype):
    rng = np.random.default_rng(3)
    D, Q = _unit(rng, 3001, 32, dtype), rng.standard_normal((20, 32)).astype(np.float32)
    idx, scores = top_k(Q, D, top_k=10, chunk_size=512)
    ref_idx, ref_scores = _reference(Q, D.astype(np.float32), 10)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-4)


def test_strided_and_memory_mapped_databases(tmp_path):
    rng = np.random.default_rng(4)
    D, Q = _unit(rng, 2000, 16), rng.standard_normal((5, 16)).astype(np.float32)
    np.save(tmp_path / "db.npy", D)
    mapped = np.load(tmp_path / "db.npy", mmap_mode="r")
    np.testing.assert_array_equal(top_k(Q, mapped, chunk_size=300)[0], _reference(Q, D, 10)[0])
    wide = np.hstack([D, D])[:, ::2]  # non-contiguous rows
    np.testing.assert_array_equal(top_k(Q, wide, chunk_size=300)[0], _reference(Q, wide, 10)[0])


def test_memory_is_bounded_by_the_chunk_not_the_score_matrix():
    rng = np.random.default_rng(5)
    D, Q = _unit(rng, 200_000, 16), rng.standard_normal((500, 16)).astype(np.float32)
    full_matrix = Q.shape[0] * D.shape[0] * 4  # 400 MB
    tracemalloc.start()
    try:
        top_k(Q, D, top_k=10, chunk_size=2048, n_threads=2)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Per thread: 500 x 2048 scores (4 MB), a mask (1 MB), a partition copy on dense
    # chunks (4 MB) and the candidates: ~19 MB measured for two threads.
    assert peak < 30e6 < full_matrix / 10


def test_top_k_errors():
    D = np.ones((10, 4), np.float32)
    with pytest.raises(ValueError, match="dimension 3 but the database has dimension 4"):
        top_k(np.ones((2, 3)), D)
    with pytest.raises(ValueError, match="empty"):
        top_k(np.ones((2, 4)), np.ones((0, 4), np.float32))
    with pytest.raises(ValueError, match="empty"):
        top_k(np.ones((0, 4)), D)
    for bad in (0, -1, 1.5, True, None):
        with pytest.raises(ValueError, match="top_k must be an integer >= 1"):
            top_k(np.ones((2, 4)), D, top_k=bad)
    with pytest.raises(ValueError, match="chunk_size"):
        top_k(np.ones((2, 4)), D, chunk_size=0)
    with pytest.raises(ValueError, match=r"reshape\(1, -1\)"):
        top_k(np.ones(4), D)
    with pytest.raises(ValueError, match="NaN"):
        top_k(np.full((1, 4), np.nan), D)
    with pytest.raises(TypeError, match="floating-point"):
        top_k(np.ones((2, 4)), np.ones((10, 4), dtype=np.int64))


# -- EmbeddingIndex ------------------------------------------------------------------------
def test_index_add_in_batches_and_search():
    rng = np.random.default_rng(6)
    E = rng.standard_normal((2500, 24)).astype(np.float32) * 3  # not unit: the index normalises
    index = EmbeddingIndex()
    assert len(index) == 0 and index.dim is None
    ids = [index.add(E[lo : lo + 700]) for lo in range(0, 2500, 700)]
    np.testing.assert_array_equal(np.concatenate(ids), np.arange(2500))
    assert len(index) == 2500 and index.dim == 24 and "count=2500" in repr(index)
    Q = rng.standard_normal((6, 24))
    idx, scores = index.search(Q, top_k=5, chunk_size=256)
    unit = E / np.linalg.norm(E, axis=1, keepdims=True)
    ref_idx, ref_scores = _reference(Q / np.linalg.norm(Q, axis=1, keepdims=True), unit, 5)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-5)
    assert np.all(scores <= 1 + 1e-6)


def test_index_without_normalisation_is_plain_inner_product():
    rng = np.random.default_rng(7)
    E, Q = rng.standard_normal((100, 8)), rng.standard_normal((3, 8))
    index = EmbeddingIndex(dim=8, normalize=False)
    index.add(E)
    np.testing.assert_array_equal(index.search(Q, top_k=7)[0], _reference(Q, E, 7)[0])


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("mmap", [True, False])
def test_index_save_load_round_trip(tmp_path, dtype, mmap):
    rng = np.random.default_rng(8)
    E, Q = rng.standard_normal((1500, 16)), rng.standard_normal((4, 16))
    index = EmbeddingIndex(dtype=dtype)
    index.add(E[:1000])
    index.add(E[1000:])
    npy_path, json_path = index.save(tmp_path / "corpus")
    assert npy_path.name == "corpus.npy" and json_path.name == "corpus.json"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    meta = json.loads(json_path.read_text())
    assert (meta["dim"], meta["dtype"], meta["count"], meta["version"]) == (16, dtype, 1500, 1)
    # Plain .npy: readable without pickle.
    assert np.load(npy_path, allow_pickle=False).dtype == np.dtype(dtype)

    loaded = EmbeddingIndex.load(tmp_path / "corpus.json", mmap=mmap)
    assert isinstance(loaded._base, np.memmap) is mmap
    assert (len(loaded), loaded.dim, loaded.dtype, loaded.normalize) == (1500, 16, np.dtype(dtype), True)
    for a, b in zip(index.search(Q, top_k=10), loaded.search(Q, top_k=10)):
        np.testing.assert_array_equal(a, b)

    # Adding after loading goes to memory; saving over the mapped file is safe.
    np.testing.assert_array_equal(loaded.add(E[:10]), np.arange(1500, 1510))
    loaded.save(tmp_path / "corpus")
    again = EmbeddingIndex.load(tmp_path / "corpus")
    assert len(again) == 1510
    np.testing.assert_array_equal(again.search(E[:1] * 5, top_k=2)[0][0], [0, 1500])


def test_index_errors(tmp_path):
    index = EmbeddingIndex(dim=4)
    with pytest.raises(ValueError, match="empty"):
        index.search(np.ones((1, 4)))
    with pytest.raises(ValueError, match="dimension 5 but the index has dimension 4"):
        index.add(np.ones((2, 5)))
    index.add(np.ones((2, 4)))
    with pytest.raises(ValueError, match="dimension 3 but the index has dimension 4"):
        index.search(np.ones((1, 3)))
    with pytest.raises(ValueError, match=r"reshape\(1, -1\)"):
        index.add(np.ones(4))
    with pytest.raises(ValueError, match="NaN or infinite values in 1 row"):
        index.add(np.array([[1, 2, 3, 4], [0, np.inf, 0, 0]]))
    for bad in ("float64", "int8", "nonsense", np.float64):
        with pytest.raises(ValueError, match="dtype must be 'float32' or 'float16'"):
            EmbeddingIndex(dtype=bad)
    with pytest.raises(ValueError, match="dim"):
        EmbeddingIndex(dim=0)
    with pytest.raises(ValueError, match="no dimension"):
        EmbeddingIndex().save(tmp_path / "nothing")

    with pytest.raises(FileNotFoundError, match="no index metadata"):
        EmbeddingIndex.load(tmp_path / "missing")
    index.save(tmp_path / "ix")
    (tmp_path / "ix.npy").unlink()
    with pytest.raises(FileNotFoundError, match="missing"):
        EmbeddingIndex.load(tmp_path / "ix")

    index.save(tmp_path / "ix")
    (tmp_path / "ix.json").write_text('{"format": "skavc.Embedd')
    with pytest.raises(ValueError, match="corrupt or truncated"):
        EmbeddingIndex.load(tmp_path / "ix")

    index.save(tmp_path / "ix")
    meta = json.loads((tmp_path / "ix.json").read_text())
    (tmp_path / "ix.json").write_text(json.dumps(dict(meta, dtype="float64")))
    with pytest.raises(ValueError, match="dtype must be 'float32' or 'float16'"):
        EmbeddingIndex.load(tmp_path / "ix")
    (tmp_path / "ix.json").write_text(json.dumps(dict(meta, count=3)))
    with pytest.raises(ValueError, match="do not belong together"):
        EmbeddingIndex.load(tmp_path / "ix")

    index.save(tmp_path / "ix")
    data = (tmp_path / "ix.npy").read_bytes()
    (tmp_path / "ix.npy").write_bytes(data[:-8])  # truncated
    for mmap in (True, False):
        with pytest.raises(ValueError, match="corrupt or truncated"):
            EmbeddingIndex.load(tmp_path / "ix", mmap=mmap)


# -- the estimator ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def held_out(fitted, clips):
    X = clips[N_TRAIN:]
    return X, fitted.transform_audio(X), fitted.transform_visual(X)


def _check_matches(matches, k):
    assert isinstance(matches, list) and len(matches) == k
    for i, s in matches:
        assert type(i) is int and type(s) is float
    scores = [s for _, s in matches]
    assert scores == sorted(scores, reverse=True)


def test_retrieve_visuals_single_query_and_database_forms(fitted, held_out):
    X, Ea, Ev = held_out
    expected_idx, expected_scores = _reference(Ea[:1], Ev, 5)
    index = EmbeddingIndex()
    index.add(Ev)
    results = [
        fitted.retrieve_visuals(X[0].audio, Ev, top_k=5),  # database: embedding array
        fitted.retrieve_visuals(X[0], index, top_k=5),  # query: a clip; database: an index
        fitted.retrieve_visuals(X[0].audio, X, top_k=5),  # database: clips, embedded here
    ]
    for matches in results:
        _check_matches(matches, 5)
        assert [i for i, _ in matches] == expected_idx[0].tolist()
        np.testing.assert_allclose([s for _, s in matches], expected_scores[0], atol=1e-5)


def test_retrieve_audio_single_and_batch(fitted, held_out):
    X, Ea, Ev = held_out
    expected_idx, _ = _reference(Ev[:3], Ea, 4)
    single = fitted.retrieve_audio(X[0].frames, Ea, top_k=4)
    _check_matches(single, 4)
    assert [i for i, _ in single] == expected_idx[0].tolist()
    batch = fitted.retrieve_audio([X[0].frames, X[1], X[2].frames], Ea, top_k=4)
    assert len(batch) == 3
    for matches, expected in zip(batch, expected_idx):
        _check_matches(matches, 4)
        assert [i for i, _ in matches] == expected.tolist()
    # A 5-D array is a batch of equal-size frame stacks.
    stacked = np.stack([X[0].frames, X[1].frames])
    assert [[i for i, _ in m] for m in fitted.retrieve_audio(stacked, Ea, top_k=4)] == expected_idx[:2].tolist()


def test_retrieve_visuals_batch_and_top_k(fitted, held_out):
    X, Ea, Ev = held_out
    batch = fitted.retrieve_visuals([X[0].audio, X[1].audio], Ev, top_k=3)
    assert len(batch) == 2 and all(len(m) == 3 for m in batch)
    single = fitted.retrieve_visuals(X[0].audio, Ev, top_k=3)
    assert [i for i, _ in batch[0]] == [i for i, _ in single]
    np.testing.assert_allclose([s for _, s in batch[0]], [s for _, s in single], atol=1e-5)
    everything = fitted.retrieve_visuals(X[0].audio, Ev, top_k=1000)
    _check_matches(everything, len(X))
    assert sorted(i for i, _ in everything) == list(range(len(X)))
    # Retrieval in the shared space beats chance: the right clip is in the top half more often than not.
    ranks = [[i for i, _ in m].index(q) for q, m in enumerate(fitted.retrieve_visuals(list(X), Ev, top_k=len(X)))]
    assert np.mean(np.array(ranks) < len(X) // 2) > 0.5


def test_retrieve_errors(fitted, held_out):
    X, Ea, Ev = held_out
    with pytest.raises(ValueError, match="dimension 16 but the database has dimension 8"):
        fitted.retrieve_visuals(X[0].audio, Ev[:, :8])
    with pytest.raises(ValueError, match="top_k"):
        fitted.retrieve_visuals(X[0].audio, Ev, top_k=0)
    with pytest.raises(ValueError, match="empty"):
        fitted.retrieve_audio([], Ea)
    with pytest.raises(ValueError, match=r"frames of shape \(T, H, W, 3\)"):
        fitted.retrieve_audio(np.zeros((4, 4), np.uint8), Ea)
    with pytest.raises(ValueError, match="empty"):
        fitted.retrieve_audio(X[0].frames, EmbeddingIndex(dim=16))


# -- scale-out on a dask cluster -------------------------------------------------------------
def test_an_active_joblib_backend_runs_the_jobs_even_with_n_jobs_none(fitted, clips, monkeypatch):
    X = clips[N_TRAIN : N_TRAIN + 5]
    local = fitted.transform(X)
    calls = []
    original = joblib.Parallel.__call__

    def record(self, iterable):
        calls.append(self)
        return original(self, iterable)

    monkeypatch.setattr(joblib.Parallel, "__call__", record)
    fitted.transform(X)  # no backend and n_jobs=None: a plain loop
    assert not calls
    # Even a backend worth one job gets the jobs (a one-thread dask cluster is remote).
    for n_jobs in (1, 2):
        calls.clear()
        with joblib.parallel_backend("threading", n_jobs=n_jobs):
            threaded = fitted.transform(X)
        assert calls, n_jobs
        np.testing.assert_allclose(threaded, local, atol=1e-6)


def test_transform_on_dask_matches_local(fitted, clips, dask_client):
    from distributed import get_task_stream

    # No encoder cache, so the workers really encode (they rebuild the onnxruntime sessions
    # from the graphs under the SKAVC_HOME they inherited).
    model = copy.copy(fitted).set_params(memory=None)
    X = clips[N_TRAIN : N_TRAIN + 8]
    local = model.transform(X)
    with get_task_stream(dask_client) as tasks, joblib.parallel_backend("dask"):
        remote = model.transform(X)
    np.testing.assert_allclose(remote, local, atol=1e-5)
    assert len(tasks.data) > 0
    assert {t["worker"] for t in tasks.data} <= set(dask_client.scheduler_info()["workers"])
