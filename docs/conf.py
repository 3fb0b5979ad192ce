"""Sphinx configuration of skavc's site: ``make docs`` builds it into docs/_build/html.

The API reference is generated from the numpydoc the code carries (autosummary), the user guide
and the notes are the Markdown pages beside this file (myst-parser), and the gallery runs the
scripts of ``examples/`` at build time (sphinx-gallery), so its figures are what the code gives.
Warnings are errors (``-W``) and cross-references are checked (``nitpicky``).
"""

import os
import sys
from pathlib import Path

import skavc

HERE = Path(__file__).resolve().parent
# The gallery's real recording is fetched by the benchmarks' helper (benchmarks/real_media.py).
sys.path.insert(0, str(HERE.parent / "benchmarks"))
sys.path.insert(0, str(HERE))  # gallery_order

#: The modules with a page of their own in the API reference, in the order of the layers (tasks
#: first); each page lists what the module's ``__all__`` names.
API_MODULES = ("skavc.sync", "skavc.localization", "skavc.speakers", "skavc.retrieval", "skavc.scene",
               "skavc.describe", "skavc.separation", "skavc.features", "skavc.encoders", "skavc.index",
               "skavc.io", "skavc.datasets", "skavc.metrics", "skavc.plotting")


def write_module_pages(folder):
    """One page per module of :data:`API_MODULES`: its docstring and a summary table of its
    ``__all__`` with a page per name (autosummary would take ``skavc.sync``, an attribute of
    ``skavc`` once imported, for a member of ``skavc``)."""
    import importlib

    folder.mkdir(parents=True, exist_ok=True)
    for name in API_MODULES:
        module = importlib.import_module(name)
        members = getattr(module, "__all__", None) or [  # no __all__: what the module defines
            key for key, value in vars(module).items()
            if not key.startswith("_") and getattr(value, "__module__", None) == name and callable(value)]
        members = sorted(members, key=str.lower)
        lines = [name, "=" * len(name), "", f".. automodule:: {name}", "   :no-members:", "",
                 f".. currentmodule:: {name}", ""]
        if members:
            lines += [".. autosummary::", "   :toctree: .", "   :nosignatures:", ""]
            lines += [f"   {member}" for member in members]
        text = "\n".join(lines) + "\n"
        page = folder / f"{name}.rst"
        if not page.is_file() or page.read_text() != text:  # unchanged pages keep Sphinx's cache
            page.write_text(text)


write_module_pages(HERE / "generated")

project = "skavc"
author = "the skavc developers"
copyright = "2026, " + author
version = release = skavc.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "examples", "gallery_order.py", "check_site.py", "auto_examples/*.ipynb", "auto_examples/*.py",
                    "auto_examples/*.zip", "auto_examples/*.json", "auto_examples/*.md5"]
templates_path = ["_templates"]

nitpicky = True
# Private names (``skavc._encoding.FACE_SIDE``, ``skavc._training.progress_logger``) are named in
# docstrings for contributors; they have no pages of their own. Names of other projects are not
# linked (no intersphinx: the build never goes online).
nitpick_ignore_regex = [
    (r"py:.*", r"(skavc\.)?(\w+\.)*_\w+.*"),
    (r"py:.*", r"(numpy|np|scipy|sklearn|joblib|onnxruntime|av|dask|distributed|librosa|pathlib|os|io|"
               r"matplotlib|mir_eval|collections|typing|concurrent|threading|PIL)(\..*)?"),
]

autosummary_generate = True
autosummary_ignore_module_all = False  # a module's page lists what its __all__ names, re-exports included
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_xref_param_type = False
numpydoc_validation_checks = set()

myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3
suppress_warnings = []

html_theme = "pydata_sphinx_theme"
html_title = f"skavc {version}"
html_static_path = []
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "icon_links": [],
}

sphinx_gallery_conf = {
    "within_subsection_order": "gallery_order.example_order",  # a name: the configuration is cached
    "examples_dirs": "examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"/_",
    "doc_module": ("skavc",),
    "backreferences_dir": "generated/backreferences",
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": True,
    "plot_gallery": os.environ.get("SKAVC_DOCS_GALLERY", "True"),
    "matplotlib_animations": False,
    "capture_repr": ("_repr_html_", "__repr__"),  # the separation example's audio players
    "min_reported_time": 1,
}


def skip_metadata_requests(app, what, name, obj, skip, options):
    """scikit-learn's generated ``set_{method}_request`` (metadata routing) are its own to document."""
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", skip_metadata_requests)
