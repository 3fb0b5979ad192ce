"""The ``skavc`` command line: ``skavc demo``, ``skavc sync VIDEO``, ``skavc localize VIDEO --out overlay.mp4``,
``skavc classify VIDEO --labels "a,b,c"``, ``skavc describe VIDEO`` and
``skavc separate MIX TARGET.mp4 --out target.wav`` (also ``python -m skavc``)."""

import argparse
import collections
import importlib.util
import re
import sys
import time
import warnings
from pathlib import Path

from ._clip import ClipQualityWarning
from ._progress import clock
from ._validation import X264_PRESETS, check_output_path
from ._version import __version__

#: What ``localize --out`` may end in: the containers the video writer (libx264 or mpeg4, with AAC) fills.
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".avi", ".ts")


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
    width = max(len("stage"), *(len(name) for name, _ in timings)) + 2  # the names vary with the options
    print(f"{'stage':<{width}}{'seconds':>10}")
    for name, seconds in timings:
        print(f"{name:<{width}}{seconds:>10.2f}")
    return 0


# -- checks made before any work, in the shell's words -------------------------------------------


class CommandError(ValueError):
    """A refusal written for the shell (options, not Python arguments): printed as it is."""


def _check_plotting(option):
    """Refuse an option that draws pictures before any work when matplotlib is missing."""
    if importlib.util.find_spec("matplotlib") is None:
        raise ImportError(f"{option} draws with matplotlib, which is not installed: pip install 'skavc[plot]'")


def _model(args):
    """The ``--model`` file's fitted AVCorrespondence, or a fresh (training-free) one."""
    from . import AVCorrespondence

    if not args.model:
        return AVCorrespondence()
    import joblib

    path = Path(args.model)
    if not path.is_file():
        raise FileNotFoundError(f"--model: no such file: '{path}'")
    try:
        model = joblib.load(path)  # only load model files you trust (they are pickles)
    except Exception as exc:  # a pickle fails in many ways: name the file and what it must be
        why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise ValueError(f"--model: could not load '{path}' ({why}); it must be a fitted AVCorrespondence saved "
                         "with joblib.dump(model, path)") from exc
    if not isinstance(model, AVCorrespondence):
        raise TypeError(f"--model: '{path}' holds a {type(model).__name__}, not a fitted AVCorrespondence")
    return model


def _fitted_with(model, attribute, option, parameter, otherwise):
    """Refuse ``option`` when ``model`` lacks the fitted ``attribute`` that ``parameter=True`` trains;
    ``otherwise`` says what works without one."""
    if getattr(model, attribute, None) is None:
        raise CommandError(f"{option} needs --model FILE with a model fitted with {parameter}=True (in Python: "
                           f"AVCorrespondence({parameter}=True).fit(X), saved with joblib.dump); {otherwise}")


def _load_video(path, model, *, sound, **kwargs):
    """A video as an AVClip at the model's audio rate; without ``sound`` (a reason the command
    needs it, or None) a video without sound is read with silence in its place."""
    from . import load_clip

    try:
        return load_clip(path, sample_rate=model.audio_sample_rate, allow_missing_audio=sound is None, **kwargs)
    except ValueError as exc:
        if "allow_missing_audio" not in str(exc):
            raise
        # the library's fix is a Python argument: from the shell, say what the command needs instead
        reason = _NO_AUDIO_FIX.sub("", str(exc))
        raise CommandError(f"{reason}; {sound}") from exc


# -- the commands ----------------------------------------------------------------------------------


