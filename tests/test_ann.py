"""ApproximateIndex (faiss HNSW and IVF-PQ): recall against exact search, persistence without
pickle, errors, and retrieval through the estimator."""

import numpy as np
import pytest

faiss = pytest.importorskip("faiss")

from skavc.index import ApproximateIndex, EmbeddingIndex, default_n_lists  # noqa: E402


def _clustered(n, dim=32, n_clusters=50, seed=0):
    """Unit-norm-ish vectors around ``n_clusters`` centres (as embeddings of a corpus are)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, dim))
    return (centres[rng.integers(0, n_clusters, n)] + 0.6 * rng.normal(size=(n, dim))).astype(np.float32)


def _recall(found, exact):
    return float(np.mean([len(set(f) & set(e)) / len(e) for f, e in zip(found, exact)]))


@pytest.fixture(scope="module")
def corpus():
    X = _clustered(6000)
    Q = _clustered(100, seed=1)
    exact = EmbeddingIndex()
    exact.add(X)
    return X, Q, exact.search(Q, top_k=10)


def test_hnsw_finds_what_exact_search_finds_with_the_same_cosines(corpus):
    X, Q, (exact_ids, exact_scores) = corpus
    index = ApproximateIndex("hnsw", ef_search=128)  # 64 (the default) gives 0.93 on these near-ties
    assert index.add(X).tolist() == list(range(len(X)))
    ids, scores = index.search(Q, top_k=10)
    assert ids.shape == scores.shape == (100, 10) and ids.dtype == np.int64 and scores.dtype == np.float32
    assert _recall(ids, exact_ids) >= 0.95
    same = ids[:, 0] == exact_ids[:, 0]
    np.testing.assert_allclose(scores[same, 0], exact_scores[same, 0], atol=1e-5)  # exact cosines
    assert np.all(np.diff(scores, axis=1) <= 1e-6)  # best first


def test_ivfpq_is_small_and_finds_stored_vectors_first(corpus):
    X, Q, (exact_ids, _) = corpus
    index = ApproximateIndex("ivfpq", n_probe=64)
    index.add(X)
    ids, scores = index.search(X[:50], top_k=5)
    assert np.mean(ids[:, 0] == np.arange(50)) >= 0.9  # a stored vector is its own best match
    assert _recall(index.search(Q, top_k=10)[0], exact_ids) >= 0.4  # 8-byte codes of 32 dimensions
    assert index._index.nlist == default_n_lists(len(X))
    assert np.all(scores[:, 0] <= 1.2)  # estimated cosines, near the exact ones


def test_more_probes_and_candidates_trade_speed_for_recall(corpus):
    X, Q, (exact_ids, _) = corpus
    recalls = []
    for ef in (10, 200):
        index = ApproximateIndex("hnsw", hnsw_neighbours=4, ef_construction=10, ef_search=ef)
        index.add(X)
        recalls.append(_recall(index.search(Q, top_k=10)[0], exact_ids))
    assert recalls[1] > recalls[0]


@pytest.mark.parametrize("kind", ["hnsw", "ivfpq"])
def test_save_and_load_give_the_same_answers_without_pickle(corpus, tmp_path, kind):
    X, Q, _ = corpus
    index = ApproximateIndex(kind, ef_search=40, n_probe=8)
    index.add(X)
    index_path, json_path = index.save(tmp_path / "corpus")
    assert index_path.name == "corpus.faiss" and json_path.name == "corpus.json"
    assert not index_path.read_bytes().startswith(b"\x80")  # faiss's own format, not a pickle
    for mmap in (False, True):
        loaded = ApproximateIndex.load(tmp_path / "corpus.json", mmap=mmap)
        assert (loaded.kind, loaded.dim, len(loaded), loaded.ef_search, loaded.n_probe) == (kind, 32, 6000, 40, 8)
        for got, want in zip(loaded.search(Q, top_k=5), index.search(Q, top_k=5)):
            np.testing.assert_array_equal(got, want)
    # a truncated copy (never the mapped file itself: truncating a mapped file under a reader is a bus error)
    (tmp_path / "cut.faiss").write_bytes(index_path.read_bytes()[:100])
    (tmp_path / "cut.json").write_bytes(json_path.read_bytes().replace(b"corpus.faiss", b"cut.faiss"))
    with pytest.raises(ValueError, match="not a readable faiss index"):
        ApproximateIndex.load(tmp_path / "cut")


def test_errors_name_the_parameter():
    with pytest.raises(ValueError, match="kind must be one of"):
        ApproximateIndex("lsh")
    with pytest.raises(ValueError, match="ef_search"):
        ApproximateIndex(ef_search=0)
    with pytest.raises(ValueError, match="needs at least 256 embeddings"):
        ApproximateIndex("ivfpq").add(np.ones((10, 8)))
    with pytest.raises(ValueError, match="pq_bytes must divide dim"):
        ApproximateIndex("ivfpq", pq_bytes=5).add(_clustered(300, dim=8))
    index = ApproximateIndex()
    with pytest.raises(ValueError, match="empty"):
        index.search(np.ones((1, 8)))
    index.add(np.eye(8))
    with pytest.raises(ValueError, match="queries have dimension 4 but the index has dimension 8"):
        index.search(np.ones((1, 4)))
    with pytest.raises(ValueError, match="NaN or infinite"):
        index.add(np.full((1, 8), np.nan))
    with pytest.raises(FileNotFoundError, match="ApproximateIndex.save"):
        ApproximateIndex.load("no/such/index")


def test_the_estimator_retrieves_through_an_approximate_index(fitted, clips):
    visual = fitted.transform_visual(clips[:20])
    index = ApproximateIndex("hnsw")
    index.add(visual)
    exact = EmbeddingIndex()
    exact.add(visual)
    got = fitted.retrieve_visuals(clips[0].audio, index, top_k=3)
    want = fitted.retrieve_visuals(clips[0].audio, exact, top_k=3)
    assert [i for i, _ in got] == [i for i, _ in want]
    np.testing.assert_allclose([s for _, s in got], [s for _, s in want], atol=1e-5)


def test_ivfpq_reranked_with_its_vectors_reaches_exact_recall_and_cosines(corpus, tmp_path):
    X, Q, (exact_ids, exact_scores) = corpus
    codes_only, reranked = ApproximateIndex("ivfpq", n_probe=32), ApproximateIndex("ivfpq", n_probe=32, rerank=10)
    for index in (codes_only, reranked):
        index.add(X[:4000])
        index.add(X[4000:])  # vectors added later are re-ranked too
    assert _recall(reranked.search(Q, top_k=10)[0], exact_ids) >= 0.95 > _recall(codes_only.search(Q, 10)[0], exact_ids)
    ids, scores = reranked.search(Q, top_k=10)
    same = ids[:, 0] == exact_ids[:, 0]
    np.testing.assert_allclose(scores[same, 0], exact_scores[same, 0], atol=2e-3)  # float16 vectors
    reranked.save(tmp_path / "corpus")
    assert (tmp_path / "corpus.vectors.npy").is_file()
    loaded = ApproximateIndex.load(tmp_path / "corpus")
    loaded.add(X[:5])  # after a load: the file's rows and the new ones in memory
    got_ids, _ = loaded.search(X[:5], top_k=1)
    assert all(found in (i, 6000 + i) for i, found in enumerate(got_ids[:, 0]))  # itself, stored twice
    with pytest.raises(ValueError, match="rerank applies to kind='ivfpq'"):
        ApproximateIndex("hnsw", rerank=4)


def test_ivfpq_trains_on_a_sample_and_rerank_can_be_turned_off(corpus):
    X, Q, (exact_ids, _) = corpus
    # 8 lists train on 8 x 256 = 2,048 of the 6,000 rows (drawn at random, as faiss would).
    index = ApproximateIndex("ivfpq", n_lists=8, n_probe=8, rerank=10)
    index.add(X)
    assert index._index.nlist == 8 and index._index.is_trained
    reranked = _recall(index.search(Q, top_k=10)[0], exact_ids)
    index.rerank = 0  # the codes alone, without a rebuild
    assert reranked >= 0.95 > _recall(index.search(Q, top_k=10)[0], exact_ids)
