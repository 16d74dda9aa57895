"""The Python API's input forms and keyword options, and what the package exports."""

import pytest
import soundfile as sf

from audioflamingo.errors import AudioInputError
from audioflamingo.tasks import AudioFlamingoPipeline, GenerationSettings
from tests.conftest import make_model, noise


@pytest.fixture(scope="module")
def pipe():
    model, tok = make_model("qwen2", gates=0.9)
    return AudioFlamingoPipeline(model, tok)


def test_a_single_path_is_one_clip_not_characters(pipe, tmp_path):
    wav = tmp_path / "a.wav"
    sf.write(wav, noise(1.0), 16000)
    one = pipe.caption(str(wav), max_new_tokens=3)
    assert isinstance(one, str)
    assert pipe.caption([str(wav), wav], max_new_tokens=3) == [one, one]
    assert pipe.ask(str(wav), "What is it?", max_new_tokens=3) == pipe.ask([wav], "What is it?", max_new_tokens=3)[0]
    with pytest.raises(AudioInputError, match="missing.wav: file not found"):
        pipe.caption(str(tmp_path / "missing.wav"))


def test_arrays_tuples_and_dicts_are_clips(pipe):
    x = noise(1.0, sr=16000, seed=2)
    slow = noise(1.0, sr=8000, seed=2)
    same = pipe.caption([x, (x, 16000), {"array": x, "sampling_rate": 16000}], max_new_tokens=4)
    assert len(set(same)) == 1
    assert isinstance(pipe.caption({"array": slow, "sampling_rate": 8000}, max_new_tokens=4), str)
    assert isinstance(pipe.caption((slow, 8000), max_new_tokens=4), str)
    with pytest.raises(AudioInputError, match="needs 'array'"):
        pipe.caption({"sampling_rate": 8000})


def test_decoding_options_as_keywords(pipe):
    x = noise(1.0)
    short = pipe.caption(x, max_new_tokens=2)
    assert short == pipe.caption(x, GenerationSettings(max_new_tokens=2))
    a = pipe.caption([x, x], do_sample=True, seed=7, temperature=1.5, max_new_tokens=6)
    assert a == pipe.caption([x, x], do_sample=True, seed=7, temperature=1.5, max_new_tokens=6)
    with pytest.raises(TypeError, match="max_tokens"):
        pipe.caption(x, max_tokens=3)
    session = pipe.chat(x)
    assert isinstance(session.send("What is it?", max_new_tokens=2), str)
    assert pipe.classify(x, ["a", "b"], generate=True, max_new_tokens=2)[0]["prob"] is None


def test_long_audio_spread_covers_the_whole_file(tmp_path):
    from audioflamingo.presets import build

    model, tok = build("tiny")
    model.save_pretrained(tmp_path, tok)
    first = AudioFlamingoPipeline.load(tmp_path)
    spread = AudioFlamingoPipeline.load(tmp_path, long_audio="spread")
    assert first.model.config.window.long_audio == "first" and spread.model.config.window.long_audio == "spread"
    with pytest.raises(ValueError, match="'first' or 'spread'"):
        AudioFlamingoPipeline.load(tmp_path, long_audio="all")


def test_main_classes_are_exported():
    import audioflamingo

    names = dir(audioflamingo)
    for name in (
        "AudioFlamingoPipeline",
        "GenerationSettings",
        "AudioFlamingo",
        "AudioFlamingoConfig",
        "AudioFlamingoForConditionalGeneration",
        "AudioFlamingoProcessor",
        "AudioInputError",
    ):
        assert name in names and name in audioflamingo.__all__
    assert audioflamingo.AudioFlamingoPipeline is AudioFlamingoPipeline