def _sync(args):
    import numpy as np

    from .sync import SYNC_CONFIDENCE_THRESHOLD, peak_offset

    if args.plot:
        check_output_path(args.plot, name="--plot", suffixes=(".png",))
        _check_plotting("--plot")
    model = _model(args)
    model.set_params(max_offset=args.max_offset)
    if args.method == "learned":
        _fitted_with(model, "sync_head_", "--method learned", "sync", "or use --method signal (training-free)")
    timeline = None
    if args.method == "learned" or (args.method == "auto" and getattr(model, "sync_head_", None) is not None):
        # the learned head reads the whole clip at once (its memory grows with the video's length)
        clip = _load_video(args.video, model, sound="sync compares the sound with the pictures: give a video "
                           "with an audio track")
        ((offsets, scores),) = model.sync_curve([clip], method="learned")
        offset, confidence = peak_offset(offsets, scores)  # what predict_offset reads off the same curve
        fps = clip.fps
    else:  # streamed a window at a time: memory bounded by the window, whatever the video's length
        model.set_params(verbose=0 if args.quiet else 1)  # the progress line, on stderr
        (timeline,) = model.sync_timeline([args.video], window=args.window, hop=args.hop, method=args.method)
        (offsets, scores), offset, confidence, fps = (timeline.curve, timeline.offset,
                                                      timeline.overall_confidence, timeline.fps)

    verdict = "in sync" if abs(offset) < 0.5 / fps else ("audio ahead" if offset > 0 else "audio behind")
    trust = "trustworthy" if confidence >= SYNC_CONFIDENCE_THRESHOLD else "NOT trustworthy"
    print(f"{args.video}: offset {offset:+.3f} s ({verdict}), confidence {confidence:.2f} "
          f"({trust}; threshold {SYNC_CONFIDENCE_THRESHOLD})")
    if timeline is not None and len(timeline.starts) > 1:
        print(f"{len(timeline.starts)} windows of {args.window:g} s (the first line: all of them together):")
        print(f"  {'window':<17}{'offset (s)':>11}{'confidence':>12}")
        for start, duration, window_offset, window_confidence in zip(
                timeline.starts, timeline.durations, timeline.offsets, timeline.confidence):
            span = f"{clock(start)}-{clock(start + duration)}"
            print(f"  {span:<17}{window_offset:>+11.3f}{window_confidence:>12.2f}")
        trusted = int(np.sum(timeline.confidence >= SYNC_CONFIDENCE_THRESHOLD))
        if np.isfinite(timeline.drift):
            low, high = (3600 * v for v in timeline.drift_interval)
            used = (f"the {trusted} windows at confidence >= {SYNC_CONFIDENCE_THRESHOLD}" if timeline.drift_trusted
                    else f"all {len(timeline.starts)} windows ({trusted} at confidence >= "
                         f"{SYNC_CONFIDENCE_THRESHOLD}: read it with its interval)")
            shown = "" if low <= 0 <= high else ", the interval leaves 0 out"
            print(f"drift: {3600 * timeline.drift:+.2f} s per hour (95 % {low:+.2f} to {high:+.2f}{shown}), "
                  f"fitted on {used}")
        else:
            print("drift: not measured (3 windows needed)")
    if args.plot:
        from .plotting import save_sync_curve

        save_sync_curve(offsets, scores, args.plot, offset=offset, confidence=confidence,
                        title=Path(args.video).name, timeline=timeline)
        print(f"sync curve written to {args.plot}")
    return 0


#: Seconds of full-size frames ``skavc localize`` reads and draws at a time (a second of 720p: 83 MB).
_DRAWN_CHUNK = 1.0


def _localize(args):
    if args.every is not None and not args.png:
        raise CommandError("--every picks the frames --png writes: add --png DIR, or leave --every out")
    if args.out:
        check_output_path(args.out, name="--out", suffixes=VIDEO_SUFFIXES)
    if args.png:
        from .plotting import _check_output_folder  # matplotlib is imported only when drawing

        _check_output_folder(args.png, name="--png")
    if args.out or args.png:
        _check_plotting("--out" if args.out else "--png")
    model = _model(args)
    if args.method in ("learned", "fused"):
        _fitted_with(model, "localization_head_", f"--method {args.method}", "localization",
                     "or use --method synchrony (training-free)")

    from .localization import SOURCE_THRESHOLD
    from .plotting import save_heatmap_frames_windows, save_heatmap_video_windows

    # localised a window at a time (in a second thread), the full-size frames read, drawn and
    # encoded a second at a time alongside: memory bounded by the window's small frames
    model.set_params(verbose=0 if args.quiet else 1)  # the progress line, on stderr
    windows = model.localize_windows(args.video, window=args.window, method=args.method, refine=not args.no_refine,
                                     chunk=_DRAWN_CHUNK)
    counts = {"frames": 0, "found": 0, "confidence": 0.0, "pngs": 0}
    drawing = dict(threshold=SOURCE_THRESHOLD, legend=True, normalize=args.raw)

    def counted():
        """Each window as (clip, maps), its frames counted, its PNG frames written when asked for."""
        for window in windows:
            if args.png:
                # file indices count from the video's first frame, every N-th of them
                counts["pngs"] += len(save_heatmap_frames_windows(
                    [(window.clip, window.maps)], args.png, every=args.every or 1, **drawing,
                    first_index=counts["frames"]))
            yield window.clip, window.maps
            # after drawing: the confidences were found as the maps were drawn
            confidence = window.confidence
            counts["frames"] += confidence.size
            counts["found"] += int((confidence >= SOURCE_THRESHOLD).sum())
            counts["confidence"] += float(confidence.sum())
            del window  # let go of the window before the next is read

    if args.out:
        path = save_heatmap_video_windows(counted(), args.out, preset=args.preset, **drawing)
    else:
        collections.deque(counted(), maxlen=0)  # read through, holding no window while the next is read
    mean = counts["confidence"] / max(counts["frames"], 1)
    print(f"{args.video}: sound source visible in {counts['found']} of {counts['frames']} frames "
          f"(confidence >= {SOURCE_THRESHOLD}), mean confidence {mean:.2f}")
    if args.out:
        print(f"video with the maps over the frames and the original sound written to {path}")
    if args.png:
        print(f"{counts['pngs']} heat-map frames written to {args.png}")
    if not (args.out or args.png):
        print("nothing written: --out VIDEO writes the video with the maps over it, --png DIR its frames")
    return 0


