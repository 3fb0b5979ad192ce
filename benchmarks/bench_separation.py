"""Visually guided separation (skavc.separation) against baselines and the ideal mask.

    python benchmarks/bench_separation.py [--n-clips 20] [--duration 2] [--sources 2 3] [--no-real]

Generated mixtures (``make_av_clips(n_sources=2 or 3, random_state=0)``), every source of every
clip taken as the target in turn. Methods, all at the same STFT (64 ms Hann, hop 16 ms):

- mixture: the mixture itself as the estimate (the reference point of the improvements);
- timing route: :func:`skavc.separation.separate` guided by the target's own frames
  (``truth.source_frames``: the target alone on the clip's background);
- unguided NMF: the same NMF, each component given to the target with probability
  ``1 / n_sources`` (a random assignment), the same Wiener mask;
- ideal ratio mask: ``|S_target|^2 / sum_j |S_j|^2`` from the true sources (the upper bound of
  any mask on this STFT).

Scores: median SDR / SIR / SAR (``skavc.metrics.separation_scores``: BSS Eval v3 through
mir_eval) and the median SDR improvement over the mixture's own SDR. Absent target: the mixture
separated with a source of another clip (not in the mixture): attenuation in dB of the output
against the mixture, and the confidences of present and absent targets.

Real recordings (Debian's ``sonic-pi-samples``, CC0/CC-BY one-shot samples, downloaded with
``apt-get download`` into ``$SKAVC_HOME/bench-data``): two samples each repeated at its own
irregular onsets (0.3-0.9 s apart, random gain) for 4 s and mixed; the frames are a grey square
on a dark background whose brightness follows one recording's RMS envelope (20 ms windows at the
frame times). Guided by the matching frames, and by the other recording's frames (which must give
the other recording).
"""

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from skavc.datasets import make_av_clips
from skavc.features import audio_envelope
from skavc.metrics import separation_scores
from skavc.separation import _istft, _stft, factorise, separate, stft_settings, wiener_mask

REAL_PAIRS = [
    ("tabla_na", "elec_bell"), ("drum_snare_hard", "guit_em9"), ("perc_bell", "bd_boom"),
    ("elec_chime", "tabla_te1"), ("drum_cowbell", "ambi_piano"), ("elec_ping", "drum_tom_lo_hard"),
    ("bass_hit_c", "perc_snap"), ("elec_blip", "tabla_ghe1"),
]


def _energy_db(x):
    return 10 * np.log10(np.sum(np.asarray(x, np.float64) ** 2) + 1e-30)


def _baselines(mixture, sources, j, sample_rate, n_components, rng):
    """(unguided NMF with random assignment, ideal ratio mask) estimates of source ``j``."""
    n_fft, hop = stft_settings(sample_rate)
    X = _stft(mixture, n_fft, hop)
    W, H = factorise(np.abs(X), n_components)
    weights = (rng.uniform(size=W.shape[1]) < 1.0 / len(sources)).astype(float)
    unguided = _istft(wiener_mask(W, H, weights) * X, n_fft, hop, mixture.size)
    P = np.stack([np.abs(_stft(s, n_fft, hop)) ** 2 for s in sources])
    irm = P[j] / np.maximum(P.sum(axis=0), 1e-20)
    ideal = _istft(irm * X, n_fft, hop, mixture.size)
    return unguided, ideal


def _scores(sources, j, est):
    """SDR, SIR, SAR of ``est`` as source ``j`` against all the references (SIR needs the others).

    Each estimate is decomposed alone, so the other rows (filled with the rest of the mixture)
    do not change row ``j``'s scores."""
    est = np.asarray(est, np.float64)
    rest = (sources.sum(axis=0) - est) / max(len(sources) - 1, 1)
    estimates = np.stack([est if k == j else rest for k in range(len(sources))])
    sdr, sir, sar = separation_scores(sources, estimates)
    return sdr[j], sir[j], sar[j]


def _table(title, rows, n):
    print(f"\n### {title} ({n} targets)\n")
    print("| method | SDR (dB) | SDR improvement (dB) | SIR (dB) | SAR (dB) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    mix_sdr = np.array(rows["mixture"])[:, 0]
    for name, values in rows.items():
        v = np.array(values)
        print(f"| {name} | {np.median(v[:, 0]):.1f} | {np.median(v[:, 0] - mix_sdr):+.1f} | "
              f"{np.median(v[:, 1]):.1f} | {np.median(v[:, 2]):.1f} |")


def bench_generated(n_sources, n_clips, duration, n_components):
    clips, truth = make_av_clips(n_clips=n_clips, n_sources=n_sources, duration=duration, random_state=0)
    rng = np.random.RandomState(0)
    rows = {"mixture": [], "timing route (target's frames)": [], "unguided NMF, random assignment": [],
            "ideal ratio mask (upper bound)": []}
    conf_present, conf_absent, attenuation = [], [], []
    for i, clip in enumerate(clips):
        sources = truth.sources[i].astype(np.float64)
        for j in range(n_sources):
            est, conf = separate(clip.audio, clip.sample_rate, truth.source_frames[i][j], clip.fps,
                                 return_confidence=True, n_components=n_components)
            unguided, ideal = _baselines(clip.audio.astype(np.float64), sources, j, clip.sample_rate,
                                         n_components, rng)
            for name, x in zip(rows, (clip.audio, est, unguided, ideal)):
                rows[name].append(_scores(sources, j, x))
            conf_present.append(conf)
        other = (i + 1) % n_clips
        absent, conf = separate(clip.audio, clip.sample_rate, truth.source_frames[other][0], clip.fps,
                                return_confidence=True, n_components=n_components)
        attenuation.append(_energy_db(clip.audio) - _energy_db(absent))
        conf_absent.append(conf)
    _table(f"{n_sources} sources, {n_clips} clips of {duration:g} s", rows, n_clips * n_sources)
    att = np.array(attenuation)
    print(f"\nabsent target (another clip's source, {n_clips} mixtures): attenuation median {np.median(att):.1f} dB, "
          f"min {np.min(att):.1f} dB, share >= 20 dB {np.mean(att >= 20):.2f}; confidence median "
          f"present {np.median(conf_present):.2f} / absent {np.median(conf_absent):.2f}; "
          f"present targets with confidence < 0.5: {np.mean(np.array(conf_present) < 0.5):.2f}")


def _sonic_pi_samples(cache):
    folder = cache / "sonic-pi-samples"
    samples = folder / "usr" / "share" / "sonic-pi" / "samples"
    if samples.is_dir():
        return samples
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run(["apt-get", "download", "sonic-pi-samples"], cwd=tmp, capture_output=True, text=True)
        debs = list(Path(tmp).glob("sonic-pi-samples_*.deb"))
        if r.returncode != 0 or not debs:
            print(f"(apt-get download sonic-pi-samples failed: {r.stderr.strip()[-300:]})")
            return None
        staging = Path(tmp) / "x"
        subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(staging)], check=True)
        folder.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging), str(folder))
    return samples if samples.is_dir() else None


