"""Visually guided separation on real video mixed with real recordings (issue 22, item 2).

    python benchmarks/real_separation.py [--talk ../shared/media/talk] [--cache ~/.cache/skavc-bench/real]
                                         [--sets abc] [--methods product "unguided NMF" ...] [--segment 6]

**Media.** The real videos with sound: the nine talking heads of ``../shared/media/talk/``
(benchmark-only media, README there; never copied into the project, never used by tests) and the
Debian clips of ``real_localization_labels.json`` (kphotoalbum's webcam clip, psychtoolbox's
DualDiscs, hug's Lego engine, planetblupi's cut-scene). The unrelated real recordings: Debian's
``qabcs-data`` (the noises of its 241 pictured items), ``sonic-pi-samples`` and ``lmms-common``
(its ``samples/`` but the synthetic ``shapes``/``waveforms`` and the ``drumsynth`` presets).
Debian packages are fetched with ``apt-get download`` + ``dpkg-deb -x`` into ``--cache`` by
``real_media.fetch`` (the packages kept aside there are never used). Everything at 16 kHz mono.

**Sets** (deterministic: every random choice is seeded by the case's name):

* (a) video + recording: each video cut into segments of ``--segment`` seconds (the whole video
  when shorter; a second segment, the video's last seconds, when it lasts 1.5 segments or more),
  its own sound mixed at 0 dB (equal RMS) with a recording made of unrelated recordings of one
  package, picked at random, concatenated to the segment's length. Target: the video's sound;
  guide: its frames.
* (b) absent: the same frames with a 0 dB mixture of two such recordings (the target is not in
  it). Scored by the attenuation of the output against the mixture, in dB (goal: >= 20 dB).
* (c) cocktail party: every ordered pair of different talking heads, their voices (cut to the
  shorter, at most a segment) mixed at 0 dB, guided by the first one's frames.

**Methods** (:data:`METHODS`, each ``method(case) -> (estimate, confidence or nan)``):
``mixture`` (the mixture itself: SDRi 0 by definition), ``product``
(:func:`skavc.separation.separate` as ``AVCorrespondence().separate`` calls it, faces on: a face
seen in the frames makes its voice the target, the speech enhancer's estimate trusted as far as
the mouth follows it; other frames guide the NMF by their motion), ``motion only`` (``separate``
guided by the frames' motion, ``faces=False``), ``unguided NMF`` (the floor: the same NMF, each
component given to the target with probability 1/2, the same Wiener mask, seeded), ``ideal ratio
mask`` (the upper bound of a mask on this STFT, from the true target and the rest).

**Printed.** Per set and method: n, median and 10th percentile SDRi (dB), the share not worse than
the mixture (SDRi >= -0.05 dB, :data:`NOT_WORSE_DB`), median SDR, median confidence; for (b) the
median attenuation and the share >= 20 dB; for (a) the product's scores clip by clip. SDR: BSS
Eval v3 (``skavc.metrics.separation_scores``, mir_eval), the estimate scored against the target
and the mixture less the estimate against the rest; SDRi = SDR of the estimate less SDR of the
mixture as the estimate.
"""

import argparse
import functools
import json
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_scene import QABCS, machine_line  # noqa: E402
from real_media import fetch  # noqa: E402

from skavc import load_clip  # noqa: E402
from skavc.metrics import separation_scores  # noqa: E402
from skavc.separation import _istft, _stft, factorise, separate, stft_settings, wiener_mask  # noqa: E402

RATE = 16000
LABELS = HERE / "real_localization_labels.json"
SONIC_PI = "usr/share/sonic-pi/samples"
LMMS = "usr/share/lmms/samples"
LMMS_LEFT_OUT = {"shapes", "waveforms", "drumsynth"}
ABSENT_GOAL_DB = 20.0


@dataclass(frozen=True)
class Case:
    """A mixture to separate, its true target, and what guides the separation.

    ``frames`` are (T, H, W, 3) at ``fps``, aligned with the mixture. ``target`` is all zeros for
    an absent target.
    """

    name: str
    mixture: np.ndarray
    target: np.ndarray
    frames: np.ndarray
    fps: float
    sample_rate: int

    @property
    def rest(self):
        return self.mixture - self.target


def _rng(name):
    """A generator seeded by ``name``: a case's random choices do not depend on the other cases."""
    return np.random.default_rng(zlib.crc32(name.encode()))


def _rms(x):
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def _at_0db(target, other):
    """``other`` scaled to ``target``'s RMS."""
    return other * (_rms(target) / max(_rms(other), 1e-12))


