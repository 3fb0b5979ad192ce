"""The ``skavc`` command line as a user meets it: help, versions, errors in the shell's words,
output paths checked before any work, silent videos, any mixture file, the overlay's legend."""

import os
import subprocess
import sys

import numpy as np
import pytest

from skavc.cli import build_parser, main, shell_words


def _drop_sound(video, path):
    """``video``'s video stream copied, packet for packet, into a file without sound."""
    import av

    with av.open(str(video)) as source, av.open(str(path), "w") as container:
        stream = container.add_stream_from_template(source.streams.video[0])
        for packet in source.demux(source.streams.video[0]):
            if packet.dts is not None:  # the flushing packet has none
                packet.stream = stream
                container.mux(packet)
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """One generated second as a video with sound, the same frames without sound, and its clip."""
    from skavc import save_clip
    from skavc.datasets import make_av_clips

    (clip,), _ = make_av_clips(n_clips=1, duration=1.0, random_state=0)
    folder = tmp_path_factory.mktemp("videos")
    save_clip(clip, folder / "clip.mp4")
    _drop_sound(folder / "clip.mp4", folder / "silent.mp4")
    return folder / "clip.mp4", folder / "silent.mp4", clip


def _run(capsys, *argv):
    """``main(argv)``'s exit status and what it printed: (status, stdout, stderr)."""
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# -- item 16: --version, python -m skavc, every demo option explained with its default -----------


def test_version(capsys):
    from skavc import __version__

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"skavc {__version__}"


