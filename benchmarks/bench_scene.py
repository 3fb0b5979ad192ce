"""Scene labels and expected sounds: zero-shot, after fitting, on generated clips and on real pictures with sounds.

Usage::

    python benchmarks/bench_scene.py                   # every table (docs/benchmarks.md), a few minutes
    python benchmarks/bench_scene.py --calibrate       # also fit the zero-shot temperature (table 5)
    python benchmarks/bench_scene.py --no-qabcs --n-clips 24 --epochs 2   # generated clips only (the test)

**Data.** Generated clips come from :func:`skavc.datasets.make_av_clips` (12 classes of coloured
shapes, labels are sound names such as "rising chirp"). The real set is Debian's ``qabcs-data``
(an alphabet game): 241 recordings ``abcs/all/noises/NAME.ogg``, each with a clip-art drawing
``abcs/all/pics/CATEGORY/NAME.png`` (PNG with transparency, composited on white; no SVG among
them; the "food" category has no sounds, so four categories remain: animals, instrument, misc,
toys). The script fetches it itself on first use with ``apt-get download qabcs-data`` and
``dpkg-deb -x`` into ``--cache``/qabcs-data (default ``~/.cache/skavc-bench/qabcs``; needs a Debian
machine with ``apt-get update`` done) and reuses it afterwards. Each item becomes an ``AVClip``:
the recording (16 kHz mono) with the picture repeated for as long as the sound lasts (at most
25 frames at 25 fps). Item names are the file names with "_" read as a space.

**Tables.** Every figure sits beside chance and a baseline that uses no learning of ours.

1. Generated clips, labels = the 12 class names. Zero-shot: an unfitted model. Fitted:
   ``AVCorrespondence(scene=True).fit(train, y=label names)`` with ``--n-unseen`` classes held out of
   training entirely; test clips of seen and of unseen classes are scored among all 12 names.
   Baselines: seen, the most frequent training label; unseen, none better than chance exists
   without the clip (a label-free guess cannot know the unseen names), so chance it is, plus
   the share of unseen clips given *some* unseen name (chance n_unseen/12).
2. qabcs zero-shot top-1 / top-5 over item names (all 241 as labels, and each category's names
   alone). Baseline "ConSE top-1": the picture's single most probable ImageNet class, whose
   name's MiniLM embedding ranks the labels by cosine (no probability mixture).
3. Audio only: ``AVCorrespondence(scene=True).fit`` on half of the items (fixed seed, no labels:
   the audio head learns to predict the pictures' ImageNet posteriors from the sound), then
   the other half classified with a blank grey picture, so only the sound can tell them apart;
   against the same blank clips unfitted (one grey posterior for all: about chance).
4. Describe: ``expected_sounds(top_k=5)`` of the pictures. A hit when one of the 5 AudioSet
   names, or its AudioSet parent for the animal calls that do not name their animal ("Bark" ->
   "Dog", ``SOUND_PARENTS``), shares a content word (lower case, plural "s" dropped, stop words
   and words under 3 letters ignored) with the item name. Baseline: the 5 names most often in
   the model's own top 5 over all items, given to every item; ceiling: items for which any of
   the 527 names would be a hit.
5. (``--calibrate``) the zero-shot temperature fitted by NLL on the "animals" and "toys"
   pictures (their names as labels), and the expected calibration error (10 bins, top-1
   confidence) on "instrument" + "misc" (their names as labels) at T = 1, the current
   ``skavc._text_space.ZERO_SHOT_TEMPERATURE`` and the fitted T.
6. Generalised zero-shot on real pictures: fitted on the items of table 3 with their category
   names as ``y`` (4 coarse labels), the other half classified among the categories (seen in
   fitting) and among all 241 item names (never seen), against the unfitted model: does
   fitting on a few labels cost the names it never saw? (Printed after table 4; table 5 comes
   last when asked for.)

Then the timings of each step, and the machine line at the top.
"""

