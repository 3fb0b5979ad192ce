"""Sound-source localisation on real videos, scored against hand labels.

    python benchmarks/real_localization.py [--cache ~/.cache/skavc-bench/real] [--learned] [--png DIR]

DOWNLOADS: the videos come from Debian packages, fetched with ``apt-get download NAME`` and
unpacked with ``dpkg-deb -x`` into ``--cache`` (default ``~/.cache/skavc-bench/real``, shared
with ``benchmarks/real_media.py``, whose ``fetch`` is reused); a package already unpacked there
is not fetched again. About 10 MB of packages (kphotoalbum, psychtoolbox-3-common,
python3-hug-doc, planetblupi-common). Needs a Debian/Ubuntu system with ``apt-get update``
done once. Tests never use this script or its cache. The packages kept aside in
real_media.py are never used.

Labels (``benchmarks/real_localization_labels.json``, by hand, see its "comment"): per clip the
sound source's box on key frames of each sounding span (interpolated between them), the silent
spans and the "ambient" spans (sound without a visible event). Scores, per clip and pooled:

* ``point``: pointing game on the sounding labelled frames: the map's maximum lies inside the
  box (ties: the tied pixel nearest their centroid; a map that is constant over the frame
  points nowhere and misses). ``point*`` uses the strict box where one is labelled (the mouth).
* baselines on the same frames: ``centre`` (the frame's centre), ``motion`` (the peak of the
  absolute grey-level difference to the previous frame, smoothed by a Gaussian of sd 2 px),
  ``chance`` (box area / frame area, averaged).
* ``AUROC sil``: per-frame confidence, sounding frames against silent ones (clips with both);
  ``AUROC rest``: sounding against silent + ambient frames. ``conf snd`` / ``conf sil``: mean
  confidence on sounding / silent frames.
* ``s`` and ``xRT``: wall time of ``localize`` for the clip and clip duration / wall time.

``--learned`` also fits ``AVCorrespondence(localization=True)`` on generated clips
(``make_av_clips``, as in bench_localization.py) and scores method="learned" and "fused".
``--png DIR`` writes overlays of the synchrony maps on the sounding frames for inspection.

The variants first tried here (onsets in dB, a gate relative to the clip's noise floor) are
now skavc's synchrony method (features.level_rises, features.sound_presence, a per-clip null for
the confidence); the figures before that change are in docs/benchmarks.md.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_media import KEPT_ASIDE, fetch  # noqa: E402

from skavc import AVCorrespondence, load_clip  # noqa: E402

LABELS = Path(__file__).with_name("real_localization_labels.json")


# ---------------------------------------------------------------------------------------------
# labels
def _interp_boxes(keys, lo, hi):
    """{frame: box} for frames lo..hi from key-frame boxes (linear between, constant outside)."""
    kf = sorted((int(k), np.asarray(v, dtype=float)) for k, v in keys.items())
    ts = np.array([k for k, _ in kf])
    bs = np.stack([b for _, b in kf])
    return {t: np.array([np.interp(t, ts, bs[:, j]) for j in range(4)]) for t in range(lo, hi + 1)}


def frame_labels(entry, n_frames):
    """sounding {t: box}, strict {t: box}, silent frame indices, ambient frame indices."""
    boxes, strict = {}, {}
    for span in entry["sounding"]:
        lo, hi = span["frames"]
        hi = min(hi, n_frames - 1)
        boxes.update(_interp_boxes(span["boxes"], lo, hi))
        strict.update(_interp_boxes(span.get("strict_boxes", span["boxes"]), lo, hi))

    def spans(key):
        return sorted({t for lo, hi in entry[key] for t in range(lo, min(hi, n_frames - 1) + 1)})

    return boxes, strict, spans("silent"), spans("ambient")


# ---------------------------------------------------------------------------------------------
# pointing
def peak(m):
    """(y, x) of a map's maximum; ties broken by nearness to the tied pixels' centroid; None if flat."""
    m = np.asarray(m, dtype=np.float64)
    top = m.max()
    if top - m.min() <= 1e-12 * max(abs(top), 1e-30):
        return None
    ys, xs = np.nonzero(m >= top - 1e-9 * abs(top))
    if ys.size == 1:
        return int(ys[0]), int(xs[0])
    i = np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2)
    return int(ys[i]), int(xs[i])


def inside(point, box):
    if point is None:
        return False
    y, x = point
    return box[0] <= x < box[2] and box[1] <= y < box[3]


def motion_peaks(frames, ts):
    grey = frames.astype(np.float32).mean(axis=-1)
    out = {}
    for t in ts:
        prev = t - 1 if t > 0 else 1
        out[t] = peak(gaussian_filter(np.abs(grey[t] - grey[prev]), 2.0))
    return out


# ---------------------------------------------------------------------------------------------
def _auroc(pos, neg):
    if len(pos) == 0 or len(neg) == 0:
        return np.nan
    y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    return roc_auc_score(y, np.r_[pos, neg])


def score(maps, conf, lab):
    boxes, strict, silent, ambient = lab
    snd = sorted(boxes)
    pts = {t: peak(maps[t]) for t in snd}
    return {
        "hits": [inside(pts[t], boxes[t]) for t in snd],
        "hits_strict": [inside(pts[t], strict[t]) for t in snd],
        "flat": sum(pts[t] is None for t in snd),
        "conf_snd": conf[snd], "conf_sil": conf[silent], "conf_rest": conf[silent + ambient],
    }


def fmt(v, nd=2):
    return "  -" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.{nd}f}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "skavc-bench" / "real")
    parser.add_argument("--learned", action="store_true", help="also fit the learned head and score learned/fused")
    parser.add_argument("--n-train", type=int, default=100)
    parser.add_argument("--png", type=Path, default=None, help="write synchrony overlays of sounding frames here")
    args = parser.parse_args(argv)

    spec = json.loads(LABELS.read_text())
    clips, labels, names = [], [], []
    for entry in spec["clips"]:
        assert entry["package"] not in KEPT_ASIDE
        root = fetch(entry["package"], args.cache)
        clip = load_clip(root / entry["path"].lstrip("/"), sample_rate=16000)
        clips.append(clip)
        labels.append(frame_labels(entry, clip.n_frames))
        names.append(entry["name"])

    methods = {}
    base = AVCorrespondence()
    methods["synchrony"] = lambda c: base.localize([c], method="synchrony", return_confidence=True)
    methods["synchrony unrefined"] = lambda c: base.localize([c], method="synchrony", return_confidence=True,
                                                             refine=False)
    if args.learned:
        from skavc.datasets import make_av_clips

        train, _ = make_av_clips(n_clips=args.n_train, n_classes=8, n_distractors=2, random_state=0)
        model = AVCorrespondence(random_state=0, localization=True)
        t0 = time.perf_counter()
        model.fit(train)
        print(f"learned head: fit on {args.n_train} generated clips in {time.perf_counter() - t0:.0f} s")
        for m in ("learned", "fused"):
            methods[m] = (lambda m: lambda c: model.localize([c], method=m, return_confidence=True))(m)

    results = {}  # (method, clip) -> score dict + time
    for mname, run in methods.items():
        for name, clip, lab in zip(names, clips, labels):
            t0 = time.perf_counter()
            maps, conf = run(clip)
            maps, conf = maps[0], np.asarray(conf[0])
            wall = time.perf_counter() - t0
            s = score(maps, conf, lab)
            s["wall"], s["dur"] = wall, clip.n_frames / clip.fps
            results[mname, name] = s
            if args.png is not None and mname == "synchrony":
                _write_png(args.png / name, clip, maps, conf, lab)

    baseline = {}
    for name, clip, (boxes, strict, _, _) in zip(names, clips, labels):
        snd = sorted(boxes)
        H, W = clip.frames.shape[1:3]
        mot = motion_peaks(clip.frames, snd)
        baseline[name] = {
            "centre": [inside((H // 2, W // 2), boxes[t]) for t in snd],
            "motion": [inside(mot[t], boxes[t]) for t in snd],
            "motion*": [inside(mot[t], strict[t]) for t in snd],
            "chance": [(b[2] - b[0]) * (b[3] - b[1]) / (H * W) for b in (boxes[t] for t in snd)],
            "n": len(snd), "n_sil": len(labels[names.index(name)][2]),
        }

    print()
    print("| clip | method | n snd/sil | point | point* | centre | motion | chance | AUROC sil | AUROC rest "
          "| conf snd | conf sil | s | xRT |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in names + ["all (frames pooled)"]:
        pooled = name not in names
        group = names if pooled else [name]
        b = {k: sum((baseline[g][k] for g in group), []) for k in ("centre", "motion", "chance")}
        n = sum(baseline[g]["n"] for g in group)
        n_sil = sum(baseline[g]["n_sil"] for g in group)
        for mname in methods:
            rs = [results[mname, g] for g in group]
            hits = np.concatenate([r["hits"] for r in rs])
            hits_s = np.concatenate([r["hits_strict"] for r in rs])
            snd = np.concatenate([r["conf_snd"] for r in rs])
            sil = np.concatenate([r["conf_sil"] for r in rs])
            rest = np.concatenate([r["conf_rest"] for r in rs])
            wall = sum(r["wall"] for r in rs)
            dur = sum(r["dur"] for r in rs)
            flat = sum(r["flat"] for r in rs)
            print(f"| {name} | {mname} | {n}/{n_sil} | {hits.mean():.2f}{f' ({flat} flat)' if flat else ''} "
                  f"| {hits_s.mean():.2f} | {np.mean(b['centre']):.2f} | {np.mean(b['motion']):.2f} "
                  f"| {np.mean(b['chance']):.2f} | {fmt(_auroc(snd, sil))} | {fmt(_auroc(snd, rest))} "
                  f"| {snd.mean():.2f} | {fmt(sil.mean() if sil.size else np.nan)} | {wall:.2f} | {dur / wall:.1f} |")
    for mname in methods:
        per = [results[mname, g] for g in names]
        au = [_auroc(r["conf_snd"], r["conf_sil"]) for r in per]
        aur = [_auroc(r["conf_snd"], r["conf_rest"]) for r in per]
        print(f"| all (clip mean) | {mname} | | {np.mean([np.mean(r['hits']) for r in per]):.2f} "
              f"| {np.mean([np.mean(r['hits_strict']) for r in per]):.2f} "
              f"| {np.mean([np.mean(baseline[g]['centre']) for g in names]):.2f} "
              f"| {np.mean([np.mean(baseline[g]['motion']) for g in names]):.2f} "
              f"| {np.mean([np.mean(baseline[g]['chance']) for g in names]):.2f} "
              f"| {fmt(np.nanmean(au))} | {fmt(np.nanmean(aur))} "
              f"| {np.mean([r['conf_snd'].mean() for r in per]):.2f} | | | |")
    print()
    print("point* = strict box (mouth) where labelled, else the same box; the motion baseline on strict boxes: "
          + ", ".join(f"{g} {np.mean(baseline[g]['motion*']):.2f}" for g in names))
    print("per-clip point is the share of that clip's sounding frames; 'all' pools frames (clips weigh by frame count); "
          "macro mean of synchrony point over clips: "
          + f"{np.mean([np.mean(results['synchrony', g]['hits']) for g in names]):.2f}")
    return 0


def _write_png(out, clip, maps, conf, lab):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.patches as mpatches
    import matplotlib.pyplot as plt

    boxes = lab[0]
    out.mkdir(parents=True, exist_ok=True)
    ts = sorted(boxes)
    ts = ts[:: max(1, len(ts) // 12)]
    H, W = clip.frames.shape[1:3]
    ncol = 4
    nrow = (len(ts) + ncol - 1) // ncol
    fig, axes = plt.subplots(nrow, ncol, figsize=(ncol * 4, nrow * 4 * H / W + 0.4 * nrow), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, t in zip(axes.ravel(), ts):
        ax.imshow(clip.frames[t])
        ax.imshow(maps[t], cmap="inferno", alpha=0.5, vmin=0, vmax=max(float(maps[t].max()), 1e-6))
        b = boxes[t]
        ax.add_patch(mpatches.Rectangle((b[0], b[1]), b[2] - b[0], b[3] - b[1], fill=False, ec="lime", lw=1.5))
        p = peak(maps[t])
        if p is not None:
            ax.plot(p[1], p[0], "c+", ms=14, mew=2)
        ax.set_title(f"f{t} conf {conf[t]:.2f}", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "sounding.png", dpi=60)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
