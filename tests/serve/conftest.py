import pytest


@pytest.fixture(scope="session")
def default_pipe():
    """The bundled default model: small, fast on a CPU, and it writes real captions to stop on."""
    from audioflamingo.tasks import AudioFlamingoPipeline

    return AudioFlamingoPipeline.load(None)


@pytest.fixture(scope="session")
def bomb_flac(tmp_path_factory):
    """Issue 16's FLAC: 192 kHz x 8 channels x 290 s of silence, 0.46 MB that decodes to 445 M samples
    (1.8 GB as float32). Written once per session (about 10 s)."""
    import numpy as np
    import soundfile as sf

    path = tmp_path_factory.mktemp("bomb") / "bomb.flac"
    with sf.SoundFile(path, "w", 192000, 8, format="FLAC", subtype="PCM_16") as f:
        block = np.zeros((192000 * 10, 8), np.int16)
        for _ in range(29):
            f.write(block)
    return path
