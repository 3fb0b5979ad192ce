"""Long videos: peak memory and wall time against the video's length (issue 20).

    python benchmarks/bench_long.py [--minutes 1 3 10 30] [--hd-minutes 10] [--limit-gb 12]
                                    [--only sync sync-whole localize transform_visual separate speakers]
                                    [--cache ~/.cache/skavc-bench/real]

DOWNLOADS ``openboard-common`` from Debian (``apt-get download``, as ``real_media.py`` does):
its ``wannaworktogether.mp4`` (a real Creative Commons animated short with its sound, 480x352
at 29.97 fps, about 3 minutes) is scaled by FFmpeg (through PyAV) to 1280x720 (and 1920x1080),
encoded with libx264 (its sound copied), then looped to each length by copying its packets with
shifted time stamps (no re-encoding). So the decoder works as on any 720p H.264 file; the
content repeats every 3 minutes. Tests never use this script or its cache.

Each capability runs in its own process, as a user runs it; its peak memory (max RSS of the
process, from the kernel) and wall time are measured, and a process passing ``--limit-gb`` is
killed there ("killed"), as the kernel would at the machine's memory:

* ``sync``: ``skavc sync FILE --quiet`` (streamed: a window at a time, issue 20);
* ``sync-whole``: the reference in the same run, ``AVCorrespondence().predict_offset([FILE])``,
  which decodes the whole file at full size first (what ``skavc sync`` did before);
* ``localize``: ``skavc localize FILE --out overlay.mp4`` (streamed: each window localised on
  frames decoded at 256 px a window ahead in a second thread, the full-size frames read, drawn
  and encoded a second at a time);
* ``transform_visual``: a model fitted on 20 generated clips, then ``transform_visual([FILE])``
  (one decoding pass keeping only the sampled frames);
* ``separate``: ``skavc separate FILE FILE --out target.wav --quiet`` (streamed: the mixture read,
  separated and written 20 s at a time, the target's frames read alongside at 256 px).
"""

import argparse
import os
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_scene import machine_line, table  # noqa: E402
from real_media import fetch  # noqa: E402

SOURCE = ("openboard-common", "usr/share/openboard/library/videos/wannaworktogether.mp4")
SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}


def scaled(source, size, out):
    """``source`` with its video scaled to ``size`` (w, h) by FFmpeg and re-encoded, its sound copied."""
    import av

    if out.exists():
        return out
    tmp = out.with_name(out.stem + ".tmp" + out.suffix)
    with av.open(str(source)) as src, av.open(str(tmp), "w") as dst:
        v_in, a_in = src.streams.video[0], src.streams.audio[0]
        v_out = dst.add_stream("libx264", rate=v_in.average_rate)
        v_out.width, v_out.height, v_out.pix_fmt = size[0], size[1], "yuv420p"
        v_out.options = {"preset": "veryfast", "crf": "23"}
        a_out = dst.add_stream_from_template(a_in)
        n_frames, held = 0, []  # sound packets wait for the first picture: the header needs the encoder open
        for packet in src.demux(v_in, a_in):
            if packet.stream is a_in:
                if packet.dts is not None:
                    packet.stream = a_out
                    held.append(packet)
                if n_frames:
                    dst.mux(held)
                    held = []
                continue
            for frame in packet.decode():
                frame = frame.reformat(width=size[0], height=size[1], format="yuv420p", interpolation="AREA")
                # numbered in the codec's time base, 1 / rate (the source is constant-rate)
                frame.pts, frame.time_base = n_frames, 1 / Fraction(v_in.average_rate)
                n_frames += 1
                dst.mux(v_out.encode(frame))
        dst.mux(v_out.encode(None))
        dst.mux(held)
    tmp.rename(out)
    return out


