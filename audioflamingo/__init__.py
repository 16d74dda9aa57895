"""Audio Flamingo: an audio language model for sound beyond speech.

    from audioflamingo import AudioFlamingoPipeline
    af = AudioFlamingoPipeline.load()            # the bundled default model
    af.caption("clip.wav", max_new_tokens=32)

Names are resolved on first use, so `audioflamingo --help` and the lean runtime do not pay for
importing torch and transformers; the transformers classes (`AudioFlamingoForConditionalGeneration`,
`AudioFlamingoProcessor`, ...) register themselves with the Auto classes when first used.
"""

__version__ = "0.1.0"

# name -> module that defines it
_EXPORTS = {
    "AudioFlamingoPipeline": "audioflamingo.tasks",
    "GenerationSettings": "audioflamingo.tasks",
    "ChatSession": "audioflamingo.tasks",
    "Query": "audioflamingo.tasks",
    "AudioFlamingo": "audioflamingo.model.flamingo",
    "AudioFlamingoConfig": "audioflamingo.config",
    "AudioFlamingoHFConfig": "audioflamingo.hf",
    "AudioFlamingoForConditionalGeneration": "audioflamingo.hf",
    "AudioFlamingoProcessor": "audioflamingo.hf",
    "AudioFlamingoFeatureExtractor": "audioflamingo.hf",
    "AudioFlamingoError": "audioflamingo.errors",
    "AudioInputError": "audioflamingo.errors",
    "ModelLoadError": "audioflamingo.errors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'audioflamingo' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