import argparse
import os
import platform
import re
import tempfile
import time
from collections import Counter
from pathlib import Path

import joblib
import numpy as np

from skavc import AVClip, AVCorrespondence
from skavc import scene as scene_module
from skavc._text_space import ZERO_SHOT_TEMPERATURE, embed_texts, fit_temperature, sharpen
from skavc._vocabularies import audioset_names
from skavc.datasets import make_av_clips

FPS = 25.0
QABCS = Path("usr/share/qabcs/abcs/all")
# AudioSet's animal calls whose names do not say the animal, with their parent in the AudioSet
# ontology (copied from its order in skavc/data/audioset_class_labels.csv).
SOUND_PARENTS = {
    "Bark": "Dog", "Yip": "Dog", "Howl": "Dog", "Bow-wow": "Dog", "Growling": "Dog", "Whimper (dog)": "Dog",
    "Purr": "Cat", "Meow": "Cat", "Hiss": "Cat", "Caterwaul": "Cat", "Clip-clop": "Horse",
    "Neigh, whinny": "Horse", "Moo": "Cattle, bovinae", "Oink": "Pig", "Bleat": "Goat, Sheep",
    "Cluck": "Chicken, rooster", "Crowing, cock-a-doodle-doo": "Chicken, rooster", "Gobble": "Turkey",
    "Quack": "Duck", "Honk": "Goose", "Roar": "Roaring cats (lions, tigers)", "Chirp, tweet": "Bird",
    "Squawk": "Bird", "Coo": "Pigeon, dove", "Caw": "Crow", "Hoot": "Owl", "Patter": "Mouse",
    "Buzz": "Fly, housefly, Bee, wasp", "Croak": "Frog", "Rattle": "Snake",
}
STOP_WORDS = {"and", "the", "etc", "with", "for", "from"}


# -- helpers ----------------------------------------------------------------------------------
def machine_line():
    import onnxruntime

    from skavc import __version__

    return (f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"python {platform.python_version()}, onnxruntime {onnxruntime.__version__}, skavc {__version__}")


