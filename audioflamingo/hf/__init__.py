"""The model as transformers classes, registered with the Auto classes on import.

    import audioflamingo.hf  # registers model_type "audioflamingo"
    from transformers import AutoModelForCausalLM, AutoProcessor
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    processor = AutoProcessor.from_pretrained(model_dir)
    out = model.generate(**processor(audio="clip.wav", text="What do you hear?"), max_new_tokens=32)
    pipeline("audio-text-to-text", model=model_dir)("clip.wav", text="What do you hear?")

Kept out of `import audioflamingo` because importing transformers costs seconds of start-up that the
CLI's lean runtime avoids; `from audioflamingo import AudioFlamingoForConditionalGeneration` (or the
processor) imports this module, hence registers too.
"""

from transformers import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoProcessor,
)

from audioflamingo.config import MODEL_TYPE
from audioflamingo.hf.configuration import AudioFlamingoHFConfig
from audioflamingo.hf.feature_extraction import AudioFlamingoFeatureExtractor
from audioflamingo.hf.modeling import AudioFlamingoForConditionalGeneration, AudioFlamingoPreTrainedModel
from audioflamingo.hf.pipeline import AudioTextToTextPipeline
from audioflamingo.hf.pipeline import register as register_pipeline
from audioflamingo.hf.processing import AudioFlamingoProcessor


def register() -> None:
    """Idempotent. AutoModelForCausalLM because it is a decoder-only LM that writes text; AutoModel and
    AutoModelForSeq2SeqLM because transformers files its audio LMs (Qwen2-Audio, AudioFlamingo3) there."""
    AutoConfig.register(MODEL_TYPE, AudioFlamingoHFConfig, exist_ok=True)
    for auto in (AutoModel, AutoModelForCausalLM, AutoModelForSeq2SeqLM):
        auto.register(AudioFlamingoHFConfig, AudioFlamingoForConditionalGeneration, exist_ok=True)
    AutoFeatureExtractor.register(AudioFlamingoHFConfig, AudioFlamingoFeatureExtractor, exist_ok=True)
    AutoProcessor.register(AudioFlamingoHFConfig, AudioFlamingoProcessor, exist_ok=True)
    register_pipeline()  # transformers.pipeline("audio-text-to-text", model=DIR)


register()

__all__ = [
    "AudioFlamingoHFConfig",
    "AudioFlamingoFeatureExtractor",
    "AudioFlamingoForConditionalGeneration",
    "AudioFlamingoPreTrainedModel",
    "AudioFlamingoProcessor",
    "AudioTextToTextPipeline",
    "register",
]