def _load(path, sample_rate):
    import librosa
    import soundfile

    x, sr = soundfile.read(str(path), dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    if sr != sample_rate:
        x = librosa.resample(x, orig_sr=sr, target_sr=sample_rate)
    return x / max(np.abs(x).max(), 1e-9)


def _performance(sample, rng, n, sample_rate, max_len):
    """``sample`` repeated at irregular onsets (0.3-0.9 s apart) with random gains, ``n`` samples."""
    out = np.zeros(n)
    hit = sample[: int(max_len * sample_rate)].astype(np.float64)
    fade = min(hit.size, int(0.01 * sample_rate))
    hit[hit.size - fade:] *= np.linspace(1, 0, fade)
    t = rng.uniform(0.0, 0.4)
    while t < n / sample_rate:
        a = int(t * sample_rate)
        b = min(n, a + hit.size)
        out[a:b] += rng.uniform(0.6, 1.0) * hit[: b - a]
        t += rng.uniform(0.3, 0.9)
    return out


def _frames_following(x, sample_rate, fps, n_frames, size=64):
    """A grey square whose brightness follows ``x``'s RMS envelope (20 ms windows at the frame times)."""
    env = audio_envelope(x.astype(np.float32), sample_rate, np.arange(n_frames) / fps, 0.02)
    level = env / max(env.max(), 1e-9)
    frames = np.full((n_frames, size, size, 3), 30, dtype=np.uint8)
    q = size // 4
    frames[:, q:-q, q:-q, :] = (60 + 190 * level)[:, None, None, None].astype(np.uint8)
    return frames


def bench_real(cache, duration, n_components, sample_rate=16000, fps=25.0):
    samples = _sonic_pi_samples(cache)
    if samples is None:
        print("\n(real recordings skipped: sonic-pi-samples not available)")
        return
    rng = np.random.RandomState(0)
    n = int(duration * sample_rate)
    n_frames = int(round(duration * fps))
    rows = {"mixture": [], "timing route (matching frames)": [], "unguided NMF, random assignment": [],
            "ideal ratio mask (upper bound)": []}
    crossed = []  # guided by the other recording's frames: SDR against the other recording minus the mixture's
    conf_match = []
    for a_name, b_name in REAL_PAIRS:
        a = _performance(_load(samples / f"{a_name}.flac", sample_rate), rng, n, sample_rate, 0.28)
        b = _performance(_load(samples / f"{b_name}.flac", sample_rate), rng, n, sample_rate, 0.28)
        b *= np.sqrt(np.sum(a ** 2) / max(np.sum(b ** 2), 1e-20))  # 0 dB mixtures
        sources = np.stack([a, b])
        mix = (a + b).astype(np.float32)
        for j in range(2):
            frames = _frames_following(sources[j], sample_rate, fps, n_frames)
            est, conf = separate(mix, sample_rate, frames, fps, return_confidence=True, n_components=n_components)
            unguided, ideal = _baselines(mix.astype(np.float64), sources, j, sample_rate, n_components, rng)
            for name, x in zip(rows, (mix, est, unguided, ideal)):
                rows[name].append(_scores(sources, j, x))
            conf_match.append(conf)
            mix_other = _scores(sources, 1 - j, mix)[0]
            crossed.append(_scores(sources, 1 - j, est)[0] - mix_other)
    _table(f"real recordings (sonic-pi-samples, {len(REAL_PAIRS)} pairs, {duration:g} s, 0 dB)", rows,
           2 * len(REAL_PAIRS))
    print(f"\nguided by the matching frames: median confidence {np.median(conf_match):.2f}. SDR improvement "
          f"of that output measured against the *other* recording: median {np.median(crossed):+.1f} dB "
          "(negative: the frames pick their own recording, not the other)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-clips", type=int, default=20)
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--sources", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--n-components", type=int, default=16)
    parser.add_argument("--no-real", action="store_true", help="skip the downloaded recordings")
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}")
    print("command: python benchmarks/" + " ".join([Path(sys.argv[0]).name] + sys.argv[1:]))
    t0 = time.time()
    for s in args.sources:
        bench_generated(s, args.n_clips, args.duration, args.n_components)
    if not args.no_real:
        cache = Path(os.environ.get("SKAVC_HOME", Path.home() / ".skavc")) / "bench-data"
        bench_real(cache, 4.0, args.n_components)
    print(f"\n({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
