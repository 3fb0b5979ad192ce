"""Generated audio-visual clips with exact ground truth.

Real paired audio-video data with pixel masks, clean per-source stems and
sample-exact offsets is scarce, so every capability of the package
(correspondence, retrieval, synchronisation, sound-source localisation,
source separation, scene classification) is tested and benchmarked on the
clips made here. The only public function is :func:`make_av_clips`; the rest
are small private helpers, one job each. (Over 500 lines: one generator, its twelve classes
of shape and sound and the couplings between them, which only make sense together.)
"""

import numbers
from functools import lru_cache

import numpy as np
from sklearn.utils import Bunch, check_random_state

from ._clip import AVClip

# ---------------------------------------------------------------------------
# Class table: each class is a visual object (shape, colour family) paired
# with a characteristic sound. ``freq_range`` is the range of the sound's
# characteristic frequency in Hz (fundamental, band centre, sweep start or,
# for the click train, the click rate) that the pitch latent spans on a log
# scale. The sound names are plain descriptions of what is heard, so that a
# text encoder can match them.
# ---------------------------------------------------------------------------
_CLASSES = (
    # (sound name, synthesis kind, shape, colour word, hue in degrees, freq_range)
    ("harmonic tone", "harmonic", "disc", "red", 0.0, (150.0, 600.0)),
    ("noise band", "noise_band", "square", "orange", 30.0, (500.0, 3500.0)),
    ("rising chirp", "rising_chirp", "triangle", "yellow", 60.0, (300.0, 1000.0)),
    ("buzzy pulse train", "pulse_train", "ring", "lime", 90.0, (60.0, 200.0)),
    ("vibrato tone", "vibrato", "cross", "green", 120.0, (250.0, 900.0)),
    ("click train", "click_train", "star", "spring green", 150.0, (12.0, 40.0)),
    ("tremolo tone", "tremolo", "striped disc", "cyan", 180.0, (300.0, 1000.0)),
    ("sung vowel", "vowel", "checkered square", "azure", 210.0, (100.0, 250.0)),
    ("falling chirp", "falling_chirp", "diamond", "blue", 240.0, (300.0, 1000.0)),
    ("ringing bell", "bell", "hexagon", "violet", 270.0, (400.0, 1500.0)),
    ("hollow square-wave tone", "square_wave", "crescent", "magenta", 300.0, (120.0, 500.0)),
    ("pure whistle", "whistle", "bar", "rose", 330.0, (800.0, 2500.0)),
)
_MAX_CLASSES = len(_CLASSES)
_MIN_SAMPLE_RATE = 8000  # the highest class frequencies (~3.5 kHz) need this Nyquist

# Instance couplings (see make_av_clips docstring).
_RADIUS_FRAC = (0.10, 0.18)   # base radius / min(H, W), driven by the size latent
_GAIN_DB = (-6.0, -1.0)       # source gain in dB, driven by the same size latent
_HUE_SPREAD = 20.0            # degrees of hue within a colour family, driven by pitch
_VALUE_RANGE = (0.55, 0.95)   # HSV value (brightness), driven by pitch
_SATURATION = 0.8
_DECAY_RANGE = (0.05, 0.2)    # event decay constant (s), shared by sound and pulse
_STRENGTH_RANGE = (0.7, 1.0)  # per-event strength: loudness of the hit <-> pulse size

# Temporal structure.
_GAP_RANGE = (0.25, 0.8)      # seconds between onsets of one source (irregular rhythm)
_DECAY_CUT = 5.0              # an event lasts at most this many decay constants
_ATTACK = 0.003               # seconds of linear attack: sharp onsets
_RELEASE = 0.005              # seconds of fade before an event is cut
_PULSE_SCALE = 0.3            # relative growth of the radius at a full-strength event
_PULSE_BRIGHT = 0.45          # fraction of the way to white at a full-strength event
_KICK_FRAC = 0.04             # jump at an event, as a fraction of min(H, W)

# Slow, unsynchronised drift.
_SOURCE_DRIFT_FRAC = 0.04
_DISTRACTOR_DRIFT_FRAC = 0.18
_DRIFT_FREQ = (0.05, 0.3)     # Hz
_SPIN = 0.5                   # max rotation speed, rad/s

_TABLE_SIZE = 4096
_INT32_MAX = np.iinfo(np.int32).max


# ---------------------------------------------------------------------------
# Parameter checks
# ---------------------------------------------------------------------------


def _check_int(value, name, minimum, maximum=None):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer; got {value!r}")
    value = int(value)
    if value < minimum or (maximum is not None and value > maximum):
        upper = "" if maximum is None else f" and <= {maximum}"
        raise ValueError(f"{name} must be >= {minimum}{upper}; got {value}")
    return value


def _check_float(value, name, *, positive=False, nonnegative=False):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite; got {value!r}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0; got {value!r}")
    if nonnegative and value < 0:
        raise ValueError(f"{name} must be >= 0; got {value!r}")
    return value


def _check_frame_size(frame_size):
    try:
        height, width = frame_size
    except (TypeError, ValueError):
        raise ValueError(
            f"frame_size must be a pair (height, width) of integers >= 16; got {frame_size!r}"
        ) from None
    height = _check_int(height, "frame_size[0] (height)", 16)
    width = _check_int(width, "frame_size[1] (width)", 16)
    return height, width


def _check_offset_range(offset_range, duration):
    if offset_range is None:
        return None
    try:
        lo, hi = offset_range
    except (TypeError, ValueError):
        raise ValueError(
            f"offset_range must be None or a pair (lo, hi) of seconds; got {offset_range!r}"
        ) from None
    lo = _check_float(lo, "offset_range[0]")
    hi = _check_float(hi, "offset_range[1]")
    if lo > hi:
        raise ValueError(f"offset_range must have lo <= hi; got ({lo}, {hi})")
    if max(abs(lo), abs(hi)) >= duration / 2:
        raise ValueError(
            f"offset_range bounds must satisfy |offset| < duration / 2 = {duration / 2:g} s; "
            f"got ({lo}, {hi})"
        )
    return lo, hi


