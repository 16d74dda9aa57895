import pytest

from audioflamingo.eval.benchmarks import BENCHMARKS, LayoutError, get
from tests.eval.layouts import write

EXPECTED = {  # benchmark -> (items, references of the first item, options of the first item or None)
    "clotho-v2": (3, 5, None),
    "audiocaps": (3, ["a bell rings", "bells ring"], None),
    "clotho-aqa": (1, ["yes"], None),
    "cochlscene": (2, ["bus"], ["bus", "park"]),
    "nonspeech7k": (2, ["breath"], ["breath", "cough"]),
    "nsynth-instrument": (2, ["guitar"], ["guitar", "keyboard"]),
    "nsynth-quality": (2, ["bright", "percussive"], None),
    "nsynth-source": (2, ["acoustic"], ["acoustic", "electronic"]),
    "urbansound8k": (2, ["gun shot"], ["car horn", "gun shot"]),
    "gtzan": (2, ["blues"], ["blues", "jazz"]),
    "crema-d": (2, ["anger"], ["anger", "sad"]),
    "ravdess": (2, ["angry"], ["angry", "neutral"]),
    "medley-solos-db": (2, ["flute"], ["flute", "violin"]),
    "fsd50k": (2, ["electric guitar", "guitar", "music"], None),
    "musicaqa": (2, ["two"], None),
    "audio-dialogues-audioset": (3, ["A dog barks."], None),
    "audio-dialogues-musiccaps": (3, ["A dog barks."], None),
}


def test_musicaqa_fills_the_question_slots_and_keeps_audio_questions():
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        items = get("musicaqa").loader(write("musicaqa", Path(d)))
    assert [i.instruction for i in items] == [
        "How many instruments are sounding in the video?",
        "Is the piano more rhythmic than the violin?",
    ]
    assert items[1].audio.name == "00000002.wav" and items[1].references == ["yes"]


def test_audio_dialogues_ask_each_turn_after_the_gold_ones(tmp_path):
    items = get("audio-dialogues-audioset").loader(write("audio-dialogues-audioset", tmp_path))
    second = items[1]
    assert second.instruction == "Is it loud?" and second.history == [("What do you hear?", "A dog barks.")]
    assert get("audio-dialogues-musiccaps").paper == {"CIDEr-D": 1.143} and get("musicaqa").paper == {"accuracy": 0.716}


def test_every_paper_benchmark_is_registered():
    # plus the default model's own held-out split (tests/data/test_synth.py reads it)
    assert set(BENCHMARKS) == set(EXPECTED) | {
        f"synth-{t}" for t in ("caption", "aqa", "instrument", "fewshot", "dialogue")
    }


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_loader_reads_the_public_layout(name, tmp_path):
    items = get(name).loader(write(name, tmp_path))
    n, refs, options = EXPECTED[name]
    assert len(items) == n
    assert (len(items[0].references) == refs) if isinstance(refs, int) else items[0].references == refs
    assert items[0].options == options


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_wrong_layout_names_the_expected_file(name, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(LayoutError) as e:
        get(name).loader(tmp_path / "empty")
    assert str(tmp_path / "empty") in str(e.value) and "expected" in str(e.value)


def test_the_seeds_psd50k_row_is_fsd50k_with_its_paper_number():
    b = get("fsd50k")
    assert b.paper == {"approx-F1": 0.697} and set(b.paper) <= set(b.metrics)
