"""Real talking heads: lip sync, who is speaking, dubbed voices, and the speed of the face layer.

    python benchmarks/real_talk.py [--talk ../shared/media/talk] [--cache ~/.cache/skavc-bench/real]
                                   [--parts abcd] [--pairs all|ring]

**Media.** The nine talking heads of ``../shared/media/talk/`` (real recordings, each with its own
sound, in sync as published; benchmark-only media, README there; never copied into the project,
never used by tests) and the webcam clip of the Debian package ``kphotoalbum``
(``/usr/share/kphotoalbum/demo/movie.avi``: a man speaking to a webcam, 160x120 at 15 fps, fetched
with ``apt-get download`` + ``dpkg-deb -x`` into ``--cache`` as ``real_media.py`` does; left out
with a message when that fails). Sound at 16 kHz.

**(a) Lip sync.** Each recording's sound shifted against its frames by whole frames, about
-0.6..+0.6 s in steps of about 0.12 s, both tracks cut from inside the recording (no padding to
give the shift away): positive = audio ahead. ``AVCorrespondence(max_offset=0.8).predict_offset``
with ``method`` "signal" (the whole frame, before this issue), "face" (the mouth) and "auto". The
error is the estimate less the shift, taking the published file to be in sync. Reported: within
40 ms (EBU R37's window is -40..+60 ms), within one frame, within 0.1 s; each clip's bias (median
error); within 40 ms again with the mouth's lead (``skavc.features.MOUTH_LEAD``, calibrated on
these same clips) replaced, for each clip, by the median bias of the other clips (leave one clip
out: what a clip outside the calibration set would get); within 40 ms of each clip's own median
estimate (the curve following the shift, whatever offset the recording has of its own: every
mouth feature tried, inner and outer lips, lip area, jaw, puts the same +0.04..+0.06 s on the
three studio clips speaker1, 4 and 5). Confidence: AUROC of right (within 0.1 s)
against wrong, where the wrong also include every clip's frames with every other clip's voice (a
dubbed or swapped voice has no right offset); the share of estimates at confidence >= 0.5 and how
many of those are right.

**(b) Who is speaking.** Each ordered pair of recordings side by side, both at 25 fps and 360 px
high, with the sound of the first (placed left or right in turn): per speech frame of that sound
(``sound_presence`` >= 0.5), is the speaking face's probability (``AVCorrespondence.speakers``)
above the other face's; is it >= 0.5; does ``localize``'s map peak on the speaking face's half,
with the faces (default) and without (the whole-frame synchrony map, before this issue); is the
frame's localisation confidence >= 0.5. Chance is 0.5 for the side.

**(c) Dubbed voices.** Every voice against every face, cut to the shorter of the two: the timing
evidence (peak of the sync curve, chance units) of the whole frame ("signal", before) and with the
speaking face's mouth ("auto": what ``correspondence(timing=True)`` now weighs), and
``correspondence(timing=True)`` of a model fitted on 64 generated clips. Matched against dubbed
AUROC; recall@1 of each voice's own face among all faces (chance 1 / n).

**(e) A speaker in a corner inset** (the screen-cast case): the real screen recording of the
Debian package ``openboard-common`` (``wannaworktogether.mp4``, a whiteboard program in use,
its own sound dropped) at 1280x720 as the moving background, each talking head 200 pixels high in
a corner (the four corners in turn), the talking head's sound; written to an mp4 and read back as
``skavc localize`` reads a file (``localize_windows``). Per speech frame: does the map's peak lie
in the inset, is the frame's confidence >= 0.5; with the faces (now) and without (before); the
frame centre and the peak of the frame difference as baselines.

**(d) Speed.** ``predict_offset`` ("signal", "face") on 10 s of 720p at 30 fps in memory (one talking
head scaled to 720x720 and letterboxed into 1280x720), as x real time on this machine; the face
layer alone with decoding is ``benchmarks/bench_faces.py``.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_scene import machine_line  # noqa: E402

RATE = 16000
METHODS = ("signal", "face", "auto")
SHIFT_STEP, MAX_SHIFT = 0.12, 0.6  # seconds
SIDE_FPS, SIDE_HEIGHT = 25.0, 360
KPHOTOALBUM = ("kphotoalbum", "usr/share/kphotoalbum/demo/movie.avi")
SCREEN = ("openboard-common", "usr/share/openboard/library/videos/wannaworktogether.mp4")
INSET = 200


def recordings(args):
    """``[(name, path)]``: the talking heads, then the kphotoalbum webcam clip when it can be fetched."""
    paths = [(p.stem, p) for p in sorted(args.talk.glob("*.mp4"))]
    if not paths:
        sys.exit(f"no talking heads in {args.talk}")
    try:
        from real_media import fetch

        paths.append(("kphotoalbum", fetch(KPHOTOALBUM[0], args.cache) / KPHOTOALBUM[1]))
    except Exception as exc:  # noqa: BLE001 - the benchmark goes on with the talking heads
        print(f"kphotoalbum left out: could not fetch it ({exc})")
    return paths


def shifted(clip, k):
    """The clip's sound ``k`` frames ahead of its pictures (``k < 0``: behind), both cut from inside."""
    from skavc import AVClip

    n = int(round(abs(k) * clip.sample_rate / clip.fps))
    if k > 0:
        audio, frames = clip.audio[n:], clip.frames[: clip.n_frames - k]
    elif k < 0:
        audio, frames = clip.audio[: clip.audio.size - n], clip.frames[-k:]
    else:
        audio, frames = clip.audio, clip.frames
    m = min(audio.size, int(round(frames.shape[0] * clip.sample_rate / clip.fps)))
    return AVClip(audio[:m], clip.sample_rate, frames, clip.fps)