def table(title, header, rows, n_text=1):
    """A markdown table: the first ``n_text`` columns left-aligned, floats to 3 decimals."""
    print(f"\n{title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" if i < n_text else "---:" for i in range(len(header))) + "|")
    for row in rows:
        print("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row) + " |")
    print(flush=True)


def top_k_accuracy(scores, y, k):
    """Share of rows whose true column ``y`` is among the ``k`` highest scores."""
    best = np.argsort(-np.asarray(scores), axis=1)[:, :k]
    return float(np.mean([t in row for t, row in zip(y, best)]))


def expected_calibration_error(probabilities, y, n_bins=10):
    """ECE of the top-1 confidence: bin-weighted |accuracy - confidence| over equal-width bins."""
    confidence, correct = probabilities.max(axis=1), probabilities.argmax(axis=1) == y
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    return float(sum(abs(correct[bins == b].mean() - confidence[bins == b].mean()) * np.mean(bins == b)
                     for b in range(n_bins) if np.any(bins == b)))


def nll(probabilities, y):
    return float(-np.mean(np.log(np.maximum(probabilities[np.arange(len(y)), y], 1e-300))))


def conse_top1(P, labels, model):
    """Cosine of each label with the name of each clip's most probable ImageNet class, (n, L)."""
    encoder, class_names = model._text_encoder(), model._context().class_names
    return embed_texts(encoder, [class_names[k] for k in P.argmax(axis=1)]) @ embed_texts(encoder, labels).T


# -- 1: generated clips -----------------------------------------------------------------------
def generated_tables(args, memory, timings):
    t0 = time.perf_counter()
    clips, truth = make_av_clips(n_clips=args.n_clips, n_classes=12, duration=args.duration,
                                 random_state=args.seed)
    names, y = list(truth.class_names), truth.labels
    unseen = np.sort(np.random.RandomState(args.seed).choice(12, args.n_unseen, replace=False))
    rank = np.array([np.sum(y[:i] == y[i]) for i in range(len(y))])
    counts = np.bincount(y, minlength=12)
    is_train = ~np.isin(y, unseen) & (rank < np.maximum(1, (counts[y] * 2) // 3))
    test_seen = ~np.isin(y, unseen) & ~is_train
    test_unseen = np.isin(y, unseen)
    timings["generate clips"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    zero_shot = AVCorrespondence(memory=memory).classify_scene(clips, names)
    timings["generated: zero-shot, all clips"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    train = [c for c, m in zip(clips, is_train) if m]
    model = AVCorrespondence(scene=True, epochs=args.epochs, random_state=args.seed, memory=memory,
                             verbose=args.verbose).fit(train, y=list(truth.label_names[is_train]))
    timings["generated: fit (y, scene=True)"] = time.perf_counter() - t0
    fitted = np.zeros_like(zero_shot)
    tested = test_seen | test_unseen
    X_tested = [c for c, m in zip(clips, tested) if m]
    fitted[tested] = model.classify_scene(X_tested, names)
    text_only = np.zeros_like(zero_shot)  # the text map alone, without the zero-shot frames expert
    A, V = model._context().pooled(X_tested, model.n_visual_frames)
    text_only[tested] = model.text_map_.predict_proba(model._shared_space(A, V),
                                                      embed_texts(model._text_encoder(), names))

    majority = np.bincount(y[is_train], minlength=12).argmax()
    acc = lambda P, mask: float(np.mean(P[mask].argmax(axis=1) == y[mask]))  # noqa: E731
    in_unseen = lambda P: float(np.mean(np.isin(P[test_unseen].argmax(axis=1), unseen)))  # noqa: E731
    rows = [
        ["all clips, zero-shot only", int(len(y)), "", "", acc(zero_shot, slice(None)), 1 / 12, "chance"],
        ["seen classes (test clips)", int(test_seen.sum()), acc(fitted, test_seen), acc(text_only, test_seen),
         acc(zero_shot, test_seen), 1 / 12, f"most frequent training label: {np.mean(y[test_seen] == majority):.3f}"],
        ["unseen classes", int(test_unseen.sum()), acc(fitted, test_unseen), acc(text_only, test_unseen),
         acc(zero_shot, test_unseen), 1 / 12, "chance (no label-free baseline)"],
        ["unseen clips given an unseen name", int(test_unseen.sum()), in_unseen(fitted), in_unseen(text_only),
         in_unseen(zero_shot), args.n_unseen / 12, "chance"],
    ]
    table(f"Table 1. Generated clips ({len(y)} clips of {args.duration:g} s, 12 classes, seed {args.seed}): "
          f"top-1 accuracy among all 12 names. Fitted on {int(is_train.sum())} clips of 12 - {args.n_unseen} "
          f"classes with their names; held out: {', '.join(names[k] for k in unseen)}.",
          ["test clips", "n", "fitted", "fitted, text map only", "zero-shot", "chance", "baseline"], rows)


# -- 2-4: qabcs-data --------------------------------------------------------------------------
def fetch_qabcs(cache):
    """The extracted package under ``cache`` (downloaded and unpacked on first use)."""
    from real_media import fetch

    return fetch("qabcs-data", Path(cache).expanduser()) / QABCS


def load_qabcs(root, max_items=None):
    """Items ``(name, category, AVClip)``: each recording with its picture, sorted by name."""
    import librosa
    from PIL import Image

    items = []
    for sound in sorted((root / "noises").glob("*.ogg"))[:max_items]:
        pictures = sorted((root / "pics").glob(f"*/{sound.stem}.png"))
        if not pictures:
            continue
        image = Image.open(pictures[0]).convert("RGBA")
        canvas = Image.new("RGB", image.size, "white")
        canvas.paste(image, mask=image.getchannel("A"))
        canvas.thumbnail((320, 320))
        audio, sr = librosa.load(sound, sr=16000, mono=True)
        n_frames = max(1, round(len(audio) / sr * FPS))  # the picture over the whole recording (a view)
        frames = np.broadcast_to(np.asarray(canvas, dtype=np.uint8), (n_frames, canvas.height, canvas.width, 3))
        items.append((sound.stem.replace("_", " "), pictures[0].parent.name, AVClip(audio, sr, frames, FPS)))
    return items


def blank(clip):
    """The clip's sound with a grey picture."""
    grey = np.broadcast_to(np.full((1, 224, 224, 3), 128, dtype=np.uint8), (clip.n_frames, 224, 224, 3))
    return AVClip(clip.audio, clip.sample_rate, grey, clip.fps)


def content_words(text):
    words = set()
    for w in re.findall(r"[a-z]+", text.lower()):
        w = w[:-3] + "y" if w.endswith("ies") else w[:-1] if w.endswith("s") and not w.endswith("ss") else w
        if len(w) >= 3 and w not in STOP_WORDS:
            words.add(w)
    return words


def describe_hit(sound_names, item_name):
    """Whether any sound name, or its AudioSet parent, shares a content word with the item name."""
    item = content_words(item_name)
    return any(item & content_words(s + " " + SOUND_PARENTS.get(s, "")) for s in sound_names)


def qabcs_tables(args, memory, timings):
    t0 = time.perf_counter()
    items = load_qabcs(fetch_qabcs(args.cache), args.max_items)
    names = [n for n, _, _ in items]
    categories = np.array([c for _, c, _ in items])
    clips = [c for _, _, c in items]
    timings["qabcs: load media"] = time.perf_counter() - t0
    print(f"\nqabcs-data: {len(items)} recordings with a picture ("
          + ", ".join(f"{c} {n}" for c, n in sorted(Counter(categories).items())) + "); no SVG pictures")

    # Table 2: zero-shot over the item names.
    model = AVCorrespondence(memory=memory)
    t0 = time.perf_counter()
    _, _, P = model._context().pooled(clips, model.n_visual_frames, class_posteriors=True)
    timings[f"qabcs: encode {len(clips)} clips"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    rows = []
    groups = [("all categories, all names", np.ones(len(items), bool))]
    groups += [(f"{c}, its names", categories == c) for c in sorted(set(categories))]
    for title, mask in groups:
        labels = [n for n, m in zip(names, mask) if m]
        X = [c for c, m in zip(clips, mask) if m]
        y, L = np.arange(len(labels)), len(labels)
        scores, base = model.classify_scene(X, labels), conse_top1(P[mask], labels, model)
        rows.append([title, L, top_k_accuracy(scores, y, 1), top_k_accuracy(base, y, 1), 1 / L,
                     top_k_accuracy(scores, y, 5), top_k_accuracy(base, y, 5), min(5 / L, 1.0)])
    timings["qabcs: zero-shot classify_scene, all label sets"] = time.perf_counter() - t0
    table("Table 2. qabcs pictures (with their sounds), zero-shot, unfitted: the item's own name among the labels.",
          ["pictures, labels", "labels", "top-1", "ConSE top-1 class", "chance", "top-5", "ConSE top-5",
           "chance top-5"], rows)

    # Table 3: audio only after fitting on the other half.
    order = np.random.RandomState(args.seed).permutation(len(items))
    train, test = np.sort(order[: len(items) // 2]), np.sort(order[len(items) // 2:])
    t0 = time.perf_counter()
    fitted = AVCorrespondence(scene=True, epochs=args.epochs, random_state=args.seed, memory=memory,
                              verbose=args.verbose).fit([clips[i] for i in train])
    timings[f"qabcs: fit (scene=True) on {len(train)} items"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    X_test, X_blank = [clips[i] for i in test], [blank(clips[i]) for i in test]
    A, _, P_blank = fitted._context().pooled(X_blank, fitted.n_visual_frames, class_posteriors=True)
    A_train = fitted._context().pooled_audio([clips[i] for i in train])
    head = lambda A: scene_module.classify_scene(  # noqa: E731
        fitted.audio_class_head_.predict_proba(fitted.audio_preprocessor_.transform(A)), names,
        text_encoder=fitted._text_encoder(), class_names=fitted._context().class_names)
    runs = {
        "pictures + sound, unfitted (zero-shot)": model.classify_scene(X_test, names),
        "pictures + sound, fitted": fitted.classify_scene(X_test, names),
        "grey picture + sound, unfitted": model.classify_scene(X_blank, names),
        "grey picture + sound, fitted": fitted.classify_scene(X_blank, names),
        "audio head alone (no picture expert)": head(A),
    }
    timings["qabcs: audio-only classify_scene"] = time.perf_counter() - t0
    y = test
    rows = [[k, len(test), top_k_accuracy(v, y, 1), top_k_accuracy(v, y, 5), 1 / len(names), 5 / len(names)]
            for k, v in runs.items()]
    rows.append(["audio head alone, its own training items (fit check)", len(train),
                 top_k_accuracy(head(A_train), train, 1), top_k_accuracy(head(A_train), train, 5),
                 1 / len(names), 5 / len(names)])
    table(f"Table 3. Audio only: fitted (no labels) on {len(train)} qabcs items, tested on the other {len(test)}; "
          f"labels = all {len(names)} names. The audio head's out-of-fold weight: {fitted.audio_weight_:.2f} "
          f"(penalty {fitted.audio_class_head_.alpha:g}).",
          ["test clips", "n", "top-1", "top-5", "chance top-1", "chance top-5"], rows)

    # Table 4: does the description name the object or its sound?
    t0 = time.perf_counter()
    described = [[s for s, _ in r["sounds"]] for r in model.expected_sounds([c.frames for c in clips], top_k=5)]
    timings["qabcs: expected_sounds"] = time.perf_counter() - t0
    frequent = [s for s, _ in Counter(s for d in described for s in d).most_common(5)]
    all_names = audioset_names()
    rows = []
    for title, mask in groups:
        idx = np.flatnonzero(mask)
        rows.append([title.split(",")[0], len(idx),
                     float(np.mean([describe_hit(described[i], names[i]) for i in idx])),
                     float(np.mean([describe_hit(frequent, names[i]) for i in idx])),
                     float(np.mean([describe_hit(all_names, names[i]) for i in idx]))])
    table("Table 4. expected_sounds(top_k=5) of the qabcs pictures: share of items whose top 5 AudioSet names "
          "(or their parent, for animal calls) share a content word with the item name. "
          f"Baseline: the 5 most frequent top-5 names for every item ({', '.join(frequent)}); "
          "ceiling: any of the 527 names.",
          ["pictures", "n", "describe top-5", "frequent-5 baseline", "ceiling"], rows)
    examples = [(names[i], described[i][:3]) for i in range(0, len(items), max(1, len(items) // 8))]
    print("\nexamples: " + "; ".join(f"{n} -> {', '.join(d)}" for n, d in examples))

    # Table 6: fitted with coarse labels, asked with fine ones (names it never saw).
    t0 = time.perf_counter()
    coarse = AVCorrespondence(scene=True, epochs=args.epochs, random_state=args.seed, memory=memory,
                              verbose=args.verbose).fit([clips[i] for i in train], y=list(categories[train]))
    timings[f"qabcs: fit (scene=True, y=categories) on {len(train)} items"] = time.perf_counter() - t0
    kinds = sorted(set(categories))
    kind_of_test = np.array([kinds.index(c) for c in categories[test]])
    rows = []
    for title, labels, truth in (("categories (seen in fitting)", kinds, kind_of_test),
                                 ("item names (never seen in fitting)", names, test)):
        rows.append([title, len(labels), top_k_accuracy(model.classify_scene(X_test, labels), truth, 1),
                     top_k_accuracy(coarse.classify_scene(X_test, labels), truth, 1), 1 / len(labels)])
    table(f"Table 6. Fitted with coarse labels (the {len(kinds)} category names of {len(train)} items, "
          f"text weight {coarse.text_weight_:.1f}, audio weight {coarse.audio_weight_:.2f}), asked with them and "
          f"with the item names (generalised zero-shot); top-1 on the other {len(test)} items.",
          ["labels", "n labels", "unfitted (zero-shot)", "fitted on categories", "chance"], rows)

    if args.calibrate:
        calibrate(model, P, names, categories)


# -- 5: calibration ---------------------------------------------------------------------------
def calibrate(model, P, names, categories):
    """Fit the zero-shot temperature on animals + toys; ECE on the other categories before and after."""
    def unsharpened(mask):
        labels = [n for n, m in zip(names, mask) if m]
        return scene_module.classify_scene(P[mask], labels, text_encoder=model._text_encoder(),
                                           class_names=model._context().class_names, temperature=1.0)

    fit_mask = np.isin(categories, ["animals", "toys"])
    probs_fit, probs_eval = unsharpened(fit_mask), unsharpened(~fit_mask)
    y_fit, y_eval = np.arange(fit_mask.sum()), np.arange((~fit_mask).sum())
    T = fit_temperature(probs_fit, y_fit)
    current = ZERO_SHOT_TEMPERATURE
    rows = []
    for what, t in [("raw mixture", 1.0), ("current ZERO_SHOT_TEMPERATURE", current), ("fitted", T)]:
        rows.append([what, f"{t:.3f}", expected_calibration_error(sharpen(probs_eval, t), y_eval),
                     nll(sharpen(probs_eval, t), y_eval), expected_calibration_error(sharpen(probs_fit, t), y_fit),
                     float(sharpen(probs_eval, t).max(axis=1).mean())])
    print(f"\nfitted zero-shot temperature: {T:.4f} (rounded: {T:.2f}); top-1 accuracy, unchanged by T: "
          f"held-out {np.mean(probs_eval.argmax(1) == y_eval):.3f}, "
          f"fitting set {np.mean(probs_fit.argmax(1) == y_fit):.3f}")
    table(f"Table 5. Calibration of the zero-shot probabilities: T fitted by NLL on animals + toys "
          f"({fit_mask.sum()} pictures, their names as labels); measured on instrument + misc "
          f"({(~fit_mask).sum()} pictures, their names as labels).",
          ["temperature", "T", "ECE held-out", "NLL held-out", "ECE fitting set", "mean top-1 confidence"], rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-clips", type=int, default=120, help="generated clips (12 classes)")
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per generated clip")
    parser.add_argument("--n-unseen", type=int, default=3, help="generated classes held out of training")
    parser.add_argument("--epochs", type=int, default=100, help="correspondence-head epochs in each fit")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-qabcs", action="store_true", help="generated clips only (no download)")
    parser.add_argument("--cache", default="~/.cache/skavc-bench/qabcs", help="where qabcs-data is unpacked")
    parser.add_argument("--max-items", type=int, default=None, help="first N qabcs recordings only")
    parser.add_argument("--calibrate", action="store_true", help="fit the zero-shot temperature (table 5)")
    parser.add_argument("--verbose", type=int, default=0)
    args = parser.parse_args(argv)

    print(machine_line())
    timings = {}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="skavc-bench-scene-") as cache:
        memory = joblib.Memory(cache, verbose=0)  # each clip is encoded once per run
        generated_tables(args, memory, timings)
        if not args.no_qabcs:
            qabcs_tables(args, memory, timings)
    timings["total"] = time.perf_counter() - start
    table("Timings (seconds, this machine; encoder outputs cached within the run).",
          ["step", "seconds"], [[k, f"{v:.1f}"] for k, v in timings.items()])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
