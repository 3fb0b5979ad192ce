"""Input checks shared by every module (each error names the parameter and what was expected),
and the one atomic file writer."""

import contextlib
import numbers
import os
import tempfile
import threading
from pathlib import Path

import numpy as np


#: Integer sample formats of PCM audio (WAV, FFmpeg's s16/s32/u8) that :func:`pcm_to_float` scales.
PCM_DTYPES = (np.dtype(np.int8), np.dtype(np.int16), np.dtype(np.int32), np.dtype(np.uint8))


def pcm_to_float(samples, *, name="audio"):
    """Integer PCM samples as float32 in [-1, 1); floating-point samples unchanged (as float32).

    Signed PCM (int8, int16, int32) is divided by its full scale ``2 ** (bits - 1)`` (int16 by
    32768); 8-bit PCM is unsigned, offset binary centred on 128 (``(x - 128) / 128``), as WAV and
    FFmpeg's u8 store it. Other integer types (int64 and the like: Python ints become int64) are
    no PCM format, and are refused by ``name`` rather than guessed at.

    Parameters
    ----------
    samples : ndarray
        Any shape.
    name : str
        Parameter name used in error messages.

    Returns
    -------
    samples : ndarray of the same shape, float32
    """
    samples = np.asarray(samples)
    if np.issubdtype(samples.dtype, np.floating):
        return samples.astype(np.float32, copy=False)
    if samples.dtype not in PCM_DTYPES:
        raise TypeError(f"{name} must hold float samples in [-1, 1] or integer PCM (int8, int16, int32, uint8); "
                        f"got dtype {samples.dtype}. Scale it yourself, e.g. audio / 32768.0 for 16-bit values "
                        "held as int64")
    if samples.dtype == np.uint8:
        return ((samples.astype(np.float32) - 128.0) / 128.0).astype(np.float32)
    return (samples.astype(np.float64) / float(2 ** (8 * samples.dtype.itemsize - 1))).astype(np.float32)


def check_audio(audio, *, name="audio"):
    """Return ``audio`` as a finite, non-empty, 1-D float32 array.

    Parameters
    ----------
    audio : array-like of shape (n_samples,)
        Mono waveform: float samples (full scale 1.0) or integer PCM (int8, int16, int32, uint8),
        which is scaled to [-1, 1) (:func:`pcm_to_float`).
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
    arr = pcm_to_float(arr, name=name)
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


def check_output_path(path, *, name="path", suffixes=None):
    """Return ``path`` as a :class:`~pathlib.Path` a file can be written to, checked before any work.

    Its folder must exist (a mistyped folder is refused, never created) and be a folder, ``path``
    must not be a folder, and its extension must be one of ``suffixes`` (lower case, with the
    dot) when given. Errors name ``name`` (a parameter, or a command-line option such as
    ``"--out"``): ``FileNotFoundError`` for a missing folder, ``ValueError`` otherwise.
    """
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise TypeError(f"{name} must be a file path (str or os.PathLike); got {path!r}")
    path = Path(path)
    for folder in reversed([path.parent, *path.parent.parents]):  # from the top down: the first wrong one
        if not folder.exists():
            raise FileNotFoundError(f"{name}: the folder '{folder}' does not exist, so '{path}' cannot be "
                                    "written; create the folder first or give another path")
        if not folder.is_dir():
            raise ValueError(f"{name}: '{folder}' is a file, not a folder, so '{path}' cannot be written")
    if path.is_dir():
        raise ValueError(f"{name}: '{path}' is a folder; give a file path")
    if suffixes is not None and path.suffix.lower() not in suffixes:
        raise ValueError(f"{name} must end in one of {', '.join(suffixes)}; got '{path.name}'")
    return path


_UMASK_LOCK = threading.Lock()


def _umask():
    """The process's umask: from /proc on Linux, else by setting it and setting it back (under a
    lock; another thread creating a file in that instant would get 022)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename.

    Readers never see a half-written ``path`` and a failure (Ctrl-C included) leaves an existing
    one untouched: the temporary file is removed and the exception propagates. The temporary name
    keeps ``path``'s extension last, so writers that pick a format by extension (FFmpeg,
    matplotlib) choose the same one. The file gets the permissions any new file gets (0666 less
    the umask), not ``mkstemp``'s private 0600. The folder must exist (:func:`check_output_path`).
    """
    path = check_output_path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
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
