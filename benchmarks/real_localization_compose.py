"""Real localisation cases that a centre prior cannot pass: real sounding clips small and off-centre.

    python benchmarks/real_localization_compose.py [--cache ~/.cache/skavc-bench/real]
        [--talk ../shared/media/talk] [--width 768] [--sets labelled talking]

Issue 22, item 1. ``real_localization.py``'s frame-centre baseline scores 0.95 pooled there, as
high as the method, because its sources fill the middle of their frames. Here each sounding real
clip is shown at a third of the canvas's width and height:

- **in each corner** of a 16:9 canvas (``--width`` pixels wide), over a real screen recording
  (``openboard-common``'s ``wannaworktogether.mp4``, a whiteboard program in use, with an
  animated "CC" logo) filling the canvas, with three other real clips in the other corners:
  every other picture moves, and only the sounding clip's sound is heard;
- **moving across the frame**: the same, the sounding clip sliding from the left edge to the
  right one along the top over its duration, two distractors in the bottom corners.

Two sets of sounding clips:

- ``labelled``: the four hand-labelled Debian clips of ``real_localization_labels.json`` (a man
  speaking to a webcam, two crossing discs and a click, a Lego engine, a rendered cut-scene;
  fetched as ``real_media.py`` does), the other three as distractors; their label boxes;
- ``talking``: the nine talking heads of ``--talk`` (first 8 s, 25 fps), two other talking heads
  (their lips moving with words that are not heard) and the Lego clip as distractors; the box is
  the detected face grown to the head, on frames where speech is clearly heard.

Per composition, on the sounding frames (boxes moved with the clip): pointing of
``AVCorrespondence().localize`` (synchrony, faces on, the defaults) against the frame-centre and
motion-peak (largest absolute frame difference, smoothed) baselines and chance (box area over
canvas area); the confidence's AUROC sounding against silent frames (where the clip has any);
the share of sounding frames at confidence >= 0.5 (what the overlay shows). Per set, pooled over
frames and averaged over compositions. The kept-aside packages are never used.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_scene import machine_line  # noqa: E402
from real_localization import LABELS, _auroc, frame_labels, inside, motion_peaks, peak  # noqa: E402
from real_media import KEPT_ASIDE, fetch  # noqa: E402

SCREEN = ("openboard-common", "usr/share/openboard/library/videos/wannaworktogether.mp4")
CORNERS = ("top left", "top right", "bottom left", "bottom right")
RATE = 16000
TALK_FPS, TALK_SECONDS = 25.0, 8.0


def fitted(clip_frames, cell_h, cell_w):
    """Frames resized to fit a cell (nearest neighbour), the scale and the offsets within the cell."""
    h, w = clip_frames.shape[1:3]
    scale = min(cell_h / h, cell_w / w)
    nh, nw = max(1, int(round(h * scale))), max(1, int(round(w * scale)))
    rows = np.minimum((np.arange(nh) / scale).astype(int), h - 1)
    cols = np.minimum((np.arange(nw) / scale).astype(int), w - 1)
    return clip_frames[:, rows][:, :, cols], scale, (cell_h - nh) // 2, (cell_w - nw) // 2


def compose(target, distractors, screen, layout, size):
    """The canvas frames and, per frame, where the target's frame ``(scale, y, x)`` was put."""
    H, W = size
    ch, cw = H // 3, W // 3
    n = target.n_frames
    frames = np.array(screen[:n], copy=True)
    small, scale, dy, dx = fitted(target.frames, ch, cw)
    corners = {"top left": (0, 0), "top right": (0, W - cw), "bottom left": (H - ch, 0),
               "bottom right": (H - ch, W - cw)}
    if layout == "moving":
        others = ["bottom left", "bottom right"]
        places = [(0, int(round(t / max(n - 1, 1) * (W - cw)))) for t in range(n)]
    else:
        others = [c for c in CORNERS if c != layout]
        places = [corners[layout]] * n
    for corner, clip in zip(others, distractors):
        y, x = corners[corner]
        d, _, ddy, ddx = fitted(clip[:n], ch, cw)
        m = min(n, d.shape[0])
        frames[:m, y + ddy : y + ddy + d.shape[1], x + ddx : x + ddx + d.shape[2]] = d[:m]
    where = []
    for t, (y, x) in enumerate(places):
        frames[t, y + dy : y + dy + small.shape[1], x + dx : x + dx + small.shape[2]] = small[t]
        where.append((scale, y + dy, x + dx))
    return frames, where


