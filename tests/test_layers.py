"""The layer contract (setup.cfg, docs/design.md): it holds, and it fails when a task imports the estimator."""

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("importlinter")


def _lint(package_dir, package_name, tmp_path):
    """Run lint-imports with the repository's contract, renamed to ``package_name``."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    text = tmp_path / "importlinter.ini"
    with open(text, "w") as fh:
        for section in config.sections():
            if section.startswith("importlinter"):
                fh.write(f"[{section}]\n")
                for key, value in config[section].items():
                    value = value.replace("skavc", package_name).replace("\n", "\n    ")
                    fh.write(f"{key} = {value}\n")
    env = {"PYTHONPATH": str(package_dir), "PATH": "", "HOME": str(tmp_path)}
    return subprocess.run(
        [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
         "sys.exit(lint_imports_command())", "--config", str(text), "--no-cache"],
        capture_output=True, text=True, env=env, cwd=tmp_path, check=False,
    )


def _copy(tmp_path, name):
    dest = tmp_path / "src"
    shutil.copytree(ROOT / "skavc", dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def test_the_package_keeps_its_layers(tmp_path):
    result = _lint(_copy(tmp_path, "skavc_layers"), "skavc_layers", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "KEPT" in result.stdout


@pytest.mark.parametrize("module, line", [
    ("sync/__init__.py", "from .._correspondence import AVCorrespondence  # a task importing the estimator\n"),
    ("localization/_maps.py", "from ..sync import peak_offset  # one task importing another\n"),
    ("features/__init__.py", "from .._encoding import EncodingContext  # a feature function reaching up\n"),
])
def test_an_import_pointing_up_breaks_the_contract(tmp_path, module, line):
    src = _copy(tmp_path, "skavc_layers")
    path = src / "skavc_layers" / module
    path.write_text(line + path.read_text())
    result = _lint(src, "skavc_layers", tmp_path)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout


def test_import_skavc_loads_neither_pyav_nor_librosa():
    code = ("import sys, skavc; from skavc import AVCorrespondence, EmbeddingIndex; "
            "print(sorted(m for m in ('av', 'librosa') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    code = "import sys, skavc; skavc.load_clip; print('av' in sys.modules)"  # decoding brings PyAV in
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "True"
