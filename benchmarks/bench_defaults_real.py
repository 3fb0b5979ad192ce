"""Defaults chosen on real data: Whisper's window and pooling, the whitening width and the head, by cross-validation.

Usage::

    python benchmarks/bench_defaults_real.py                     # every table, about 25 min on 2 cores
    python benchmarks/bench_defaults_real.py --no-generated --no-sounds --max-items 60 --epochs 5   # quick check

DOWNLOADS (on first use, into ``--cache``, default ``~/.cache/skavc-bench``; needs a Debian machine
with ``apt-get update`` done; each is ``apt-get download`` + ``dpkg-deb -x``, reused afterwards):

- ``qabcs-data`` (``qabcs/qabcs-data/``, as ``bench_scene.py``): 241 recordings, each with a clip-art picture
  of the same name. The paired real set: each item is an ``AVClip`` of the recording (16 kHz
  mono) and its picture repeated (``bench_scene.load_qabcs``; the model samples 8 frames).
- ``sonic-pi-samples`` (``sonic-pi-samples/``, 22 MB) and ``lmms-common`` (``lmms-common/``, 8 MB): instrument,
  drum and effect recordings, labelled by category (Sonic Pi's file-name prefix, ``bd_``,
  ``tabla_``, ...; LMMS's ``samples/`` folder, ``drums/``, ``basses/``, ...). Left out: categories
  of fewer than 5 sounds (so every class is in each logistic-regression fold), LMMS's synthetic
  ``shapes``/``waveforms``, its ``.ds`` drum-synth presets and files libsndfile cannot read (a few
  LMMS ``.ogg`` files are mislabelled WAVs; their number is printed). Sounds are cut at 30 s.
  Audio only.

**Pooling variants** of the Whisper tiny.en encoder (the clip vector is the mean of its steps):

- ``native``: ``"whisper-tiny"``, the audio encoded at its own length (the default);
- ``30s``: ``"whisper-tiny-30s"``, the audio zero-padded to Whisper's 30 s window, as Whisper
  itself does, averaged over the steps that cover the audio;
- ``30s-all``: the same window averaged over all its 1500 steps, padding included.

Both 30 s variants read one cached run of the window (``padded_window_steps``); the ``30s`` view
is checked bit-equal to ``"whisper-tiny-30s"`` on a few clips at start-up.

**Tables.**

1. Real pairs (qabcs), ``--folds``-fold cross-validation (shuffled, ``--seed``): for each pooling x
   ``n_components`` {16, 32, 64, None} x head {linear, mlp}, ``AVCorrespondence(...,
   timing=False).fit`` on the other folds (other parameters at their defaults, ``epochs`` from
   ``--epochs``, ``random_state=--seed``), then among the held-out fold's clips only: recall@1
   and recall@5 audio->picture and picture->audio and the mean rank of the true partner
   (cosine of ``transform_audio`` against ``transform_visual``). Mean +- standard deviation over
   the folds; chance beside them.
2. Paired differences on the real pairs, each configuration against the current default
   (native, 32, linear): the fold-by-fold difference in R@1 (both ways averaged), mean +- std,
   and how many folds it wins; and clip by clip, the difference in each held-out clip's rank
   of its true partner (both ways averaged), with the Wilcoxon signed-rank p-value (more
   power than 5 fold means; not corrected for the 23 comparisons).
3. Audio only, category-labelled real sounds (sonic-pi, lmms, and qabcs's own categories): the raw
   pooled encoder features (no head), leave-one-out 1-NN (cosine after standardisation) and
   5-fold logistic regression (standardised, C=1) accuracy, per pooling; chance = the largest
   class's share.
4. and 5. Tables 1 and 2 on generated clips (``make_av_clips(n_clips=--n-generated)``, 8 classes,
   2 s, as ``skavc demo``): the "report both" part.

Then timings. Encoder outputs are cached in a ``joblib.Memory`` under a temporary folder (or
``--memory``), so each clip is encoded once per pooling.
"""

import argparse
import functools
import tempfile
import time
from collections import Counter
from functools import partial
from pathlib import Path

import joblib
import numpy as np

from skavc import AVCorrespondence
from skavc.encoders import WhisperTiny30sEncoder, make_audio_encoder

import bench_scene  # benchmarks/ is on sys.path when a script in it runs
from bench_scene import machine_line
from real_media import fetch

