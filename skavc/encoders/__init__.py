"""Frozen pretrained encoders run by onnxruntime."""

from ._builtin import (
    AUDIO_ENCODERS,
    VISUAL_ENCODERS,
    EfficientNetLite0Encoder,
    EffnetMelEncoder,
    WhisperTiny30sEncoder,
    WhisperTinyEncoder,
    make_audio_encoder,
    make_visual_encoder,
    mel_images,
)
from ._cache import cache_dir
from ._onnx import OnnxEncoder, available_providers
from ._text import TEXT_ENCODERS, MiniLMTextEncoder, make_text_encoder
from ._user import OnnxAudioEncoder, OnnxVisualEncoder

__all__ = [
    "AUDIO_ENCODERS",
    "TEXT_ENCODERS",
    "VISUAL_ENCODERS",
    "EfficientNetLite0Encoder",
    "EffnetMelEncoder",
    "MiniLMTextEncoder",
    "OnnxAudioEncoder",
    "OnnxEncoder",
    "OnnxVisualEncoder",
    "WhisperTiny30sEncoder",
    "WhisperTinyEncoder",
    "available_providers",
    "cache_dir",
    "make_audio_encoder",
    "make_text_encoder",
    "make_visual_encoder",
    "mel_images",
]
