import pytest


@pytest.fixture(scope="session")
def default_pipe():
    """The bundled default model: small, fast on a CPU, and it writes real captions to stop on."""
    from audioflamingo.tasks import AudioFlamingoPipeline

    return AudioFlamingoPipeline.load(None)