table = partial(bench_scene.table, n_text=3)  # split, configuration and pooling are text
N_COMPONENTS = (16, 32, 64, None)
HEADS = ("linear", "mlp")
DEFAULT = ("native", 32, "linear")
SR = 16000


# -- the 30 s window, run once per clip for both of its poolings --------------------------------
@functools.lru_cache(maxsize=1)
def _window_encoder():
    return make_audio_encoder("whisper-tiny-30s", device="cpu")


def padded_window_steps(audio, sha256):
    """Every step of the zero-padded 30 s window(s) of ``audio`` and how many cover the audio."""
    return _window_encoder()._encode_30s_windows(audio)


_WINDOW_STEPS = {"func": padded_window_steps}  # main() swaps in the joblib.Memory-cached function


class _WindowView(WhisperTiny30sEncoder):
    """The 30 s window's steps from the shared cached run (benchmark only)."""

    all_steps = False

    def encode(self, audio):
        steps, n_real = _WINDOW_STEPS["func"](np.asarray(audio, dtype=np.float32), self.sha256)
        return steps if self.all_steps else steps[:n_real]

    @property
    def cache_key(self):
        return (self.name, self.sha256)


class RealSteps30s(_WindowView):
    name = "bench-whisper-tiny-30s-real-steps"


class AllSteps30s(_WindowView):
    name = "bench-whisper-tiny-30s-all-steps"
    all_steps = True


def pooling_specs():
    return {"native": "whisper-tiny", "30s": RealSteps30s(device="cpu"), "30s-all": AllSteps30s(device="cpu")}


# -- data -------------------------------------------------------------------------------------
def load_sounds(files_and_labels, min_per_class=5, max_seconds=30.0):
    """(audio list, label array) of the categories with at least ``min_per_class`` sounds."""
    import librosa

    import soundfile

    loaded, unreadable = [], []
    for path, label in sorted(files_and_labels):
        try:
            info = soundfile.info(str(path))  # librosa's audioread fallback needs ffmpeg: read only what sndfile can
            y, _ = librosa.load(path, sr=SR, mono=True, duration=min(max_seconds, info.duration))
        except (RuntimeError, soundfile.LibsndfileError):
            unreadable.append(path.name)
            continue
        if y.size >= SR // 20:
            loaded.append((y.astype(np.float32), label))
    counts = Counter(label for _, label in loaded)
    kept = [(y, label) for y, label in loaded if counts[label] >= min_per_class]
    if unreadable:
        print(f"  ({len(unreadable)} unreadable files skipped: {', '.join(unreadable[:5])}"
              + (" ..." if len(unreadable) > 5 else "") + ")")
    return [y for y, _ in kept], np.array([label for _, label in kept])


def sonic_pi_sounds(cache):
    root = fetch("sonic-pi-samples", Path(cache)) / "usr/share/sonic-pi/samples"
    files = [(p, p.name.split("_")[0]) for p in root.glob("*.flac") if "_" in p.name]
    return load_sounds(files)


def lmms_sounds(cache):
    root = fetch("lmms-common", Path(cache)) / "usr/share/lmms/samples"
    skip = {"shapes", "waveforms", "drumsynth"}
    files = [(p, p.relative_to(root).parts[0]) for p in root.rglob("*")
             if p.suffix in (".ogg", ".wav", ".flac") and p.relative_to(root).parts[0] not in skip]
    return load_sounds(files)


# -- metrics ----------------------------------------------------------------------------------
def retrieval_metrics(Ea, Ev):
    """R@1, R@5 and mean rank of the true partner, audio->visual and visual->audio."""
    S = Ea @ Ev.T
    out = {}
    for way, M in (("a2v", S), ("v2a", S.T)):
        ranks = 1 + np.sum(M > np.diag(M)[:, None], axis=1)  # ties count in the query's favour
        out[f"R@1 {way}"] = float(np.mean(ranks <= 1))
        out[f"R@5 {way}"] = float(np.mean(ranks <= 5))
        out[f"rank {way}"] = float(np.mean(ranks))
        out[f"ranks {way}"] = ranks
    out["R@1"] = 0.5 * (out["R@1 a2v"] + out["R@1 v2a"])
    return out