def looped(source, minutes, out):
    """``source`` repeated until ``minutes`` long, its packets copied with shifted time stamps."""
    import av

    if out.exists():
        return out
    tmp = out.with_name(out.stem + ".tmp" + out.suffix)
    with av.open(str(source)) as src:
        length = float(src.duration) / av.time_base  # seconds of one pass
    repeats = int(-(-minutes * 60 // length))
    with av.open(str(source)) as src, av.open(str(tmp), "w") as dst:
        outs = {s.index: dst.add_stream_from_template(s) for s in (src.streams.video[0], src.streams.audio[0])}
        for r in range(repeats):
            src.seek(0)
            for packet in src.demux(*[src.streams[i] for i in outs]):
                if packet.dts is None:
                    continue
                shift = int(round(r * length / packet.time_base))
                if (packet.pts + shift) * packet.time_base >= minutes * 60:
                    continue
                packet.pts, packet.dts = packet.pts + shift, packet.dts + shift
                packet.stream = outs[packet.stream.index]
                dst.mux(packet)
    tmp.rename(out)
    return out


def _rss_gb(pid):
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 2 ** 20
    except OSError:
        pass
    return 0.0


def measure(argv, limit_gb, cwd):
    """Run ``argv``; (wall s, peak RSS GB from the kernel, 'ok' / 'killed at ...' / 'failed: ...')."""
    start = time.perf_counter()
    errors = open(Path(cwd) / "stderr.txt", "w+")  # a file, not a pipe: a full pipe would stall the child
    child = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=errors, text=True)
    killed = False
    while True:  # reaped here, not by Popen, to read the child's own rusage
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        if _rss_gb(child.pid) > limit_gb:
            child.kill()
            killed = True
        time.sleep(0.05)
    wall = time.perf_counter() - start
    peak = usage.ru_maxrss / 2 ** 20  # KB -> GB
    child.returncode = os.waitstatus_to_exitcode(status)
    if killed:
        return wall, max(peak, limit_gb), f"killed at {limit_gb:g} GB"
    errors.seek(0)
    lines = errors.read().strip().splitlines() or ["(no message)"]
    errors.close()
    if child.returncode != 0:
        return wall, peak, "failed: " + lines[-1][:80]
    return wall, peak, "ok"


PY = sys.executable
SKAVC = [PY, "-m", "skavc"]
COMMANDS = {
    "sync": lambda f, tmp: SKAVC + ["sync", str(f), "--quiet"],
    "sync-whole": lambda f, tmp: [PY, "-c", "import sys; from skavc import AVCorrespondence; "
                                  "print(AVCorrespondence().predict_offset([sys.argv[1]]))", str(f)],
    "localize": lambda f, tmp: SKAVC + ["localize", str(f), "--out", str(tmp / "overlay.mp4")],
    "transform_visual": lambda f, tmp: [PY, "-c", "import sys; from skavc import AVCorrespondence; "
                                        "from skavc.datasets import make_av_clips; "
                                        "m = AVCorrespondence(epochs=5, random_state=0)"
                                        ".fit(make_av_clips(n_clips=20, random_state=0)[0]); "
                                        "print(m.transform_visual([sys.argv[1]]).shape)", str(f)],
    "separate": lambda f, tmp: SKAVC + ["separate", str(f), str(f), "--out", str(tmp / "target.wav"), "--quiet"],
    "speakers": lambda f, tmp: SKAVC + ["speakers", str(f), "--out", str(tmp / "speakers.mp4"), "--quiet"],
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 3, 10, 30])
    parser.add_argument("--hd-minutes", type=float, nargs="*", default=[10], help="1080p lengths")
    parser.add_argument("--only", nargs="+", choices=list(COMMANDS), default=list(COMMANDS))
    parser.add_argument("--limit-gb", type=float, default=12.0)
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "skavc-bench" / "real")
    args = parser.parse_args()

    print(machine_line())
    source = fetch(SOURCE[0], args.cache) / SOURCE[1]
    work = args.cache / "long"
    work.mkdir(parents=True, exist_ok=True)
    cases = [("720p", m) for m in args.minutes] + [("1080p", m) for m in args.hd_minutes]
    print(f"source: {source} (Debian {SOURCE[0]}), scaled and looped in {work}", flush=True)
    rows = []
    for size, minutes in cases:
        base = scaled(source, SIZES[size], work / f"wanna-{size}.mp4")
        path = looped(base, minutes, work / f"wanna-{size}-{minutes:g}min.mp4")
        for name in args.only:
            wall, peak, status = measure(COMMANDS[name](path, work), args.limit_gb, work)
            speed = minutes * 60 / wall if status == "ok" else float("nan")
            rows.append((name, size, f"{minutes:g}", round(wall, 1), round(peak, 2), round(speed, 2), status))
            print(f"{name:<17}{size:>6}{minutes:>6g} min  {wall:8.1f} s  {peak:6.2f} GB  {speed:6.2f}x  {status}",
                  flush=True)
    table("Peak memory (max RSS) and wall time, one process per run", [
        "capability", "size", "minutes", "wall s", "max RSS GB", "x real time", "status"], rows, n_text=3)


if __name__ == "__main__":
    main()
