"""Speed of the face layer on 720p at 30 fps: the tracker against a detection on every frame.

    python benchmarks/bench_faces.py [--talk ../shared/media/talk] [--seconds 30] [--threads 2] [--repeat 3]

**Media.** The nine real talking heads of ``../shared/media/talk/`` (benchmark-only recordings,
README there; never in tests), each read with :func:`skavc.load_clip` at 30 fps, scaled to 720x720
(FFmpeg area resize) and letterboxed into 1280x720 (grey bars), one after the other, in turn,
until ``--seconds`` are filled (a cut between speakers every ``seconds / 9``). The frames are
written once as H.264 (libx264, crf 20, yuv420p) to a temporary 720p30 file, untimed.

**Timed.** Each row reads that file with :func:`skavc.io.iter_clips` (2 s windows, frames only
used) and runs the face layer on every window, in one Python thread: the time is decoding + faces, and
"x real time" is frames per second / 30. Rows:

- ``decode only``: the reading alone;
- ``detect every frame + top face``: what ``EncodingContext.face_points`` did before the tracker (detector on
  every frame, landmarks of the best face of each frame, one batched landmark call per window);
- ``tracker, detect_every=k``: :class:`~skavc.encoders._faces.FaceTracker` (detection every ``k``
  frames and after a lost face, landmarks crop from the previous frame's landmarks);
- the same with ``k = 10`` while a second Python thread decodes the next window;
- ``k = 10`` with the detector also looking in tiles (``tile_side="auto"``: at 720p 15 tiles of
  360 pixels), as ``EncodingContext.face_tracks`` runs it.

Each row is the fastest of ``--repeat`` passes (other work on the machine only slows a pass).

Per row also: the share of frames with a face, detector runs, and the median distance (pixels)
of the lip landmarks (13, 14) from those of the every-frame row, where both have a face.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_scene import machine_line  # noqa: E402

FPS = 30
HEIGHT, WIDTH = 720, 1280
LIPS = [13, 14]


def write_720p(files, seconds, path):
    """Letterboxed 720p30 H.264 of the talking heads, each in turn, for ``seconds``; returns (frames, cuts)."""
    import av

    from skavc import load_clip

    per_clip = int(round(seconds * FPS / len(files)))
    n_total = int(round(seconds * FPS))
    clips = [load_clip(f, fps=FPS, frame_size=(HEIGHT, HEIGHT), allow_missing_audio=True).frames for f in files]
    left = (WIDTH - HEIGHT) // 2
    canvas = np.full((HEIGHT, WIDTH, 3), 40, np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"crf": "20", "preset": "veryfast"}
        n, k, cuts = 0, 0, []
        while n < n_total:
            frames = clips[k % len(clips)]
            start = (k // len(clips)) * per_clip % max(1, len(frames) - per_clip)  # later rounds: later frames
            take = frames[start:start + per_clip][: n_total - n]
            for frame in take:
                canvas[:, left:left + HEIGHT] = frame
                for packet in stream.encode(av.VideoFrame.from_ndarray(canvas, format="rgb24")):
                    container.mux(packet)
            n += len(take)
            k += 1
            cuts.append(n)
        for packet in stream.encode():
            container.mux(packet)
    return n, cuts[:-1]


def windows(path, prefetch=False):
    """The frames of ``path``, 2 s at a time; ``prefetch``: decoded by a second thread, one window ahead."""
    from skavc.io import iter_clips

    clips = (clip.frames for clip in iter_clips(path, window=2.0, allow_missing_audio=True))
    if not prefetch:
        yield from clips
        return
    import queue
    import threading

    ready = queue.Queue(maxsize=1)

    def decode():
        for frames in clips:
            ready.put(frames)
        ready.put(None)

    threading.Thread(target=decode, daemon=True).start()
    while (frames := ready.get()) is not None:
        yield frames


def every_frame(detector, landmarker):
    """The former ``EncodingContext.face_points``: the best face of every frame, NaN where none."""

    def run(frames):
        faces = detector.detect(frames)
        points = np.full((len(frames), 468, 3), np.nan, dtype=np.float32)
        found = [t for t, f in enumerate(faces) if len(f)]
        if found:
            landmarks, _ = landmarker.landmarks_batch(frames[found], [faces[t][:1] for t in found])
            points[found] = np.stack([p[0] for p in landmarks])
        return points

    return run


def tracked(tracker):
    """The tracker's oldest face of every frame, NaN where none."""

    def run(frames):
        points = np.full((len(frames), 468, 3), np.nan, dtype=np.float32)
        for t, observations in enumerate(tracker.update(frames)):
            if observations:
                points[t] = observations[0].points
        return points

    return run