def _speakers(args):
    import numpy as np

    from .io import iter_clips, video_info
    from .speakers import SPEAKING_THRESHOLD

    if args.out:
        check_output_path(args.out, name="--out", suffixes=VIDEO_SUFFIXES)
    model = _model(args)
    model.set_params(verbose=0 if args.quiet else 1)  # the progress line, on stderr
    # pass 1: faces tracked and judged a window at a time on frames at 640 px; only their boxes
    # and probabilities are kept (a few numbers per face and frame)
    seen = {}  # frame index -> (track ids, boxes (n, 4) in the analysed frames' pixels, speaking (n,))
    tracks = {}  # track id -> [frames seen, frames speaking, first time, last time]
    size, speech_frames, n_frames, fps = None, 0, 0, None
    for clip, faces in model.speakers_windows(args.video, window=args.window):
        fps, size = clip.fps, clip.frames.shape[1:3]
        first = int(round(clip.start * clip.fps))
        n_frames = max(n_frames, first + clip.n_frames)
        per_frame = {}
        for face in faces:
            summary = tracks.setdefault(face.track, [0, 0, np.inf, -np.inf])
            summary[0] += face.frames.size
            summary[1] += int((face.speaking >= SPEAKING_THRESHOLD).sum())
            summary[2] = min(summary[2], (first + face.frames[0]) / fps)
            summary[3] = max(summary[3], (first + face.frames[-1] + 1) / fps)
            for t, box, p in zip(face.frames, face.boxes, face.speaking):
                per_frame.setdefault(first + int(t), []).append((face.track, box, p))
        for t, rows in per_frame.items():
            seen[t] = rows
            speech_frames += any(p >= SPEAKING_THRESHOLD for _, _, p in rows)
        del clip, faces
    print(f"{args.video}: {len(tracks)} face{'s' if len(tracks) != 1 else ''} followed; a face speaks in "
          f"{speech_frames} of {n_frames} frames (probability >= {SPEAKING_THRESHOLD})")
    for track, (count, speaking, start, stop) in sorted(tracks.items()):
        print(f"  face {track}: seen {clock(start)}-{clock(stop)} ({count} frames), speaking in {speaking} "
              f"({speaking / max(count, 1):.0%})")
    if not args.out:
        print("nothing written: --out VIDEO writes the video with each face's box coloured by it")
        return 0
    from .plotting import save_speakers_video_windows

    def drawn():
        # pass 2: the full-size frames a second at a time, the boxes scaled to them
        info = video_info(args.video)
        rate = info.audio_sample_rate or model.audio_sample_rate
        for clip in iter_clips(args.video, window=_DRAWN_CHUNK, sample_rate=rate):
            scale = np.array([clip.frames.shape[2] / size[1], clip.frames.shape[1] / size[0]] * 2)
            first = int(round(clip.start * clip.fps))
            faces = []
            for t in range(clip.n_frames):
                rows = seen.get(first + t, [])
                faces.append((np.array([box * scale for _, box, _ in rows]).reshape(-1, 4),
                              np.array([p for _, _, p in rows])))
            yield clip, faces
            del clip

    path = save_speakers_video_windows(drawn(), args.out, threshold=SPEAKING_THRESHOLD, preset=args.preset)
    print(f"video with each face's box (green: speaking, grey: not) and the original sound written to {path}")
    return 0