def moved(boxes, where):
    """Label boxes ``{t: (x0, y0, x1, y1)}`` in the clip's pixels moved to the canvas."""
    out = {}
    for t, (x0, y0, x1, y1) in boxes.items():
        scale, y, x = where[t]
        out[t] = np.array([x + x0 * scale, y + y0 * scale, x + x1 * scale, y + y1 * scale])
    return out


class Target:
    """A sounding clip: its clip, label boxes ``{t: (x0, y0, x1, y1)}`` in its pixels, silent frames."""

    def __init__(self, name, clip, boxes, silent):
        self.name, self.clip, self.boxes, self.silent = name, clip, boxes, silent


def labelled_targets(entries, paths):
    """The hand-labelled Debian clips (``real_localization_labels.json``)."""
    from skavc import load_clip

    for entry in entries:
        clip = load_clip(paths[entry["name"]], sample_rate=RATE)
        boxes, _, silent, _ = frame_labels(entry, clip.n_frames)
        yield Target(entry["name"], clip, boxes, silent)


def talking_targets(talk):
    """The talking heads of ``talk`` (their first TALK_SECONDS), labelled by machine.

    Sounding: frames whose speech is clearly heard (``sound_presence`` >= 0.5 over the frame's
    span); silent: frames at <= 0.1 (pauses between phrases). The box: the face the detector finds
    in the frame (its highest score, ``FaceDetector`` at the clip's own size; frames without one
    are left out), grown by a fifth of its size on each side to take in the head.
    """
    from skavc import load_clip
    from skavc.encoders._faces import FaceDetector
    from skavc.features import sound_presence

    detector = FaceDetector()
    for path in sorted(talk.glob("*.mp4")):
        clip = load_clip(path, sample_rate=RATE, fps=TALK_FPS, max_duration=TALK_SECONDS)
        presence = sound_presence(clip.audio, clip.sample_rate, np.arange(clip.n_frames) / clip.fps, 1 / clip.fps)
        boxes = {}
        for t, faces in enumerate(detector.detect(clip.frames)):
            if len(faces) and presence[t] >= 0.5:
                x0, y0, x1, y1 = faces["box"][0]
                grow = 0.2 * np.array([x0 - x1, y0 - y1, x1 - x0, y1 - y0])
                boxes[t] = np.array([x0, y0, x1, y1]) + grow
        yield Target(path.stem, clip, boxes, [t for t in range(clip.n_frames) if presence[t] <= 0.1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "skavc-bench" / "real")
    parser.add_argument("--talk", type=Path, default=HERE.parent.parent / "shared" / "media" / "talk")
    parser.add_argument("--width", type=int, default=768, help="canvas width in pixels (16:9)")
    parser.add_argument("--sets", nargs="+", choices=("labelled", "talking"), default=("labelled", "talking"))
    args = parser.parse_args(argv)
    from skavc import AVClip, AVCorrespondence, load_clip

    print(machine_line())
    size = (int(round(args.width * 9 / 16)) // 2 * 2, args.width)
    spec = json.loads(LABELS.read_text())
    entries = [e for e in spec["clips"] if e["package"] not in KEPT_ASIDE]
    paths = {e["name"]: fetch(e["package"], args.cache) / e["path"].lstrip("/") for e in entries}
    screen_path = fetch(SCREEN[0], args.cache) / SCREEN[1]
    talk_paths = sorted(args.talk.glob("*.mp4"))
    print(f"media: {len(entries)} hand-labelled real clips ({', '.join(paths)}) and {len(talk_paths)} talking heads "
          f"({args.talk}), a real screen recording ({SCREEN[0]}) as the background; canvas {size[1]}x{size[0]}, "
          "each clip a third of it")
    model = AVCorrespondence()
    rows = []  # (set, name, layout, hits, centre, motion, chance, auroc, confident)
    t_start = time.perf_counter()
    sets = []
    if "labelled" in args.sets:
        sets.append(("labelled", labelled_targets(entries, paths), lambda target: [
            paths[e["name"]] for e in entries if e["name"] != target.name]))
    if "talking" in args.sets:
        # two other talking heads, their lips moving with words not heard, and a Debian clip
        sets.append(("talking", talking_targets(args.talk), lambda target: [
            p for p in talk_paths if p.stem != target.name][:2] + [paths[entries[-2]["name"]]]))
    for set_name, targets, distractor_paths in sets:
        for target in targets:
            clip = target.clip
            others = [load_clip(p, sample_rate=RATE, fps=clip.fps, allow_missing_audio=True,
                                max_duration=clip.n_frames / clip.fps).frames for p in distractor_paths(target)]
            others = [np.concatenate([f] * int(np.ceil(clip.n_frames / len(f)))) for f in others]
            screen = load_clip(screen_path, sample_rate=RATE, fps=clip.fps, frame_size=size,
                               max_duration=clip.n_frames / clip.fps + 1.0).frames
            for layout in CORNERS + ("moving",):
                frames, where = compose(clip, others, screen, layout, size)
                (maps,), (confidence,) = model.localize([AVClip(clip.audio, clip.sample_rate, frames, clip.fps)],
                                                        return_confidence=True)
                truth = moved(target.boxes, where)
                sounding = sorted(truth)
                motion_at = motion_peaks(frames, sounding)
                a = _auroc(confidence[sounding], confidence[target.silent]) if target.silent else np.nan
                rows.append((set_name, target.name, layout,
                             [inside(peak(maps[t]), truth[t]) for t in sounding],
                             [inside((size[0] // 2, size[1] // 2), truth[t]) for t in sounding],
                             [inside(motion_at[t], truth[t]) for t in sounding],
                             [(b[2] - b[0]) * (b[3] - b[1]) / (size[0] * size[1])
                              for b in (truth[t] for t in sounding)],
                             a, [confidence[t] >= 0.5 for t in sounding]))
    print(f"\n{len(rows)} compositions in {time.perf_counter() - t_start:.0f} s\n")
    print("| set | clip | where | sounding frames | pointing | frame centre | motion peak | chance | "
          "AUROC sounding vs silent | confidence >= 0.5 |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for set_name, name, layout, hits, centre, motion, chance, a, confident in rows:
        print(f"| {set_name} | {name} | {layout} | {len(hits)} | {np.mean(hits):.2f} | {np.mean(centre):.2f} | "
              f"{np.mean(motion):.2f} | {np.mean(chance):.2f} | {'-' if not np.isfinite(a) else f'{a:.2f}'} | "
              f"{np.mean(confident):.2f} |")
    print("\n| set | compositions | sounding frames | pointing, pooled / averaged | frame centre | motion peak | "
          "chance | "
          "AUROC (mean) | confidence >= 0.5, pooled / averaged |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for set_name in dict.fromkeys(r[0] for r in rows):
        mine = [r for r in rows if r[0] == set_name]

        def both(i):
            return f"{np.mean(np.concatenate([r[i] for r in mine])):.2f} / {np.mean([np.mean(r[i]) for r in mine]):.2f}"

        aurocs = [r[7] for r in mine if np.isfinite(r[7])]
        print(f"| {set_name} | {len(mine)} | {sum(len(r[3]) for r in mine)} | {both(3)} | {both(4)} | {both(5)} | "
              f"{both(6)} | {np.mean(aurocs) if aurocs else float('nan'):.2f} | {both(8)} |")
    print("\nissue 22's bar on such compositions: pointing >= 0.8, AUROC >= 0.8, half the clearly sounding frames "
          "at confidence >= 0.5")


if __name__ == "__main__":
    main()