def cross_validate(clips, specs, folds, seed, epochs, memory, timings, label):
    """{(pooling, n_components, head): list of per-fold metric dicts}."""
    from sklearn.model_selection import KFold

    splits = list(KFold(folds, shuffle=True, random_state=seed).split(np.arange(len(clips))))
    results = {}
    for pooling, spec in specs.items():
        t0 = time.perf_counter()
        AVCorrespondence(spec, memory=memory, device="cpu")._context().pooled(clips, 8)  # fill the cache
        timings[f"{label}: encode {len(clips)} clips, {pooling}"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        for n_components in N_COMPONENTS:
            for head in HEADS:
                per_fold = []
                for train, test in splits:
                    model = AVCorrespondence(spec, n_components=n_components, head=head, epochs=epochs,
                                             timing=False, memory=memory, device="cpu", random_state=seed)
                    model.fit([clips[i] for i in train])
                    held_out = [clips[i] for i in test]
                    per_fold.append(retrieval_metrics(model.transform_audio(held_out),
                                                      model.transform_visual(held_out)))
                results[(pooling, n_components, head)] = per_fold
        timings[f"{label}: {len(N_COMPONENTS) * len(HEADS) * folds} fits, {pooling}"] = time.perf_counter() - t0
    return results, splits


def _ms(values, digits=3):
    return f"{np.mean(values):.{digits}f} ± {np.std(values):.{digits}f}"


def cv_tables(results, splits, title, number):
    n_test = np.mean([len(t) for _, t in splits])
    keys = ["R@1", "R@1 a2v", "R@1 v2a", "R@5 a2v", "R@5 v2a", "rank a2v", "rank v2a"]
    rows = []
    for (pooling, n_components, head), per_fold in results.items():
        cells = [_ms([f[k] for f in per_fold], 1 if k.startswith("rank") else 3) for k in keys]
        rows.append([pooling, str(n_components), head, *cells])
    rows.append(["chance", "", "", f"{1 / n_test:.3f}", f"{1 / n_test:.3f}", f"{1 / n_test:.3f}",
                 f"{5 / n_test:.3f}", f"{5 / n_test:.3f}", f"{(n_test + 1) / 2:.1f}", f"{(n_test + 1) / 2:.1f}"])
    table(f"Table {number}. {title}: {len(splits)}-fold CV, held-out retrieval among each fold's "
          f"~{n_test:.0f} clips (mean ± std over folds). R@1 = both ways averaged; rank = mean rank of the "
          "true partner (1 is best).",
          ["pooling", "n_components", "head", "R@1", "R@1 a→v", "R@1 v→a", "R@5 a→v", "R@5 v→a",
           "rank a→v", "rank v→a"], rows)
    from scipy.stats import wilcoxon

    def clip_ranks(per_fold):  # each held-out clip's rank, audio->visual and visual->audio averaged
        return np.concatenate([0.5 * (f["ranks a2v"] + f["ranks v2a"]) for f in per_fold])

    base = np.array([f["R@1"] for f in results[DEFAULT]])
    base_ranks = clip_ranks(results[DEFAULT])
    rows = []
    for key, per_fold in results.items():
        if key == DEFAULT:
            continue
        d = np.array([f["R@1"] for f in per_fold]) - base
        dr = clip_ranks(per_fold) - base_ranks
        p = wilcoxon(dr).pvalue if np.any(dr != 0) else 1.0
        rows.append([key[0], str(key[1]), key[2], f"{np.mean(d):+.3f} ± {np.std(d):.3f}",
                     f"{int(np.sum(d > 0))}/{int(np.sum(d < 0))}/{int(np.sum(d == 0))}",
                     f"{np.mean(dr):+.2f}", f"{p:.3f}"])
    table(f"Table {number + 1}. {title}: difference from the current default ({DEFAULT[0]}, "
          f"n_components={DEFAULT[1]}, {DEFAULT[2]}). ΔR@1: fold by fold, mean ± std, folds won/lost/tied. "
          f"Δrank: each of the {base_ranks.size} clips' held-out rank (both ways averaged) minus its rank under "
          "the default, averaged (negative is better), with the Wilcoxon signed-rank p-value over clips.",
          ["pooling", "n_components", "head", "ΔR@1", "folds +/-/=", "Δrank", "p"], rows)


def audio_only_table(datasets, specs, memory, timings):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rows = []
    for name, (audio, labels) in datasets.items():
        classes = Counter(labels)
        for pooling, spec in specs.items():
            t0 = time.perf_counter()
            A = AVCorrespondence(spec, memory=memory, device="cpu")._context().pooled_audio(audio)
            timings[f"audio only: encode {name}, {pooling}"] = time.perf_counter() - t0
            Z = StandardScaler().fit_transform(A)
            Z /= np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-12)
            S = Z @ Z.T
            np.fill_diagonal(S, -np.inf)
            nn = np.mean(labels[S.argmax(1)] == labels)
            cv = StratifiedKFold(5, shuffle=True, random_state=0)
            logreg = cross_val_score(make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=3000)),
                                     A, labels, cv=cv)
            rows.append([name, f"{len(labels)} / {len(classes)}", pooling, f"{nn:.3f}",
                         f"{logreg.mean():.3f} ± {logreg.std():.3f}", f"{max(classes.values()) / len(labels):.3f}"])
    table("Table 3. Audio only, category-labelled real sounds: raw pooled Whisper features (no head); "
          "leave-one-out 1-NN (cosine, standardised) and 5-fold logistic regression accuracy (mean ± std over folds).",
          ["sounds", "n / classes", "pooling", "1-NN (LOO)", "logistic regression", "chance (largest class)"], rows)


