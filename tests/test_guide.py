"""The user guide's Python snippets run as they are written, so that they cannot drift (issue 19).

Every ```python block of docs/guide.md (the user guide, once the README's "Use") runs in order,
in one namespace, in an empty working directory, as a user pasting them one after the other into
one session would. What is checked:

- a comment that starts with a shape, ``expr  # (50, 128) ...`` or ``x = expr  # (50, 128)``,
  states the shape of the value of ``expr`` (of its first item in ``a, b = expr``): checked with
  ``np.shape``;
- ``CLAIMS`` below: what other comments say of a statement's value, where that is cheap to
  check; each is keyed by the start of a guide statement and must find it;
- what the snippets leave behind (files written, the separation's parts summing to the mixture);
- that they raise no warning from skavc (a user pasting them would see it).

Sizes: the guide fits on 150 of 200 generated clips (all snippets: about 3 minutes on 2
cores). To keep the whole suite's budget, ``SMALLER`` cuts the training clips to 30 by textual
substitution (about 2 minutes), keeping the 50 held-out clips, so the shapes in the comments
hold as written. Each target must occur in the guide: a rewritten snippet fails here instead
of quietly running something else. The figures the comments quote (recall 0.19, +11.1 dB, ...)
hold at the guide's own sizes only: ``SKAVC_GUIDE_FULL=1`` runs the snippets exactly as
written and checks those too (``FIGURES``).
"""

import ast
import io
import os
import re
import tokenize
import warnings
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "guide.md"  # the snippets once in README.md, whose one example is their start

# (guide text, what runs instead): fewer training clips, the same 50 held out.
SMALLER = [
    ("make_av_clips(n_clips=200, random_state=0)", "make_av_clips(n_clips=80, random_state=0)"),
    ("clips[:150], clips[150:]", "clips[:30], clips[30:]"),
    ("truth.label_names[:150]", "truth.label_names[:30]"),
    ("truth.labels[150:]", "truth.labels[30:]"),
]

_FULL = os.environ.get("SKAVC_GUIDE_FULL", "") not in ("", "0")

_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
_SHAPE = re.compile(r"#\s*\((\d+(?:\s*,\s*\d+)*)\s*,?\s*\)")


def _unit_rows(E, ns):
    assert np.allclose(np.linalg.norm(E, axis=1), 1.0, atol=1e-4)


def _probabilities(p, ns):
    assert np.all((np.asarray(p) >= 0) & (np.asarray(p) <= 1))


def _same_as_path(E, ns):
    assert np.allclose(E, ns["model"].transform(["video.mp4"]), atol=1e-5), "['video.mp4'] gives another result"


def _recall(r, ns):
    assert 1 / 50 < r <= 1  # above chance among the 50 held-out clips


def _all_true(x, ns):
    assert np.all(x), f"{np.mean(x):.3f} are True"


def _mostly_true(x, ns):
    assert np.mean(x) > 0.5, f"{np.mean(x):.3f} are True"


def _curves(curves, ns):
    assert len(curves) == 16 and all(len(lags) == len(scores) for lags, scores in curves)


def _matches(matches, ns):
    assert len(matches) == 5 and all(isinstance(i, (int, np.integer)) and np.isfinite(s) for i, s in matches)
    assert [s for _, s in matches] == sorted((s for _, s in matches), reverse=True), "not best first"


def _label_dict(d, ns):
    assert list(d) == ns["labels"] and abs(sum(d.values()) - 1) < 1e-6


def _sentence(text, ns):
    assert text.startswith("Expected: ") and ("sound events likely near" in text or "no visible movement" in text)


def _expected_sounds(results, ns):
    assert len(results) == 50
    assert all(len(r["sounds"]) == 5 and all(0 <= s <= 1 for _, s in r["sounds"]) for r in results)


def _gain(dB, ns):
    assert dB > 3, f"{dB:.1f} dB"


# Start of a guide statement (as written there) -> check of its value; every key must be found.
CLAIMS = {
    "model.transform_audio(test)": _unit_rows,  # "unit rows"
    "model.transform_visual(test)": _unit_rows,
    "model.correspondence(test)": _probabilities,  # "P(...)"
    "model.score(test)": _recall,  # "held-out recall@1"
    'model.transform([load_clip("video.mp4")])': _same_as_path,  # '["video.mp4"] works too'
    "abs(offsets - shift_truth.offsets) <= 0.1": _all_true,  # "all True"
    "model.sync_curve(shifted)": _curves,  # "per clip: offsets tried and their scores"
    'model.retrieve_visuals(test[0].audio, EmbeddingIndex.load("vis"), top_k=5)': _matches,
    "model.retrieve_visuals(test[0].audio, test, top_k=5, rerank=20)": _matches,
    "maps[0]": _probabilities,  # "in [0, 1]"
    "frame_confidence[0]": _probabilities,
    "dict(zip(labels, P[0]))": _label_dict,  # "{label: probability}, rows sum to 1"
    "P.argmax(axis=1) == truth.labels[150:]": _mostly_true,  # "all True" as written (FIGURES); 30 clips: most
    "scene_model.describe_expected_audio(frames)": _sentence,  # "Expected: ...; sound events likely near ..."
    "scene_model.expected_sounds(test, top_k=5)": _expected_sounds,
    "si_sdr(mix_truth.sources[0][0], target)": _gain,  # "+11.1 dB" as written (FIGURES)
}


