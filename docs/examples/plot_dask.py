"""
Encoding and searching on a dask cluster
========================================

Encoding is most of the work. Under joblib's dask backend, :meth:`skavc.AVCorrespondence.fit`
and ``transform`` send chunks of clips to the cluster's workers (each opens the encoders once
per chunk) and gather the embeddings; the result is the same as on one machine. A
:class:`skavc.index.ShardedIndex` then keeps the corpus in shard files that the workers search
in parallel, each its own shards, with the top matches merged here. A ``LocalCluster`` of two
processes stands in for a real cluster.
"""

import tempfile

import numpy as np
from dask.distributed import Client, LocalCluster
from joblib import parallel_config

from skavc import AVCorrespondence, EmbeddingIndex
from skavc.datasets import make_av_clips
from skavc.index import ShardedIndex

clips, _ = make_av_clips(n_clips=24, duration=1.0, random_state=0)
model = AVCorrespondence(embedding_dim=32, epochs=20, random_state=0).fit(clips[:16])
local = model.transform(clips[16:])

with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
        Client(cluster) as client:
    with parallel_config(backend="dask"):
        on_cluster = model.transform(clips[16:])
    print("embeddings", on_cluster.shape, "largest difference to one machine:",
          float(np.abs(on_cluster - local).max()))

    # %%
    # A corpus of 20,000 embeddings in 4 shards of 5,000 (random vectors standing in for a
    # corpus's visual embeddings), searched by the two workers, two shards each; the top
    # matches of every shard are merged here. Exact shards give what one exact index gives.
    rng = np.random.default_rng(0)
    corpus = rng.normal(size=(20_000, 32)).astype(np.float32)
    sharded = ShardedIndex(tempfile.mkdtemp(), shard_size=5_000, client=client)
    sharded.add(corpus)
    ids, scores = sharded.search(corpus[[7, 12_345]] + 0.1 * rng.normal(size=(2, 32)), top_k=3)
    print("near items 7 and 12345:", ids.tolist(), [[round(float(s), 2) for s in row] for row in scores])
    single = EmbeddingIndex()
    single.add(corpus)
    queries = rng.normal(size=(100, 32))
    print("sharded ids equal one index's:",
          bool((sharded.search(queries, top_k=10)[0] == single.search(queries, top_k=10)[0]).all()))
    matches = model.retrieve_visuals(clips[16].audio, sharded, top_k=3)
    print("retrieve_visuals through it:", [(i, round(s, 2)) for i, s in matches])