def dubbed(face, voice):
    """``face``'s frames with ``voice``'s sound, both cut to the shorter."""
    from skavc import AVClip

    seconds = min(face.n_frames / face.fps, voice.audio.size / voice.sample_rate)
    n = int(np.floor(seconds * face.fps))
    return AVClip(voice.audio[: int(round(n / face.fps * voice.sample_rate))], voice.sample_rate, face.frames[:n],
                  face.fps)


def auroc(right, score):
    right = np.asarray(right, dtype=bool)
    return roc_auc_score(right, score) if 0 < right.mean() < 1 else float("nan")


def part_lipsync(clips):
    from skavc import AVCorrespondence
    from skavc.features import MOUTH_LEAD

    print("\n## (a) Lip sync: content-only shifts of about -0.6..+0.6 s")
    model = AVCorrespondence(max_offset=0.8)
    errors = {m: {} for m in METHODS}
    confidences = {m: [] for m in METHODS}
    unshifted = {m: [] for m in METHODS}  # confidence of each recording as published
    dubbed_confidence = {m: [] for m in METHODS}
    frame = {}
    for name, clip in clips.items():
        step = max(1, int(round(SHIFT_STEP * clip.fps)))
        ks = np.arange(-int(round(MAX_SHIFT * clip.fps)) // step * step, int(round(MAX_SHIFT * clip.fps)) + 1, step)
        cases, truth = [shifted(clip, int(k)) for k in ks], ks / clip.fps
        frame[name] = 1.0 / clip.fps
        others = [dubbed(clip, other) for o, other in clips.items() if o != name]
        for method in METHODS:
            offsets, confidence = model.predict_offset(cases, return_confidence=True, method=method)
            errors[method][name] = offsets - truth
            confidences[method] += list(confidence)
            unshifted[method].append(confidence[np.flatnonzero(ks == 0)[0]])
            try:
                _, c = model.predict_offset(others, return_confidence=True, method=method)
            except ValueError:  # "face" refuses a clip without a face
                c = np.zeros(len(others))
            dubbed_confidence[method] += list(c)
    print("\n| clip | fps | " + " | ".join(f"{m}: within 40 ms / 0.1 s, bias (s)" for m in METHODS) + " |")
    print("|---|---:|" + "---|" * len(METHODS))
    for name, clip in clips.items():
        cells = [f"{np.mean(np.abs(e) <= 0.04 + 1e-9):.2f} / {np.mean(np.abs(e) <= 0.1 + 1e-9):.2f}, "
                 f"{np.median(e):+.3f}" for e in (errors[m][name] for m in METHODS)]
        print(f"| {name} | {clip.fps:.2f} | " + " | ".join(cells) + " |")
    print(f"\nMOUTH_LEAD = {MOUTH_LEAD:+.3f} s. Right = within 0.1 s; the wrong include "
          f"{len(dubbed_confidence['face'])} dubbed cases (every face with every other voice).")
    print("\n| method | within 40 ms | within one frame | within 0.1 s | within 40 ms, lead left out per clip | "
          "within 40 ms of the clip's own offset | confidence AUROC right vs wrong+dubbed | at confidence >= 0.5 | "
          "right among those |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for method in METHODS:
        names = list(errors[method])
        error = np.concatenate([errors[method][n] for n in names])
        period = np.concatenate([np.full(errors[method][n].size, frame[n]) for n in names])
        bias = {n: np.median(errors[method][n]) for n in names}
        left_out = np.concatenate([errors[method][n] - np.median([bias[o] for o in names if o != n]) for n in names])
        own = np.concatenate([errors[method][n] - bias[n] for n in names])
        right = np.abs(error) <= 0.1 + 1e-9
        confidence = np.asarray(confidences[method])
        all_right = np.r_[right, np.zeros(len(dubbed_confidence[method]), bool)]
        all_confidence = np.r_[confidence, dubbed_confidence[method]]
        confident = all_confidence >= 0.5
        print(f"| {method} | {np.mean(np.abs(error) <= 0.04 + 1e-9):.2f} | "
              f"{np.mean(np.abs(error) <= period + 1e-9):.2f} | "
              f"{right.mean():.2f} | {np.mean(np.abs(left_out) <= 0.04 + 1e-9):.2f} | "
              f"{np.mean(np.abs(own) <= 0.04 + 1e-9):.2f} | "
              f"{auroc(all_right, all_confidence):.2f} | {confident.mean():.2f} ({confident.sum()}) | "
              f"{all_right[confident].mean() if confident.any() else float('nan'):.2f} |")
    print("\n| method | confidence of the recordings as published: min / median / max | largest of a dubbed voice |")
    print("|---|---:|---:|")
    for method in METHODS:
        c = np.asarray(unshifted[method])
        print(f"| {method} | {c.min():.2f} / {np.median(c):.2f} / {c.max():.2f} | "
              f"{max(dubbed_confidence[method]):.2f} |")


def side_by_side(speaking, other, left):
    """Two clips at one height side by side, the sound of ``speaking``; returns the clip and the speaker's x range."""
    from skavc import AVClip

    n = min(speaking.n_frames, other.n_frames)
    parts = [speaking.frames[:n], other.frames[:n]]
    if not left:
        parts = parts[::-1]
    frames = np.concatenate(parts, axis=2)
    width = speaking.frames.shape[2]
    x_range = (0, width) if left else (other.frames.shape[2], frames.shape[2])
    audio = speaking.audio[: int(round(n / speaking.fps * speaking.sample_rate))]
    return AVClip(audio, speaking.sample_rate, frames, speaking.fps), x_range


def part_who_speaks(paths, pairs):
    from skavc import AVCorrespondence, load_clip
    from skavc.features import sound_presence

    print(f"\n## (b) Who is speaking: two recordings side by side ({SIDE_HEIGHT} px high, {SIDE_FPS:g} fps), "
          "the sound of one")
    clips = {}
    for name, path in paths:
        clip = load_clip(path, sample_rate=RATE, fps=SIDE_FPS)
        h, w = clip.frames.shape[1:3]
        clips[name] = load_clip(path, sample_rate=RATE, fps=SIDE_FPS,
                                frame_size=(SIDE_HEIGHT, int(round(w * SIDE_HEIGHT / h / 2)) * 2))
    names = list(clips)
    if pairs == "ring":
        chosen = [(a, names[(i + s) % len(names)]) for i, a in enumerate(names) for s in (1, 4)]
    else:
        chosen = [(a, b) for a in names for b in names if a != b]
    model = AVCorrespondence()
    tallies = {k: [] for k in ("speakers: speaking face higher", "speakers: speaking face >= 0.5",
                                "speakers: other face >= 0.5", "localize, faces: peak on the speaking face",
                                "localize, whole frame (before): peak on the speaking face",
                                "localize, faces: confidence >= 0.5", "localize, whole frame: confidence >= 0.5")}
    per_clip = {n: [] for n in names}
    t0 = time.perf_counter()
    for i, (a, b) in enumerate(chosen):
        clip, (x0, x1) = side_by_side(clips[a], clips[b], left=i % 2 == 0)
        speech = sound_presence(clip.audio, clip.sample_rate, np.arange(clip.n_frames) / clip.fps, 1 / clip.fps) >= 0.5
        (tracks,) = model.speakers([clip])
        mine = np.zeros(clip.n_frames)
        theirs = np.zeros(clip.n_frames)
        for track in tracks:
            centre = (track.boxes[:, 0] + track.boxes[:, 2]) / 2
            on_mine = (centre >= x0) & (centre < x1)
            np.maximum.at(mine, track.frames[on_mine], track.speaking[on_mine])
            np.maximum.at(theirs, track.frames[~on_mine], track.speaking[~on_mine])
        found = []
        for faces in (True, False):
            (maps,), (confidence,) = model.localize([clip], return_confidence=True, faces=faces)
            peak_x = maps.reshape(maps.shape[0], -1).argmax(axis=1) % maps.shape[2]
            found.append(((peak_x >= x0) & (peak_x < x1))[speech])
            found.append((confidence >= 0.5)[speech])
        rows = [(mine > theirs)[speech], (mine >= 0.5)[speech], (theirs >= 0.5)[speech], found[0], found[2], found[1],
                found[3]]
        for key, values in zip(tallies, rows):
            tallies[key].append(values)
        per_clip[a].append((mine > theirs)[speech])
    print(f"\n{len(chosen)} compositions, {sum(v.size for v in tallies[next(iter(tallies))])} speech frames "
          f"({time.perf_counter() - t0:.0f} s)\n")
    print("| share of speech frames | value |")
    print("|---|---:|")
    for key, values in tallies.items():
        print(f"| {key} | {np.concatenate(values).mean():.2f} |")
    print("\n| speaking recording | speaking face higher |")
    print("|---|---:|")
    for name, values in per_clip.items():
        if values:
            print(f"| {name} | {np.concatenate(values).mean():.2f} |")


def part_dubbing(clips):
    from skavc import AVCorrespondence
    from skavc.datasets import make_av_clips

    print("\n## (c) Dubbed voices: every voice against every face")
    names = list(clips)
    n = len(names)
    pairs = [dubbed(clips[f], clips[v]) for v in names for f in names]  # row = voice, column = face
    model = AVCorrespondence(max_offset=0.8)
    scores = {}
    for method in ("signal", "auto"):
        curves = model.sync_curve(pairs, method=method)
        scores[f"timing evidence, {'whole frame (before)' if method == 'signal' else 'speaking face (auto)'}"] = \
            np.array([s.max() for _, s in curves]).reshape(n, n)
    generated, _ = make_av_clips(64, random_state=0)
    fitted = AVCorrespondence(max_offset=0.8, random_state=0).fit(generated)
    scores["correspondence(timing=True), fitted on 64 generated clips"] = \
        fitted.correspondence(pairs, timing=True).reshape(n, n)
    scores["correspondence(timing=False): the cosine"] = fitted.correspondence(pairs, timing=False).reshape(n, n)
    matched = np.eye(n, dtype=bool)
    print(f"\n{n} voices x {n} faces; chance recall@1 = {1 / n:.2f}\n")
    print("| score | matched vs dubbed AUROC | recall@1, voice -> face | recall@1, face -> voice |")
    print("|---|---:|---:|---:|")
    for key, s in scores.items():
        print(f"| {key} | {auroc(matched.ravel(), s.ravel()):.2f} | {np.mean(s.argmax(axis=1) == np.arange(n)):.2f} | "
              f"{np.mean(s.argmax(axis=0) == np.arange(n)):.2f} |")


def part_inset(paths, cache, work):
    from real_media import fetch

    from skavc import AVClip, AVCorrespondence, load_clip
    from skavc.features import sound_presence
    from skavc.io import save_clip

    print(f"\n## (e) A speaker in a corner inset ({INSET} px) over a real screen recording at 1280x720")
    try:
        screen_path = fetch(SCREEN[0], cache) / SCREEN[1]
    except Exception as exc:  # noqa: BLE001
        print(f"left out: could not fetch {SCREEN[0]} ({exc})")
        return
    model = AVCorrespondence()
    rows = {k: [] for k in ("faces (now): peak in the inset", "whole frame (before): peak in the inset",
                            "faces: confidence >= 0.5", "whole frame: confidence >= 0.5",
                            "frame centre in the inset", "peak of the frame difference in the inset")}
    for i, (name, path) in enumerate(paths):
        talk = load_clip(path, sample_rate=RATE, fps=25.0)
        h, w = talk.frames.shape[1:3]
        talk = load_clip(path, sample_rate=RATE, fps=25.0, frame_size=(INSET, int(round(w * INSET / h / 2)) * 2))
        screen = load_clip(screen_path, sample_rate=RATE, fps=25.0, frame_size=(720, 1280),
                           max_duration=talk.n_frames / 25.0, start=5.0 * i)
        n = min(screen.n_frames, talk.n_frames)
        frames = screen.frames[:n].copy()
        ih, iw = talk.frames.shape[1:3]
        y0 = 20 if i % 4 < 2 else 720 - ih - 20
        x0 = 20 if i % 2 == 0 else 1280 - iw - 20
        frames[:, y0:y0 + ih, x0:x0 + iw] = talk.frames[:n]
        audio = talk.audio[: int(round(n / 25.0 * RATE))]
        video = save_clip(AVClip(audio, RATE, frames, 25.0), work / f"inset_{name}.mp4")
        speech = sound_presence(audio, RATE, np.arange(n) / 25.0, 1 / 25.0) >= 0.5

        def inside(x, y):
            return (x >= x0) & (x < x0 + iw) & (y >= y0) & (y < y0 + ih)

        for faces, peak_key, conf_key in ((True, "faces (now): peak in the inset", "faces: confidence >= 0.5"),
                                          (False, "whole frame (before): peak in the inset",
                                           "whole frame: confidence >= 0.5")):
            peaks, confidence = [], []
            for window in model.localize_windows(str(video), chunk=1.0, faces=faces):
                maps = np.asarray(window.maps)
                flat = maps.reshape(maps.shape[0], -1).argmax(axis=1)
                peaks.append(np.stack([flat % maps.shape[2], flat // maps.shape[2]], axis=1))
                confidence.append(window.confidence)
            peaks, confidence = np.concatenate(peaks)[:n], np.concatenate(confidence)[:n]
            rows[peak_key].append(inside(peaks[:, 0], peaks[:, 1])[speech])
            rows[conf_key].append((confidence >= 0.5)[speech])
        change = np.abs(np.diff(frames.astype(np.int16).mean(axis=3), axis=0, prepend=frames[:1].mean(axis=3)))
        flat = change.reshape(n, -1).argmax(axis=1)
        rows["peak of the frame difference in the inset"].append(inside(flat % 1280, flat // 1280)[speech])
        rows["frame centre in the inset"].append(np.full(int(speech.sum()), inside(640, 360)))
    print(f"\n{len(paths)} compositions, {sum(v.size for v in rows['frame centre in the inset'])} speech frames\n")
    print("| share of speech frames | value |\n|---|---:|")
    for key, values in rows.items():
        print(f"| {key} | {np.concatenate(values).mean():.2f} |")


def part_speed(paths):
    from skavc import AVClip, AVCorrespondence, load_clip

    print("\n## (d) Speed: predict_offset on 10 s of 720p at 30 fps (in memory)")
    name, path = paths[0]
    clip = load_clip(path, sample_rate=RATE, fps=30.0, frame_size=(720, 720))
    reps = int(np.ceil(300 / clip.n_frames))
    frames = np.full((300, 720, 1280, 3), 40, np.uint8)
    frames[:, :, 280:1000] = np.concatenate([clip.frames] * reps)[:300]
    audio = np.concatenate([clip.audio] * reps)[: 10 * RATE]
    long_clip = AVClip(audio, RATE, frames, 30.0)
    model = AVCorrespondence()
    print(f"\n{name}, looped to 10 s\n\n| method | seconds | x real time |\n|---|---:|---:|")
    for method in ("signal", "face"):
        t0 = time.perf_counter()
        model.predict_offset([long_clip], method=method)
        took = time.perf_counter() - t0
        print(f"| {method} | {took:.1f} | {10 / took:.1f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--talk", type=Path, default=HERE.parent.parent / "shared" / "media" / "talk")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "skavc-bench" / "real")
    parser.add_argument("--parts", default="abcde",
                        help="which parts to run: a lip sync, b who speaks, c dubbing, d speed, e a corner inset")
    parser.add_argument("--pairs", choices=("all", "ring"), default="all",
                        help="(b): every ordered pair, or each recording with two others")
    args = parser.parse_args()
    from skavc import load_clip

    print(machine_line())
    paths = recordings(args)
    print(f"media: {len(paths)} real recordings of people speaking: "
          + ", ".join(name for name, _ in paths) + f" (talking heads from {args.talk}, benchmark-only)")
    clips = {name: load_clip(path, sample_rate=RATE) for name, path in paths}
    if "a" in args.parts:
        part_lipsync(clips)
    if "b" in args.parts:
        part_who_speaks(paths, args.pairs)
    if "c" in args.parts:
        part_dubbing(clips)
    if "d" in args.parts:
        part_speed(paths)
    if "e" in args.parts:
        import tempfile

        with tempfile.TemporaryDirectory() as work:
            part_inset(paths, args.cache, Path(work))


if __name__ == "__main__":
    main()
