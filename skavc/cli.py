"""The ``skavc`` command line: ``skavc demo``, ``skavc sync VIDEO``, ``skavc localize VIDEO --out DIR``,
``skavc classify VIDEO --labels "a,b,c"``, ``skavc describe VIDEO`` and
``skavc separate MIX.wav TARGET.mp4 --out target.wav``."""

import argparse
import sys
import time

from ._validation import X264_PRESETS


def _demo(args):
    import numpy as np

    from . import AVClip, AVCorrespondence
    from .datasets import make_av_clips
    from .metrics import cross_modal_recall

    timings = []

    def stage(name, t0):
        timings.append((name, time.perf_counter() - t0))

    t0 = time.perf_counter()
    clips, truth = make_av_clips(
        n_clips=args.n_clips, n_classes=args.n_classes, duration=args.duration, random_state=args.seed
    )
    stage(f"generate {args.n_clips} clips", t0)
    rng = np.random.RandomState(args.seed)
    order = rng.permutation(len(clips))
    n_test = max(2, int(round(args.test_size * len(clips))))
    test_idx, train_idx = order[:n_test], order[n_test:]
    train = [clips[i] for i in train_idx]
    test = [clips[i] for i in test_idx]

    model = AVCorrespondence(
        audio_encoder=args.audio_encoder, epochs=args.epochs, device=args.device, precision=args.precision,
        n_jobs=args.n_jobs, random_state=args.seed, verbose=args.verbose, scene=True,
    )
    t0 = time.perf_counter()
    model._encoders()  # build / check the ONNX graphs, reported as their own stage
    stage("prepare encoders", t0)
    t0 = time.perf_counter()
    model.fit(train, list(truth.label_names[train_idx]))  # y: the scene heads' captions
    stage(f"fit on {len(train)} clips ({args.epochs} epochs, scene heads)", t0)
    t0 = time.perf_counter()
    Ea, Ev = model._embed_pairs(test)
    stage(f"embed {len(test)} held-out clips", t0)

    chance1, chance5 = 1.0 / n_test, min(1.0, 5.0 / n_test)
    r1 = cross_modal_recall(Ea, Ev, k=1)
    r5 = cross_modal_recall(Ea, Ev, k=5)
    same_class = truth.labels[test_idx][:, None] == truth.labels[test_idx][None, :]
    sim = Ea @ Ev.T
    class_top1 = float(np.mean(same_class[np.arange(n_test), sim.argmax(axis=1)]))

    print(f"skavc demo: {len(train)} training / {n_test} held-out generated clips, "
          f"{args.n_classes} classes, audio encoder {args.audio_encoder!r}, visual 'efficientnet-lite0', "
          f"{args.precision} on {model.visual_encoder_.onnx.providers[0]}")
    print()
    print(f"{'held-out retrieval':<24}{'recall@1':>10}{'recall@5':>10}")
    print(f"{'audio -> visual':<24}{r1[0]:>10.3f}{r5[0]:>10.3f}")
    print(f"{'visual -> audio':<24}{r1[1]:>10.3f}{r5[1]:>10.3f}")
    print(f"{'chance':<24}{chance1:>10.3f}{chance5:>10.3f}")
    print(f"audio -> visual top-1 of the right class: {class_top1:.3f} (chance {np.mean(same_class):.3f})")
    print(f"embedding dimension {model.embedding_dim}, audio at {model.audio_sample_rate} Hz, "
          f"(audio, frames) pairs read at {model.video_frame_rate:g} fps")

    from .metrics import ciou

    t0 = time.perf_counter()
    sync_duration = max(args.duration, 4.0)  # the sync confidence is calibrated on clips of 4 s
    shifted, shift_truth = make_av_clips(n_clips=16, n_classes=args.n_classes, duration=sync_duration,
                                         offset_range=(-0.4, 0.4), random_state=args.seed + 1)
    offsets, confidence = model.predict_offset(shifted, return_confidence=True)
    others = [AVClip(shifted[(i + 1) % len(shifted)].audio, c.sample_rate, c.frames, c.fps)
              for i, c in enumerate(shifted)]
    _, other_confidence = model.predict_offset(others, return_confidence=True)
    stage(f"sync {len(shifted)} shifted clips and {len(others)} with another clip's audio", t0)
    error = np.abs(offsets - shift_truth.offsets)
    print()
    print(f"sync (training-free), {len(shifted)} clips of {sync_duration:g} s shifted by -0.4..+0.4 s: within 0.1 s {np.mean(error <= 0.1):.3f}, "
          f"median error {1000 * np.median(error):.0f} ms, confident (>= 0.5) {np.mean(confidence >= 0.5):.3f}; "
          f"with another clip's audio confident {np.mean(other_confidence >= 0.5):.3f}")

    t0 = time.perf_counter()
    maps, frame_confidence = model.localize(test[:16], return_confidence=True)
    stage(f"localise {len(maps)} held-out clips (training-free synchrony)", t0)
    hit_rate, mean_iou = ciou(maps, [truth.source_masks[i] for i in test_idx[:16]])
    print(f"localisation (training-free), {len(maps)} held-out clips: frames with cIoU >= 0.5 {hit_rate:.3f} "
          f"(mean cIoU {mean_iou:.3f}), frames reporting a source {np.mean(np.concatenate(frame_confidence) >= 0.5):.3f}")

    t0 = time.perf_counter()
    few = test[:16]  # each one's sound against every one's frames: correspondence with and without timing
    pairs = [AVClip(a.audio, a.sample_rate, b.frames, b.fps) for a in few for b in few]
    own = np.arange(len(few))
    recall = {timing: float(np.mean(model.correspondence(pairs, timing=timing).reshape(len(few), -1).argmax(axis=1)
                                    == own)) for timing in (False, True)}
    stage(f"correspondence of {len(pairs)} sound/frames pairs, twice", t0)
    print(f"instance matching, each sound among {len(few)} clips' frames: recall@1 {recall[True]:.3f} with "
          f"timing, {recall[False]:.3f} cosine only (chance {1 / len(few):.3f})")

    t0 = time.perf_counter()
    names, truth_test = list(truth.class_names), truth.labels[test_idx]
    zero_shot = AVCorrespondence(device=args.device).classify_scene(test, names).argmax(axis=1)
    fitted = model.classify_scene(test, names).argmax(axis=1)
    stage(f"classify {len(test)} held-out clips among {len(names)} labels, twice", t0)
    print()
    print(f"{'scene labels (held out)':<24}{'accuracy':>10}")
    print(f"{'zero-shot (no fit)':<24}{np.mean(zero_shot == truth_test):>10.3f}")
    print(f"{'fitted with captions':<24}{np.mean(fitted == truth_test):>10.3f}")
    print(f"{'chance':<24}{1 / len(names):>10.3f}")
    print(f"described: {model.describe_expected_audio(test[0])}")

    from .metrics import si_sdr

    t0 = time.perf_counter()
    mixes, mix_truth = make_av_clips(n_clips=8, n_sources=2, duration=args.duration, random_state=args.seed)
    gains = [si_sdr(sources[0], model.separate(mix.audio, frames[0], sample_rate=mix.sample_rate))
             - si_sdr(sources[0], mix.audio)
             for mix, sources, frames in zip(mixes, mix_truth.sources, mix_truth.source_frames)]
    stage(f"separate {len(mixes)} two-source mixtures", t0)
    print(f"separation guided by the target's frames: median SI-SDR improvement {np.median(gains):+.1f} dB "
          f"over the mixture ({len(mixes)} generated two-source mixtures)")
    print()
    print(f"{'stage':<40}{'seconds':>10}")
    for name, seconds in timings:
        print(f"{name:<40}{seconds:>10.2f}")
    return 0