# ---------------------------------------------------------------------------------------------
# media
def videos(talk, cache):
    """``[(name, AVClip)]``: the talking heads, then the labelled Debian clips (those that can be fetched)."""
    heads = sorted(talk.glob("*.mp4"))
    if not heads:
        sys.exit(f"no talking heads in {talk}")
    clips = [(path.stem, load_clip(path, sample_rate=RATE)) for path in heads]
    for entry in json.loads(LABELS.read_text())["clips"]:
        try:
            root = fetch(entry["package"], cache)
        except Exception as exc:  # noqa: BLE001 - the benchmark goes on without it
            print(f"{entry['name']} left out: could not fetch {entry['package']} ({exc})")
            continue
        clips.append((entry["name"], load_clip(root / entry["path"].lstrip("/"), sample_rate=RATE)))
    return clips


def recording_pools(cache):
    """``{package: [paths]}`` of the unrelated recordings."""
    lmms = fetch("lmms-common", cache) / LMMS
    return {
        "qabcs": sorted((fetch("qabcs-data", cache) / QABCS / "noises").glob("*.ogg")),
        "sonic-pi": sorted((fetch("sonic-pi-samples", cache) / SONIC_PI).glob("*.flac")),
        "lmms": sorted(p for p in lmms.rglob("*") if p.suffix in (".ogg", ".wav", ".flac")
                       and p.relative_to(lmms).parts[0] not in LMMS_LEFT_OUT),
    }


@functools.lru_cache(maxsize=None)
def _recording(path):
    """A recording at 16 kHz mono, or None when libsndfile cannot read it (a few lmms files)."""
    import librosa
    import soundfile

    try:
        audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError):
        return None
    audio = audio.mean(axis=1)
    return librosa.resample(audio, orig_sr=rate, target_sr=RATE) if rate != RATE else audio


def recording(pools, n, rng):
    """``n`` samples of recordings of one package (picked by ``rng``), concatenated; and their names."""
    package = sorted(pools)[rng.integers(len(pools))]
    parts, names, length = [], [], 0
    while length < n:
        path = pools[package][rng.integers(len(pools[package]))]
        audio = _recording(path)
        if audio is None or _rms(audio) <= 0:
            continue
        parts.append(audio)
        names.append(path.stem)
        length += audio.size
    return np.concatenate(parts)[:n].astype(np.float64), f"{package}: {', '.join(names)}"


def segments(clip, seconds):
    """``[(start, frames, audio)]``: the first ``seconds`` of the clip, and its last when it lasts 1.5 times that."""
    duration = min(clip.n_frames / clip.fps, clip.audio.size / clip.sample_rate)
    starts = [0.0] + ([duration - seconds] if duration >= 1.5 * seconds else [])
    out = []
    for start in starts:
        f0 = int(np.ceil(start * clip.fps - 1e-6))
        f1 = min(f0 + int(np.floor(min(seconds, duration - start) * clip.fps + 1e-6)), clip.n_frames)
        a0 = int(round(f0 / clip.fps * clip.sample_rate))
        a1 = min(a0 + int(round((f1 - f0) / clip.fps * clip.sample_rate)), clip.audio.size)
        out.append((start, clip.frames[f0:f1], clip.audio[a0:a1].astype(np.float64)))
    return out


# ---------------------------------------------------------------------------------------------
# case sets
def video_recording_cases(clips, pools, seconds, absent=False):
    """Set (a): each segment's own sound + an unrelated recording at 0 dB, guided by its frames.

    ``absent``: set (b), the same frames with two unrelated recordings at 0 dB (target all zeros).
    Yields ``(Case, what the other sound is)``.
    """
    for name, clip in clips:
        for start, frames, audio in segments(clip, seconds):
            case_name = f"{name}@{start:.1f}"
            rng = _rng(case_name + (" absent" if absent else ""))
            other, other_names = recording(pools, audio.size, rng)
            if absent:
                second, second_names = recording(pools, audio.size, rng)
                audio, other_names = _at_0db(other, second), f"{other_names} + {second_names}"
                target = np.zeros_like(audio)
            else:
                target = audio
            mixture = audio + _at_0db(audio, other)
            yield Case(case_name, mixture, target, frames, clip.fps, RATE), other_names


