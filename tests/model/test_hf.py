"""The model as a transformers model: Auto classes, the processor, generate through it, round trips."""

import json
import shutil

import pytest
import torch

from audioflamingo.presets import build
from tests.conftest import noise


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    model, tok = build("tiny", seed=3)
    with torch.no_grad():  # non-zero gates, so the audio changes the output
        for n, p in model.named_parameters():
            if n.endswith("_gate"):
                p.fill_(0.5)
    d = tmp_path_factory.mktemp("af")
    model.save_pretrained(d, tok)  # the core writer (init/train/convert): no processor files
    return d


def test_auto_classes_load_a_model_directory(model_dir):
    import audioflamingo.hf  # noqa: F401  (registers the Auto classes)
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoProcessor

    from audioflamingo.hf import AudioFlamingoForConditionalGeneration, AudioFlamingoHFConfig, AudioFlamingoProcessor
    from audioflamingo.model.flamingo import AudioFlamingo

    assert json.loads((model_dir / "config.json").read_text())["model_type"] == "audioflamingo"
    assert isinstance(AutoConfig.from_pretrained(model_dir), AudioFlamingoHFConfig)
    for auto in (AutoModel, AutoModelForCausalLM):
        assert isinstance(auto.from_pretrained(model_dir), AudioFlamingoForConditionalGeneration)
    processor = AutoProcessor.from_pretrained(model_dir)
    assert isinstance(processor, AudioFlamingoProcessor)
    hf = AutoModelForCausalLM.from_pretrained(model_dir)
    core = AudioFlamingo.from_pretrained(model_dir)
    assert hf.state_dict().keys() == core.state_dict().keys()  # same names: one file format


def test_generate_through_the_processor_equals_the_pipeline(model_dir):
    import audioflamingo.hf  # noqa: F401
    from transformers import AutoModelForCausalLM, AutoProcessor

    from audioflamingo.tasks import AudioFlamingoPipeline

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    processor = AutoProcessor.from_pretrained(model_dir)
    clips = [noise(1.4, seed=1), {"array": noise(3.0, sr=8000, seed=2), "sampling_rate": 8000}]
    inputs = processor(audio=clips, text=["What is it?", "How long is it?"])
    assert inputs["input_features"].shape == (2 + 5, 16000) and inputs["audio_windows"].tolist() == [2, 5]
    out = model.generate(**inputs, max_new_tokens=6)
    pipe = AudioFlamingoPipeline.load(model_dir)
    ids, attn, state = pipe._batch(
        [q.render(pipe.tokenizer) for q in [_query(clips[0], "What is it?"), _query(clips[1], "How long is it?")]],
        [[clips[0]], [clips[1]]],
    )
    assert torch.equal(inputs["input_ids"], ids) and torch.equal(inputs["attention_mask"], attn)
    expected = pipe.model.generate(ids, attn, state, max_new_tokens=6)
    assert torch.equal(out, expected)
    texts = processor.batch_decode(out[:, ids.shape[1] :], skip_special_tokens=True)
    assert [t.strip() for t in texts] == pipe.answer(
        [_query(clips[0], "What is it?"), _query(clips[1], "How long is it?")], max_new_tokens=6
    )
    # the audio matters, clip by clip
    logits = model(**inputs).logits
    logits_other = model(
        **processor(audio=[noise(1.4, seed=5), clips[1]], text=["What is it?", "How long is it?"])
    ).logits
    assert not torch.allclose(logits[0], logits_other[0]) and torch.allclose(logits[1], logits_other[1], atol=1e-5)


def _query(audio, question):
    from audioflamingo.tasks import Query
    from audioflamingo.text.templates import TASK_DESCRIPTIONS

    return Query(audio, question, TASK_DESCRIPTIONS["aqa"])


