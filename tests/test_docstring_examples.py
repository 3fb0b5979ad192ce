"""The Examples sections of the public docstrings (what the API reference shows) run as written."""

import doctest
import importlib
import sys

import pytest

#: The modules whose public names have pages in the API reference (docs/conf.py, API_MODULES).
MODULES = ("skavc", "skavc.sync", "skavc.localization", "skavc.speakers", "skavc.retrieval", "skavc.scene",
           "skavc.describe", "skavc.separation", "skavc.features", "skavc.encoders", "skavc.index", "skavc.io",
           "skavc.datasets", "skavc.metrics", "skavc.plotting")


def _public_examples():
    """(name, doctest) of every public object of :data:`MODULES` (and its methods) with examples."""
    finder, seen, found = doctest.DocTestFinder(), set(), []
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        names = getattr(module, "__all__", None) or [n for n in vars(module) if not n.startswith("_")]
        for name in names:
            obj = getattr(module, name, None)
            defined_in = getattr(obj, "__module__", "") or ""
            if obj is None or id(obj) in seen or not defined_in.startswith("skavc"):
                continue
            seen.add(id(obj))
            globs = dict(vars(sys.modules[defined_in]))  # as pytest --doctest-modules would run it
            found += [(test.name, test) for test in finder.find(obj, f"{module_name}.{name}", globs=globs)
                      if test.examples]
    return found


EXAMPLES = _public_examples()


def test_every_public_class_and_function_has_an_example():
    """Each has an API page (docs/conf.py); the page shows an example (constants need none)."""
    missing = []
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        names = getattr(module, "__all__", None) or [
            n for n, v in vars(module).items() if not n.startswith("_") and getattr(v, "__module__", None) == module_name]
        for name in names:
            obj = getattr(module, name)
            if name.isupper() or name.startswith("__") or not callable(obj):
                continue
            if "Examples\n" not in (obj.__doc__ or ""):
                missing.append(f"{module_name}.{name}")
    assert not missing, f"public names without an Examples section: {missing}"


@pytest.mark.parametrize("name, test", EXAMPLES, ids=[name for name, _ in EXAMPLES])
def test_docstring_example_runs(name, test, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report = []
    result = runner.run(test, out=report.append)
    assert result.failed == 0, "".join(report)