# -- helpers ----------------------------------------------------------------------------------
def check_view(clips):
    """The benchmark's cached ``30s`` view gives exactly what ``"whisper-tiny-30s"`` gives."""
    view, registry = RealSteps30s(device="cpu"), make_audio_encoder("whisper-tiny-30s", device="cpu")
    view.prepare()
    for clip in clips:
        np.testing.assert_array_equal(view.encode(clip.audio), registry.encode(clip.audio))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=100, help="head epochs per fit (the default)")
    parser.add_argument("--max-items", type=int, default=None, help="first N qabcs recordings only")
    parser.add_argument("--n-generated", type=int, default=240, help="generated clips (0: none)")
    parser.add_argument("--no-generated", action="store_true")
    parser.add_argument("--no-sounds", action="store_true", help="skip the audio-only sonic-pi/lmms table")
    parser.add_argument("--cache", default="~/.cache/skavc-bench", help="where the packages are unpacked")
    parser.add_argument("--memory", default=None, help="joblib.Memory folder (default: a temporary one)")
    args = parser.parse_args(argv)

    print(machine_line(), flush=True)
    timings, start = {}, time.perf_counter()
    cache = Path(args.cache).expanduser()
    with tempfile.TemporaryDirectory(prefix="skavc-bench-defaults-") as tmp:
        memory = joblib.Memory(args.memory or tmp, verbose=0)
        _WINDOW_STEPS["func"] = memory.cache(padded_window_steps)
        specs = pooling_specs()

        t0 = time.perf_counter()
        items = bench_scene.load_qabcs(bench_scene.fetch_qabcs(cache / "qabcs"), args.max_items)
        clips = [c for _, _, c in items]
        categories = np.array([c for _, c, _ in items])
        durations = np.array([c.duration for c in clips])
        timings["qabcs: load"] = time.perf_counter() - t0
        print(f"\nqabcs-data: {len(clips)} recordings with their pictures ("
              + ", ".join(f"{c} {n}" for c, n in sorted(Counter(categories).items()))
              + f"); durations {np.min(durations):.1f}-{np.max(durations):.1f} s, median {np.median(durations):.1f} s")
        check_view(clips[:3])

        results, splits = cross_validate(clips, specs, args.folds, args.seed, args.epochs, memory, timings, "qabcs")
        cv_tables(results, splits, "Real pairs (qabcs recordings with their pictures)", 1)

        if not args.no_sounds:
            t0 = time.perf_counter()
            datasets = {"sonic-pi-samples": sonic_pi_sounds(cache), "lmms-common": lmms_sounds(cache)}
            timings["audio only: load"] = time.perf_counter() - t0
            datasets["qabcs categories"] = ([c.audio for c in clips], categories)
            audio_only_table(datasets, specs, memory, timings)

        if not args.no_generated and args.n_generated > 0:
            from skavc.datasets import make_av_clips

            t0 = time.perf_counter()
            generated, _ = make_av_clips(n_clips=args.n_generated, random_state=args.seed)
            timings["generated: make_av_clips"] = time.perf_counter() - t0
            results, splits = cross_validate(generated, specs, args.folds, args.seed, args.epochs, memory,
                                             timings, "generated")
            cv_tables(results, splits, f"Generated clips (make_av_clips, {len(generated)} clips, 8 classes, 2 s)", 4)
    timings["total"] = time.perf_counter() - start
    table("Timings (seconds, this machine; encoder outputs cached within the run).",
          ["step", "seconds"], [[k, f"{v:.1f}"] for k, v in timings.items()], n_text=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