def cocktail_cases(heads, seconds):
    """Set (c): every ordered pair of different talking heads, voices at 0 dB, guided by the first's frames."""
    for target_name, speaker in heads:
        for other_name, other in heads:
            if other_name == target_name:
                continue
            duration = min(speaker.n_frames / speaker.fps, other.audio.size / RATE, seconds)
            n_frames = int(np.floor(duration * speaker.fps + 1e-6))
            n = min(int(round(n_frames / speaker.fps * RATE)), speaker.audio.size)
            voice = speaker.audio[:n].astype(np.float64)
            yield Case(f"{target_name} over {other_name}", voice + _at_0db(voice, other.audio[:n]), voice,
                       speaker.frames[:n_frames], speaker.fps, RATE)


# ---------------------------------------------------------------------------------------------
# methods
def mixture_itself(case):
    return case.mixture, np.nan


def motion_only(case):
    """``separate`` guided by the frames' motion (what ``AVCorrespondence().separate(..., faces=False)`` does)."""
    return separate(case.mixture, case.sample_rate, case.frames, case.fps, return_confidence=True)


@functools.lru_cache(maxsize=1)
def _context():
    from skavc import AVCorrespondence

    return AVCorrespondence()._context()


def product(case):
    """``separate`` as ``AVCorrespondence().separate`` calls it (faces on), at the clip's own frame rate."""
    context = _context()
    return separate(case.mixture, case.sample_rate, case.frames, case.fps, face_tracks=context.face_tracks,
                    speech_enhancer=context.speech_enhancer(), return_confidence=True)


def unguided_nmf(case):
    """The product's NMF, each component given to the target with probability 1/2, its Wiener mask."""
    n_fft, hop = stft_settings(case.sample_rate)
    X = _stft(case.mixture, n_fft, hop)
    W, H = factorise(np.abs(X), 16)
    weights = (_rng(case.name).uniform(size=W.shape[1]) < 0.5).astype(float)
    return _istft(wiener_mask(W, H, weights) * X, n_fft, hop, case.mixture.size), np.nan


def ideal_ratio_mask(case):
    """``|S_target|^2 / (|S_target|^2 + |S_rest|^2)`` on the mixture's STFT (the upper bound)."""
    n_fft, hop = stft_settings(case.sample_rate)
    target, rest = (np.abs(_stft(x, n_fft, hop)) ** 2 for x in (case.target, case.rest))
    mask = target / np.maximum(target + rest, 1e-20)
    return _istft(mask * _stft(case.mixture, n_fft, hop), n_fft, hop, case.mixture.size), np.nan


METHODS = {"mixture": mixture_itself, "product": product, "motion only": motion_only, "unguided NMF": unguided_nmf,
           "ideal ratio mask": ideal_ratio_mask}
#: Methods that read the true target: not run on absent targets.
ORACLES = {"ideal ratio mask"}


# ---------------------------------------------------------------------------------------------
# scores
def sdr(case, estimate):
    """BSS Eval SDR of ``estimate`` as the target (the mixture less it as the rest)."""
    estimate = np.asarray(estimate, dtype=np.float64)
    sdrs, _, _ = separation_scores(np.stack([case.target, case.rest]), np.stack([estimate, case.mixture - estimate]))
    return float(sdrs[0])


def attenuation_db(case, estimate):
    """How much quieter than the mixture the output is, in dB."""
    energy = np.sum(np.square(np.asarray(estimate, dtype=np.float64)))
    return float(10 * np.log10(np.sum(np.square(case.mixture)) / max(energy, 1e-30)))


def run(cases, methods):
    """``{method: [(case name, SDR, SDRi, confidence)]}``."""
    rows = {name: [] for name in methods}
    for case in cases:
        reference = sdr(case, case.mixture)
        for name, method in methods.items():
            estimate, confidence = method(case)
            value = sdr(case, estimate)
            rows[name].append((case.name, value, value - reference, float(confidence)))
    return rows


def run_absent(cases, methods):
    """``{method: [(case name, attenuation dB, confidence)]}``."""
    rows = {name: [] for name in methods if name not in ORACLES}
    for case in cases:
        for name in rows:
            estimate, confidence = methods[name](case)
            rows[name].append((case.name, attenuation_db(case, estimate), float(confidence)))
    return rows


def _median(values):
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    return f"{np.median(values):.2f}" if values.size else "-"


#: SDRi (dB) down to which an estimate counts as not worse than the mixture: the tables' rounding
#: (a quieter copy of the mixture scores 0 up to BSS Eval's numerical noise).
NOT_WORSE_DB = -0.05


