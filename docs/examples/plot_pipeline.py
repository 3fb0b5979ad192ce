"""
Pipeline, cross-validation and grid search
==========================================

:class:`skavc.AVCorrespondence` is a scikit-learn estimator: it goes into a ``Pipeline``, is
cross-validated with ``cross_val_score`` (its ``score`` is held-out recall@1 both ways,
averaged) and tuned with ``GridSearchCV``. ``memory`` caches the encoders' outputs, so a grid
over the head's parameters encodes each clip once.
"""

import tempfile

from joblib import Memory
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score

from skavc import AVCorrespondence
from skavc.datasets import make_av_clips

clips, truth = make_av_clips(n_clips=60, duration=2.0, random_state=0)
cache = Memory(tempfile.mkdtemp(), verbose=0)
model = AVCorrespondence(embedding_dim=32, epochs=40, memory=cache, random_state=0)

scores = cross_val_score(model, clips, cv=KFold(3))
print("recall@1 per fold:", scores.round(3), "(chance about", round(1 / 20, 3), ")")

# %%
# A grid over the projection head: every clip was encoded once, above; the grid reuses it.
search = GridSearchCV(model, {"embedding_dim": [16, 64], "temperature": [0.05, 0.1]}, cv=KFold(3))
search.fit(clips)
print("best:", search.best_params_, "recall@1", round(search.best_score_, 3))
