"""The benchmark scripts run and print their tables (tiny sizes: a check that they work, not a timing)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _run(script, *args):
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True, text=True, timeout=600, env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def _value(out, row):
    match = re.search(rf"^\s*{re.escape(row)}\s+([0-9.]+)", out, flags=re.M)
    assert match, f"no row {row!r} in:\n{out}"
    return float(match.group(1))


def test_bench_encoders_prints_every_table():
    out = _run("bench_encoders.py", "--frames", "8", "--clips", "2", "--threads", "1",
               "--precision", "fp32", "fp16")
    assert out.startswith("machine:")
    for title in ("uint8 host frames -> embeddings", "by batch size", "Whisper tiny.en", "fp16 against fp32",
                  "AVCorrespondence"):
        assert title in out
    assert _value(out, "skavc ONNX fp32") > 0 and _value(out, "skavc ONNX fp16") > 0
    assert _value(out, "batch 8") > 0
    assert _value(out, "latency, one clip, ms") > 0
    assert _value(out, "transform of mp4 files, n_jobs=1") > 0
    assert _value(out, "EfficientNet embedding, photo crops") > 0.999  # min cosine of fp16 to fp32
    if "torch not installed" not in out:
        assert _value(out, "PyTorch eager fp32") > 0


def test_bench_head_prints_its_table():
    pytest.importorskip("torch")
    out = _run("bench_head.py", "--pairs", "200", "400", "--epochs", "1", "--threads", "1")
    rows = re.findall(r"^\s*(200|400)\s+\S+\s+([0-9.]+)\s+([0-9.]+)", out, flags=re.M)
    assert [r[0] for r in rows] == ["200", "400"] and all(float(v) > 0 for r in rows for v in r[1:])
    assert "scaling:" in out


def test_bench_scene_prints_its_table():
    out = _run("bench_scene.py", "--no-qabcs", "--n-clips", "24", "--epochs", "2")
    assert out.startswith("machine:")
    pattern = r"^\| (seen classes \(test clips\)|unseen classes) \| (\d+) \| ([0-9.]+) \|"
    rows = {m[0]: m[1:] for m in re.findall(pattern, out, flags=re.M)}
    assert set(rows) == {"seen classes (test clips)", "unseen classes"}
    assert all(int(n) > 0 and 0 <= float(acc) <= 1 for n, acc in rows.values())
    assert "| total |" in out and "qabcs" not in out.split("Timings")[1]  # never downloads in tests


def test_bench_separation_prints_its_table():
    out = _run("bench_separation.py", "--n-clips", "2", "--sources", "2", "--no-real")
    for row in ("timing route", "unguided NMF", "ideal ratio mask"):
        assert row in out


def test_bench_sync_pairs_prints_its_table():
    out = _run("bench_sync_pairs.py", "--n-pictures", "3", "--duration", "1", "--repeats", "1")
    assert "largest evidence difference 0.0e+00" in out  # the reduction changes nothing
    assert re.search(r"^\| sound analysed once \| \d+ \| [0-9.]+ \|$", out, flags=re.M)