def _sync(args):
    from . import AVCorrespondence, load_clip

    if args.model:
        import joblib

        model = joblib.load(args.model)  # only load model files you trust (they are pickles)
        model.set_params(max_offset=args.max_offset)
    else:
        model = AVCorrespondence(max_offset=args.max_offset)
    clip = load_clip(args.video, sample_rate=model.audio_sample_rate)
    from .sync import SYNC_CONFIDENCE_THRESHOLD, peak_offset

    ((offsets, scores),) = model.sync_curve([clip], method=args.method)
    offset, confidence = peak_offset(offsets, scores)  # what predict_offset reads off the same curve

    verdict = "in sync" if abs(offset) < 0.5 / clip.fps else ("audio ahead" if offset > 0 else "audio behind")
    trust = "trustworthy" if confidence >= SYNC_CONFIDENCE_THRESHOLD else "NOT trustworthy"
    print(f"{args.video}: offset {offset:+.3f} s ({verdict}), confidence {confidence:.2f} "
          f"({trust}; threshold {SYNC_CONFIDENCE_THRESHOLD})")
    if args.plot:
        from .plotting import save_sync_curve

        save_sync_curve(offsets, scores, args.plot, offset=offset, confidence=confidence, title=str(args.video))
        print(f"sync curve written to {args.plot}")
    return 0