# ---------------------------------------------------------------------------
# Small numeric helpers
# ---------------------------------------------------------------------------


def _hsv_to_rgb(h, s, v):
    """Vectorised HSV -> RGB; ``h`` in turns (any real), ``s`` and ``v`` in [0, 1]."""
    h, s, v = np.broadcast_arrays(np.asarray(h, float) % 1.0, np.asarray(s, float), np.asarray(v, float))
    i = np.floor(h * 6.0).astype(int) % 6
    f = h * 6.0 - np.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    r = np.choose(i, [v, q, p, p, t, v])
    g = np.choose(i, [t, v, v, q, p, p])
    b = np.choose(i, [p, p, t, v, v, q])
    return np.stack([r, g, b], axis=-1)


def _log_interp(level, lo_hi):
    lo, hi = lo_hi
    return lo * (hi / lo) ** level


def _smooth_noise(rng, n, width=3):
    """Unit-variance, low-pass Gaussian noise of length ``n`` (camera shake)."""
    x = rng.standard_normal(n + width - 1)
    x = np.convolve(x, np.ones(width) / width, mode="valid")
    return x / max(x.std(), 1e-12)


# ---------------------------------------------------------------------------
# Sound synthesis: carriers are functions of local time t (seconds since the
# event onset), returned with unit peak; the envelope is applied afterwards.
# ---------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _harmonic_table(amps):
    """One period of sum_k amps[k-1] sin(2 pi k x), peak-normalised, with a wrap sample."""
    spec = np.zeros(_TABLE_SIZE // 2 + 1, dtype=complex)
    spec[1 : len(amps) + 1] = -1j * np.asarray(amps)
    table = np.fft.irfft(spec, n=_TABLE_SIZE)
    table /= np.abs(table).max()
    return np.append(table, table[0])


def _lookup(table, cycles):
    """Linear-interpolated wavetable read at phase ``cycles`` (in periods)."""
    pos = (cycles % 1.0) * _TABLE_SIZE
    idx = pos.astype(np.int64)
    frac = pos - idx
    return table[idx] * (1.0 - frac) + table[idx + 1] * frac


def _n_harmonics(f0, sr, cap):
    # Keep every partial below 0.45 * sr so nothing aliases.
    return int(max(1, min(cap, np.floor(0.45 * sr / f0))))


def _carrier_harmonic(t, f, tau, sr, seed):
    k = np.arange(1, _n_harmonics(f, sr, 12) + 1)
    return _lookup(_harmonic_table(tuple(1.0 / k)), f * t)


def _carrier_square_wave(t, f, tau, sr, seed):
    k = np.arange(1, _n_harmonics(f, sr, 15) + 1)
    return _lookup(_harmonic_table(tuple(np.where(k % 2 == 1, 1.0 / k, 0.0))), f * t)


def _carrier_pulse_train(t, f, tau, sr, seed):
    n = _n_harmonics(f, sr, 40)
    return _lookup(_harmonic_table((1.0,) * n), f * t)


def _carrier_vowel(t, f, tau, sr, seed):
    # Harmonics weighted by the formant resonances of an open /a/ vowel; the
    # formants rise gently with the pitch (a smaller singer) so that the
    # spectral centre follows the pitch as well.
    k = np.arange(1, _n_harmonics(f, sr, int(4500 // f)) + 1)
    fk = k * f
    scale = (f / 160.0) ** 0.5
    amps = sum(g / (1 + ((fk - fc * scale) / bw) ** 2)
               for fc, bw, g in ((730, 120, 1.0), (1090, 140, 0.6), (2440, 200, 0.3)))
    return _lookup(_harmonic_table(tuple(np.round(amps, 6))), f * t)


def _carrier_vibrato(t, f, tau, sr, seed):
    rate, depth = 5.5, 0.03
    cycles = f * t + f * depth / (2 * np.pi * rate) * (1 - np.cos(2 * np.pi * rate * t))
    k = np.arange(1, _n_harmonics(f, sr, 3) + 1)
    return _lookup(_harmonic_table(tuple(0.5 ** (k - 1))), cycles)


def _carrier_tremolo(t, f, tau, sr, seed):
    k = np.arange(1, _n_harmonics(f, sr, 2) + 1)
    tone = _lookup(_harmonic_table(tuple(0.3 ** (k - 1))), f * t)
    return tone * (1.0 - 0.8 * (0.5 - 0.5 * np.cos(2 * np.pi * 9.0 * t)))


def _carrier_whistle(t, f, tau, sr, seed):
    return np.sin(2 * np.pi * f * t)


def _carrier_rising_chirp(t, f, tau, sr, seed):
    # Exponential sweep f -> 3 f over the longest possible event.
    sweep = _DECAY_CUT * tau
    return np.sin(2 * np.pi * f * sweep / np.log(3.0) * (3.0 ** (t / sweep) - 1.0))


def _carrier_falling_chirp(t, f, tau, sr, seed):
    sweep = _DECAY_CUT * tau
    return np.sin(2 * np.pi * 3 * f * sweep / np.log(3.0) * (1.0 - 3.0 ** (-t / sweep)))


def _carrier_bell(t, f, tau, sr, seed):
    # Inharmonic partials of a struck bar; higher partials die away faster.
    out = np.zeros_like(t)
    for ratio, amp in ((1.0, 1.0), (2.76, 0.5), (5.40, 0.35), (8.93, 0.2)):
        if ratio * f < 0.45 * sr:
            out += amp * np.exp(-t * (ratio - 1) / (2 * tau)) * np.sin(2 * np.pi * ratio * f * t)
    return out


def _carrier_noise_band(t, f, tau, sr, seed):
    x = np.random.RandomState(seed).standard_normal(t.size)
    freqs = np.fft.rfftfreq(t.size, 1.0 / sr)
    weight = np.exp(-0.5 * (np.log2(np.maximum(freqs, 1.0) / f) / 0.25) ** 2)
    return np.fft.irfft(np.fft.rfft(x) * weight, n=t.size)


def _carrier_click_train(t, f, tau, sr, seed):
    # Short resonant clicks at ``f`` clicks per second with slight timing jitter.
    rng = np.random.RandomState(seed)
    n_clicks = int(t[-1] * f) + 1
    times = np.arange(n_clicks) / f + rng.uniform(-0.1, 0.1, n_clicks) / f
    times[0] = _ATTACK  # first click right after the attack ramp, at full level
    idx = np.clip(np.round((times - t[0]) * sr).astype(np.int64), 0, t.size - 1)
    impulses = np.bincount(idx, minlength=t.size).astype(float)
    n = np.arange(max(2, int(0.004 * sr)))
    # Faster clicks are also brighter clicks, so spectral centre follows the rate too.
    kernel = np.exp(-n / (0.0007 * sr)) * np.sin(2 * np.pi * min(100.0 * f, 0.4 * sr) * n / sr)
    return np.convolve(impulses, kernel)[: t.size]


_CARRIERS = {
    "harmonic": _carrier_harmonic,
    "noise_band": _carrier_noise_band,
    "rising_chirp": _carrier_rising_chirp,
    "pulse_train": _carrier_pulse_train,
    "vibrato": _carrier_vibrato,
    "click_train": _carrier_click_train,
    "tremolo": _carrier_tremolo,
    "vowel": _carrier_vowel,
    "falling_chirp": _carrier_falling_chirp,
    "bell": _carrier_bell,
    "square_wave": _carrier_square_wave,
    "whistle": _carrier_whistle,
}


def _event_envelope(t, tau, length):
    """Sharp linear attack, exponential decay, short linear fade before the cut at ``length`` s."""
    attack = np.minimum(t / _ATTACK, 1.0)
    release = np.clip((length - t) / _RELEASE, 0.0, 1.0)
    return attack * np.exp(-t / tau) * release


def _render_source_audio(kind, events, freq, tau, gain, seeds, sr, start, n):
    """Audio of one source on absolute samples ``start .. start + n - 1``.

    Sample ``j`` is at time ``j / sr`` on the video timeline. Each event is
    rendered whole from its own onset (and its own seed), so a sample's value
    does not depend on ``start``: shifting the window by ``s`` samples shifts
    the output by exactly ``s`` samples, bit for bit.
    """
    onsets, ends, strengths = events
    out = np.zeros(n)
    carrier = _CARRIERS[kind]
    for k in range(onsets.size):
        j0, j1 = int(np.ceil(onsets[k] * sr)), int(np.ceil(ends[k] * sr))
        if j1 <= j0 or j1 <= start or j0 >= start + n:
            continue
        t = np.arange(j0, j1) / sr - onsets[k]
        x = carrier(t, freq, tau, sr, seeds[k])
        peak = np.abs(x).max()
        if peak > 0:
            x = x / peak
        x = x * _event_envelope(t, tau, ends[k] - onsets[k]) * (gain * strengths[k])
        a, b = max(j0, start), min(j1, start + n)
        out[a - start : b - start] += x[a - j0 : b - j0]
    return out


# ---------------------------------------------------------------------------
# Event timeline (shared by sound and picture)
# ---------------------------------------------------------------------------


def _draw_onsets(rng, duration):
    """Irregular onsets covering the video span and the widest allowed audio shift.

    The timeline runs from well before ``-duration / 2`` to ``1.5 * duration``
    so that any offset with ``|offset| < duration / 2`` reads real events. At
    least one onset lands inside the visible span ``[0, duration)``.
    """
    lo = -duration / 2 - _DECAY_CUT * _DECAY_RANGE[1]
    hi = 1.5 * duration
    n_max = int(np.ceil((hi - lo) / _GAP_RANGE[0])) + 2
    first = rng.uniform(0, _GAP_RANGE[1])
    gaps = rng.uniform(*_GAP_RANGE, size=n_max)
    onsets = lo + first + np.concatenate([[0.0], np.cumsum(gaps[:-1])])
    onsets = onsets[onsets < hi]
    fallback = rng.uniform(0.0, 0.8) * duration  # always drawn: fixed RNG use
    if not np.any((onsets >= 0) & (onsets < duration)):
        onsets = np.sort(np.append(onsets, fallback))
    return onsets


def _event_ends(onsets, tau):
    """An event ends at the next onset (a new hit damps the old) or after _DECAY_CUT taus."""
    nxt = np.append(onsets[1:], np.inf)
    return np.minimum(nxt, onsets + _DECAY_CUT * tau)


def _event_activation(times, onsets, ends, tau):
    """(len(times), n_events) decay of each event at ``times`` (0 outside the event)."""
    dt = times[:, None] - onsets[None, :]
    active = (dt >= 0) & (times[:, None] < ends[None, :])
    return np.where(active, np.exp(-np.where(active, dt, 0.0) / tau), 0.0)


# ---------------------------------------------------------------------------
# Pictures
# ---------------------------------------------------------------------------


def _shape_disc(u, v, r2):
    return r2 <= 1.0, None


def _shape_square(u, v, r2):
    return np.maximum(np.abs(u), np.abs(v)) <= 0.85, None


def _shape_triangle(u, v, r2):
    # Equilateral, circumradius 1.2, apex up (image y grows downwards).
    a = 0.8660254 * u
    return (v <= 0.6) & (a - 0.5 * v <= 0.6) & (-a - 0.5 * v <= 0.6), None


def _shape_ring(u, v, r2):
    return (r2 <= 1.0) & (r2 >= 0.3025), None


def _shape_cross(u, v, r2):
    au, av = np.abs(u), np.abs(v)
    return ((au <= 0.32) & (av <= 1.05)) | ((av <= 0.32) & (au <= 1.05)), None


def _shape_star(u, v, r2):
    frac = (np.arctan2(v, u) * (5.0 / (2 * np.pi)) + 0.75) % 1.0
    reach = 0.5 + 0.65 * (1.0 - 2.0 * np.abs(frac - 0.5))
    return r2 <= reach * reach, None


def _shape_striped_disc(u, v, r2):
    stripes = np.floor((u + 2.0) * 2.5) % 2
    return r2 <= 1.0, (0.55 + 0.45 * stripes).astype(np.float32)


def _shape_checkered_square(u, v, r2):
    checks = (np.floor((u + 2.0) * 2.2) + np.floor((v + 2.0) * 2.2)) % 2
    return np.maximum(np.abs(u), np.abs(v)) <= 0.85, (0.55 + 0.45 * checks).astype(np.float32)


def _shape_diamond(u, v, r2):
    return np.abs(u) + np.abs(v) <= 1.15, None


def _shape_hexagon(u, v, r2):
    au, av = np.abs(u), np.abs(v)
    return (av <= 0.9093) & (0.8660254 * au + 0.5 * av <= 0.9093), None


def _shape_crescent(u, v, r2):
    return (r2 <= 1.0) & ((u - 0.45) ** 2 + v * v > 0.5625), None


def _shape_bar(u, v, r2):
    return (np.abs(u) <= 1.15) & (np.abs(v) <= 0.42), None


_SHAPES = {
    "disc": _shape_disc,
    "square": _shape_square,
    "triangle": _shape_triangle,
    "ring": _shape_ring,
    "cross": _shape_cross,
    "star": _shape_star,
    "striped disc": _shape_striped_disc,
    "checkered square": _shape_checkered_square,
    "diamond": _shape_diamond,
    "hexagon": _shape_hexagon,
    "crescent": _shape_crescent,
    "bar": _shape_bar,
}
_SHAPE_REACH = 1.25  # every shape fits in a disc of this radius (in units of radius)


def _rasterise(shape, cx, cy, radius, angle, rgb, height, width, chunk=8):
    """Draw one object in every frame, ``chunk`` frames at a time.

    Each chunk is rendered at once inside the object's bounding box over
    those frames (small, since objects move slowly), which keeps the work
    vectorised without touching the whole frame. Returns a list of pieces
    ``(frames, rows, cols, inside, pixels)``: slices into the (T, H, W)
    volume, the (t, h, w) coverage and the (t, h, w, 3) uint8 colours.
    """
    f32 = np.float32
    reach = _SHAPE_REACH * radius
    rgb255 = (np.asarray(rgb, dtype=f32) * f32(255.0))
    pieces = []
    for f0 in range(0, cx.size, chunk):
        sl = slice(f0, min(f0 + chunk, cx.size))
        x0 = max(int(np.floor((cx[sl] - reach[sl]).min())), 0)
        x1 = min(int(np.ceil((cx[sl] + reach[sl]).max())) + 1, width)
        y0 = max(int(np.floor((cy[sl] - reach[sl]).min())), 0)
        y1 = min(int(np.ceil((cy[sl] + reach[sl]).max())) + 1, height)
        if x0 >= x1 or y0 >= y1:
            continue
        dx = np.arange(x0, x1, dtype=f32)[None, None, :] - cx[sl].astype(f32)[:, None, None]
        dy = np.arange(y0, y1, dtype=f32)[None, :, None] - cy[sl].astype(f32)[:, None, None]
        cos = (np.cos(angle[sl]) / radius[sl]).astype(f32)[:, None, None]
        sin = (np.sin(angle[sl]) / radius[sl]).astype(f32)[:, None, None]
        u = dx * cos + dy * sin  # object-local coordinates: the shape's radius is 1
        v = dy * cos - dx * sin
        r2 = u * u + v * v
        inside, texture = _SHAPES[shape](u, v, r2)
        # Radial shading gives every object a little internal structure.
        shade = np.minimum(r2, f32(1.5625))
        shade *= f32(-0.25 / 1.5625)
        shade += f32(1.0)
        if texture is not None:
            shade *= texture
        pixels = (shade[..., None] * rgb255[sl, None, None, :]).astype(np.uint8)
        pieces.append((sl, slice(y0, y1), slice(x0, x1), inside, pixels))
    return pieces


def _paste(frames, pieces):
    for sl, rows, cols, inside, pixels in pieces:
        # An explicit 3-channel mask is several times faster than a broadcast one.
        np.copyto(frames[sl, rows, cols], pixels, where=np.repeat(inside[..., None], 3, axis=-1))


def _background(rng, height, width):
    """A dim, low-saturation, mildly textured background that differs per clip."""
    base = _hsv_to_rgb(rng.uniform(), rng.uniform(0.05, 0.3), rng.uniform(0.2, 0.45))
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    angle = rng.uniform(0, 2 * np.pi)
    lum = 1.0 + 0.3 * (np.cos(angle) * xx + np.sin(angle) * yy - 0.5)
    for _ in range(3):  # a few soft ripples
        k = rng.uniform(1, 6, size=2) * 2 * np.pi * rng.choice([-1, 1], size=2)
        lum += 0.05 * np.sin(k[0] * xx + k[1] * yy + rng.uniform(0, 2 * np.pi))
    lum += rng.uniform(-0.04, 0.04, size=(height, width))  # static fine grain
    bg = np.clip(base[None, None, :] * lum[..., None], 0, 1)
    return (bg * 255 + 0.5).astype(np.uint8)


def _drift(rng, n_paths, amplitude, times):
    """Smooth Lissajous wander of ``n_paths`` objects: (n_paths, T, 2) displacements."""
    freq = rng.uniform(*_DRIFT_FREQ, size=(n_paths, 1, 2))
    phase = rng.uniform(0, 2 * np.pi, size=(n_paths, 1, 2))
    amp = amplitude * rng.uniform(0.3, 1.0, size=(n_paths, 1, 2))
    return amp * (np.sin(2 * np.pi * freq * times[None, :, None] + phase) - np.sin(phase))


def _spread_positions(rng, n, low, high):
    """``n`` points in the box [low, high]^2, greedily spread apart (fixed RNG use)."""
    cand = rng.uniform(low, high, size=(max(16, 4 * n), 2))
    chosen = [0]
    for _ in range(1, n):
        d = np.min(np.linalg.norm(cand[:, None, :] - cand[chosen][None, :, :], axis=-1), axis=1)
        d[chosen] = -1.0
        chosen.append(int(np.argmax(d)))
    return cand[chosen]


def _instance_colour(cls, pitch_level):
    hue = (_CLASSES[cls][4] + (pitch_level - 0.5) * _HUE_SPREAD) / 360.0
    value = _VALUE_RANGE[0] + pitch_level * (_VALUE_RANGE[1] - _VALUE_RANGE[0])
    return _hsv_to_rgb(hue, _SATURATION, value)


# ---------------------------------------------------------------------------
# One clip
# ---------------------------------------------------------------------------


def _distractor_pool(classes, n_classes, where):
    """Classes a clip's silent objects may show; never one that sounds in the clip.

    ``"outside"`` prefers table rows beyond the first ``n_classes``: their
    presence says nothing about the label, so a whole-frame embedding still
    identifies the sounding class, while a localiser must still pick the
    object that moves with the sound. ``"inside"`` uses the other labelled
    classes, the hard case where every object could plausibly be sounding.
    """
    candidates = [np.arange(n_classes, _MAX_CLASSES), np.setdiff1d(np.arange(n_classes), classes)]
    if where == "inside":
        candidates.reverse()
    candidates.append(np.setdiff1d(np.arange(_MAX_CLASSES), classes))
    candidates.append(np.arange(_MAX_CLASSES))  # the whole table is sounding: repeat its shapes
    return next(pool for pool in candidates if pool.size)


def _draw_scene(rng, label, n_classes, n_sources, n_distractors, distractor_pool, duration):
    """Everything shared by sound and picture: classes, latents and event timelines."""
    others = np.delete(np.arange(n_classes), label)
    classes = np.concatenate([[label], rng.permutation(others)[: n_sources - 1]]).astype(int)
    pitch = rng.uniform(size=n_sources)
    size = rng.uniform(size=n_sources)
    tau = np.exp(rng.uniform(*np.log(_DECAY_RANGE), size=n_sources))
    events = []
    for j in range(n_sources):
        onsets = _draw_onsets(rng, duration)
        strengths = rng.uniform(*_STRENGTH_RANGE, size=onsets.size)
        kick_dir = rng.uniform(0, 2 * np.pi, size=onsets.size)
        events.append((onsets, _event_ends(onsets, tau[j]), strengths, kick_dir))
    pool = _distractor_pool(classes, n_classes, distractor_pool)
    distractors = rng.choice(pool, size=n_distractors, replace=n_distractors > pool.size).astype(int)
    return classes, pitch, size, tau, events, distractors


def _clip_audio(classes, events, freqs, tau, gains, sound_rng, noise_seed, noise_level,
                sample_rate, shift, n_samples):
    """Per-source waveforms and their (noisy) sum; audio sample n is at video time (n + shift) / sr."""
    sources = np.empty((len(classes), n_samples), dtype=np.float32)
    for j, c in enumerate(classes):
        onsets, ends, strengths, _ = events[j]
        seeds = sound_rng.randint(_INT32_MAX, size=onsets.size)
        sources[j] = _render_source_audio(_CLASSES[c][1], (onsets, ends, strengths), freqs[j], tau[j],
                                          gains[j], seeds, sample_rate, shift, n_samples)
    audio = sources.sum(axis=0)
    if noise_level > 0:
        # Noise lives on the same absolute sample grid, so it shifts with the audio too.
        pad = n_samples // 2 + 1
        noise = np.random.RandomState(noise_seed).standard_normal(n_samples + 2 * pad)
        audio = audio + (noise_level * noise[pad + shift : pad + shift + n_samples]).astype(np.float32)
    return sources, audio


def _camera_path(rng, camera_shake, n_frames):
    """Whole-pixel (dx, dy) camera offsets per frame and the padding they need."""
    pad = int(np.ceil(3 * camera_shake))
    if camera_shake == 0:
        return np.zeros((n_frames, 2), dtype=int), pad
    path = camera_shake * np.stack([_smooth_noise(rng, n_frames) for _ in range(2)], axis=1)
    return np.clip(np.round(path), -pad, pad).astype(int), pad


def _background_frames(background, cam, pad, height, width):
    """The padded background seen through the shaking camera: (T, H, W, 3), possibly read-only."""
    if pad == 0:
        return np.broadcast_to(background, (cam.shape[0], height, width, 3))
    return np.stack([background[pad + dy : pad + dy + height, pad + dx : pad + dx + width] for dx, dy in cam])


def _draw_distractors(frames, rng, distractors, times, cam, side):
    """Paint the silent objects: fixed size and colour, slow drift and spin, no pulses."""
    n, (height, width) = len(distractors), frames.shape[1:3]
    radius = side * rng.uniform(*_RADIUS_FRAC, size=n)
    pitch = rng.uniform(size=n)
    pos = rng.uniform(size=(n, 2))
    path = _drift(rng, n, _DISTRACTOR_DRIFT_FRAC * side, times)
    angle = rng.uniform(0, 2 * np.pi, size=(n, 1)) + rng.uniform(-_SPIN, _SPIN, size=(n, 1)) * times
    for i, c in enumerate(distractors):
        margin = np.minimum(_SHAPE_REACH * radius[i] + _DISTRACTOR_DRIFT_FRAC * side, [width / 2, height / 2])
        centre = margin + pos[i] * (np.array([width, height]) - 2 * margin) + path[i] - cam
        rgb = np.broadcast_to(_instance_colour(c, pitch[i]), (times.size, 3))
        _paste(frames, _rasterise(_CLASSES[c][2], centre[:, 0], centre[:, 1], np.full(times.size, radius[i]),
                                  angle[i], rgb, height, width))


def _draw_sources(frames, bg_frames, rng, classes, events, colours, radii, tau, times, cam, side):
    """Paint the sounding objects, which pulse (grow, brighten) and jump at every onset.

    Returns the visible-pixel masks (S, T, H, W), each source alone on the
    background, and the centre of each source in every frame (S, T, 2).
    """
    n, (height, width) = len(classes), frames.shape[1:3]
    kick = _KICK_FRAC * side
    # Keep the resting object inside the frame; at the height of a pulse a
    # corner may briefly leave it, which beats crowding every object into the centre.
    margin = min(1.1 * radii.max() + 0.5 * (kick + _SOURCE_DRIFT_FRAC * side), 0.45 * side)
    pos = _spread_positions(rng, n, 0.0, 1.0)
    path = _drift(rng, n, _SOURCE_DRIFT_FRAC * side, times)
    angle = rng.uniform(0, 2 * np.pi, size=(n, 1)) + rng.uniform(-_SPIN, _SPIN, size=(n, 1)) * times
    masks = np.zeros((n, times.size, height, width), dtype=bool)
    alone_frames, centers = [], np.empty((n, times.size, 2))
    for j, c in enumerate(classes):
        onsets, ends, strengths, kick_dir = events[j]
        act = _event_activation(times, onsets, ends, tau[j])  # (T, n_events), same cut as the sound
        pulse = act @ strengths                                # in [0, 1]
        jump = act @ (strengths[:, None] * kick * np.stack([np.cos(kick_dir), np.sin(kick_dir)], 1))
        centers[j] = margin + pos[j] * (np.array([width, height]) - 2 * margin) + path[j] + jump - cam
        rgb = colours[j][None, :] + (1 - colours[j][None, :]) * (_PULSE_BRIGHT * pulse[:, None])
        drawn = _rasterise(_CLASSES[c][2], centers[j, :, 0], centers[j, :, 1],
                           radii[j] * (1 + _PULSE_SCALE * pulse), angle[j], rgb, height, width)
        alone = bg_frames.copy()
        _paste(frames, drawn)
        _paste(alone, drawn)
        for sl, rows, cols, inside, _ in drawn:
            masks[:j, sl, rows, cols] &= ~inside  # later sources occlude earlier ones
            masks[j, sl, rows, cols] = inside
        alone_frames.append(alone)
    return masks, alone_frames, centers


def _make_one(seed, label, *, n_classes, n_sources, n_distractors, distractor_pool, duration, sample_rate,
              fps, height, width, offset_range, noise_level, camera_shake):
    """One clip and its ground truth (a dict of per-clip entries)."""
    # Independent streams, so that changing the offset, the noise or the
    # camera never changes the draws of anything else.
    s_scene, s_look, s_sound, s_noise, s_offset = np.random.RandomState(seed).randint(_INT32_MAX, size=5)
    look_rng = np.random.RandomState(s_look)
    classes, pitch, size, tau, events, distractors = _draw_scene(
        np.random.RandomState(s_scene), label, n_classes, n_sources, n_distractors, distractor_pool, duration)
    n_frames = int(round(duration * fps))
    n_samples = int(round(duration * sample_rate))
    times = np.arange(n_frames) / fps
    side = min(height, width)

    # Instance attributes: each latent drives one property in each modality.
    freqs = np.array([_log_interp(pitch[j], _CLASSES[c][5]) for j, c in enumerate(classes)])
    colours = np.stack([_instance_colour(c, pitch[j]) for j, c in enumerate(classes)])
    radii = side * (_RADIUS_FRAC[0] + size * (_RADIUS_FRAC[1] - _RADIUS_FRAC[0]))
    gains = 10 ** ((_GAIN_DB[0] + size * (_GAIN_DB[1] - _GAIN_DB[0])) / 20)
    # A source never exceeds its gain (unit-peak carriers, envelope <= 1, its
    # events never overlap), so this mixing scale keeps the sum below 0.95
    # without looking at the waveform, i.e. independently of the offset.
    gains = gains * min(1.0 / np.sqrt(n_sources), 0.95 / gains.sum())

    # The offset is quantised to whole samples so that the ground truth is exact.
    u = np.random.RandomState(s_offset).uniform()  # drawn even without an offset range
    shift = 0
    if offset_range is not None:
        lo, hi = offset_range
        shift = int(round((lo + u * (hi - lo)) * sample_rate))
    offset = shift / sample_rate
    sources, audio = _clip_audio(classes, events, freqs, tau, gains, np.random.RandomState(s_sound), s_noise,
                                 noise_level, sample_rate, shift, n_samples)

    cam, pad = _camera_path(look_rng, camera_shake, n_frames)
    bg_big = _background(look_rng, height + 2 * pad, width + 2 * pad)
    bg_frames = _background_frames(bg_big, cam, pad, height, width)
    frames = bg_frames.copy()
    # Distractors first: the sounding objects are painted over them and stay fully visible.
    _draw_distractors(frames, look_rng, distractors, times, cam, side)
    masks, alone_frames, centers = _draw_sources(frames, bg_frames, look_rng, classes, events, colours,
                                                 radii, tau, times, cam, side)

    def in_window(t):
        return np.sort(t[(t >= 0) & (t < duration)])

    truth = dict(
        label=classes[0],
        offset=offset,
        offset_samples=shift,
        source_mask=masks[0] if n_sources == 1 else masks.any(axis=0),
        instance_masks=masks,
        sources=sources,
        source_frames=alone_frames,
        source_labels=classes,
        distractor_labels=distractors,
        onsets=[in_window(e[0]) for e in events],
        audio_onsets=[in_window(e[0] - offset) for e in events],
        frequencies=freqs,
        pitch_levels=pitch,
        size_levels=size,
        radii=radii,
        gains=gains,
        colors=colours,
        decays=tau,
        centers=centers,
        background=bg_big[pad : pad + height, pad : pad + width].copy(),
        camera_offsets=cam,
    )
    clip = AVClip(audio=audio, sample_rate=sample_rate, frames=frames, fps=fps,
                  source=f"skavc.datasets.make_av_clips[seed={seed}]")
    return clip, truth


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------


def make_av_clips(n_clips=100, n_classes=8, duration=2.0, sample_rate=16000, fps=25.0,
                  frame_size=(128, 128), offset_range=None, n_sources=1, n_distractors=2,
                  distractor_pool="outside", noise_level=0.0, camera_shake=0.0, random_state=None):
    """Generate audio-visual clips of sounding objects with exact ground truth.

    Each class is a visual object (shape and colour family) paired with a
    characteristic sound. A clip shows ``n_sources`` sounding objects of
    distinct classes and ``n_distractors`` silent objects of other classes on
    a textured background. Every sound event (sharp attack, exponential
    decay) makes its object visibly pulse: it grows, brightens towards white
    and jumps a little, so that motion energy follows the audio onsets.

    Instance attributes vary together across the two modalities, so single
    pairs, not only classes, can be matched:

    * **pitch latent** ``p ~ U(0, 1)``: characteristic frequency
      ``f = lo * (hi / lo) ** p`` (fundamental, noise-band centre, sweep
      start, or click rate) <-> hue shift within the class colour family
      (``(p - 0.5) * 20`` degrees) and brightness (HSV value ``0.55 + 0.4 p``).
    * **size latent** ``s ~ U(0, 1)``: base radius ``(0.10 + 0.08 s) * min(H, W)``
      <-> source gain ``-6 + 5 s`` dB. With several sources all gains are
      scaled by ``min(1 / sqrt(S), 0.95 / sum(gains))`` so the mixture cannot
      clip; their ratios within a clip are kept.
    * **rhythm**: irregular onsets (gaps 0.25-0.8 s) <-> pulses and jumps of
      the object at the same instants (on the video timeline).
    * **event strength** ``U(0.7, 1)`` per event <-> size of that event's
      pulse (growth up to 30 %, brightening up to 45 %, jump up to 4 % of the
      frame).
    * **decay** ``tau``, log-uniform in 0.05-0.2 s <-> decay of the pulse.

    Events of one source never overlap: an event ends at the source's next
    onset (with a 5 ms fade) or after ``5 tau``.

    Parameters
    ----------
    n_clips : int, default=100
        Number of clips. Labels are balanced: each class occurs
        ``n_clips // n_classes`` or one more times, in random order.
    n_classes : int, default=8
        Number of classes used, 1 to 12: the first ``n_classes`` rows of the
        class table (see ``truth.class_names`` / ``truth.object_names``).
    duration : float, default=2.0
        Clip length in seconds.
    sample_rate : int, default=16000
        Audio rate in Hz, at least 8000.
    fps : float, default=25.0
        Video frame rate; frame ``f`` shows time ``f / fps``.
    frame_size : (int, int), default=(128, 128)
        ``(height, width)`` of the frames, each at least 16.
    offset_range : (float, float) or None, default=None
        If given, each clip's audio is shifted against its video by an offset
        drawn uniformly from ``[lo, hi]`` seconds and rounded to a whole number
        of samples. Positive means audio *ahead* of video: an audio event
        happens ``offset`` seconds earlier than its visual event. Requires
        ``lo <= hi`` and ``|lo|, |hi| < duration / 2``. ``None`` means 0.
    n_sources : int, default=1
        Sounding objects per clip, of distinct classes (``<= n_classes``).
        The audio is the sum of their waveforms.
    n_distractors : int, default=2
        Silent objects per clip, of classes that are not sounding in that
        clip (see ``distractor_pool``; drawn with replacement when the pool is
        smaller). They look just like sounding objects of their class but
        drift slowly, unsynchronised with any sound, never pulse, and are
        drawn beneath the sounding objects.
    distractor_pool : {"outside", "inside"}, default="outside"
        Which classes the distractors show. ``"outside"``: rows of the class
        table beyond the first ``n_classes`` (falling back to the unused
        labelled classes when ``n_classes == 12``), so the frame as a whole
        still shows exactly one labelled class per source and clip-level
        correspondence is learnable from whole-frame features; finding
        *which* object sounds still needs the motion cue. ``"inside"``: the
        labelled classes not sounding in the clip, the harder setting where
        every object could plausibly be the source.
    noise_level : float, default=0.0
        Standard deviation of white Gaussian noise added to the audio, in
        full-scale units (clean peaks are about 0.35-0.9).
    camera_shake : float, default=0.0
        Standard deviation in pixels of a smooth, whole-pixel global
        translation of each frame (a hand-held camera). ``0`` disables it.
    random_state : int, RandomState instance or None, default=None
        Seed for reproducible output.

    Returns
    -------
    clips : list of AVClip
        ``n_clips`` clips of ``round(duration * sample_rate)`` float32 samples
        and ``round(duration * fps)`` uint8 frames of shape ``(H, W, 3)``.
    truth : sklearn.utils.Bunch
        Ground truth, one entry per clip (``S = n_sources``, ``T`` frames,
        ``N`` samples):

        - ``labels`` : int array (n_clips,), class of the first (main) source.
        - ``label_names`` : str array (n_clips,), its sound name.
        - ``class_names`` : str array (n_classes,), sound names, e.g.
          ``"harmonic tone"``, ``"noise band"``, ``"rising chirp"``.
        - ``object_names`` : str array (n_classes,), what each class looks
          like, e.g. ``"red disc"``.
        - ``offsets`` : float array (n_clips,), seconds, audio ahead > 0;
          exactly ``offset_samples / sample_rate``.
        - ``offset_samples`` : int array (n_clips,).
        - ``source_masks`` : list of bool (T, H, W): visible pixels of the
          sounding objects.
        - ``instance_masks`` : list of bool (S, T, H, W): visible pixels of
          each sounding object (later sources occlude earlier ones).
        - ``sources`` : list of float32 (S, N): clean waveform of each source;
          they sum to the audio (plus noise when ``noise_level > 0``).
        - ``source_frames`` : list of lists of S uint8 (T, H, W, 3): each
          source alone on the clip's background.
        - ``source_labels`` : int array (n_clips, S); column 0 is ``labels``.
        - ``distractor_labels`` : int array (n_clips, n_distractors).
        - ``onsets`` : list of lists of S float arrays: event onsets in
          seconds on the video timeline, within ``[0, duration)``.
        - ``audio_onsets`` : same on the audio timeline (``onsets - offset``
          for all events, kept within ``[0, duration)``).
        - ``frequencies``, ``pitch_levels``, ``size_levels``, ``radii``
          (pixels), ``gains`` (linear), ``decays`` (seconds) : float arrays
          (n_clips, S) of instance attributes.
        - ``colors`` : float array (n_clips, S, 3), base RGB in [0, 1].
        - ``centers`` : list of float (S, T, 2), ``(x, y)`` pixel position of
          each sounding object's centre in every frame.
        - ``backgrounds`` : list of uint8 (H, W, 3): the background, exact for
          every frame when ``camera_shake == 0``.
        - ``camera_offsets`` : list of int (T, 2): ``(dx, dy)`` camera shift in
          each frame; the whole scene appears moved by ``(-dx, -dy)`` pixels.

    Notes
    -----
    Each clip draws from its own random streams (scene, look, sound, noise,
    offset), so with the same ``random_state`` the frames do not depend on
    ``offset_range`` and the audio for offset ``d`` equals the audio for
    offset 0 shifted by exactly ``round(d * sample_rate)`` samples: events
    live on a continuous timeline that extends past both ends of the clip.
    A clip's video timeline is its audio timeline plus ``offset``; audio
    sample ``n`` is heard at video time ``n / sample_rate + offset``.

    Everything is held in memory: per clip the frames, one frame stack per
    source in ``source_frames`` and the masks, about 5 MB per source-clip at
    the defaults (100 clips: about 0.6 GB).

    Examples
    --------
    >>> from skavc.datasets import make_av_clips
    >>> clips, truth = make_av_clips(n_clips=4, n_classes=4, random_state=0)
    >>> clips[0].frames.shape, clips[0].audio.shape
    ((50, 128, 128, 3), (32000,))
    >>> truth.label_names[0] in truth.class_names
    True
    """
    n_clips = _check_int(n_clips, "n_clips", 1)
    n_classes = _check_int(n_classes, "n_classes", 1)
    if n_classes > _MAX_CLASSES:
        raise ValueError(f"n_classes must be <= {_MAX_CLASSES}, the number of classes the generator "
                         f"defines; got {n_classes}")
    duration = _check_float(duration, "duration", positive=True)
    if isinstance(sample_rate, numbers.Real) and not isinstance(sample_rate, numbers.Integral) \
            and float(sample_rate).is_integer():
        sample_rate = int(sample_rate)  # 16000.0 is fine; 16000.5 is not
    sample_rate = _check_int(sample_rate, "sample_rate", _MIN_SAMPLE_RATE)
    fps = _check_float(fps, "fps", positive=True)
    height, width = _check_frame_size(frame_size)
    offset_range = _check_offset_range(offset_range, duration)
    n_sources = _check_int(n_sources, "n_sources", 1, n_classes)
    n_distractors = _check_int(n_distractors, "n_distractors", 0)
    if distractor_pool not in ("outside", "inside"):
        raise ValueError(f"distractor_pool must be 'outside' or 'inside'; got {distractor_pool!r}")
    noise_level = _check_float(noise_level, "noise_level", nonnegative=True)
    camera_shake = _check_float(camera_shake, "camera_shake", nonnegative=True)
    if round(duration * fps) < 1:
        raise ValueError(f"duration * fps must give at least one frame; got {duration} s at {fps} fps")
    rng = check_random_state(random_state)

    labels = rng.permutation(np.arange(n_clips) % n_classes)
    seeds = rng.randint(_INT32_MAX, size=n_clips)
    clips, per_clip = [], []
    for seed, label in zip(seeds, labels):
        clip, t = _make_one(int(seed), int(label), n_classes=n_classes, n_sources=n_sources,
                            n_distractors=n_distractors, distractor_pool=distractor_pool,
                            duration=duration, sample_rate=sample_rate,
                            fps=fps, height=height, width=width, offset_range=offset_range,
                            noise_level=noise_level, camera_shake=camera_shake)
        clips.append(clip)
        per_clip.append(t)

    def stack(key, dtype=None):
        return np.array([t[key] for t in per_clip], dtype=dtype)

    def listed(key):
        return [t[key] for t in per_clip]

    class_names = np.array([row[0] for row in _CLASSES[:n_classes]])
    truth = Bunch(
        labels=labels.astype(int),
        label_names=class_names[labels],
        class_names=class_names,
        object_names=np.array([f"{row[3]} {row[2]}" for row in _CLASSES[:n_classes]]),
        offsets=stack("offset", float),
        offset_samples=stack("offset_samples", int),
        source_masks=listed("source_mask"),
        instance_masks=listed("instance_masks"),
        sources=listed("sources"),
        source_frames=listed("source_frames"),
        source_labels=stack("source_labels", int),
        distractor_labels=stack("distractor_labels", int).reshape(n_clips, n_distractors),
        onsets=listed("onsets"),
        audio_onsets=listed("audio_onsets"),
        frequencies=stack("frequencies", float),
        pitch_levels=stack("pitch_levels", float),
        size_levels=stack("size_levels", float),
        radii=stack("radii", float),
        gains=stack("gains", float),
        decays=stack("decays", float),
        colors=stack("colors", float),
        centers=listed("centers"),
        backgrounds=listed("background"),
        camera_offsets=listed("camera_offsets"),
    )
    return clips, truth