def sdr_table(title, rows):
    print(f"\n### {title}\n")
    print("| method | n | median SDRi (dB) | 10th percentile SDRi | not worse (SDRi >= -0.05) | median SDR (dB) | "
          "median confidence |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, values in rows.items():
        _, sdrs, gains, confidences = zip(*values)
        print(f"| {name} | {len(values)} | {np.median(gains):+.1f} | {np.percentile(gains, 10):+.1f} | "
              f"{np.mean(np.asarray(gains) >= NOT_WORSE_DB):.2f} | {np.median(sdrs):.1f} | {_median(confidences)} |")


def absent_table(title, rows):
    print(f"\n### {title}\n")
    print(f"| method | n | median attenuation (dB) | min (dB) | >= {ABSENT_GOAL_DB:g} dB | median confidence |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, values in rows.items():
        _, attenuations, confidences = zip(*values)
        print(f"| {name} | {len(values)} | {np.median(attenuations):.1f} | {np.min(attenuations):.1f} | "
              f"{np.mean(np.asarray(attenuations) >= ABSENT_GOAL_DB):.2f} | {_median(confidences)} |")


def per_clip_table(rows, others):
    print("\n### (a) per clip\n")
    print("| case | mixture SDR (dB) | product SDRi (dB) | confidence | unguided NMF SDRi | ideal mask SDRi | "
          "mixed with |")
    print("|---|---:|---:|---:|---:|---:|---|")
    by = {name: {case: (value, gain, c) for case, value, gain, c in values} for name, values in rows.items()}
    for case, (value, gain, _) in by["mixture"].items():
        cells = [f"{by[m][case][1]:+.1f}" if m in by else "-" for m in ("unguided NMF", "ideal ratio mask")]
        product_cells = (f"{by['product'][case][1]:+.1f} | {by['product'][case][2]:.2f}" if "product" in by
                         else "- | -")
        print(f"| {case} | {value:.1f} | {product_cells} | {' | '.join(cells)} | {others[case]} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--talk", type=Path, default=HERE.parent.parent / "shared" / "media" / "talk")
    parser.add_argument("--cache", type=Path, default=Path("~/.cache/skavc-bench/real").expanduser())
    parser.add_argument("--sets", default="abc", help="a video + recording, b absent, c cocktail party")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--segment", type=float, default=6.0, help="seconds per segment")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    methods = {name: METHODS[name] for name in args.methods}
    if "mixture" not in methods:
        methods = {"mixture": mixture_itself, **methods}

    print(machine_line())
    print("command: python " + " ".join([f"benchmarks/{Path(sys.argv[0]).name}"] + sys.argv[1:]))
    t0 = time.perf_counter()
    clips = videos(args.talk, args.cache)
    heads = [(name, clip) for name, clip in clips if (args.talk / f"{name}.mp4").exists()]
    print(f"media: {len(clips)} real videos with sound: " + ", ".join(name for name, _ in clips)
          + f" (talking heads from {args.talk}, benchmark-only); recordings from qabcs-data, sonic-pi-samples, "
          f"lmms-common; {args.segment:g} s segments, 16 kHz")
    pools = recording_pools(args.cache)
    print(f"(loading: {time.perf_counter() - t0:.0f} s)", flush=True)
    if "a" in args.sets:
        t_set = time.perf_counter()
        built = list(video_recording_cases(clips, pools, args.segment))
        rows = run([case for case, _ in built], methods)
        sdr_table(f"(a) video + unrelated recording at 0 dB ({len(built)} segments); goal: median SDRi >= +4 dB, "
                  ">= 0.9 not worse than the mixture", rows)
        per_clip_table(rows, {case.name: other for case, other in built})
        print(f"\n({time.perf_counter() - t_set:.0f} s)", flush=True)
    if "b" in args.sets:
        t_set = time.perf_counter()
        cases = [case for case, _ in video_recording_cases(clips, pools, args.segment, absent=True)]
        absent_table(f"(b) absent target: the same frames, two unrelated recordings at 0 dB ({len(cases)}); "
                     f"goal: >= {ABSENT_GOAL_DB:g} dB quieter", run_absent(cases, methods))
        print(f"\n({time.perf_counter() - t_set:.0f} s)", flush=True)
    if "c" in args.sets:
        t_set = time.perf_counter()
        cases = list(cocktail_cases(heads, args.segment))
        sdr_table(f"(c) cocktail party: two talking heads' voices at 0 dB, guided by one face ({len(cases)} "
                  "ordered pairs); goal: median SDRi >= +4 dB, above the unguided NMF", run(cases, methods))
        print(f"\n({time.perf_counter() - t_set:.0f} s)", flush=True)
    print(f"\n({time.perf_counter() - t0:.0f} s in all)")


if __name__ == "__main__":
    main()