def _uses_sound(model):
    """Whether ``model.classify_scene`` listens: a scene model's audio head (when its weight is
    above 0) or its caption map, which reads the joint embedding of sound and pictures."""
    head = getattr(model, "audio_class_head_", None) is not None and getattr(model, "audio_weight_", 1.0) > 0
    return head or getattr(model, "text_map_", None) is not None


def _classify(args):
    labels = [label.strip() for label in args.labels.split(",") if label.strip()]
    if not labels:
        raise CommandError(f'--labels must hold comma-separated labels, e.g. "dog park,church bells"; '
                           f"got {args.labels!r}")
    model = _model(args)
    listens = _uses_sound(model)
    clip = _load_video(args.video, model, sound=(
        "the --model (fitted with scene=True) listens to it: give a video with sound, or leave out --model to "
        "judge by the pictures alone") if listens else None)
    (probabilities,) = model.classify_scene([clip], labels)
    if listens:
        basis = "judged by the pictures and the sound (--model fitted with scene=True)"
    elif args.model:
        basis = ("judged by the pictures alone: this --model has no sound route (fit it with scene=True for one; "
                 "a scene model whose audio head learnt nothing has weight 0)")
    else:
        basis = ("judged by the pictures alone (zero-shot: labels have no route from the sound; "
                 "--model with a model fitted with scene=True adds the sound)")
    print(f"{args.video}: {basis}")
    for k in probabilities.argsort()[::-1]:
        print(f"  {labels[k]:<40}{probabilities[k]:.3f}")
    return 0


def _describe(args):
    model = _model(args)
    clip = _load_video(args.video, model, sound=None)  # only the pictures are read: silent videos too
    print(f"{args.video}: {model.describe_expected_audio(clip)}")
    return 0


def _positive_int(text):
    """A whole number >= 1 (``--every``)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1; got {text!r}")
    return value


def _seconds(text, *, zero_ok):
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value >= 0 if zero_ok else value > 0) or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds {'>= 0' if zero_ok else '> 0'}; got {text!r}")
    return value


def _positive_seconds(text):
    """A number of seconds > 0 (``--window``, ``--hop``)."""
    return _seconds(text, zero_ok=False)


def _non_negative_seconds(text):
    """A number of seconds >= 0 (``--overlap``)."""
    return _seconds(text, zero_ok=True)


def _box(text):
    """``--region``'s x0,y0,x1,y1 in pixels."""
    try:
        box = tuple(int(v) for v in text.split(","))
    except ValueError:
        box = ()
    if len(box) != 4:
        raise argparse.ArgumentTypeError(f"must be x0,y0,x1,y1 in whole pixels; got {text!r}")
    return box


def _info(args):
    from ._info import show_versions

    show_versions()
    return 0


