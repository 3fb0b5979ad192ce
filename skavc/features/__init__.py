"""Pure feature functions shared by the tasks: arrays in, arrays out, no training, no state.

The layer between the raw signals and the tasks (:mod:`skavc.sync`, :mod:`skavc.localization`):
it imports only numpy, scipy and :mod:`skavc._validation`, and every function here is written
once and used by every task that needs it.

Video (``skavc.features.video``)
    :func:`block_size`, :func:`grey_blocks`: greyscale block averages of the frames.
    :func:`estimate_shifts`, :func:`shift_frames`: camera shake found and removed.
    :func:`frame_changes`: signed change of every block from the previous frame.
    :func:`motion_energy`, :func:`motion_energy_times`: one change value per frame;
    :data:`MOTION_SIDE`, the frame size they need.
Audio (``skavc.features.audio``)
    :func:`audio_envelope`: RMS in windows centred on given times.
    :func:`audio_changes`: the envelope's change from one video frame to the next.
    :func:`level_rises`: the level's rise in dB from one video frame to the next.
    :func:`sound_presence`: how clearly the sound stands above the clip's own noise floor.
    :func:`onset_envelope`: log-mel spectral flux (onset strength).
    :func:`speech_envelope`: loudness of the speech band (1-3 kHz), what the lips follow.
    :func:`edge_silence`: which spans lie in the digital silence padding a shifted track.
Faces (``skavc.features.faces``)
    :func:`mouth_opening`, :func:`mouth_width`: mouth shape per frame from Face Mesh landmarks;
    :func:`fill_gaps`: frames without a face filled in; :func:`track_points`: a face track over
    all frames; :func:`mouth_boxes`: where the lips are; :func:`mouth_darkness`: the open mouth
    in the pixels.
    :func:`speech_at_frames`, :func:`mouth_speech_correlation`, :func:`speaking_probability`:
    whether a face's mouth moves with the speech heard; :func:`tracks_speaking`, for every face
    tracked; :data:`MOUTH_LEAD`, how far the lips lead.
Time (``skavc.features.time``)
    :func:`sample_frame_indices`: frames spread evenly over a clip.
    :func:`window_means`: features averaged over windows centred on given times.
    :func:`rises`: a series' increases from step to step (what starts, not what fades).
    :func:`grid_times`, :func:`resample_track`: a regular time grid, and features moved onto it.
    :func:`window_weights`, :func:`windowed_correlation`: series correlated within sliding windows.

Conventions shared by all of them: times in seconds; frame ``f`` shows the instant ``f / fps``
and audio sample ``n`` is heard at ``n / sample_rate``; grey levels in 0-255; a change stored at
index ``t`` is the value at ``t`` minus the value at ``t - 1`` (index 0 holds 0).
"""

from .audio import (
    SPEECH_BAND,
    audio_changes,
    audio_envelope,
    edge_silence,
    level_rises,
    onset_envelope,
    sound_presence,
    speech_envelope,
)
from .faces import (MIN_FACE_SHARE, MOUTH_LEAD, SPEAKING_WINDOW, fill_gaps, mouth_boxes, mouth_darkness, mouth_opening,
                    mouth_speech_correlation,
                    mouth_width,
                    speaking_probability, speech_at_frames, track_points, tracks_speaking)
from .time import (grid_times, resample_track, rises, sample_frame_indices, window_means, window_weights,
                   windowed_correlation)
from .video import (
    MOTION_SIDE,
    block_size,
    estimate_shifts,
    frame_changes,
    grey_blocks,
    motion_energy,
    motion_energy_times,
    shift_frames,
)

__all__ = [
    "MOTION_SIDE",
    "MIN_FACE_SHARE",
    "MOUTH_LEAD",
    "SPEAKING_WINDOW",
    "SPEECH_BAND",
    "audio_changes",
    "audio_envelope",
    "block_size",
    "edge_silence",
    "estimate_shifts",
    "fill_gaps",
    "frame_changes",
    "grey_blocks",
    "grid_times",
    "level_rises",
    "motion_energy",
    "motion_energy_times",
    "mouth_boxes",
    "mouth_darkness",
    "mouth_opening",
    "mouth_speech_correlation",
    "mouth_width",
    "onset_envelope",
    "resample_track",
    "rises",
    "sample_frame_indices",
    "shift_frames",
    "sound_presence",
    "speaking_probability",
    "speech_at_frames",
    "speech_envelope",
    "track_points",
    "tracks_speaking",
    "window_means",
    "window_weights",
    "windowed_correlation",
]
