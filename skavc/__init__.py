"""skavc: learn how sound and picture belong together, as a scikit-learn estimator."""

from ._clip import AVClip, ClipQualityWarning
from ._correspondence import AVCorrespondence
from ._info import show_versions
from ._inputs import pair_clips
from .index import EmbeddingIndex

from ._version import __version__  # noqa: E402

__all__ = ["AVClip", "AVCorrespondence", "ClipQualityWarning", "EmbeddingIndex", "load_clip", "pair_clips", "save_clip", "show_versions",
           "__version__"]


def __getattr__(name):
    # Decoding needs PyAV (and resampling librosa): imported on first use, not by `import skavc`.
    if name in ("load_clip", "save_clip"):
        from . import io

        return getattr(io, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