def _separate(args):
    import numpy as np

    from ._validation import atomic_path
    from .io import WavWriter, iter_audio, load_clip, video_info

    check_output_path(args.out, name="--out", suffixes=(".wav",))
    if args.overlap >= args.window:
        raise CommandError(f"--overlap must be shorter than --window ({args.window:g} s); got {args.overlap:g}")
    model = _model(args)
    mixture = iter_audio(args.mix, name="MIX")  # MIX checked before any work; read a window at a time
    target = args.target
    if video_info(target).duration is None:  # no duration: a picture (PNG, JPEG, ...) when it has one frame
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ClipQualityWarning)
            n_frames = load_clip(target, allow_missing_audio=True, max_duration=1.0).frames.shape[0]
        if n_frames == 1:
            raise CommandError(f"TARGET {target} is a picture: separation follows what moves with the target's "
                               "sound (its motion, or its speaking face), so give as TARGET a video of it covering "
                               "MIX. Separating by one picture's appearance was withdrawn: it did not separate real "
                               "sounds (+0.0 dB median on real pictures with their sounds)")
    model.set_params(verbose=0 if args.quiet else 1)  # the progress line, on stderr
    pieces = model.separate_windows(args.mix, target, region=args.region, window=args.window, overlap=args.overlap)
    energy = {"mixture": 0.0, "target": 0.0}
    confidences, durations = [], []
    with atomic_path(args.out) as tmp, WavWriter(tmp, mixture.sample_rate) as out:
        for piece in pieces:  # written as it comes: memory follows the window, not the recording
            out.write(piece.target)
            energy["target"] += float(np.sum(piece.target.astype(np.float64) ** 2))
            energy["mixture"] += float(np.sum((piece.target.astype(np.float64) + piece.residual) ** 2))
            confidences.append(piece.confidence)
            durations.append(piece.duration)
    seconds = float(np.sum(durations))
    confidence = float(np.average(confidences, weights=np.maximum(durations, 1e-9)))
    quieter = 10 * np.log10((energy["mixture"] + 1e-30) / (energy["target"] + 1e-30))
    print(f"{args.out}: target written ({seconds:.2f} s at {mixture.sample_rate} Hz), confidence {confidence:.2f}, "
          f"{quieter:.1f} dB below the mixture"
          + ("" if confidence >= 0.5 else " (low confidence: the target may not be heard in the mixture)"))
    if len(confidences) > 1:
        low = int(np.sum(np.asarray(confidences) < 0.5))
        print(f"{len(confidences)} windows of {args.window:g} s (confidence weighted by their length above): "
              f"{low} below 0.5, the lowest {min(confidences):.2f}, the highest {max(confidences):.2f}")
    return 0


# -- the parser ------------------------------------------------------------------------------------

_MODEL_HELP = "a fitted AVCorrespondence saved with joblib.dump (trusted files only: it is a pickle)"


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Each option's default at the end of its help line, unless there is none to show (None, a
    flag's False) or the help says it in words."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or "(default:" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


#: ``skavc --help``'s examples: every line is a command the parser takes (tests/test_cli.py parses them).
EXAMPLES = """\
examples:
  skavc demo
  skavc sync talk.mp4 --plot curve.png
  skavc localize talk.mp4 --out overlay.mp4
  skavc speakers talk.mp4 --out speakers.mp4
  skavc classify street.mp4 --labels "dog park,church bells,traffic"
  skavc describe street.mp4
  skavc separate mix.wav target.mp4 --out target.wav
  skavc info

'skavc COMMAND --help' says what each command takes; 'python -m skavc' works too."""