def _localize(args):
    import numpy as np

    from .localization import SOURCE_THRESHOLD
    from .plotting import save_heatmap_frames, save_heatmap_video

    model, clip = _load(args)
    (maps,), (confidence,) = model.localize([clip], method=args.method, return_confidence=True,
                                            refine=not args.no_refine)
    found = confidence >= SOURCE_THRESHOLD
    print(f"{args.video}: sound source visible in {int(found.sum())} of {found.size} frames "
          f"(confidence >= {SOURCE_THRESHOLD}), mean confidence {float(np.mean(confidence)):.2f}")
    if args.out:
        # frames drawn and encoded one at a time: the overlaid video is never all in memory
        path = save_heatmap_video(clip, maps, args.out, preset=args.preset)
        print(f"video with the maps over the frames and the original sound written to {path}")
    if args.png:
        paths = save_heatmap_frames(clip.frames, maps, args.png, every=args.every)
        print(f"{len(paths)} heat-map frames written to {args.png}")
    if not (args.out or args.png):
        print("nothing written: --out VIDEO writes the video with the maps over it, --png DIR its frames")
    return 0


def _model(args):
    from . import AVCorrespondence

    if args.model:
        import joblib

        return joblib.load(args.model)  # only load model files you trust (they are pickles)
    return AVCorrespondence()


def _load(args):
    from . import load_clip

    model = _model(args)
    return model, load_clip(args.video, sample_rate=model.audio_sample_rate)


def _classify(args):
    labels = [label.strip() for label in args.labels.split(",") if label.strip()]
    model, clip = _load(args)
    (probabilities,) = model.classify_scene([clip], labels)
    print(f"{args.video}:")
    for k in probabilities.argsort()[::-1]:
        print(f"  {labels[k]:<40}{probabilities[k]:.3f}")
    return 0


def _describe(args):
    model, clip = _load(args)
    print(f"{args.video}: {model.describe_expected_audio(clip)}")
    return 0


def _box(text):
    """``--region``'s x0,y0,x1,y1 in pixels."""
    try:
        box = tuple(int(v) for v in text.split(","))
    except ValueError:
        box = ()
    if len(box) != 4:
        raise argparse.ArgumentTypeError(f"must be x0,y0,x1,y1 in whole pixels; got {text!r}")
    return box


