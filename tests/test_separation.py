"""Visually guided separation (skavc.separation, timing route) and the separation metrics."""

import numpy as np
import pytest

from skavc.datasets import make_av_clips
from skavc.metrics import separation_scores, si_sdr
from skavc.separation import separate

mir_eval = pytest.importorskip("mir_eval")

N_CLIPS = 8


@pytest.fixture(scope="module")
def two_sources():
    return make_av_clips(n_clips=N_CLIPS, n_sources=2, duration=2.0, random_state=0)


def _energy_db(x):
    return 10 * np.log10(np.sum(np.asarray(x, np.float64) ** 2) + 1e-30)


def test_guided_by_target_frames_improves_sdr_by_6_db(two_sources):
    clips, truth = two_sources
    gains, confidences = [], []
    for i, clip in enumerate(clips):
        ref = truth.sources[i][:1]
        est, conf = separate(clip.audio, clip.sample_rate, truth.source_frames[i][0], clip.fps,
                             return_confidence=True)
        sdr_mix = separation_scores(ref, clip.audio[None])[0][0]
        sdr_est = separation_scores(ref, est[None])[0][0]
        gains.append(sdr_est - sdr_mix)
        confidences.append(conf)
    # measured on these 8 clips: median +16.0 dB
    assert np.median(gains) >= 6.0, gains
    assert np.median(confidences) > 0.5