def build_parser():
    parser = argparse.ArgumentParser(
        prog="skavc", epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Learn how sound and picture belong together: the audio-visual offset of a video, where "
                    "its sound comes from, who speaks, what it shows, and the sound of what it shows taken out "
                    "of a mixture.")
    parser.add_argument("--version", action="version", version=f"skavc {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name, help):
        # every option's default shown in its help line
        return sub.add_parser(name, help=help, description=help, formatter_class=_HelpFormatter)

    demo = command("demo", "fit on generated clips and report every capability's held-out result against chance")
    demo.add_argument("--n-clips", type=int, default=200, help="generated clips, training and held out together")
    demo.add_argument("--n-classes", type=int, default=8, help="scene classes the clips are drawn from")
    demo.add_argument("--duration", type=float, default=2.0, help="seconds per clip")
    demo.add_argument("--test-size", type=float, default=0.25, help="share of the clips held out")
    demo.add_argument("--epochs", type=int, default=100, help="training epochs of the projection heads")
    demo.add_argument("--audio-encoder", default="whisper-tiny", choices=["whisper-tiny", "whisper-tiny-30s", "effnet-mel"],
                      help="pretrained audio encoder (README: Encoders)")
    demo.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                      help="where the encoders run; auto: CUDA when onnxruntime-gpu sees a GPU")
    demo.add_argument("--precision", default="fp32", choices=["fp32", "fp16"],
                      help="encoder arithmetic (fp16 is for CUDA; slower on the CPU)")
    demo.add_argument("--n-jobs", type=int, default=None,
                      help="clips decoded and encoded at once (threads; -1: one per core) (default: one at a time)")
    demo.add_argument("--seed", type=int, default=0, help="random seed of the clips, the split and the fit")
    demo.add_argument("--verbose", type=int, default=0,
                      help="0: the results only; 1: also the training progress every 10 epochs, 2: every epoch "
                      "(printed among the results)")
    demo.set_defaults(func=_demo)

    sync = command("sync", "estimate a video's audio-visual offset (positive = audio ahead)")
    sync.add_argument("video", help="a video file with sound")
    sync.add_argument("--max-offset", type=float, default=1.0, help="seconds searched either way")
    sync.add_argument("--method", default="auto", choices=["auto", "learned", "signal", "face", "naive"],
                      help="auto: where a first look sees a face, the mouth of the speaking face or the whole "
                      "frame, whichever agrees more with the sound in each window; learned with a --model fitted "
                      "with sync=True; else signal (training-free); face: always the mouth")
    sync.add_argument("--model", help=_MODEL_HELP)
    sync.add_argument("--plot", metavar="PNG", help="write the sync curve (and, for a long video, the offset over "
                      "time) to this PNG file (its folder must exist)")
    sync.add_argument("--window", type=_positive_seconds, default=10.0,
                      help="seconds per window: the video is read a window at a time and each gets its offset "
                      "(the drift over time); the first line combines them all")
    sync.add_argument("--hop", type=_positive_seconds, metavar="SECONDS",
                      help="seconds between window starts, at most --window (default: --window, no overlap)")
    sync.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    sync.set_defaults(func=_sync)

    loc = command("localize", "heat maps of where the sound comes from, drawn over the video (--out) or "
                  "written as PNG frames (--png)")
    loc.add_argument("video", help="a video file with sound")
    loc.add_argument("--out", metavar="VIDEO", help="video file (" + ", ".join(VIDEO_SUFFIXES) + ") of the frames "
                     "with the maps blended in, a colour bar, and the original sound (its folder must exist)")
    loc.add_argument("--preset", default="ultrafast", choices=X264_PRESETS,
                     help="with --out: x264 speed preset (slower: a smaller file at the same quality; 720p: "
                     "ultrafast 24 MB a minute at 2x real time on 2 cores, veryfast 11 MB at 1.7x)")
    loc.add_argument("--png", metavar="DIR", help="also (or only) write PNG frames into this folder (created if "
                     "missing; its parent folder must exist)")
    loc.add_argument("--every", type=_positive_int, metavar="N", help="with --png: write every N-th frame (default: every frame)")
    loc.add_argument("--raw", action="store_true",
                     help="colour each frame's map divided by its own maximum, so the source's shape shows "
                     "whatever the confidence (the colour bar says so; the white outline still marks map >= 0.5)")
    loc.add_argument("--method", default="auto", choices=["auto", "learned", "synchrony", "fused"],
                     help="auto: fused with a --model fitted with localization=True, else synchrony (training-free)")
    loc.add_argument("--model", help=_MODEL_HELP)
    loc.add_argument("--no-refine", action="store_true", help="skip the colour refinement of the maps")
    loc.add_argument("--window", type=_positive_seconds, default=10.0,
                     help="seconds per window: each window is localised against its own chance level, on frames "
                     "decoded at 256 pixels, while the full-size frames are drawn a second at a time (720p: about "
                     "1.1 GB in all, whatever the length)")
    loc.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    loc.set_defaults(func=_localize)

    spk = command("speakers", "who is speaking: the faces of a video followed through it, and when each one "
                  "speaks (its mouth moving with the sound)")
    spk.add_argument("video", help="a video file with sound")
    spk.add_argument("--out", metavar="VIDEO", help="video file (" + ", ".join(VIDEO_SUFFIXES) + ") of the frames "
                     "with each face's box, green while it speaks, grey while not, and the original sound (its "
                     "folder must exist)")
    spk.add_argument("--preset", default="ultrafast", choices=X264_PRESETS, help="with --out: x264 speed preset")
    spk.add_argument("--window", type=_positive_seconds, default=10.0,
                     help="seconds per window: the video is read a window at a time, its frames at 640 pixels")
    spk.add_argument("--model", help=_MODEL_HELP)
    spk.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    spk.set_defaults(func=_speakers)

    cls = command("classify", "probability of each label (given now) for what the video shows: judged by the "
                  "pictures alone, or with --model fitted with scene=True by the pictures and the sound")
    cls.add_argument("video", help="a video file (with or without sound)")
    cls.add_argument("--labels", required=True, help='comma-separated label strings, e.g. "dog park,church bells"')
    cls.add_argument("--model", help=_MODEL_HELP + "; fitted with scene=True, its sound is used too")
    cls.set_defaults(func=_classify)

    desc = command("describe", "the sounds the video's pictures should make, and when (reads only the pictures: "
                   "silent videos too)")
    desc.add_argument("video", help="a video file (with or without sound)")
    desc.add_argument("--model", help=_MODEL_HELP)
    desc.set_defaults(func=_describe)

    sep = command("separate", "the sound of what a video shows, taken out of a mixture")
    sep.add_argument("mix", metavar="MIX", help="the mixture: any audio or video file with sound "
                     "(WAV, FLAC, MP3, MP4, ...)")
    sep.add_argument("target", metavar="TARGET", help="a video (mp4, ...) of the target moving with its sound, or "
                     "speaking, covering MIX")
    sep.add_argument("--out", required=True, help="WAV file for the target's sound (its folder must exist)")
    sep.add_argument("--region", type=_box, help="x0,y0,x1,y1: the target's box in the video's pixels")
    sep.add_argument("--window", type=_positive_seconds, default=20.0,
                     help="seconds per window: the mixture is separated a window at a time (each with its own "
                     "confidence), the windows crossfaded, the target written as it goes")
    sep.add_argument("--overlap", type=_non_negative_seconds, default=2.0,
                     help="seconds shared by consecutive windows, over which they are crossfaded")
    sep.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    sep.add_argument("--model", help=_MODEL_HELP)
    sep.set_defaults(func=_separate)

    info = command("info", "versions, encoders, the cache folder, ONNX providers and the device: what a bug "
                   "report needs")
    info.set_defaults(func=_info)
    return parser


