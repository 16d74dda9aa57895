"""`transformers.pipeline("audio-text-to-text", model=DIR)`: caption or answer questions about audio.

transformers has no audio-in, text-out task of its own (its audio LMs are driven through their
processors), so this one is registered under that name when `audioflamingo.hf` is imported:

    import audioflamingo.hf
    from transformers import pipeline
    pipe = pipeline("audio-text-to-text", model="path/to/model")
    pipe("clip.wav")                                   # [{"generated_text": "..."}] a caption
    pipe("clip.wav", text="How many dogs bark?", max_new_tokens=16)
"""

from __future__ import annotations

from transformers import AutoModelForCausalLM, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY

TASK = "audio-text-to-text"


class AudioTextToTextPipeline(Pipeline):
    """One clip (path, array, (array, rate) or {"array", "sampling_rate"}) per call; `text` is the
    instruction (none: a caption); decoding keywords go to `generate`."""

    _load_processor = True
    _load_tokenizer = True
    _load_feature_extractor = False
    _load_image_processor = False

    def _sanitize_parameters(self, text=None, task=None, options=None, **generate_kwargs):
        pre = {k: v for k, v in (("text", text), ("task", task), ("options", options)) if v is not None}
        return pre, generate_kwargs, {}

    def preprocess(self, audio, text=None, task=None, options=None):
        return self.processor(audio=audio, text=text, task=task, options=options)

    def _forward(self, model_inputs, **generate_kwargs):
        ids = self.model.generate(**model_inputs, **generate_kwargs)
        return {"new_tokens": ids[:, model_inputs["input_ids"].shape[1] :]}

    def postprocess(self, model_outputs):
        tok, core = self.processor.tokenizer, self.model.core.special
        out = []
        for row in model_outputs["new_tokens"].tolist():
            stop = next((i for i, t in enumerate(row) if t in (core.eoc, core.eos, core.pad)), len(row))
            out.append({"generated_text": tok.decode(row[:stop], skip_special_tokens=True).strip()})
        return out


def register() -> None:
    PIPELINE_REGISTRY.register_pipeline(TASK, pipeline_class=AudioTextToTextPipeline, pt_model=AutoModelForCausalLM)
