"""The Python API: caption, ask, classify and chat over audio files or arrays.

from audioflamingo import AudioFlamingoPipeline
af = AudioFlamingoPipeline.load("path/to/model")
af.caption(["a.wav", "b.flac"])
af.ask("a.wav", "How many dogs bark?")
af.classify("a.wav", ["dog", "cat", "rain"])     # ranked by log-likelihood
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence, Union

import numpy as np
import torch

from audioflamingo.audio.inputs import is_single_clip, load_clip
from audioflamingo.audio.io import load_audio
from audioflamingo.text.labels import unique_labels
from audioflamingo.text.templates import (
    DEFAULT_INSTRUCTIONS,
    IGNORE,
    TASK_DESCRIPTIONS,
    Example,
    Rendered,
    render_dialogue,
    render_interleaved,
    render_single,
    tokenize,
)

# A path, an array at the model's rate, an (array, rate) tuple or an {"array", "sampling_rate"} dict
# (audio/inputs.py); a bare string is one path.
AudioInput = Union[str, Path, np.ndarray, tuple, dict]


@dataclass
class GenerationSettings:
    """Decoding settings; greedy by default so results are reproducible."""

    max_new_tokens: int = 64
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    num_beams: int = 1
    seed: int | None = None

    @classmethod
    def merge(cls, settings: "GenerationSettings | None", options: dict) -> "GenerationSettings":
        """`settings` (or the defaults) with keyword options such as max_new_tokens=32 on top."""
        base = asdict(settings) if settings is not None else {}
        unknown = set(options) - set(cls.__dataclass_fields__)
        if unknown:
            raise TypeError(
                f"unknown decoding option(s) {', '.join(sorted(unknown))}; valid: {', '.join(cls.__dataclass_fields__)}"
            )
        return cls(**{**base, **options})

    def hf_kwargs(self) -> dict:
        kw: dict[str, Any] = dict(
            max_new_tokens=self.max_new_tokens, num_beams=self.num_beams, do_sample=self.do_sample
        )
        if self.do_sample:  # every row draws from its own stream seeded with `seed` (model/sampling.py)
            kw.update(temperature=self.temperature, top_k=self.top_k or None, top_p=self.top_p, seed=self.seed)
        return kw


@dataclass
class ChatSession:
    """Multi-turn dialogue about one clip; the clip is encoded once (cached) for all turns."""

    pipeline: "AudioFlamingoPipeline"
    audio: AudioInput
    turns: list[tuple[str, str]] = field(default_factory=list)

    def send(self, message: str, settings: GenerationSettings | None = None, **decoding) -> str:
        settings = GenerationSettings.merge(settings, decoding)
        history = [*self.turns, (message, None)]
        reply = self.pipeline._generate(
            [render_dialogue(history, self.pipeline.tokenizer, style=self.pipeline.style)], [[self.audio]], settings
        )[0]
        self.turns.append((message, reply))
        return reply

    def reset(self) -> None:
        self.turns.clear()


class AudioFlamingoPipeline:
    def __init__(self, model, tokenizer, batch_size: int = 8):
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size
        self.style = getattr(model.config, "prompt_style", "paper")
        self.model.eval()

    @classmethod
    def load(
        cls,
        model_dir: str | Path | None = None,
        device: str = "cpu",
        dtype: str | None = None,
        lite: bool = False,
        long_audio: str | None = None,
        **kw,
    ) -> "AudioFlamingoPipeline":
        """lite: a lean Qwen2/Llama runtime for greedy decoding (transformers is imported only if
        beams, sampling or streaming are asked for); same outputs, seconds less start-up.
        long_audio: "first" (the model's default: the first max_windows windows) or "spread" (that
        many windows spread over the whole file) for audio longer than the window budget."""
        from audioflamingo.model.flamingo import AudioFlamingo

        if model_dir is None:
            model_dir = default_model_dir()
        from audioflamingo.text.lite_tokenizer import load_tokenizer

        # The model first: its loader names a bad directory in one line (the tokenizer's would not).
        model = AudioFlamingo.from_pretrained(
            model_dir, device=device, lite=lite, dtype=getattr(torch, dtype) if dtype else None
        )
        tokenizer = load_tokenizer(model_dir, lite=lite)
        if long_audio is not None:
            if long_audio not in ("first", "spread"):
                raise ValueError(f"long_audio must be 'first' or 'spread', not {long_audio!r}")
            model.config.window.long_audio = long_audio  # type: ignore[assignment]  # checked just above
        return cls(model, tokenizer, **kw)

    # ------------------------------------------------------------------ inputs
    def _wave(self, audio: AudioInput) -> tuple[np.ndarray, str]:
        from audioflamingo.data.samples import AudioRef

        w = self.model.config.window
        if isinstance(audio, AudioRef):
            return load_audio(audio.path, w.sample_rate, w.max_duration_seconds, audio.offset, audio.duration), str(
                audio.path
            )
        return load_clip(audio, w.sample_rate, w.max_duration_seconds)

    def retriever(self, rag: str | Path):
        """A Retriever over a datastore directory (or a manifest, indexed now) for in-context shots."""
        from audioflamingo.retrieval.embed import ClipEmbedder
        from audioflamingo.retrieval.pool import Retriever

        if not hasattr(self, "_embedder"):
            self._embedder = ClipEmbedder(self.model.encoder, self.model.config.window)
        return Retriever.open(rag, self._embedder)

    def load_all(self, audios: Sequence[AudioInput]) -> list[np.ndarray]:
        """Read and check every input before any model work, so one bad file fails fast."""
        return [self._wave(a)[0] for a in audios]

    def _batch(self, prompts: Sequence[Rendered], audios: Sequence[Sequence[AudioInput]]):
        waves_per_row = [[self._wave(a) for a in row] for row in audios]
        flat = [w for row in waves_per_row for w in row]
        feats = self.model.encode_clips([w for w, _ in flat], [n for _, n in flat])
        it = iter(feats)
        clips = [[next(it) for _ in row] for row in waves_per_row]
        state = self.model.audio_state(clips)
        ids = [tokenize(p, self.tokenizer)[0] for p in prompts]
        input_ids, attn = left_pad(ids, self.model.special.pad, self.model.device)
        return input_ids, attn, state

    def _generate(self, prompts, audios, settings: GenerationSettings | None = None) -> list[str]:
        settings = settings or GenerationSettings()
        input_ids, attn, state = self._batch(prompts, audios)
        out = self.model.generate(input_ids, attn, state, **settings.hf_kwargs())
        return [self.decode(row[input_ids.shape[1] :]) for row in out]

    def decode(self, ids: torch.Tensor) -> str:
        ids = ids.tolist()
        stops = {self.model.special.eoc, self.model.special.eos, self.model.special.pad}
        for i, t in enumerate(ids):
            if t in stops:
                ids = ids[:i]
                break
        return self.tokenizer.decode(ids, skip_special_tokens=True).strip()

    def _chunks(self, items: list, progress: bool, desc: str) -> Iterable[list]:
        from tqdm import tqdm

        bar = tqdm(total=len(items), desc=desc, unit="clip", disable=not progress, leave=False)
        for s in range(0, len(items), self.batch_size):
            chunk = items[s : s + self.batch_size]
            yield chunk
            bar.update(len(chunk))
        bar.close()

    # ------------------------------------------------------------------ tasks
    def caption(
        self,
        audios: Sequence[AudioInput] | AudioInput,
        settings: GenerationSettings | None = None,
        instruction: str = DEFAULT_INSTRUCTIONS["caption"],
        progress: bool = False,
        **decoding,
    ) -> list[str] | str:
        """A list of inputs gives a list of captions; one input (a path, an array, an (array, rate)
        tuple or an {"array", "sampling_rate"} dict) gives one. Decoding options as keywords
        (max_new_tokens=32, do_sample=True, seed=0, ...) override `settings`."""
        single = is_single_clip(audios)
        items: list[Any] = [audios] if single else list(audios)  # type: ignore[arg-type]
        queries = [Query(a, instruction, TASK_DESCRIPTIONS["caption"]) for a in items]
        out = self.answer(queries, settings, progress, **decoding)
        return out[0] if single else out

    def ask(
        self,
        audios: list[AudioInput] | AudioInput,
        question: str,
        settings: GenerationSettings | None = None,
        progress: bool = False,
        **decoding,
    ) -> list[str] | str:
        """A list of inputs gives a list of answers; one input gives one (see `caption`)."""
        single = is_single_clip(audios)
        items: list[Any] = [audios] if single else list(audios)  # type: ignore[arg-type]
        out = self.answer([Query(a, question, TASK_DESCRIPTIONS["aqa"]) for a in items], settings, progress, **decoding)
        return out[0] if single else out

    def answer(
        self, queries: Sequence["Query"], settings: GenerationSettings | None = None, progress: bool = False, **decoding
    ) -> list[str]:
        """General generation: each query has its own task description, instruction, options and
        in-context shots (then the interleaved template is used, each shot with its own audio)."""
        settings = GenerationSettings.merge(settings, decoding)
        out: list[str] = []
        for chunk in self._chunks(list(queries), progress, "generate"):
            prompts = [q.render(self.tokenizer, style=self.style) for q in chunk]
            out += self._generate(prompts, [q.audios() for q in chunk], settings)
        return out

    @torch.no_grad()
    def classify(
        self,
        audio: AudioInput,
        labels: Sequence[str],
        instruction: str = DEFAULT_INSTRUCTIONS["classify"],
        generate: bool = False,
        settings: GenerationSettings | None = None,
        task_description: str = TASK_DESCRIPTIONS["classify"],
        shots: Sequence[tuple[AudioInput, Example]] = (),
        calibrate: bool = False,
        **decoding,
    ) -> list[dict]:
        """Rank `labels` by the model's log-likelihood of `{label}<EOC>` after the Options prompt.

        Returns [{label, logprob, prob}] best first (prob: softmax over the closed set). With
        `generate=True`, the model writes an answer instead and that is returned as the only entry.
        With `calibrate=True` (contextual calibration, Zhao et al. 2021) the ranking score is the
        log-likelihood minus the same prompt's with the query audio replaced by silence of its length,
        so a label the prompt (its examples, its wording) favours whatever the audio wins only on the
        audio; entries then also carry `calibrated`, and prob is the softmax of it.
        """
        settings = GenerationSettings.merge(settings, decoding)
        labels = unique_labels(labels)  # a repeated label would split its probability (merged, warned)
        task = task_description
        if generate:
            q = Query(audio, instruction, task, options=list(labels), shots=list(shots))
            text = self._generate([q.render(self.tokenizer, style=self.style)], [q.audios()], settings)[0]
            return [{"label": text, "logprob": None, "prob": None}]
        scores = self._label_scores(audio, labels, instruction, task, shots)
        if not calibrate:
            probs = torch.softmax(scores, dim=0)
            ranked = sorted(zip(labels, scores.tolist(), probs.tolist()), key=lambda r: -r[1])
            return [{"label": l, "logprob": s, "prob": p} for l, s, p in ranked]
        silence = np.zeros_like(self._wave(audio)[0])
        cal = scores - self._label_scores(silence, labels, instruction, task, shots)
        probs = torch.softmax(cal, dim=0)
        out = [
            {"label": l, "logprob": s, "calibrated": c, "prob": p}
            for l, s, c, p in zip(labels, scores.tolist(), cal.tolist(), probs.tolist())
        ]
        return sorted(out, key=lambda r: -r["calibrated"])

    def _label_scores(self, audio, labels, instruction, task, shots) -> torch.Tensor:
        """log p(`{label}<EOC>` | prompt) for each label, one batch."""
        prompts = [
            Query(audio, instruction, task, options=list(labels), shots=list(shots)).render(
                self.tokenizer, l, self.style
            )
            for l in labels
        ]
        for p in prompts:  # score `{label}<EOC>`; the EOS after it would add the same cost to every label
            if self.tokenizer.eos_token is not None and p.segments[-1][0] == self.tokenizer.eos_token:
                p.segments.pop()
        audios = [a for a, _ in shots] + [audio]
        input_ids, attn, state = self._batch(prompts, [audios] * len(labels))
        rows = [tokenize(p, self.tokenizer) for p in prompts]
        pad = input_ids.shape[1]
        labels_t = torch.full_like(input_ids, IGNORE)
        for i, (ids, lab) in enumerate(rows):
            # score the query's answer only: the examples' answers are targets too (the training
            # template), and counting them would add the same cost to every label's score
            start = max(j for j in range(len(lab)) if lab[j] != IGNORE and (j == 0 or lab[j - 1] == IGNORE))
            labels_t[i, pad - len(ids) + start :] = torch.tensor(lab[start:])
        logits = self.model(input_ids, attn, audio=state).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1)
        tgt = labels_t[:, 1:]
        picked = logp.gather(-1, tgt.clamp_min(0)[..., None])[..., 0] * (tgt != IGNORE)
        return picked.sum(dim=1)

    def chat(self, audio: AudioInput) -> ChatSession:
        self._wave(audio)  # fail now on a bad file, not at the first message
        return ChatSession(self, audio)


@dataclass
class Query:
    """One generation request: audio, instruction, task description, options, in-context shots."""

    audio: AudioInput
    instruction: str
    task_description: str = TASK_DESCRIPTIONS["aqa"]
    options: list[str] | None = None
    shots: list[tuple[AudioInput, Example]] = field(default_factory=list)

    def render(self, tokenizer, output: str | None = None, style: str = "paper") -> Rendered:
        ex = Example(self.instruction, output, self.options)
        if self.shots:
            return render_interleaved(self.task_description, [e for _, e in self.shots], ex, tokenizer)
        return render_single(self.task_description, ex, tokenizer, style)

    def audios(self) -> list:
        return [a for a, _ in self.shots] + [self.audio]


def left_pad(rows: Sequence[Sequence[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r) :] = torch.tensor(r, dtype=torch.long)
        attn[i, width - len(r) :] = 1
    return ids.to(device), attn.to(device)


def default_model_dir() -> Path:
    """The bundled default model, shipped inside the package once trained (see docs)."""
    from audioflamingo.errors import ModelLoadError

    d = Path(__file__).parent / "assets" / "default-model"
    if not (d / "config.json").is_file():
        raise ModelLoadError(
            "no default model is bundled with this version; pass --model DIR "
            "(make one with: audioflamingo init --preset tiny --out DIR)"
        )
    return d


def example_clip() -> Path:
    """A clip from the default model's held-out test split, shipped for the README's first command."""
    return Path(__file__).parent / "assets" / "example.flac"


__all__ = ["AudioFlamingoPipeline", "ChatSession", "GenerationSettings", "Query", "left_pad", "asdict"]
