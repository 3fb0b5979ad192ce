"""Sound-source localisation on generated clips: cIoU / AUC per map and the confidence's AUROC.

Fits ``AVCorrespondence`` with the localisation head on ``--n-train`` clips of
``make_av_clips`` (two silent distractors per clip), then localises the sounding
object in every frame of ``--n-test`` held-out clips and scores the maps against
``truth.source_masks`` (skavc.metrics). The confidence is scored as
a detector of "a visible source is sounding" on the real held-out clips against
the same clips with silent audio, with audio from another held-out clip
(off-screen sound) and with a still picture (the first frame repeated).

    python benchmarks/bench_localization.py            # the table in docs/benchmarks.md
    python benchmarks/bench_localization.py --fusions  # also the fusion rules compared
"""

import argparse
import tempfile
import time

import joblib
import numpy as np
from sklearn.metrics import roc_auc_score

from skavc import AVClip, AVCorrespondence
from skavc.datasets import make_av_clips
from skavc.metrics import auc_ciou, ciou


def centre_prior(shape, sigma_frac=0.12):
    """A centred Gaussian (peak 1) per frame: the map that knows nothing but 'objects sit mid-frame'."""
    T, H, W = shape
    y = (np.arange(H) + 0.5 - H / 2) / min(H, W)
    x = (np.arange(W) + 0.5 - W / 2) / min(H, W)
    g = np.exp(-0.5 * (y[:, None] ** 2 + x[None, :] ** 2) / sigma_frac**2).astype(np.float32)
    return np.broadcast_to(g, shape)


def _variants(clips):
    """The held-out clips with silent audio, off-screen audio and a still picture."""
    n = len(clips)
    silent = [AVClip(np.zeros_like(c.audio), c.sample_rate, c.frames, c.fps) for c in clips]
    offscreen = [AVClip(clips[(i + 1) % n].audio, c.sample_rate, c.frames, c.fps) for i, c in enumerate(clips)]
    still = [AVClip(c.audio, c.sample_rate, np.repeat(c.frames[:1], c.n_frames, axis=0), c.fps) for c in clips]
    return {"silent": silent, "off-screen": offscreen, "still picture": still}


def _auroc(real, other):
    real, other = np.concatenate(real), np.concatenate(other)
    return roc_auc_score(np.r_[np.ones(real.size), np.zeros(other.size)], np.r_[real, other])


def _fusion_table(model, test, masks):
    """cIoU of each fusion rule on the same evidence (refined), for the record in docs/benchmarks.md."""
    from skavc.localization import (FUSIONS, evidence_to_maps, fuse_evidence, learned_clip_evidence,
                                    refine_shape, synchrony_evidence)

    context = model._context()
    evidence = [(learned_clip_evidence(context, model.localization_head_, model._embed_audio_features, c),
                 synchrony_evidence(c.audio, c.sample_rate, c.frames, c.fps)) for c in test]
    print(f"{'fusion rule':<16}{'cIoU@0.5':>10}{'mean cIoU':>11}{'AUC':>8}")
    for how in FUSIONS:
        fused = []
        for clip, (L, S) in zip(test, evidence):
            shape, confidence = fuse_evidence(L, S, how)
            fused.append(evidence_to_maps(refine_shape(clip.frames, shape), confidence))
        c, m = ciou(fused, masks)
        print(f"{how:<16}{c:>10.3f}{m:>11.3f}{auc_ciou(fused, masks):>8.3f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=100)
    parser.add_argument("--n-test", type=int, default=30)
    parser.add_argument("--n-classes", type=int, default=8)
    parser.add_argument("--camera-shake", type=float, default=0.0)
    parser.add_argument("--noise-level", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fusions", action="store_true", help="also compare the fusion rules")
    parser.add_argument("--verbose", type=int, default=0)
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    clips, truth = make_av_clips(n_clips=args.n_train + args.n_test, n_classes=args.n_classes, n_distractors=2,
                                 camera_shake=args.camera_shake, noise_level=args.noise_level,
                                 random_state=args.seed)
    train, test = clips[: args.n_train], clips[args.n_train :]
    masks = truth.source_masks[args.n_train :]
    t_gen = time.perf_counter() - t0

    Model, extra = AVCorrespondence, {"localization": True}
    with tempfile.TemporaryDirectory(prefix="skavc-bench-") as cache:
        # Encoder outputs cached for the run: each method and variant re-reads, not re-encodes.
        model = Model(random_state=args.seed, verbose=args.verbose, memory=joblib.Memory(cache, verbose=0), **extra)
        t0 = time.perf_counter()
        model.fit(train)
        t_fit = time.perf_counter() - t0

        rows, conf, t_loc = {}, {}, {}
        for refine in (False, True):
            for method in ("synchrony", "learned", "fused"):
                t0 = time.perf_counter()
                maps, c = model.localize(test, method=method, return_confidence=True, refine=refine)
                t_loc[method, refine] = (time.perf_counter() - t0) / len(test)
                rows[method, refine] = maps
                conf[method] = c
        rows["centre prior", False] = [centre_prior(m.shape) for m in masks]

        print(f"skavc localisation: fit on {len(train)} generated clips, {len(test)} held out "
              f"({args.n_classes} classes, 2 silent distractors, camera shake {args.camera_shake}, "
              f"noise {args.noise_level}, seed {args.seed})")
        print()
        print(f"{'map':<16}{'refined':>8}{'cIoU@0.5':>10}{'mean cIoU':>11}{'AUC':>8}{'s/clip':>9}")
        for (name, refine), maps in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][0] != "centre prior")):
            c, m = ciou(maps, masks)
            seconds = f"{t_loc[name, refine]:.2f}" if (name, refine) in t_loc else ""
            print(f"{name:<16}{'yes' if refine else 'no':>8}{c:>10.3f}{m:>11.3f}{auc_ciou(maps, masks):>8.3f}{seconds:>9}")
        print("(s/clip: the second call per method reads encoder outputs from the cache)")

        if args.fusions:
            print()
            _fusion_table(model, test, masks)

        print()
        variants = _variants(test)
        other = {name: {} for name in variants}
        for name, clips_v in variants.items():
            for method in ("synchrony", "learned", "fused"):
                _, other[name][method] = model.localize(clips_v, method=method, return_confidence=True)
    print("confidence AUROC, real held-out frames against the same frames with:")
    print(f"{'method':<16}" + "".join(f"{name:>15}" for name in variants))
    for method in ("synchrony", "learned", "fused"):
        print(f"{method:<16}" + "".join(f"{_auroc(conf[method], other[name][method]):>15.3f}" for name in variants))
    print()
    print("share of frames with confidence >= 0.5 (a source reported):")
    print(f"{'method':<16}{'real':>15}" + "".join(f"{name:>15}" for name in variants))
    for method in ("synchrony", "learned", "fused"):
        share = [np.mean(np.concatenate(conf[method]) >= 0.5)]
        share += [np.mean(np.concatenate(other[name][method]) >= 0.5) for name in variants]
        print(f"{method:<16}" + "".join(f"{v:>15.3f}" for v in share))
    print()
    print(f"generate {t_gen:.1f} s, fit (correspondence + localisation heads) {t_fit:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