def _separate(args):
    import numpy as np
    from scipy.io import wavfile

    from . import load_clip
    from ._validation import atomic_path

    rate, mixture = wavfile.read(args.mix)
    if mixture.ndim == 2:
        mixture = mixture.mean(axis=1)
    if mixture.dtype == np.uint8:  # 8-bit WAV is unsigned, centred on 128
        mixture = (mixture.astype(np.float64) - 128.0) / 128.0
    elif np.issubdtype(mixture.dtype, np.integer):
        mixture = mixture / float(np.iinfo(mixture.dtype).max)
    mixture = mixture.astype(np.float32)
    model = _model(args)
    frames = load_clip(args.target, fps=model.video_frame_rate, allow_missing_audio=True).frames
    # a picture (one frame: PNG, JPEG, ...) takes the appearance route, which needs --model
    target_visual = frames[0] if frames.shape[0] == 1 else frames
    target, confidence = model.separate(mixture, target_visual, sample_rate=rate, region=args.region,
                                        return_confidence=True)
    with atomic_path(args.out) as tmp:
        wavfile.write(tmp, rate, target)
    quieter = 10 * np.log10((np.sum(mixture.astype(np.float64) ** 2) + 1e-30)
                            / (np.sum(target.astype(np.float64) ** 2) + 1e-30))
    print(f"{args.out}: target written ({target.size / rate:.2f} s at {rate} Hz), confidence {confidence:.2f}, "
          f"{quieter:.1f} dB below the mixture"
          + ("" if confidence >= 0.5 else " (low confidence: the target may not be heard in the mixture)"))
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="skavc", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="fit on generated clips and report held-out retrieval")
    demo.add_argument("--n-clips", type=int, default=200)
    demo.add_argument("--n-classes", type=int, default=8)
    demo.add_argument("--duration", type=float, default=2.0)
    demo.add_argument("--test-size", type=float, default=0.25)
    demo.add_argument("--epochs", type=int, default=100)
    demo.add_argument("--audio-encoder", default="whisper-tiny", choices=["whisper-tiny", "whisper-tiny-30s", "effnet-mel"])
    demo.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    demo.add_argument("--precision", default="fp32", choices=["fp32", "fp16"])
    demo.add_argument("--n-jobs", type=int, default=None, help="clips decoded and encoded at once (threads)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--verbose", type=int, default=1)
    demo.set_defaults(func=_demo)

    sync = sub.add_parser("sync", help="estimate a video's audio-visual offset (positive = audio ahead)")
    sync.add_argument("video")
    sync.add_argument("--max-offset", type=float, default=1.0, help="seconds searched either way")
    sync.add_argument("--method", default="auto", choices=["auto", "learned", "signal", "naive"])
    sync.add_argument("--model", help="a fitted AVCorrespondence saved with joblib (trusted files only)")
    sync.add_argument("--plot", metavar="PNG", help="write the sync curve to this PNG file")
    sync.set_defaults(func=_sync)

    loc = sub.add_parser("localize", help="heat maps of where the sound comes from: a video, or PNG frames")
    loc.add_argument("video")
    loc.add_argument("--out", metavar="VIDEO", help="video file (mp4, mkv, ...) of the frames with the maps "
                     "blended in and the original sound")
    loc.add_argument("--preset", default="veryfast", choices=X264_PRESETS,
                     help="with --out: x264 speed preset (slower: a smaller file at the same quality)")
    loc.add_argument("--png", metavar="DIR", help="also (or only) write PNG frames to this folder (created)")
    loc.add_argument("--method", default="auto", choices=["auto", "learned", "synchrony", "fused"])
    loc.add_argument("--model", help="a fitted AVCorrespondence saved with joblib (trusted files only)")
    loc.add_argument("--every", type=int, default=1, help="with --png: write every N-th frame")
    loc.add_argument("--no-refine", action="store_true", help="skip the colour refinement of the maps")
    loc.set_defaults(func=_localize)

    cls = sub.add_parser("classify", help="probability of each label (given now) for what the video shows and sounds")
    cls.add_argument("video")
    cls.add_argument("--labels", required=True, help='comma-separated label strings, e.g. "dog park,church bells"')
    cls.add_argument("--model", help="a fitted AVCorrespondence saved with joblib (trusted files only)")
    cls.set_defaults(func=_classify)

    desc = sub.add_parser("describe", help="the sounds the video's pictures should make, and when")
    desc.add_argument("video")
    desc.add_argument("--model", help="a fitted AVCorrespondence saved with joblib (trusted files only)")
    desc.set_defaults(func=_describe)

    sep = sub.add_parser("separate", help="the sound of what a video shows, taken out of a mixture (WAV)")
    sep.add_argument("mix", help="the mixture, a WAV file")
    sep.add_argument("target", help="a video (mp4, ...) of the target moving with its sound, or a picture "
                     "(PNG, JPEG) of it (needs --model fitted with separation=True)")
    sep.add_argument("--out", required=True, help="WAV file for the target's sound")
    sep.add_argument("--region", type=_box, help="x0,y0,x1,y1: the target's box in the video's pixels")
    sep.add_argument("--model", help="a fitted AVCorrespondence saved with joblib (trusted files only)")
    sep.set_defaults(func=_separate)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError, NotImplementedError) as exc:
        print(f"skavc {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
