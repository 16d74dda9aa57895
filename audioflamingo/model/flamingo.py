"""AudioFlamingo: audio encoder -> transformation layers -> gated xattn-dense inside an HF causal LM."""

from __future__ import annotations

import contextlib
import hashlib
from collections import OrderedDict
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from audioflamingo.audio.encoders import AudioEncoder, build_encoder
from audioflamingo.audio.windows import make_windows
from audioflamingo.config import AudioFlamingoConfig
from audioflamingo.errors import ModelLoadError
from audioflamingo.model.fusion import AudioState, FlamingoFusion
from audioflamingo.model.transformation import RepresentationTransformation
from audioflamingo.text.tokenizer import SpecialIds

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


class ClipCache:
    """Encoder outputs per clip, keyed by the clip's samples: a dialogue never re-encodes its audio."""

    def __init__(self, maxsize: int = 128):
        self.maxsize = maxsize
        self._d: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.hits = self.misses = 0

    @staticmethod
    def key(wave: np.ndarray) -> str:
        return hashlib.sha1(np.ascontiguousarray(wave, dtype=np.float32).tobytes()).hexdigest()

    def get(self, key: str):
        if key in self._d:
            self._d.move_to_end(key)
            self.hits += 1
            return self._d[key]
        self.misses += 1
        return None

    def put(self, key: str, value: torch.Tensor) -> None:
        self._d[key] = value
        self._d.move_to_end(key)
        while len(self._d) > self.maxsize:
            self._d.popitem(last=False)

    def clear(self) -> None:
        self._d.clear()


