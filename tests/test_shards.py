"""ShardedIndex: shards searched on a real two-process dask cluster give what one index gives;
adding fills the last shard then starts new ones; approximate shards share their codebooks."""

import json

import numpy as np
import pytest

from skavc.index import EmbeddingIndex, ShardedIndex


def _corpus(n, dim=32, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(40, dim))
    return (centres[rng.integers(0, 40, n)] + 0.6 * rng.normal(size=(n, dim))).astype(np.float32)


def _recall(found, exact):
    return float(np.mean([len(set(f) & set(e)) / len(e) for f, e in zip(found, exact)]))


def test_exact_shards_on_a_cluster_equal_one_index(dask_client, tmp_path):
    from distributed import get_task_stream

    X, Q = _corpus(5000), _corpus(60, seed=1)
    single = EmbeddingIndex(dtype="float16")
    sharded = ShardedIndex(tmp_path / "corpus", shard_size=1200, client=dask_client, dtype="float16")
    for batch in (X[:3100], X[3100:]):  # the second batch first fills the last shard (700 -> 1200)
        assert sharded.add(batch).tolist() == single.add(batch).tolist()
    assert sharded._counts == [1200, 1200, 1200, 1200, 200] and len(sharded) == 5000
    assert json.loads((tmp_path / "corpus" / "index.json").read_text())["shard_counts"] == sharded._counts
    want_ids, want_scores = single.search(Q, top_k=10)
    with get_task_stream(dask_client) as tasks:
        ids, scores = sharded.search(Q, top_k=10)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(scores, want_scores, atol=1e-6)
    # One task a shard, on both workers: shard i always goes to the same worker.
    searches = [t for t in tasks.data if t["key"].startswith("_search_shard")]
    assert len(searches) == 5 and len({t["worker"] for t in searches}) == 2
    # Each worker searches with its own threads (1 here), not all the machine's cores.
    from skavc.index import _worker_threads

    assert dask_client.submit(_worker_threads).result() == 1 and _worker_threads() is None
    # Reopened from its directory, here (no client) and on the cluster: the same answers.
    for client in (None, dask_client):
        ids_again, _ = ShardedIndex.load(tmp_path / "corpus", client=client).search(Q, top_k=10)
        np.testing.assert_array_equal(ids_again, want_ids)
    # More than there is: everything, sorted.
    assert sharded.search(Q[:2], top_k=6000)[0].shape == (2, 5000)


def test_adding_after_a_load_continues_the_ids_and_workers_reopen_the_changed_shard(dask_client, tmp_path):
    X = _corpus(1000)
    sharded = ShardedIndex(tmp_path / "c", shard_size=700, client=dask_client)
    sharded.add(X[:900])
    sharded.search(X[:1], top_k=1)  # the workers now hold both shards open
    reopened = ShardedIndex.load(tmp_path / "c", client=dask_client)
    new_ids = reopened.add(X[900:] + 5.0)  # different vectors, appended to the second shard (200 -> 300)
    assert new_ids.tolist() == list(range(900, 1000)) and reopened._counts == [700, 300]
    ids, scores = reopened.search(X[900:] + 5.0, top_k=1)
    assert ids[:, 0].tolist() == new_ids.tolist()
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)


@pytest.mark.parametrize("kind, params", [("hnsw", {"ef_search": 128}), ("ivfpq", {"rerank": 10, "n_probe": 32})])
def test_approximate_shards_find_what_exact_search_finds(dask_client, tmp_path, kind, params):
    pytest.importorskip("faiss")
    X, Q = _corpus(6000), _corpus(100, seed=1)
    exact = EmbeddingIndex()
    exact.add(X)
    exact_ids, exact_scores = exact.search(Q, top_k=10)
    sharded = ShardedIndex(tmp_path / kind, kind, shard_size=2500, client=dask_client, **params)
    sharded.add(X)
    ids, scores = sharded.search(Q, top_k=10)
    assert _recall(ids, exact_ids) >= 0.95
    # Search-time parameters changed on the built index apply to the next search.
    sharded.index_params.update({"ef_search": 10} if kind == "hnsw" else {"rerank": 1, "n_probe": 1})
    assert _recall(sharded.search(Q, top_k=10)[0], exact_ids) < _recall(ids, exact_ids)
    same = ids[:, 0] == exact_ids[:, 0]
    np.testing.assert_allclose(scores[same, 0], exact_scores[same, 0], atol=2e-3)
    if kind == "ivfpq":  # one set of lists and codebooks, trained by the first shard
        assert (tmp_path / kind / "trained.faiss").is_file()
        import faiss

        from skavc.index import ApproximateIndex

        faiss_shards = [ApproximateIndex.load(p)._index for p in sharded.shards]
        centroids = [faiss.downcast_index(s.quantizer).reconstruct_n(0, 4) for s in faiss_shards]
        codebooks = [faiss.vector_to_array(s.pq.centroids) for s in faiss_shards]
        np.testing.assert_array_equal(centroids[0], centroids[-1])
        np.testing.assert_array_equal(codebooks[0], codebooks[-1])


def test_the_estimator_retrieves_through_a_sharded_index(fitted, clips, tmp_path):
    visual = fitted.transform_visual(clips[:20])
    sharded, exact = ShardedIndex(tmp_path / "v", shard_size=7), EmbeddingIndex()
    sharded.add(visual)
    exact.add(visual)
    got = fitted.retrieve_visuals(clips[0].audio, sharded, top_k=3)
    want = fitted.retrieve_visuals(clips[0].audio, exact, top_k=3)
    assert [i for i, _ in got] == [i for i, _ in want]
    np.testing.assert_allclose([s for _, s in got], [s for _, s in want], atol=1e-6)


def test_errors_name_the_parameter(tmp_path):
    with pytest.raises(ValueError, match="kind must be one of"):
        ShardedIndex(tmp_path / "a", kind="flat")
    with pytest.raises(ValueError, match="shard_size"):
        ShardedIndex(tmp_path / "a", shard_size=0)
    with pytest.raises(TypeError, match="index_params do not fit kind='exact'"):
        ShardedIndex(tmp_path / "a", ef_search=10)
    index = ShardedIndex(tmp_path / "b", dim=4)
    with pytest.raises(FileExistsError, match="ShardedIndex.load"):
        ShardedIndex(tmp_path / "b")
    with pytest.raises(ValueError, match="the index is empty"):
        index.search(np.ones((1, 4)))
    with pytest.raises(ValueError, match="dimension 3 but the index has dimension 4"):
        index.add(np.ones((2, 3)))
    assert len(ShardedIndex.load(tmp_path / "b")) == 0  # empty, and nothing half-written
    with pytest.raises(FileNotFoundError, match="no sharded index in .*missing"):
        ShardedIndex.load(tmp_path / "missing")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "index.json").write_text('{"format": "skavc.EmbeddingIndex"}')
    with pytest.raises(ValueError, match="is not ShardedIndex metadata"):
        ShardedIndex.load(tmp_path / "c")
    index.add(np.ones((3, 4)))
    (tmp_path / "b" / "shard-00000.npy").unlink()
    with pytest.raises(FileNotFoundError, match="shard-00000.npy"):
        ShardedIndex.load(tmp_path / "b").search(np.ones((1, 4)))