def test_python_dash_m_runs_the_command_line():
    from skavc import __version__

    done = subprocess.run([sys.executable, "-m", "skavc", "--version"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"skavc {__version__}"


def _subparser(name):
    (sub,) = [a for a in build_parser()._actions if a.dest == "command"]
    return sub.choices[name]


def test_every_demo_option_has_help_and_shows_its_default():
    demo = _subparser("demo")
    formatter = demo._get_formatter()
    for action in demo._actions:
        if action.dest == "help":
            continue
        assert action.help, f"{action.option_strings} has no help text"
        shown = formatter._expand_help(action)  # the help line as --help prints it
        assert "(default: " in shown, action.option_strings
        assert action.default is None or f"(default: {action.default})" in shown, action.option_strings
    assert "(default: " in " ".join(demo.format_help().split())
    assert demo.parse_args([]).verbose == 0  # the results, not the training log (README's sample output)


# -- item 3: classify says what it judged by ----------------------------------------------------


def test_classify_help_and_output_say_the_pictures_alone_without_a_scene_model(videos, capsys):
    video, silent, _ = videos
    help_text = " ".join(_subparser("classify").format_help().split())
    assert "pictures alone" in help_text and "scene=True" in help_text
    status, out, err = _run(capsys, "classify", video, "--labels", "dog,train,bell")
    assert status == 0, err
    assert "judged by the pictures alone" in out
    assert sum(float(line.split()[-1]) for line in out.splitlines()[1:]) == pytest.approx(1.0, abs=2e-3)
    # the sound is not used, so a silent video is classified as well
    status, silent_out, err = _run(capsys, "classify", silent, "--labels", "dog,train,bell")
    assert status == 0, err
    assert silent_out.splitlines()[1:] == out.splitlines()[1:]


def test_classify_with_a_listening_model_says_so_and_needs_the_sound(videos, capsys, monkeypatch):
    import skavc.cli
    from skavc import AVCorrespondence

    class Listening(AVCorrespondence):  # a scene model's sound route, without fitting one
        def classify_scene(self, X, labels):
            return np.full((len(X), len(labels)), 1 / len(labels))

    model = Listening()
    model.audio_class_head_, model.audio_weight_ = object(), 0.2
    monkeypatch.setattr(skavc.cli, "_model", lambda args: model)
    video, silent, _ = videos
    status, out, err = _run(capsys, "classify", video, "--labels", "a,b", "--model", "scene.joblib")
    assert status == 0, err
    assert "judged by the pictures and the sound" in out
    status, out, err = _run(capsys, "classify", silent, "--labels", "a,b", "--model", "scene.joblib")
    assert status == 2
    assert "leave out --model" in err and "allow_missing_audio" not in err
    model.audio_weight_ = 0.0  # a head that learnt nothing that carries over is not mixed in
    status, out, err = _run(capsys, "classify", silent, "--labels", "a,b", "--model", "scene.joblib")
    assert status == 0, err
    assert "judged by the pictures alone" in out


# -- item 7: describe reads only the pictures -----------------------------------------------------


def test_describe_a_video_without_sound(videos, capsys):
    _, silent, _ = videos
    status, out, err = _run(capsys, "describe", silent)
    assert status == 0, err
    assert "Expected:" in out


# -- item 5: errors give the fix in the shell's words ---------------------------------------------


def test_a_method_that_needs_a_fitted_head_names_options(videos, capsys):
    video, _, _ = videos
    status, _, err = _run(capsys, "sync", video, "--method", "learned")
    assert status == 2
    assert "--method learned" in err and "--model" in err and "--method signal" in err
    assert "method='" not in err
    status, _, err = _run(capsys, "localize", video, "--method", "fused")
    assert status == 2
    assert "--method fused" in err and "--method synchrony" in err and "method='" not in err


def test_a_video_without_sound_is_refused_in_the_shells_words(videos, capsys):
    _, silent, _ = videos
    for command in ("sync", "localize"):
        status, _, err = _run(capsys, command, silent)
        assert status == 2
        assert err.startswith(f"skavc {command}: error: no audio stream")
        assert "audio track" in err and "allow_missing_audio" not in err


def test_a_picture_as_target_is_refused_in_the_shells_words(videos, tmp_path, capsys):
    plt = pytest.importorskip("matplotlib.pyplot")
    video, _, clip = videos
    picture = tmp_path / "target.png"
    plt.imsave(picture, clip.frames[0])
    status, _, err = _run(capsys, "separate", video, picture, "--out", tmp_path / "t.wav")
    assert status == 2
    assert "is a picture" in err and "give as TARGET a video" in err and "(T, H, W, 3)" not in err
    assert not (tmp_path / "t.wav").exists()


@pytest.mark.parametrize("message, expected, python", [
    ("method='learned' needs a sync head: a model fitted with sync=True first "
     "(AVCorrespondence(sync=True).fit(X)), or use method='signal'",
     ["--method learned", "--model FILE", "sync=True", "--method signal"], ["method='", ".fit(X)"]),
    ("method='fused' needs a localisation head: a model fitted with localization=True first "
     "(AVCorrespondence(localization=True).fit(X)), or use method='synchrony'",
     ["--method fused", "--model FILE", "--method synchrony"], ["method='", ".fit(X)"]),
    ("no audio stream in 'v.mp4': a clip needs both frames and audio "
     "(pass allow_missing_audio=True to use silence instead)",
     ["no audio stream in 'v.mp4'", "audio track"], ["allow_missing_audio"]),
    ("no audio samples decoded from 'v.mp4' for the requested span (start=0s, 25 frames at 25 fps); "
     "pass allow_missing_audio=True to use silence instead", ["audio track"], ["allow_missing_audio"]),
    ("max_offset must be a positive number; got -1.0", ["--max-offset must be"], ["max_offset"]),
    ("labels holds duplicates (case and spacing ignored): ['a']", ["--labels holds"], []),
])
def test_shell_words(message, expected, python):
    """The library's Python-only fixes, in the phrasings it has used, become options."""
    translated = shell_words(message)
    for text in expected:
        assert text in translated, translated
    for text in python:
        assert text not in translated, translated


# -- item 8: every output path checked before any work -------------------------------------------


@pytest.mark.parametrize("argv, expected", [
    (["sync", "{missing_video}", "--plot", "{tmp}/no/such/folder/c.png"], "--plot: the folder"),
    (["sync", "{missing_video}", "--plot", "{tmp}/a_file/c.png"], "is a file, not a folder"),
    (["sync", "{missing_video}", "--plot", "{tmp}"], "is a folder"),
    (["sync", "{missing_video}", "--plot", "{tmp}/c.jpg"], "--plot must end in one of .png"),
    (["localize", "{missing_video}", "--out", "{tmp}/overlay.webm"], "--out must end in one of .mp4"),
    (["localize", "{missing_video}", "--out", "{tmp}/no/such/overlay.mp4"], "--out: the folder"),
    (["localize", "{missing_video}", "--png", "{tmp}/no/such/frames"], "--png: the folder"),
    (["localize", "{missing_video}", "--png", "{tmp}/a_file"], "--png: '"),
    (["localize", "{missing_video}", "--every", "5"], "--every picks the frames --png writes"),
    (["separate", "{missing_video}", "{missing_video}", "--out", "{tmp}/target.mp3"], "--out must end in one of .wav"),
    (["separate", "{missing_video}", "{missing_video}", "--out", "{tmp}/no/such/t.wav"], "--out: the folder"),
])
def test_output_paths_are_checked_before_any_work(argv, expected, tmp_path, capsys):
    (tmp_path / "a_file").write_text("not a folder")
    # the input does not exist: an error about the output proves it was checked first
    argv = [a.format(tmp=tmp_path, missing_video=tmp_path / "missing.mp4") for a in argv]
    status, out, err = _run(capsys, *argv)
    assert status == 2
    assert err.startswith(f"skavc {argv[0]}: error: ") and expected in err, err
    assert "Traceback" not in err and out == ""
    assert sorted(os.listdir(tmp_path)) == ["a_file"]  # no folder created, nothing written


@pytest.mark.parametrize("error", [FileExistsError, NotADirectoryError, PermissionError, IsADirectoryError])
def test_file_system_errors_are_reported_not_raised(error, monkeypatch, capsys):
    import skavc.cli

    def fail(args):
        raise error(13, "cannot write", "/somewhere/c.png")

    monkeypatch.setattr(skavc.cli, "_sync", fail)
    status, _, err = _run(capsys, "sync", "v.mp4")
    assert status == 2
    assert err.startswith("skavc sync: error: ") and "/somewhere/c.png" in err


def test_png_folder_is_created_but_not_its_parents(videos, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    video, _, _ = videos
    status, out, err = _run(capsys, "localize", video, "--png", tmp_path / "frames", "--every", "10")
    assert status == 0, err
    assert sorted(os.listdir(tmp_path / "frames")) == ["frame_00000.png", "frame_00010.png", "frame_00020.png"]


# -- item 9: the mixture may be any file with sound -----------------------------------------------


def test_separate_reads_the_mixture_from_a_video(videos, tmp_path, capsys):
    from scipy.io import wavfile

    video, silent, clip = videos
    out = tmp_path / "target.wav"
    status, printed, err = _run(capsys, "separate", video, video, "--out", out)
    assert status == 0, err
    assert "target written" in printed
    rate, target = wavfile.read(out)
    assert rate == clip.sample_rate and abs(target.size - clip.audio.size) < 0.05 * rate
    status, _, err = _run(capsys, "separate", silent, video, "--out", out)
    assert status == 2
    assert "MIX" in err and "has no sound" in err
    status, _, err = _run(capsys, "separate", video, silent, "--out", out)  # only TARGET's frames are read
    assert status == 0, err
    help_text = " ".join(_subparser("separate").format_help().split())
    assert "any audio or video file with sound" in help_text


def test_separate_streams_long_mixtures_a_window_at_a_time(videos, tmp_path, capsys):
    from scipy.io import wavfile

    from skavc.io import load_audio

    video, _, clip = videos
    out = tmp_path / "target.wav"
    status, printed, err = _run(capsys, "separate", video, video, "--out", out, "--window", "0.4", "--overlap",
                                "0.1")
    assert status == 0, err
    assert "3 windows of 0.4 s" in printed and "separate clip.mp4" in err  # the summary; progress on stderr
    rate, target = wavfile.read(out)
    sound, sound_rate = load_audio(video)
    assert rate == sound_rate and target.size == sound.size
    status, printed, err = _run(capsys, "separate", video, video, "--out", out, "--quiet")
    assert status == 0 and err == "" and "windows" not in printed  # one window: one answer
    status, _, err = _run(capsys, "separate", video, video, "--out", out, "--window", "1", "--overlap", "1")
    assert status == 2 and "--overlap must be shorter than --window" in err
    longer = tmp_path / "longer.wav"
    wavfile.write(longer, clip.sample_rate, np.tile(clip.audio, 3))
    status, _, err = _run(capsys, "separate", longer, video, "--out", out)
    assert status == 2 and "TARGET covers 1.00 s but MIX lasts 3.00 s" in err


# -- item 16: --every needs --png; the overlay's legend and --raw ----------------------------------


def _frames_and_maps(shape=(2, 144, 256)):
    T, H, W = shape
    frames = np.full((T, H, W, 3), 120, dtype=np.uint8)
    yy, xx = np.mgrid[:H, :W]
    bump = np.exp(-(((yy - H / 3) / (H / 6)) ** 2 + ((xx - W / 2) / (W / 8)) ** 2)).astype(np.float32)
    return frames, np.stack([0.8 * bump, 0.3 * bump])


def test_legend_is_drawn_in_the_lower_left_corner_only():
    pytest.importorskip("matplotlib")
    from skavc.plotting import overlay_frames

    frames, maps = _frames_and_maps()
    plain = overlay_frames(frames, maps)
    legend = overlay_frames(frames, maps, legend=True)
    changed = np.any(plain != legend, axis=(0, 3))
    rows, cols = np.nonzero(changed)
    assert rows.min() > 0.6 * frames.shape[1] and cols.max() < 0.6 * frames.shape[2]  # lower left
    assert changed[-10:, :20].any()
    small_frames, small_maps = frames[:, :40, :60], maps[:, :40, :60]  # no room for a readable legend
    np.testing.assert_array_equal(overlay_frames(small_frames, small_maps, legend=True),
                                  overlay_frames(small_frames, small_maps))


def _tick_column(frame, reference):
    """The column of the legend's white threshold tick: pure white pixels the plain overlay lacks."""
    white = np.all(frame == 255, axis=-1) & ~np.all(reference == 255, axis=-1)
    columns = np.nonzero(white.sum(axis=0) >= 5)[0]
    return columns.mean() if columns.size else None


def test_normalize_scales_each_frame_to_its_max_and_moves_the_tick():
    pytest.importorskip("matplotlib")
    from skavc.plotting import overlay_frames

    frames, maps = _frames_and_maps()
    raw = overlay_frames(frames, maps, normalize=True)
    # colours as if each map peaked at 1; the outline still where the map itself is >= 0.5
    scaled = overlay_frames(frames, maps / maps.max(axis=(1, 2), keepdims=True), threshold=2.0)
    inside = maps >= 0.5
    assert np.abs(raw.astype(int) - scaled)[~inside].max() <= 2
    assert not inside[1].any() and np.abs(raw[1].astype(int) - scaled[1]).max() <= 2  # no outline at 0.3
    np.testing.assert_array_equal(overlay_frames(frames, np.zeros_like(maps), normalize=True), frames)

    plain = overlay_frames(frames, maps)
    fixed = overlay_frames(frames, maps, legend=True)
    moved = overlay_frames(frames, maps, legend=True, normalize=True)
    at_half = _tick_column(fixed[0], plain[0])
    at_frame_max = _tick_column(moved[0], raw[0])  # 0.5 of a map peaking at 0.8: 0.625 of the bar
    assert at_half is not None and at_frame_max is not None and at_frame_max > at_half
    assert _tick_column(moved[1], raw[1]) is None  # a map peaking at 0.3 never reaches 0.5: no tick


def test_localize_writes_the_overlay_with_a_legend_and_raw_maps(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from PIL import Image

    from skavc import save_clip
    from skavc.datasets import make_av_clips

    (clip,), _ = make_av_clips(n_clips=1, duration=1.0, frame_size=(144, 256), random_state=0)
    video = tmp_path / "wide.mp4"
    save_clip(clip, video)
    firsts = []
    for flag in ([], ["--raw"]):
        folder = tmp_path / f"frames{len(flag)}"
        status, out, err = _run(capsys, "localize", video, "--png", folder, "--every", "12", *flag)
        assert status == 0, err
        first = np.asarray(Image.open(folder / "frame_00000.png").convert("RGB")).astype(int)
        corner = first[-20:, 10:60].mean()
        assert corner < clip.frames[0, -20:, 10:60].mean() - 20  # the legend's dark backing
        firsts.append(first)
    assert np.abs(firsts[0] - firsts[1]).max() > 0  # --raw draws something else (at least the bar's caption)
    help_text = " ".join(_subparser("localize").format_help().split())
    assert "--raw" in help_text and "maximum" in help_text


def test_every_must_be_a_whole_number_of_at_least_one(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["localize", "v.mp4", "--png", "d", "--every", "0"])
    assert exit_.value.code == 2 and "--every: must be a whole number >= 1; got '0'" in capsys.readouterr().err
