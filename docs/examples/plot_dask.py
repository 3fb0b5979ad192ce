"""
Encoding on a dask cluster
==========================

Encoding is most of the work. Under joblib's dask backend, :meth:`skavc.AVCorrespondence.fit`
and ``transform`` send chunks of clips to the cluster's workers (each opens the encoders once
per chunk) and gather the embeddings; the result is the same as on one machine. Here a
``LocalCluster`` of two processes stands in for a real cluster.
"""

import numpy as np
from dask.distributed import Client, LocalCluster
from joblib import parallel_config

from skavc import AVCorrespondence
from skavc.datasets import make_av_clips

clips, _ = make_av_clips(n_clips=24, duration=1.0, random_state=0)
model = AVCorrespondence(embedding_dim=32, epochs=20, random_state=0).fit(clips[:16])
local = model.transform(clips[16:])

with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
        Client(cluster) as client, parallel_config(backend="dask"):
    on_cluster = model.transform(clips[16:])
print("embeddings", on_cluster.shape, "largest difference to one machine:",
      float(np.abs(on_cluster - local).max()))