def test_length_rate_residual_and_absent_target(two_sources):
    clips, truth = two_sources
    clip = clips[0]
    target, residual, conf = separate(clip.audio, clip.sample_rate, truth.source_frames[0][0], clip.fps,
                                      return_residual=True, return_confidence=True)
    assert target.shape == residual.shape == clip.audio.shape
    assert target.dtype == np.float32 and np.all(np.isfinite(target))
    np.testing.assert_allclose(target + residual, clip.audio, atol=1e-6)
    # another clip's source frames: this target is not in the mixture
    absent, absent_conf = separate(clip.audio, clip.sample_rate, truth.source_frames[1][0], clip.fps,
                                   return_confidence=True)
    assert _energy_db(clip.audio) - _energy_db(absent) >= 20.0
    assert absent_conf < conf and absent_conf < 0.5
    # any rate: the STFT is sized in seconds, the output keeps the input's length
    half = clip.audio[::2]
    out = separate(half, clip.sample_rate // 2, truth.source_frames[0][0], clip.fps)
    assert out.shape == half.shape and np.all(np.isfinite(out))


def test_silence_and_static_frames_give_silence(two_sources):
    clips, truth = two_sources
    clip = clips[0]
    out, res, conf = separate(np.zeros_like(clip.audio), clip.sample_rate, truth.source_frames[0][0], clip.fps,
                              return_residual=True, return_confidence=True)
    assert np.all(out == 0) and np.all(res == 0) and conf == 0.0
    static = np.repeat(truth.source_frames[0][0][:1], clip.n_frames, axis=0)
    out, conf = separate(clip.audio, clip.sample_rate, static, clip.fps, return_confidence=True)
    assert np.all(out == 0) and conf == 0.0


def _box(center, radius, shape, margin=1.6):
    (x, y), (H, W) = center, shape
    r = margin * radius
    return (max(0, int(x - r)), max(0, int(y - r)), min(W, int(x + r) + 1), min(H, int(y + r) + 1))


def test_region_points_at_one_of_two_sources(two_sources):
    clips, truth = two_sources
    wins = 0
    for i in range(3):
        clip = clips[i]
        H, W = clip.frames.shape[1:3]
        outs = []
        for j in range(2):
            box = _box(truth.centers[i][j].mean(axis=0), truth.radii[i][j], (H, W))
            outs.append(separate(clip.audio, clip.sample_rate, clip.frames, clip.fps, region=box))
        assert not np.allclose(outs[0], outs[1])
        # each output is closer (higher SI-SDR) to its own source than to the other
        for j in range(2):
            own = si_sdr(truth.sources[i][j], outs[j] + 1e-9)
            other = si_sdr(truth.sources[i][1 - j], outs[j] + 1e-9)
            wins += own > other
    assert wins >= 5, wins  # of 6
    # a (T, H, W) weight mask works too: the target's own pixels
    mask = truth.instance_masks[0][0].astype(np.float32)
    out = separate(clips[0].audio, clips[0].sample_rate, clips[0].frames, clips[0].fps, region=mask)
    assert si_sdr(truth.sources[0][0], out + 1e-9) > si_sdr(truth.sources[0][1], out + 1e-9)


def test_bad_input_errors(two_sources):
    clips, truth = two_sources
    clip, frames = clips[0], truth.source_frames[0][0]
    a, sr, fps = clip.audio, clip.sample_rate, clip.fps
    with pytest.raises(ValueError, match="mixed_audio is empty"):
        separate(np.zeros(0, np.float32), sr, frames, fps)
    with pytest.raises(ValueError, match="mixed_audio must be mono"):
        separate(np.stack([a, a]), sr, frames, fps)
    with pytest.raises(ValueError, match="mixed_audio contains NaN"):
        separate(np.full_like(a, np.nan), sr, frames, fps)
    with pytest.raises(ValueError, match="sample_rate"):
        separate(a, 16000.5, frames, fps)
    with pytest.raises(ValueError, match="target_frames cover"):
        separate(a, sr, frames[: frames.shape[0] // 2], fps)
    with pytest.raises(ValueError, match="target_frames cover"):
        separate(a, sr // 2, frames, fps)  # same samples read at half the rate: twice as long
    separate(a, sr, frames[:-1], fps)  # one frame short: accepted
    with pytest.raises(TypeError, match="target_frames must be uint8"):
        separate(a, sr, frames.astype(np.float32), fps)
    with pytest.raises(ValueError, match="target_frames must have shape"):
        separate(a, sr, frames[..., 0], fps)
    with pytest.raises(ValueError, match="target_frames is one picture"):
        separate(a, sr, frames[0], fps)
    with pytest.raises(ValueError, match="region"):
        separate(a, sr, frames, fps, region=(500, 500, 600, 600))
    with pytest.raises(ValueError, match="region"):
        separate(a, sr, frames, fps, region=np.ones((3, 4, 5)))
    with pytest.raises(ValueError, match="fps"):
        separate(a, sr, frames, 0)
    with pytest.raises(ValueError, match=r"guide must have one value per frame of target_frames, shape \(\d+,\)"):
        separate(a, sr, frames, fps, guide=np.ones(3))
    with pytest.raises(ValueError, match="guide must be finite"):
        separate(a, sr, frames, fps, guide=np.full(frames.shape[0], np.nan))


def test_weak_evidence_gives_the_mixture_quieter_never_worse(two_sources):
    """A guide that follows no source: a low confidence and a scaled copy of the mixture (SDR as the mixture's)."""
    clips, truth = two_sources
    clip, frames = clips[0], truth.source_frames[0][0]
    guide = np.random.default_rng(0).random(frames.shape[0])
    out, confidence = separate(clip.audio, clip.sample_rate, frames, clip.fps, guide=guide, return_confidence=True)
    assert confidence < 0.3
    # c * (c * mask + 1 - c): at low c mostly the mixture, c times as loud
    assert np.corrcoef(out, clip.audio)[0, 1] > 0.95
    sources = truth.sources[0].astype(np.float64)
    mixture_sdr = separation_scores(sources, np.stack([clip.audio, clip.audio]))[0][0]
    assert separation_scores(sources, np.stack([out, clip.audio - out]))[0][0] >= mixture_sdr - 1.0


def test_a_guide_series_stands_in_for_the_frames_motion(two_sources):
    """The target's own motion energy given as ``guide`` separates it as its frames do."""
    from skavc.features import motion_energy

    clips, truth = two_sources
    clip, frames = clips[0], truth.source_frames[0][0]
    by_frames, c_frames = separate(clip.audio, clip.sample_rate, frames, clip.fps, return_confidence=True)
    by_guide, c_guide = separate(clip.audio, clip.sample_rate, frames, clip.fps, guide=motion_energy(frames),
                                 return_confidence=True)
    assert c_frames > 0.5 and c_guide > 0.5
    assert np.corrcoef(by_frames, by_guide)[0, 1] > 0.9


def test_metrics():
    rng = np.random.RandomState(0)
    s = rng.standard_normal((2, 4000))
    assert si_sdr(s[0], 3 * s[0]) > 100
    noisy = s[0] + 0.1 * s[1]
    assert abs(si_sdr(s[0], noisy) - 20.0) < 0.5
    sdr, sir, sar = separation_scores(s, s + 0.01 * rng.standard_normal(s.shape))
    assert sdr.shape == (2,) and np.all(sdr > 30)
    sdr, _, _ = separation_scores(s[0], np.zeros(4000))  # silent estimate: very low, not an error
    assert sdr[0] == -np.inf
    with pytest.raises(ValueError, match="same shape"):
        separation_scores(s, s[:1])
    with pytest.raises(ValueError, match="all zero"):
        si_sdr(np.zeros(10), np.ones(10))


def test_one_picture_is_refused_by_name_before_any_work(two_sources, tmp_path):
    """The appearance route was withdrawn: every public entry point refuses one picture (H, W, 3)
    with a ValueError naming its parameter, and nothing is read first."""
    from skavc import AVCorrespondence

    clips, truth = two_sources
    picture = truth.source_frames[0][0][0]
    model = AVCorrespondence()
    with pytest.raises(ValueError, match=r"target_visual is one picture of shape \(128, 128, 3\).*\(T, H, W, 3\)"):
        model.separate(clips[0].audio, picture)
    with pytest.raises(ValueError, match="target_visual is one picture"):  # before MIX is opened
        model.separate_windows(str(tmp_path / "absent.wav"), picture)
    with pytest.raises(ValueError, match="target_frames is one picture"):
        separate(clips[0].audio, clips[0].sample_rate, picture, clips[0].fps)
    with pytest.raises(TypeError, match="separation"):  # the parameter that trained it is gone
        AVCorrespondence(separation=True)


def test_cli_separate(two_sources, tmp_path, capsys):
    from scipy.io import wavfile

    from skavc import AVClip
    from skavc.cli import main
    from skavc.io import save_clip

    clips, truth = two_sources
    mix = tmp_path / "mix.wav"
    wavfile.write(mix, clips[0].sample_rate, (clips[0].audio * 32767).astype(np.int16))
    video = tmp_path / "target.mp4"
    save_clip(AVClip(clips[0].audio, clips[0].sample_rate, truth.source_frames[0][0], clips[0].fps), video)
    out = tmp_path / "target.wav"
    assert main(["separate", str(mix), str(video), "--out", str(out), "--region", "0,0,64,64"]) == 0
    assert "target written" in capsys.readouterr().out
    rate, written = wavfile.read(out)
    assert rate == clips[0].sample_rate and written.shape == clips[0].audio.shape
    with pytest.raises(SystemExit):
        main(["separate", str(mix), str(video), "--out", str(out), "--region", "0,0,64"])
    assert "--region: must be x0,y0,x1,y1" in capsys.readouterr().err
    picture = tmp_path / "target.png"
    plt = pytest.importorskip("matplotlib.pyplot")

    plt.imsave(picture, truth.source_frames[0][0][0])
    assert main(["separate", str(mix), str(picture), "--out", str(out)]) == 2
    assert "is a picture" in capsys.readouterr().err and not out.with_suffix(".wav.tmp").exists()
    bitmap = tmp_path / "target.bmp"  # any one-frame picture is refused, not only PNG / JPEG
    plt.imsave(bitmap, truth.source_frames[0][0][0][..., :3])
    assert main(["separate", str(mix), str(bitmap), "--out", str(out)]) == 2
    assert "is a picture" in capsys.readouterr().err


# -- long recordings: a window at a time ------------------------------------------------------------


def test_crossfade_windows_pass_what_the_windows_agree_on():
    from skavc.separation import crossfade_windows

    rate, hop, window = 100, 0.8, 1.0
    signal = np.sin(np.arange(350) / 7.0)
    windows = [(signal[round(k * hop * rate) : round((k * hop + window) * rate)], k / 10) for k in range(5)]
    windows = [(w, -2 * w, c) for w, c in windows if w.size]  # a residual crossfaded alongside
    pieces = list(crossfade_windows(windows, rate, hop=hop))
    assert len(pieces) == len(windows)
    np.testing.assert_allclose(np.concatenate([p.target for p in pieces]), signal, atol=1e-6)
    assert [p.start for p in pieces] == [round(k * hop * rate) / rate for k in range(len(pieces))]
    assert [p.confidence for p in pieces] == [w[2] for w in windows]
    np.testing.assert_allclose(np.concatenate([p.residual for p in pieces]), -2 * signal, atol=1e-5)
    assert all(p.target.dtype == np.float32 and p.sample_rate == rate for p in pieces)
    # windows that disagree meet along the ramp: each end is its own window's, the middle of the
    # overlap half of each
    ones, zeros = np.ones(100), np.zeros(100)
    joined = np.concatenate([p.target for p in crossfade_windows([(ones, zeros, 1.0), (zeros, ones, 0.0)], rate,
                                                                 hop=0.8)])
    assert joined.size == 180 and np.all(joined[:80] == 1) and np.all(joined[100:] == 0)
    assert np.all(np.diff(joined[80:100]) < 0) and joined[89] + joined[90] == pytest.approx(1.0, abs=0.02)


def test_separate_windows_one_window_is_separate_and_many_still_separate(two_sources):
    from skavc.separation import separate_windows

    clips, truth = two_sources
    clip, frames = clips[0], truth.source_frames[0][0]
    ref, ref_conf = separate(clip.audio, clip.sample_rate, frames, clip.fps, return_confidence=True)
    (piece,) = separate_windows([clip.audio], clip.sample_rate, [(frames, clip.fps)], hop=5.0)
    assert np.array_equal(piece.target, ref) and piece.confidence == ref_conf and piece.start == 0.0
    np.testing.assert_allclose(piece.target + piece.residual, clip.audio, atol=1e-6)
    # three clips end to end (the sources change every 2 s), 2 s windows sharing 0.5 s: each window
    # follows its own sources (measured: +16.2 dB; separate on the whole 6 s: -2.4 dB)
    chosen = [0, 3, 4]
    audio = np.concatenate([clips[i].audio for i in chosen])
    target_frames = np.concatenate([truth.source_frames[i][0] for i in chosen])
    reference = np.concatenate([truth.sources[i][0] for i in chosen])
    window, hop, rate, fps = 2.0, 1.5, clip.sample_rate, clip.fps
    mixtures = [audio[round(k * hop * rate) : round((k * hop + window) * rate)] for k in range(4)]
    framed = [(target_frames[round(k * hop * fps) : round((k * hop + window) * fps)], fps) for k in range(4)]
    pieces = list(separate_windows(mixtures, rate, framed, hop=hop))
    estimate = np.concatenate([p.target for p in pieces])
    assert estimate.shape == audio.shape
    np.testing.assert_allclose(estimate + np.concatenate([p.residual for p in pieces]), audio, atol=1e-5)
    mixture_sdr = separation_scores(reference[None], audio[None])[0][0]
    assert separation_scores(reference[None], estimate[None])[0][0] - mixture_sdr >= 6.0
    assert pieces[0].confidence > 0.5 and pieces[-1].confidence > 0.5  # windows inside one clip
    # a target that ends before the mixture is refused
    with pytest.raises(ValueError, match="frames end before the mixture"):
        list(separate_windows(mixtures, rate, framed[:2], hop=hop))


def test_estimator_separate_windows_reads_files_as_it_goes(two_sources, tmp_path):
    from skavc import AVClip, AVCorrespondence
    from skavc.io import load_audio, load_clip, save_clip

    clips, truth = two_sources
    audio = np.concatenate([c.audio for c in clips[:3]])
    frames = np.concatenate([truth.source_frames[i][0] for i in range(3)])
    rate, fps = clips[0].sample_rate, clips[0].fps
    video = save_clip(AVClip(audio, rate, frames, fps), tmp_path / "target.mp4")
    model = AVCorrespondence(fps=fps)
    decoded, sound = load_clip(video).frames, load_audio(video)[0]
    # the file, read a window at a time, gives what the same samples and frames give in memory
    from_files = list(model.separate_windows(video, video, window=2.0, overlap=0.5))
    in_memory = list(model.separate_windows(sound, decoded, sample_rate=rate, window=2.0, overlap=0.5))
    assert len(from_files) == len(in_memory) == 4
    for a, b in zip(from_files, in_memory):
        assert np.array_equal(a.target, b.target) and a.confidence == b.confidence and a.start == b.start
    assert sum(p.target.size for p in from_files) == sound.size
    # no longer than one window: separate's answer
    whole, confidence = model.separate(sound, decoded, sample_rate=rate, return_confidence=True)
    (piece,) = model.separate_windows(video, video, window=10.0)
    assert np.array_equal(piece.target, whole) and piece.confidence == confidence
    # checked at the call
    with pytest.raises(ValueError, match="overlap must be shorter than window"):
        model.separate_windows(video, video, window=2.0, overlap=2.0)
    short = save_clip(AVClip(clips[0].audio, rate, truth.source_frames[0][0], fps), tmp_path / "short.mp4")
    with pytest.raises(ValueError, match="target_visual covers 2.00 s but mixed_audio lasts 6.0"):
        model.separate_windows(video, short)
    with pytest.raises(FileNotFoundError, match="mixed_audio: no such file"):
        model.separate_windows(tmp_path / "none.wav", video)