# The figures the comments quote, checked when the snippets run as written (SKAVC_GUIDE_FULL=1).
FIGURES = {
    "model.score(test)": lambda r, ns: round(float(r), 2) == 0.19,
    "P.argmax(axis=1) == truth.labels[150:]": lambda x, ns: bool(np.all(x)),  # "all True"
    "scene_model.describe_expected_audio(frames)": lambda text, ns: text == (
        "Expected: clicking (0.07), train (0.04), arrow (0.01), mouse (0.01), drill (0.01); "
        "sound events likely near 0.3 s, 0.9 s, 1.5 s, 1.9 s."),
    "si_sdr(mix_truth.sources[0][0], target)": lambda dB, ns: round(float(dB), 1) == 11.1
    and round(float(ns["confidence"]), 2) == 0.91,
}


def _blocks(text):
    """``(first line number in docs/guide.md, code)`` of every ```python block."""
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in _BLOCK.finditer(text)]


def _comments(code):
    """Line number (1-based, within ``code``) -> the comment on that line."""
    return {tok.start[0]: tok.string for tok in tokenize.generate_tokens(io.StringIO(code).readline)
            if tok.type == tokenize.COMMENT}


def _instrumented(code, original, first_line):
    """``code`` parsed, the value of every top-level expression and assignment routed through
    ``_readme_value``.

    ``_readme_value(key, value, shape, unpacked)`` gets the statement's guide text (before the
    substitutions, up to its comment), the shape its comment states (or None) and whether the
    value is unpacked into several names (``a, b = f()``: the shape is the first one's)."""
    tree = ast.parse(code)
    comments = _comments(code)
    original_lines = original.splitlines()
    for node in tree.body:
        if not isinstance(node, (ast.Expr, ast.Assign)):
            continue
        comment = comments.get(node.lineno, "") or comments.get(node.end_lineno, "")
        m = _SHAPE.match(comment)
        shape = tuple(int(v) for v in m.group(1).split(",")) if m else None
        unpacked = isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Tuple)
        key = original_lines[node.lineno - 1].split("  #")[0].strip()
        node.value = ast.Call(func=ast.Name("_readme_value", ast.Load()),
                              args=[ast.Constant(key), node.value, ast.Constant(shape), ast.Constant(unpacked)],
                              keywords=[])
    ast.fix_missing_locations(tree)
    ast.increment_lineno(tree, first_line - 1)  # tracebacks point at docs/guide.md's lines
    return compile(tree, str(GUIDE), "exec")


def test_the_readmes_one_example_is_the_guides_first_snippet():
    """README.md shows one example: the guide's first snippet as it is, so it runs here too."""
    (readme_example,) = [code for _, code in _blocks((ROOT / "README.md").read_text())]
    assert readme_example == _blocks(GUIDE.read_text())[0][1]


def test_smaller_sizes_are_found_in_the_guide():
    code = "".join(block for _, block in _blocks(GUIDE.read_text()))
    missing = [old for old, _ in SMALLER if old not in code]
    assert not missing, f"docs/guide.md no longer says {missing}: update SMALLER in {__file__}"


@pytest.mark.slow
@pytest.mark.parametrize("as_written", [False, pytest.param(True, marks=pytest.mark.skipif(
    not _FULL, reason="SKAVC_GUIDE_FULL=1 runs the guide's own sizes"))])
def test_guide_snippets_run_and_say_what_they_do(tmp_path, monkeypatch, as_written):
    text = GUIDE.read_text()
    blocks = _blocks(text)
    assert len(blocks) >= 5, "docs/guide.md's ```python blocks not found"
    monkeypatch.chdir(tmp_path)

    seen, checked_shapes = {}, []

    def readme_value(key, value, shape, unpacked):
        if shape is not None:
            got = np.shape(value[0] if unpacked else value)
            assert got == shape, f"docs/guide.md: `{key}` gives shape {got}, its comment says {shape}"
            checked_shapes.append(key)
        seen[key] = value
        return value

    ns = {"__name__": "__readme__", "_readme_value": readme_value}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for first_line, original in blocks:
            code = original
            for old, new in [] if as_written else SMALLER:
                code = code.replace(old, new)
            exec(_instrumented(code, original, first_line), ns)
    import skavc

    package = Path(skavc.__file__).resolve().parent
    ours = [f"{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})" for w in caught
            if Path(w.filename).resolve().is_relative_to(package) or w.filename == str(GUIDE)]
    assert not ours, f"the guide's snippets warn: {ours}"  # what a user pasting them would see

    for start, check in [*CLAIMS.items(), *(FIGURES.items() if as_written else ())]:
        keys = [key for key in seen if key.startswith(start)]
        assert keys, f"docs/guide.md has no statement starting {start!r} any more: update CLAIMS in {__file__}"
        for key in keys:
            try:
                if check(seen[key], ns) is False:  # FIGURES answer True or False
                    raise AssertionError(f"it gives {seen[key]!r}")
            except AssertionError as exc:
                raise AssertionError(f"docs/guide.md: `{key}` does not do what its comment says: {exc}") from None
    assert len(checked_shapes) >= 10, checked_shapes

    # what the snippets leave behind
    assert (tmp_path / "video.mp4").stat().st_size > 0
    assert (tmp_path / "vis.npy").exists() and (tmp_path / "vis.json").exists()
    assert np.allclose(ns["target"] + ns["residual"], ns["mixture"], atol=1e-5)
    assert 0.5 <= ns["confidence"] <= 1  # the target is in the mixture
