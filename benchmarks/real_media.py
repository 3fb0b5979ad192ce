"""Synchronisation on real videos with sound, shifted by known offsets.

    python benchmarks/real_media.py [--cache ~/.cache/skavc-bench/real] [--segment 8] [--n-jobs 2]

DOWNLOADS: the videos come from Debian packages, fetched with ``apt-get download NAME`` and
unpacked with ``dpkg-deb -x`` into ``--cache`` (default ``~/.cache/skavc-bench/real``); a
package already unpacked there is not fetched again. About 75 MB of packages in all. Needs a
Debian/Ubuntu system with ``apt-get update`` done once (root is not needed for ``apt-get
download``). Tests never use this script or its cache.

Kept aside for an independent check, never used here (nor for tuning): forensics-samples-files,
renpy-demo, pd-extendedview, janus-demos, tuxpaint-stamps-default.

For every segment (``--segment`` seconds, or the whole video when shorter) the audio is shifted
by -0.8 .. +0.8 s in 0.2 s steps as a user's misaligned file would be: positive = audio ahead
of video (the start of the audio cut, the end padded), negative = audio delayed (padded at the
start, the end cut). The padding is either exact digital silence ("zeros") or the clip's own
low-level noise ("noise": Gaussian noise at the RMS of its quietest 10 % of 20 ms blocks, at
least -90 dBFS), or not padded at all ("none": frames and sound both cut from inside the
recording, the sound from ``shift`` s later, the segment shortened by 0.8 s at the recording's
ends; so no padding and no edge shared by both tracks can give the offset away: only the
content can). ``AVCorrespondence().predict_offset(..., method=...)`` is scored for the
training-free "signal" method and the "naive" baseline:

* ``<=0.1 s``: share of estimates within 0.1 s of the true offset, trusting the packaged file to
  be in sync (true offset = the shift). ``rel``: the same against the shift plus the estimate of
  the unshifted segment (the file's own offset, if any), shift 0 excluded.
* ``AUROC``: confidence of right (<= 0.1 s) against wrong estimates.
* ``conf>=thr``: share of estimates at or above ``SYNC_CONFIDENCE_THRESHOLD``; ``right|conf``: the
  share of those that are right.
* chance: an offset drawn uniformly over the searched range lands within 0.1 s with probability
  0.2 / (2 max_offset) (0.10 at the default max_offset = 1 s).

Segments labelled in ``benchmarks/real_media_labels.json`` (by hand, from watching and
listening) as having no audible event tied to the picture are reported but left out of the
"synchronisable" rows.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from skavc import AVClip, AVCorrespondence, load_clip
from skavc.sync import SYNC_CONFIDENCE_THRESHOLD

OFFSETS = np.round(np.arange(-0.8, 0.8001, 0.2), 2)
PADS = ("zeros", "noise", "none")
LABELS = Path(__file__).with_name("real_media_labels.json")
KEPT_ASIDE = {"forensics-samples-files", "renpy-demo", "pd-extendedview", "janus-demos",
              "tuxpaint-stamps-default"}


def fetch(package, cache):
    """Unpack Debian ``package`` into ``cache/package`` (skipped when already there)."""
    if package in KEPT_ASIDE:
        raise ValueError(f"{package} is kept aside for an independent check")
    dest = cache / package
    if (dest / ".done").exists():
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "download", package], cwd=dest, check=True, stdout=subprocess.DEVNULL)
    debs = sorted(dest.glob(f"{package}_*.deb"))
    if not debs:
        raise RuntimeError(f"apt-get download {package} left no .deb in {dest}")
    subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(dest)], check=True)
    for deb in debs:
        deb.unlink()
    (dest / ".done").write_text("ok\n")
    return dest


def _noise_rms(audio, sample_rate):
    """RMS of the quietest 10 % of 20 ms blocks (the clip's own noise floor), >= -90 dBFS."""
    n = int(0.02 * sample_rate)
    blocks = audio[: audio.size // n * n].reshape(-1, n)
    rms = np.sqrt((blocks.astype(np.float64) ** 2).mean(axis=1))
    return max(float(np.quantile(rms, 0.1)), 10 ** (-90 / 20))


def shift_audio(audio, sample_rate, offset, pad, rng):
    """Audio heard ``offset`` s early (> 0) or late (< 0); same length; padded by ``pad``."""
    k = int(round(abs(offset) * sample_rate))
    if pad == "zeros":
        fill = np.zeros(k, dtype=np.float32)
    else:
        fill = (rng.standard_normal(k) * _noise_rms(audio, sample_rate)).astype(np.float32)
    if k == 0:
        return audio.copy()
    if offset > 0:   # audio ahead: what is heard at video time t was recorded at t + offset
        return np.concatenate([audio[k:], fill])
    return np.concatenate([fill, audio[:-k]])


def _segment_bounds(clip, segment, starts):
    """(start, stop) in seconds of each segment of a decoded video, within its shorter track."""
    duration = min(clip.audio.size / clip.sample_rate, clip.frames.shape[0] / clip.fps)
    return [(start, min(start + segment, duration)) for start in starts], duration


def _cut(clip, t0, t1, shift=0.0):
    """The frames of [t0, t1) s and the audio of the same span moved by ``shift`` s (ahead > 0)."""
    f0 = int(np.ceil(t0 * clip.fps - 1e-6))  # never before t0: audio moved back stays in the file
    f1 = min(f0 + int(round((t1 - t0) * clip.fps)), clip.frames.shape[0])
    a0 = int(round((f0 / clip.fps + shift) * clip.sample_rate))
    a1 = a0 + int(round((f1 - f0) / clip.fps * clip.sample_rate))
    if a0 < 0 or a1 > clip.audio.size or f1 <= f0:
        raise ValueError(f"[{t0:g}, {t1:g}) s moved by {shift:+g} s leaves the recording")
    return AVClip(clip.audio[a0:a1], clip.sample_rate, clip.frames[f0:f1], clip.fps)


def videos(cache, labels):
    """Yield (label entry, decoded AVClip) for every labelled video (fetched when missing)."""
    for video in labels["videos"]:
        root = fetch(video["package"], cache)
        yield video, load_clip(str(root / video["path"].lstrip("/")), sample_rate=16000)


def segment_name(video, start):
    return f"{video['package']}:{Path(video['path']).name}@{start:g}"


def segments(cache, segment, labels):
    """Yield (name, label entry, AVClip) for every segment of every labelled video."""
    for video, clip in videos(cache, labels):
        bounds, _ = _segment_bounds(clip, segment, video.get("starts", [0.0]))
        for start, stop in bounds:
            yield segment_name(video, start), video, _cut(clip, start, stop)


def shifted_versions(clip, start, stop, duration, pad, rng):
    """The segment [start, stop) s of ``clip`` with its audio moved by each of OFFSETS.

    ``pad`` "zeros" or "noise": the segment's own audio shifted and padded (:func:`shift_audio`).
    "none": both tracks cut from inside the recording, the audio from ``shift`` s later, and
    the segment shortened by the largest shift at the recording's ends, so that no track has
    padding or an edge the other shares: only the content can tell the offset. None when what
    remains is shorter than twice the largest shift (offsets the curve could not search).
    """
    if pad == "none":
        margin = float(np.abs(OFFSETS).max())
        # (the frames' span is rounded to whole frames: up to 1.5 frames past t1)
        t0, t1 = max(start, margin), min(stop, duration - margin - 2.0 / clip.fps)
        if t1 - t0 < 2 * margin:  # the sync curve searches only lags that overlap half the clip
            return None
        return [_cut(clip, t0, t1, d) for d in OFFSETS]
    seg = _cut(clip, start, stop)
    return [AVClip(shift_audio(seg.audio, seg.sample_rate, d, pad, rng), seg.sample_rate, seg.frames, seg.fps)
            for d in OFFSETS]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path("~/.cache/skavc-bench/real").expanduser())
    parser.add_argument("--segment", type=float, default=8.0)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--per-segment", action="store_true", help="also print each segment's estimates")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    labels = json.loads(LABELS.read_text())
    silent = set(labels.get("no_sync_event", []))
    model = AVCorrespondence(n_jobs=args.n_jobs)
    thr = SYNC_CONFIDENCE_THRESHOLD
    rows = []  # (segment, kind, pad, method, shift, estimate, confidence)
    t0 = time.time()
    inventory = []
    for video, clip in videos(args.cache, labels):
        bounds, duration = _segment_bounds(clip, args.segment, video.get("starts", [0.0]))
        for start, stop in bounds:
            name = segment_name(video, start)
            inventory.append((name, stop - start, video["shows"]))
            rng = np.random.default_rng(0)
            for pad in PADS:
                shifted = shifted_versions(clip, start, stop, duration, pad, rng)
                if shifted is None:
                    print(f"{name}: too short for content-only shifts, left out of the 'none' rows")
                    continue
                for method in ("signal", "naive"):
                    est, conf = model.predict_offset(shifted, return_confidence=True, method=method)
                    for d, e, c in zip(OFFSETS, est, conf):
                        rows.append((name, name in silent, pad, method, d, e, c))
    elapsed = time.time() - t0

    print("```")
    print("python " + " ".join([sys.argv[0]] + sys.argv[1:]))
    print("```")
    print()
    print("| segment | s | shows |")
    print("| --- | ---: | --- |")
    for name, dur, shows in inventory:
        print(f"| {name}{' (no sync event)' if name in silent else ''} | {dur:.1f} | {shows} |")
    print()
    max_offset = model.max_offset
    chance = 0.2 / (2 * max_offset)
    print(f"Shifts {OFFSETS[0]:+g}..{OFFSETS[-1]:+g} s step 0.2; threshold {thr}; "
          f"chance within 0.1 s = {chance:.2f}; {elapsed:.0f} s.")
    print()
    print("| set | pad | method | n | <=0.1 s | rel <=0.1 s | AUROC right/wrong | conf>=thr | right\\|conf | "
          "mean conf right | MAE s |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    dtype = [("seg", object), ("silent", bool), ("pad", object), ("method", object), ("shift", float),
             ("est", float), ("conf", float)]
    R = np.array(rows, dtype=dtype)
    base = {(r["seg"], r["pad"], r["method"]): r["est"] for r in R if r["shift"] == 0}
    for subset in ("synchronisable", "all"):
        for pad in PADS:
            for method in ("signal", "naive"):
                sel = R[(R["pad"] == pad) & (R["method"] == method)]
                if subset != "all":
                    sel = sel[~sel["silent"]]
                right = np.abs(sel["est"] - sel["shift"]) <= 0.1 + 1e-9
                ref = np.array([base[(r["seg"], pad, method)] for r in sel])
                nz = sel["shift"] != 0
                rel = (np.abs(sel["est"] - sel["shift"] - ref) <= 0.1 + 1e-9)[nz]
                conf = sel["conf"]
                auc = roc_auc_score(right, conf) if 0 < right.sum() < right.size else float("nan")
                confident = conf >= thr
                rc = right[confident].mean() if confident.any() else float("nan")
                mean_conf = conf[right].mean() if right.any() else float("nan")
                mae = np.abs(sel["est"] - sel["shift"]).mean()
                print(f"| {subset} | {pad} | {method} | {sel.size} | {right.mean():.2f} | {rel.mean():.2f} | "
                      f"{auc:.2f} | {confident.mean():.2f} | {rc:.2f} | {mean_conf:.2f} | {mae:.3f} |")
        print(f"| {subset} | | chance | | {chance:.2f} | {chance:.2f} | 0.50 | | | | |")
    if args.per_segment:
        print()
        for seg in dict.fromkeys(R["seg"]):
            for pad in PADS:
                sel = R[(R["seg"] == seg) & (R["pad"] == pad) & (R["method"] == "signal")]
                cells = " ".join(f"{r['shift']:+.1f}>{r['est']:+.2f}({r['conf']:.2f})" for r in sel)
                print(f"{seg} [{pad}] {cells}")


if __name__ == "__main__":
    main()
