"""skavc: learn how sound and picture belong together, as a scikit-learn estimator."""

from ._clip import AVClip
from ._correspondence import AVCorrespondence
from ._inputs import pair_clips

__version__ = "0.1.0"


def load_clip(path, **kwargs):
    """Decode a video file into an :class:`AVClip` (see :func:`skavc.io.load_clip`)."""
    from .io import load_clip as _load_clip

    return _load_clip(path, **kwargs)


__all__ = ["AVClip", "AVCorrespondence", "load_clip", "pair_clips", "__version__"]