class AudioFlamingo(nn.Module):
    def __init__(
        self, config: AudioFlamingoConfig, lm: nn.Module, special: SpecialIds, encoder: AudioEncoder | None = None
    ):
        super().__init__()
        self.config, self.special = config, special
        self.lm = lm
        self.encoder = encoder if encoder is not None else build_encoder(config.encoder, config.window)
        tdim = config.transformation.dim
        # Only when the encoder's width differs from the transformation's (not the case in AF1/AF2).
        self.audio_proj = nn.Linear(config.encoder.dim, tdim) if config.encoder.dim != tdim else None
        self.transformation = RepresentationTransformation(config.transformation)
        self.fusion = FlamingoFusion(lm, tdim, config.xattn, special.audio)
        self.clip_cache = ClipCache()

    # ----------------------------------------------------------------------------- audio path
    @property
    def device(self) -> torch.device:
        return next(self.lm.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.transformation.parameters()).dtype

    def encode_clips(
        self, waves: Sequence[np.ndarray], names: Sequence[str] | None = None, chunk: int = 64
    ) -> list[torch.Tensor]:
        """Encoder features (windows, tokens, dim) per clip, all windows batched together, cached."""
        names = names or [f"<clip {i}>" for i in range(len(waves))]
        w = self.config.window
        # The window geometry is part of the key: a curriculum stage that changes it must re-encode.
        geometry = f":{w.window_samples}:{w.hop_samples}:{w.max_windows}:{w.long_audio}"
        keys = [ClipCache.key(x) + geometry for x in waves]
        # An encoder being trained changes every step, so its features are never reused.
        training_encoder = self.training and any(p.requires_grad for p in self.encoder.parameters())
        cacheable = not training_encoder
        out: list[torch.Tensor | None] = [self.clip_cache.get(k) if cacheable else None for k in keys]
        todo = [i for i, o in enumerate(out) if o is None]
        if todo:
            windows = [make_windows(waves[i], self.config.window, names[i]).frames for i in todo]
            frames = torch.from_numpy(np.concatenate(windows))
            feats = []
            grad = torch.enable_grad() if training_encoder else torch.no_grad()
            with grad:
                for s in range(0, len(frames), chunk):
                    feats.append(self.encoder(frames[s : s + chunk].to(self.device)))
            feats_t = torch.cat(feats)
            pos = 0
            for i, win in zip(todo, windows):
                f = feats_t[pos : pos + len(win)]
                pos += len(win)
                out[i] = f
                if cacheable:
                    self.clip_cache.put(keys[i], f.detach())
        return out  # type: ignore[return-value]

    def audio_state(self, clips: Sequence[Sequence[torch.Tensor]], cache_kv: bool = True) -> AudioState:
        """Pack per-row lists of clip features into padded tensors, run the transformation layers.

        clips[b][j] is the encoder output (windows, tokens, dim) of the j-th audio of row b.
        """
        if self.config.transformation.padded_windows == "official":
            return self._official_audio_state(clips, cache_kv)
        return self._pack(clips, cache_kv)

    def _official_audio_state(self, clips, cache_kv: bool) -> AudioState:
        """AF1's own view of a short clip: filled to `max_windows` with encoded silence that the
        transformation attends to and cross-attention does not (TransformationConfig.padded_windows)."""
        w = self.config.window
        key = (self.device, self.dtype)
        if getattr(self, "_silence", (None, None))[0] != key:
            with torch.no_grad():
                silent = self.encoder(torch.zeros(1, w.window_samples, device=self.device))
            self._silence = (key, silent.detach())
        silent = self._silence[1]
        real = [[c.shape[0] for c in row] for row in clips]
        filled = [
            [
                torch.cat([c, silent.to(c).expand(w.max_windows - len(c), *c.shape[1:])])
                if len(c) < w.max_windows
                else c
                for c in row
            ]
            for row in clips
        ]
        return self._pack(filled, cache_kv, real_windows=real)

    def _pack(self, clips, cache_kv: bool, real_windows: list[list[int]] | None = None) -> AudioState:
        b = len(clips)
        j_max = max(1, max(len(row) for row in clips))
        t = self.config.encoder.tokens_per_window
        l_max = max([c.shape[0] * c.shape[1] for row in clips for c in row] + [t])
        d_in = self.config.encoder.dim
        dev, dt = self.device, self.dtype
        x = torch.zeros(b * j_max, l_max, d_in, device=dev, dtype=dt)
        valid = torch.zeros(b * j_max, l_max, dtype=torch.bool, device=dev)
        filled = torch.zeros_like(valid)
        for r, row in enumerate(clips):
            for j, c in enumerate(row):
                flat = c.reshape(-1, c.shape[-1])
                x[r * j_max + j, : len(flat)] = flat.to(dev, dt)
                filled[r * j_max + j, : len(flat)] = True
                n_real = len(flat) if real_windows is None else real_windows[r][j] * c.shape[1]
                valid[r * j_max + j, :n_real] = True
        present = valid.any(dim=1)
        y = torch.zeros(b * j_max, l_max, self.config.transformation.dim, device=dev, dtype=dt)
        if present.any():
            xp = x[present]
            if self.audio_proj is not None:
                xp = self.audio_proj(xp)
            y[present] = self.transformation(xp, valid[present], filled[present] if real_windows else None)
        audio = y.view(b, j_max * l_max, -1)
        key_audio = torch.arange(j_max, device=dev).repeat_interleave(l_max)[None].expand(b, -1)
        return AudioState(
            audio=audio, key_audio=key_audio.contiguous(), key_valid=valid.view(b, j_max * l_max), cache_kv=cache_kv
        )

    @contextlib.contextmanager
    def conditioned(self, state: AudioState | None):
        """One pass (a forward, or a whole generation) conditioned on `state`."""
        if state is not None:
            state.begin()
        self.fusion.state = state
        try:
            yield
        finally:
            self.fusion.state = None

    # ----------------------------------------------------------------------------- text path
    def forward(self, input_ids, attention_mask=None, audio: AudioState | None = None, labels=None, **kw):
        """Teacher-forced forward; left padding gets the same positions as in `generate`."""
        if attention_mask is not None and "position_ids" not in kw and _accepts_position_ids(self.lm):
            kw["position_ids"] = (attention_mask.long().cumsum(-1) - 1).clamp_min(0)
        with self.conditioned(audio):
            return self.lm(input_ids=input_ids, attention_mask=attention_mask, labels=labels, **kw)

    @torch.no_grad()
    def generate(self, input_ids, attention_mask, audio: AudioState | None, **kw):
        """HF generation (greedy, sampling, beams) with audio K/V computed once; stops at <EOC>/EOS.

        Sampling (do_sample=True, with temperature/top_k/top_p and `seed`: an int, one per row, or
        None) runs as seeded processors before greedy argmax (model/sampling.py): each row has its own
        random stream, so a row's sample does not depend on its batch or on the runtime.

        cache_implementation="static" on the lean runtime decodes on a preallocated cache with fixed
        shapes (model/static_decode.py), each step one CUDA graph replay on a GPU (`cuda_graph=False`
        turns that off); on the transformers LM it is passed to transformers' generate."""
        eos = [self.special.eoc] + ([self.special.eos] if self.special.eos is not None else [])
        kw.setdefault("eos_token_id", eos)
        kw.setdefault("pad_token_id", self.special.pad)
        sample = bool(kw.pop("do_sample", False))
        warp = {k: kw.pop(k, None) for k in ("temperature", "top_k", "top_p")}
        seed = kw.pop("seed", None)
        # An <audio> token the model wrote itself would have no audio behind it, so it is banned.
        # Appended after any processor of the caller's, so nothing can undo it.
        processors = list(kw.pop("logits_processor", None) or []) + [_BanToken(self.special.audio)]
        if sample:
            if int(kw.get("num_beams") or 1) > 1:
                raise ValueError("sampling and beam search cannot be combined: choose one")
            from audioflamingo.model.sampling import sampling_processors

            processors += sampling_processors(input_ids.shape[0], seed=seed, **warp)
        kw["do_sample"] = False
        static = kw.get("cache_implementation") == "static"
        cuda_graph = kw.pop("cuda_graph", None)
        compile_step = kw.pop("compile_step", False)
        if static and self.is_lite and _lite_can_decode({k: v for k, v in kw.items() if k != "cache_implementation"}):
            from audioflamingo.model.static_decode import generate_static

            kw.pop("cache_implementation")
            kw.pop("num_beams", None)
            kw.pop("do_sample", None)
            return generate_static(
                self,
                input_ids,
                attention_mask,
                audio,
                logits_processor=processors,
                graph=cuda_graph,
                compile_step=compile_step,
                **kw,
            )
        if self.is_lite and not _lite_can_decode(kw):
            self.use_hf_lm()
        if not self.is_lite:
            from transformers import LogitsProcessorList

            processors = LogitsProcessorList(processors)
        kw["logits_processor"] = processors
        with self.conditioned(audio):
            return self.lm.generate(input_ids=input_ids, attention_mask=attention_mask, **kw)

    @property
    def is_lite(self) -> bool:
        from audioflamingo.model.lite import LiteCausalLM

        return isinstance(self.lm, LiteCausalLM)

    def use_hf_lm(self) -> None:
        """Swap the lean inference LM for the transformers model holding the same tensors (beams,
        sampling, streaming, training). A no-op when the LM already is a transformers model."""
        if not self.is_lite:
            return
        from transformers import AutoConfig, AutoModelForCausalLM

        lm_cfg = self.lm.config.to_dict()
        hf = AutoModelForCausalLM.from_config(AutoConfig.for_model(lm_cfg.pop("model_type"), **lm_cfg))
        hf.load_state_dict(self.lm.state_dict(), strict=True)
        p = next(self.lm.parameters())
        hf.to(p.device, p.dtype).eval().requires_grad_(False)
        self.fusion.attach(hf)
        self.lm = hf

    # ----------------------------------------------------------------------------- persistence
    def trainable_modules(self) -> dict[str, nn.Module]:
        return {"transformation": self.transformation, "xattn": self.fusion.xattn}

    def save_pretrained(self, directory: str | Path, tokenizer=None) -> None:
        from safetensors.torch import save_model

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.config.lm = self.lm.config.to_dict()
        # Where this machine loaded the LM from (a base part's cache entry, a GGUF file): meaningless
        # elsewhere, and a shipped config would carry the builder's home directory.
        self.config.lm["_name_or_path"] = ""
        self.config.save(d / CONFIG_NAME)
        tmp = d / (WEIGHTS_NAME + ".tmp")
        if self.config.base_parts:  # their tensors come from the base-part cache, never from here
            from safetensors.torch import save_file

            from audioflamingo.base_parts import trained_state

            save_file(
                trained_state(self, self.config.base_parts),
                str(tmp),
                metadata={"format": "pt", "library": "audioflamingo"},
            )
        else:
            save_model(self, str(tmp), metadata={"format": "pt", "library": "audioflamingo"})
        tmp.replace(d / WEIGHTS_NAME)
        if tokenizer is not None:
            tokenizer.save_pretrained(str(d))

    @classmethod
    def from_pretrained(
        cls,
        directory: str | Path,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | None = None,
        lite: bool = False,
        positions: str | None = None,
        tokenizer=None,
    ) -> "AudioFlamingo":
        """Load a directory written by `save_pretrained`; returns the model (strict). The tokenizer has
        its own loader (`text.lite_tokenizer.load_tokenizer`); pass the one you loaded as `tokenizer`
        to spare reading it twice (the model needs its special-token ids).

        lite: run Qwen2/Llama LMs on `model.lite` (same tensors and outputs, transformers not
        imported: seconds less start-up); other LMs load as transformers models regardless.
        positions: switch the transformation layers' positions before fine-tuning (e.g. rotary ->
        rotary+sinusoidal); the sinusoid table is derived, not learnt, so only it may be absent."""
        from safetensors import SafetensorError
        from safetensors.torch import load_model

        from audioflamingo.model.checks import build_lm, check_model_dir, check_tokenizer
        from audioflamingo.model.no_init import no_random_init
        from audioflamingo.text.lite_tokenizer import load_tokenizer
        from audioflamingo.text.tokenizer import special_ids

        d = Path(directory)
        # A broken folder (config types, weights header, tokenizer files) is one line naming the file.
        cfg = check_model_dir(d, WEIGHTS_NAME, CONFIG_NAME)
        derived = set()
        if positions and positions != cfg.transformation.positions:
            cfg.transformation.positions = positions  # type: ignore[assignment]  # checked by the config loader
            derived = {"transformation.position_enc.pos_table"}
        if tokenizer is None:
            tokenizer = load_tokenizer(d, lite=lite)
        check_tokenizer(tokenizer, d)
        special = special_ids(tokenizer, cfg.audio_token, cfg.sep_token, cfg.eoc_token)
        with no_random_init():  # the strict load below overwrites every parameter
            model = cls(cfg, build_lm(cfg.lm, lite, d / CONFIG_NAME), special)
        if cfg.base_parts:  # pretrained parts from installed packages (base_parts/): not in the weights file
            from audioflamingo.base_parts import load_into_model

            derived = set(derived) | load_into_model(model, cfg.base_parts, d / CONFIG_NAME)
        try:
            missing, unexpected = load_model(model, str(d / WEIGHTS_NAME), strict=not derived)
        except RuntimeError as err:
            raise ModelLoadError(
                f"{d / WEIGHTS_NAME}: weights do not match config ({str(err).splitlines()[0]})"
            ) from None
        except SafetensorError as err:  # the header was checked; this is damage further in
            raise ModelLoadError(f"{d / WEIGHTS_NAME}: corrupt weights file ({str(err).splitlines()[0]})") from None
        if set(missing) - derived or set(unexpected) - derived:
            extra = sorted((set(missing) | set(unexpected)) - derived)
            raise ModelLoadError(
                f"{d / WEIGHTS_NAME}: weights do not match config ({len(extra)} keys, e.g. {extra[0]})"
            )
        model.eval()
        model.requires_grad_(False)  # inference; training stages choose what to train (set_trainable)
        if dtype is not None:
            model.to(dtype)
        model.to(device)
        if hasattr(model.lm, "use_fp16_weights"):  # the lean LM, fp32 on CPU (model/fp16_weights.py)
            from audioflamingo.model.fp16_weights import wanted

            model.lm.use_fp16_weights(wanted(cfg.cpu_lm_weights) == "float16")
        return model


class _BanToken:
    def __init__(self, token_id: int):
        self.token_id = token_id

    def __call__(self, input_ids, scores):
        scores[:, self.token_id] = -float("inf")
        return scores


def _lite_can_decode(kw: dict) -> bool:
    """Greedy decoding without a streamer is all `LiteCausalLM.generate` does (sampling is greedy
    decoding over seeded processors by then)."""
    simple = {"max_new_tokens", "eos_token_id", "pad_token_id", "logits_processor", "num_beams", "do_sample"}
    return set(kw) <= simple and int(kw.get("num_beams") or 1) == 1 and not kw.get("do_sample")


def _accepts_position_ids(lm: nn.Module) -> bool:
    import inspect

    return "position_ids" in inspect.signature(lm.forward).parameters