def timed(path, make_run, repeat, prefetch=False):
    """Best seconds of ``repeat`` passes reading ``path`` and running ``make_run()`` on every window;
    the points of all frames and the run's detector count (last pass)."""
    best = np.inf
    for _ in range(repeat):
        run, detections = make_run()
        start = time.perf_counter()
        points = [run(frames) for frames in windows(path, prefetch)]
        best = min(best, time.perf_counter() - start)
    return best, (np.concatenate(points) if points and points[0] is not None else None), detections()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--talk", type=Path, default=HERE.parent.parent / "shared" / "media" / "talk")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads (0: its default)")
    parser.add_argument("--repeat", type=int, default=3, help="passes per row; the fastest is reported")
    args = parser.parse_args()
    from skavc.encoders._faces import FaceDetector, FaceLandmarker, FaceTracker

    print(machine_line())
    files = sorted(args.talk.glob("*.mp4"))
    if not files:
        raise SystemExit(f"no talking heads (*.mp4) in {args.talk}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "talk_720p30.mp4"
        n_frames, cuts = write_720p(files, args.seconds, path)
        print(f"media: {len(files)} talking heads from {args.talk} (benchmark-only real recordings: "
              f"{', '.join(f.name for f in files)}), each letterboxed to {WIDTH}x{HEIGHT} at {FPS} fps, "
              f"in turn: {n_frames} frames ({n_frames / FPS:.1f} s), {len(cuts)} cuts, as H.264 "
              f"({path.stat().st_size / 1e6:.1f} MB)")
        threads = args.threads or None
        detector = FaceDetector(device="cpu", n_threads=threads)
        landmarker = FaceLandmarker(device="cpu", n_threads=threads)
        detector.onnx, landmarker.onnx  # sessions opened before the clock starts
        print(f"onnxruntime intra-op threads: {threads or 'default'}; one Python thread; "
              f"load average before the runs: {os.getloadavg()[0]:.2f} (other work on the machine slows every row)")

        rows, reference = [], None

        def row(name, make_run, prefetch=False):
            nonlocal reference
            seconds, points, detections = timed(path, make_run, args.repeat, prefetch)
            fps = n_frames / seconds
            cells = [name, f"{fps:.1f}", f"{fps / FPS:.2f}", f"{1000 / fps:.2f}"]
            if points is None:
                cells += ["", "", ""]
            else:
                found = ~np.isnan(points[:, 0, 0])
                if reference is None:
                    reference = points
                both = found & ~np.isnan(reference[:, 0, 0])
                lips = np.linalg.norm(points[both][:, LIPS, :2] - reference[both][:, LIPS, :2], axis=-1)
                cells += [f"{found.mean():.3f}", str(detections),
                          f"{np.median(lips):.2f}" if lips.size else ""]
            rows.append(cells)
            print("  " + " | ".join(cells), flush=True)

        tiled = FaceDetector(device="cpu", n_threads=threads, tile_side="auto")

        def tracker_run(k, detector=detector):
            def make():
                tracker = FaceTracker(detector, landmarker, detect_every=k)
                return tracked(tracker), lambda: tracker.n_detections_

            return make

        row("decode only", lambda: (lambda frames: None, lambda: 0))
        row("detect every frame + top face (the former face_points)",
            lambda: (every_frame(detector, landmarker), lambda: n_frames))
        for k in (1, 5, 10):
            row(f"tracker, detect_every={k}", tracker_run(k))
        row("tracker, detect_every=10, decoding in a 2nd thread", tracker_run(10), prefetch=True)
        row("tracker, detect_every=10, tiles (as EncodingContext.face_tracks)", tracker_run(10, tiled))

    print(f"\n720p30 face layer, decode + faces, {n_frames} frames, 2 s windows, fastest of {args.repeat} passes\n")
    header = ["", "frames/s", "x real time", "ms/frame", "frames with a face", "detector runs",
              "lips vs every-frame (px, median)"]
    print("| " + " | ".join(header) + " |")
    print("|---|" + "---:|" * (len(header) - 1))
    for cells in rows:
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