def test_save_pretrained_round_trips(model_dir, tmp_path):
    import audioflamingo.hf  # noqa: F401
    from transformers import AutoModel, AutoProcessor

    from audioflamingo.model.flamingo import AudioFlamingo

    model, processor = AutoModel.from_pretrained(model_dir), AutoProcessor.from_pretrained(model_dir)
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["architectures"] == ["AudioFlamingoForConditionalGeneration"] and saved["special_token_ids"]["audio"]
    again, processor2 = AutoModel.from_pretrained(tmp_path), AutoProcessor.from_pretrained(tmp_path)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    inputs = processor2(audio=noise(2.0), text=None)  # no text: the caption template
    assert torch.equal(model.generate(**inputs, max_new_tokens=4), again.generate(**inputs, max_new_tokens=4))
    # the transformers-form config.json still loads on the lean runtime, and a config alone builds a model
    assert isinstance(AudioFlamingo.from_pretrained(tmp_path, lite=True), AudioFlamingo)
    fresh = AutoModel.from_config(again.config)
    assert fresh.state_dict().keys() == again.state_dict().keys()


def test_directories_from_before_model_type_still_load(model_dir, tmp_path):
    from audioflamingo.hf import AudioFlamingoForConditionalGeneration, AudioFlamingoProcessor

    old = tmp_path / "old"
    shutil.copytree(model_dir, old)
    cfg = json.loads((old / "config.json").read_text())
    del cfg["model_type"]
    (old / "config.json").write_text(json.dumps(cfg))
    model = AudioFlamingoForConditionalGeneration.from_pretrained(old)
    processor = AudioFlamingoProcessor.from_pretrained(old)
    out = model.generate(**processor(audio=noise(1.0), text="What is it?"), max_new_tokens=3)
    assert out.shape[0] == 1


def test_processor_input_forms_and_errors(model_dir):
    from audioflamingo.hf import AudioFlamingoProcessor

    processor = AudioFlamingoProcessor.from_pretrained(model_dir)
    wav = model_dir / "clip.wav"
    import soundfile as sf

    sf.write(wav, noise(1.0, sr=22050), 22050)
    one = processor(audio=str(wav), text="What is it?")  # a path is one clip, not characters
    assert one["input_ids"].shape[0] == 1 and one["audio_windows"].tolist() == [1]
    mixed = processor(audio=[noise(1.0), noise(1.0)], text=["What is it?", None])  # None: a caption
    decoded = processor.batch_decode(mixed["input_ids"])
    assert "question answering" in decoded[0] and "captioning.<audio>Describe the sound" in decoded[1]
    opts = processor(audio=noise(1.0), text="Which?", task="classify", options=["dog", "cat"])
    assert "- dog" in processor.tokenizer.decode(opts["input_ids"][0])
    with pytest.raises(ValueError, match="2 audio clip"):
        processor(audio=[noise(1.0), noise(1.0)], text=["only one"])


def test_the_bundled_default_model_is_an_auto_model():
    import audioflamingo.hf  # noqa: F401
    from transformers import AutoConfig, AutoProcessor

    from audioflamingo.hf import AudioFlamingoHFConfig, AudioFlamingoProcessor
    from audioflamingo.tasks import default_model_dir

    assert isinstance(AutoConfig.from_pretrained(default_model_dir()), AudioFlamingoHFConfig)
    assert isinstance(AutoProcessor.from_pretrained(default_model_dir()), AudioFlamingoProcessor)


def test_processor_dialogue_uses_the_dialogue_template(model_dir):
    from audioflamingo.hf import AudioFlamingoProcessor

    processor = AudioFlamingoProcessor.from_pretrained(model_dir)
    ids = processor(audio=noise(1.0), text="Hi?", task="dialogue")["input_ids"][0]
    assert "The task is dialogue.<audio>\nuser: Hi?\nassistant: <SEP>" in processor.tokenizer.decode(ids)


def test_transformers_pipeline_answers_as_the_python_api():
    from transformers import pipeline

    import audioflamingo.hf  # noqa: F401  (registers the task)
    from audioflamingo.tasks import AudioFlamingoPipeline, default_model_dir, example_clip

    clip = str(example_clip())
    pipe = pipeline("audio-text-to-text", model=str(default_model_dir()))
    af = AudioFlamingoPipeline.load()
    assert pipe(clip, max_new_tokens=12) == [{"generated_text": af.caption(clip, max_new_tokens=12)}]
    q = "What do you hear first?"
    assert pipe(clip, text=q, max_new_tokens=12)[0]["generated_text"] == af.ask(clip, q, max_new_tokens=12)