# -- errors in the shell's words -------------------------------------------------------------------

#: The library's Python fix for a video without sound, which the shell has no way to follow.
_NO_AUDIO_FIX = re.compile(r"\s*[;(]?\s*\(?pass allow_missing_audio=True[^)]*\)?")

#: Parameters the commands set from options: a library error naming one names the option instead.
_OPTIONS = {"method": "--method", "max_offset": "--max-offset", "region": "--region", "labels": "--labels",
            "preset": "--preset", "every": "--every"}

_SHELL_WORDS = [
    # "(AVCorrespondence(sync=True).fit(X))", ": AVCorrespondence(scene=True).fit(X, y)": Python only
    (re.compile(r"\s*[(:]?\s*(?:AVCorrespondence|model(?:\.set_params)?)\([^()]*\)\.fit\([^()]*\)\)?"), ""),
    # "a model fitted with sync=True first"
    (re.compile(r"\ba model fitted with (\w+)=True(?: first)?"),
     r"--model FILE with a model fitted with \1=True (in Python, saved with joblib.dump)"),
    (_NO_AUDIO_FIX,
     "; the command needs the video's sound: give a video with an audio track"),
    # "method='signal'" -> "--method signal"; "max_offset must be" -> "--max-offset must be"
    (re.compile(r"\b(" + "|".join(_OPTIONS) + r")=(['\"])([^'\"]*)\2"), lambda m: f"{_OPTIONS[m[1]]} {m[3]}"),
    (re.compile(r"(?<![\w-])(" + "|".join(_OPTIONS) + r")\b(?= must| needs| holds|\[)"), lambda m: _OPTIONS[m[1]]),
    (re.compile(r"\btarget_visual\b"), "TARGET"),
    (re.compile(r"\bmixed_audio\b"), "MIX"),
]


def shell_words(message):
    """A library error message with its Python-only fixes in the shell's words (options, not arguments)."""
    for pattern, replacement in _SHELL_WORDS:
        message = pattern.sub(replacement, message)
    return message


def main(argv=None):
    """Run the ``skavc`` command line on ``argv`` (default: ``sys.argv[1:]``); returns the exit status.

    Errors that a user can fix (bad values, missing or unwritable files, a model that lacks what
    an option needs) print ``skavc COMMAND: error: ...`` on stderr and return 2, without a traceback.
    """
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError, ImportError, NotImplementedError) as exc:
        # OSError: FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError, ...
        message = str(exc) if isinstance(exc, CommandError) else shell_words(str(exc))
        print(f"skavc {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"skavc {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
