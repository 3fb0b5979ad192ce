"""Input checks shared by every module (each error names the parameter and what was expected),
and the one atomic file writer."""

import contextlib
import numbers
import os
import tempfile
from pathlib import Path

import numpy as np


def check_audio(audio, *, name="audio"):
    """Return ``audio`` as a finite, non-empty, 1-D float32 array.

    Parameters
    ----------
    audio : array-like of shape (n_samples,)
        Mono waveform.
    name : str
        Parameter name used in error messages.

    Returns
    -------
    audio : ndarray of shape (n_samples,), dtype float32
    """
    try:
        arr = np.asarray(audio)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(f"{name} must be a 1-D array of samples; got {type(audio).__name__}") from exc
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{name} must be a numeric array of samples; got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(
            f"{name} must be mono, a 1-D array of shape (n_samples,); got shape {arr.shape}"
        )
    if arr.size == 0:
        raise ValueError(f"{name} is empty: expected at least one sample")
    arr = arr.astype(np.float32, copy=False)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite samples")
    return arr


def check_frames(frames, *, name="frames"):
    """Return ``frames`` as a non-empty uint8 array of shape (T, H, W, 3).

    Parameters
    ----------
    frames : ndarray of shape (T, H, W, 3), dtype uint8
        RGB video frames.
    name : str
        Parameter name used in error messages.

    Returns
    -------
    frames : ndarray of shape (T, H, W, 3), dtype uint8
    """
    arr = np.asarray(frames)
    if arr.dtype != np.uint8:
        raise TypeError(f"{name} must be uint8 RGB frames of shape (T, H, W, 3); got dtype {arr.dtype}")
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (T, H, W, 3); got shape {arr.shape}")
    if min(arr.shape[:3]) == 0:
        raise ValueError(f"{name} is empty: got shape {arr.shape}, expected at least one frame of at least 1x1 pixels")
    return arr


def check_positive(value, *, name):
    """Return ``value`` as a float after checking that it is finite and > 0."""
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a positive number; got {value!r}") from exc
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a positive number; got {value!r}")
    return v


def check_sample_rate(sample_rate, *, name="sample_rate", minimum=1):
    """Return ``sample_rate`` as an int after checking it is a whole number of Hz >= ``minimum``."""
    sr = check_positive(sample_rate, name=name)
    if sr != int(sr) or sr < minimum:
        at_least = f", at least {minimum}" if minimum > 1 else ""
        raise ValueError(f"{name} must be a whole number of Hz{at_least}; got {sample_rate!r}")
    return int(sr)


def check_int(value, *, name, minimum=None, allow_none=False):
    """Return ``value`` as an int after checking it is a whole number (not a bool) >= ``minimum``.

    Raises ``ValueError`` naming ``name`` otherwise; None passes through when ``allow_none``.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer{_at_least(minimum)}; got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be an integer{_at_least(minimum)}; got {value!r}")
    return int(value)


def check_real(value, *, name, positive=False, minimum=None, allow_none=False):
    """Return ``value`` as a finite float (> 0 when ``positive``, >= ``minimum`` when given).

    A non-number (or a bool) raises ``TypeError``, a number out of range ``ValueError``, both
    naming ``name``; None passes through when ``allow_none``.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {value!r}")
    value = float(value)
    if not np.isfinite(value) or (positive and value <= 0):
        raise ValueError(f"{name} must be a finite number{' > 0' if positive else ''}; got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value!r}")
    return value


def check_option(value, *, name, options):
    """Return ``value`` after checking it is one of ``options`` (a tuple, listed in the error)."""
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {tuple(options)}; got {value!r}")
    return value


def check_paired_series(first, second, *, names):
    """Return two 1-D float64 arrays of one shape, checked: ``first`` non-empty, both finite.

    ``names`` = (name of first, name of second), used in the errors (``ValueError``).
    """
    first_name, second_name = names
    first = np.asarray(first, dtype=np.float64)
    second = np.asarray(second, dtype=np.float64)
    if first.ndim != 1 or first.size == 0:
        raise ValueError(f"{first_name} must be a non-empty 1-D array; got shape {first.shape}")
    if second.shape != first.shape:
        raise ValueError(f"{second_name} must have the shape of {first_name} {first.shape}; got {second.shape}")
    if not (np.all(np.isfinite(first)) and np.all(np.isfinite(second))):
        raise ValueError(f"{first_name} and {second_name} must be finite (no NaN or infinity)")
    return first, second


def _at_least(minimum):
    return "" if minimum is None else f" >= {minimum}"


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename.

    Readers never see a half-written ``path`` and a failure leaves an existing one untouched:
    the temporary file is removed and the exception propagates. The temporary name keeps
    ``path``'s extension last, so writers that pick a format by extension (FFmpeg, matplotlib)
    choose the same one. Parent folders are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path, data):
    """Write ``data`` to ``path`` atomically (:func:`atomic_path`), flushed to disk before the rename."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())


#: x264 / x265 speed presets, fastest first (a slower one makes a smaller file at the same quality).
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                "placebo")


def check_encoder_settings(crf, preset):
    """``crf`` as an int from 0 (lossless) to 51 and ``preset`` one of :data:`X264_PRESETS` or None."""
    crf = check_int(crf, name="crf", minimum=0)
    if crf > 51:
        raise ValueError(f"crf must be an integer from 0 (lossless) to 51; got {crf!r}")
    if preset is not None and preset not in X264_PRESETS:
        raise ValueError(f"preset must be one of {X264_PRESETS}; got {preset!r}")
    return crf, preset
