"""`AudioFlamingoProcessor`: the feature extractor (windows), the tokenizer and the paper's templates.

    processor = AutoProcessor.from_pretrained(model_dir)
    inputs = processor(audio="clip.wav", text="What do you hear first?")
    out = model.generate(**inputs, max_new_tokens=32)
    processor.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)

`text` is the instruction (a question, or nothing for a caption); the processor renders it with the
template the model was trained on (text/templates.py: task description, `<audio>`, instruction,
options, `<SEP>`), so the ids equal those the Python API and the CLI feed the model. A text that
already holds `<audio>` is taken as a finished prompt and only tokenised.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import torch
from transformers import AutoTokenizer
from transformers.feature_extraction_utils import BatchFeature
from transformers.processing_utils import ProcessorMixin

from audioflamingo.audio.inputs import as_clip_list
from audioflamingo.hf.feature_extraction import FEATURE_NAME, AudioFlamingoFeatureExtractor
from audioflamingo.text.templates import (
    DEFAULT_INSTRUCTIONS,
    TASK_DESCRIPTIONS,
    Example,
    Rendered,
    render_dialogue,
    render_single,
    tokenize,
)

PROCESSOR_NAME = "processor_config.json"


class AudioFlamingoProcessor(ProcessorMixin):
    """prompt_style: "paper" (the paper's templates, models trained here) or "af1" (the official AF1
    inference prompts, for converted checkpoints); taken from the model's config.json on loading."""

    def __init__(
        self,
        feature_extractor=None,
        tokenizer=None,
        prompt_style: str = "paper",
        audio_token: str = "<audio>",
        **kwargs,
    ):
        self.prompt_style, self.audio_token = prompt_style, audio_token
        super().__init__(feature_extractor, tokenizer, **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """Model directories written before processors existed (no processor_config.json) are
        assembled from their config.json and tokenizer files."""
        d = Path(pretrained_model_name_or_path)
        if (
            d.is_dir()
            and not (d / PROCESSOR_NAME).is_file()
            and not (d / FEATURE_NAME).is_file()
            and (d / "config.json").is_file()
        ):
            cfg = json.loads((d / "config.json").read_text())
            return cls(
                AudioFlamingoFeatureExtractor.from_pretrained(d),
                AutoTokenizer.from_pretrained(str(d)),
                prompt_style=cfg.get("prompt_style", "paper"),
                audio_token=cfg.get("audio_token", "<audio>"),
            )
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    def __call__(
        self,
        audio: Any = None,
        text: str | Sequence[str] | None = None,
        task: str | None = None,
        options: Sequence[str] | None = None,
        sampling_rate: int | None = None,
        return_tensors: str = "pt",
        **kwargs,
    ) -> BatchFeature:
        """audio: one clip or a list (paths, arrays, (array, rate) tuples, {"array", "sampling_rate"}
        dicts); text: one instruction per clip (a single string is used for every clip; None: the
        caption instruction); task: "caption", "aqa", "classify" or "dialogue" (default, per clip:
        caption without text, aqa with it); options: a closed label set, listed in the prompt."""
        if return_tensors != "pt":
            raise ValueError(f"{type(self).__name__} returns PyTorch tensors only (return_tensors='pt')")
        if audio is None:
            raise ValueError("AudioFlamingoProcessor needs audio: every prompt is conditioned on a clip")
        clips = as_clip_list(audio)
        texts = [text] * len(clips) if text is None or isinstance(text, str) else list(text)
        if task is not None and task not in TASK_DESCRIPTIONS:
            raise ValueError(f"unknown task {task!r}; choose from {', '.join(TASK_DESCRIPTIONS)}")
        rows = [self._render(t, task or ("caption" if t is None else "aqa"), options) for t in texts]
        n_audio = sum(self.tokenizer.convert_tokens_to_ids(self.audio_token) == i for ids in rows for i in ids)
        if n_audio != len(clips):
            raise ValueError(
                f"{len(clips)} audio clip(s) for {n_audio} {self.audio_token} token(s) in the prompts; "
                "give one clip per prompt (or one per audio token of a finished prompt)"
            )
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):  # left padding: generation continues every row at its end
            ids[i, width - len(r) :] = torch.tensor(r, dtype=torch.long)
            mask[i, width - len(r) :] = 1
        features = self.feature_extractor(clips, sampling_rate=sampling_rate)
        return BatchFeature({"input_ids": ids, "attention_mask": mask, **features})

    def _render(self, text: str | None, task: str, options: Sequence[str] | None) -> list[int]:
        if text is not None and self.audio_token in text:
            return self.tokenizer(text, add_special_tokens=False)["input_ids"]
        instruction = text if text is not None else DEFAULT_INSTRUCTIONS.get(task, DEFAULT_INSTRUCTIONS["caption"])
        if task == "dialogue":  # one user turn, the assistant's to write
            return tokenize(
                render_dialogue([(instruction, None)], self.tokenizer, style=self.prompt_style), self.tokenizer
            )[0]
        rendered: Rendered = render_single(
            TASK_DESCRIPTIONS[task], Example(instruction, None, options), self.tokenizer, self.prompt_style
        )
        return tokenize(rendered, self.tokenizer)[0]

    @property
    def model_input_names(self) -> list[str]:
        return ["input_ids", "attention_mask", "input_features", "audio_windows"]
