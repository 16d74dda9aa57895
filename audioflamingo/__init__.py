"""Audio Flamingo: an audio language model for sound beyond speech."""
__version__ = "0.1.0"


def __getattr__(name):
    # Lazy, so `audioflamingo --help` does not pay for importing torch and transformers.
    if name in ("AudioFlamingoPipeline", "GenerationSettings"):
        from audioflamingo import tasks

        return getattr(tasks, name)
    if name == "AudioFlamingo":
        from audioflamingo.model.flamingo import AudioFlamingo

        return AudioFlamingo
    if name == "AudioFlamingoConfig":
        from audioflamingo.config import AudioFlamingoConfig

        return AudioFlamingoConfig
    raise AttributeError(name)
