"""skavc: learn how sound and picture belong together, as a scikit-learn estimator."""

from ._clip import AVClip
from ._correspondence import AVCorrespondence
from ._inputs import pair_clips
from .index import EmbeddingIndex
from .io import load_clip, save_clip

__version__ = "0.1.0"

__all__ = ["AVClip", "AVCorrespondence", "EmbeddingIndex", "load_clip", "pair_clips", "save_clip", "__version__"]
