"""Turn any Hugging Face causal LM into a Flamingo LM without forking or renaming it.

The LM object stays a plain transformers model (its `state_dict` keeps HF names, so its own
pretrained weights load and save as usual). Gated xattn-dense layers live beside it and run as
forward pre-hooks on the chosen decoder layers. A per-call `AudioState` carries the audio keys and
the running sample index to those hooks; one pre-hook on the LM itself advances that index from the
step's `input_ids`, which is what keeps the block-triangular mask right under KV-cached decoding.

Where a step sits in its sequence is tracked by the state itself (how many tokens of each row it has
counted since the pass began), never read from the cache or from generate's keyword names: those
moved between transformers releases (`past_key_values` -> `cache` in 5.24) and a silent miss
restarted the count at every step, the official code's defect. The LM's own `attention_mask`
(a stable forward argument) is used only to check that a step continues what was counted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
from torch import nn

from audioflamingo.errors import AudioFlamingoError
from audioflamingo.model.lite import contiguous_state
from audioflamingo.model.mask import cross_attention_mask, running_audio_count, sample_index
from audioflamingo.model.xattn import GatedXAttnDense

# Where known families keep their decoder blocks; anything else falls back to a search.
_LAYER_PATHS = ("model.layers", "model.decoder.layers", "transformer.h", "gpt_neox.layers", "transformer.blocks")


def _get(obj, path: str):
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def find_decoder_layers(lm: nn.Module) -> nn.ModuleList:
    """The ModuleList of decoder blocks of an HF causal LM (OPT, Qwen2, Llama, GPT-2, ...)."""
    n = getattr(lm.config, "num_hidden_layers", None)
    for path in _LAYER_PATHS:
        layers = _get(lm, path)
        if isinstance(layers, nn.ModuleList) and (n is None or len(layers) == n):
            return layers
    candidates = [m for m in lm.modules() if isinstance(m, nn.ModuleList) and len(m) == n]
    if len(candidates) == 1:
        return candidates[0]
    raise ValueError(f"cannot find the decoder layers of {type(lm).__name__}; supported layouts: {_LAYER_PATHS}")


@dataclass
class AudioState:
    """Audio context of one forward or generate call.

    audio: (B, K, dim_audio) transformed audio tokens of every audio of each row, flattened.
    key_audio: (B, K) 0-based index of the audio each token belongs to; key_valid: (B, K) not padding.
    cache_kv: compute each layer's audio K/V once and reuse them at every decoding step.
    counted: tokens of each row already counted in this pass (rows share a length: padding is left);
    last_count: (B,) running `<audio>` count at the end of those tokens.
    """

    audio: torch.Tensor
    key_audio: torch.Tensor
    key_valid: torch.Tensor
    cache_kv: bool = True
    kv: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    counted: int = 0
    last_count: torch.Tensor | None = None
    query_sample: torch.Tensor | None = None
    step_mask: tuple | None = None  # this LM call's cross-attention mask, built by its first layer

    def begin(self) -> None:
        """A new forward or generate pass: its first LM call starts at position 0 (the audio K/V stay)."""
        self.counted, self.last_count, self.query_sample, self.step_mask = 0, None, None, None

    def advance(self, input_ids: torch.Tensor, audio_token_id: int, mask_width: int | None) -> None:
        """Place one LM call after the tokens counted so far and continue the running count."""
        t = input_ids.shape[1]
        if mask_width is not None and mask_width != self.counted + t:
            raise AudioPlacementError(
                f"cannot place an LM call of {t} tokens with an attention mask over {mask_width}: "
                f"{self.counted} tokens were counted before it in this pass (only a continuation of the "
                "same pass can be conditioned on audio; start a new one with a fresh model call)"
            )
        start = self.last_count if self.counted else None
        count = running_audio_count(input_ids, audio_token_id, start)
        self.last_count = count[:, -1]
        self.query_sample = sample_index(count)
        self.step_mask = None
        self.counted += t

    def expand_to(self, batch: int) -> None:
        """Beam search and multiple return sequences repeat each row; follow them."""
        b = self.audio.shape[0]
        if batch == b:
            return
        if batch % b:
            raise ValueError(f"batch {batch} is not a multiple of the audio batch {b}")
        r = batch // b
        self.audio = self.audio.repeat_interleave(r, 0)
        self.key_audio = self.key_audio.repeat_interleave(r, 0)
        self.key_valid = self.key_valid.repeat_interleave(r, 0)
        self.kv = {i: (k.repeat_interleave(r, 0), v.repeat_interleave(r, 0)) for i, (k, v) in self.kv.items()}
        if self.last_count is not None:
            self.last_count = self.last_count.repeat_interleave(r, 0)


PREFILL_DTYPE_ENV = "AUDIOFLAMINGO_PREFILL_DTYPE"


def _project_kv(block: GatedXAttnDense, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The audio K/V of one layer. `AUDIOFLAMINGO_PREFILL_DTYPE=bfloat16` (opt-in) runs this
    projection, a large compute-bound GEMM, in bf16 on CPU: 2x faster on the EPYC of
    docs/BENCHMARKS.md, 2% relative error in K/V; the results keep the model's dtype."""
    if os.environ.get(PREFILL_DTYPE_ENV) == "bfloat16" and audio.device.type == "cpu" and audio.dtype != torch.bfloat16:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            k, v = block.attn.keys_values(audio)
        return k.to(audio.dtype), v.to(audio.dtype)
    return block.attn.keys_values(audio)


class AudioPlacementError(AudioFlamingoError):
    """An LM call that does not continue the tokens the audio state has counted (e.g. a cache that was
    rolled back or built outside this pass): its sample indices, hence its mask, would be guessed."""


def _mask_width(mask) -> int | None:
    """Columns of a 2-D padding mask (past + current tokens); None for a 4-D or absent mask."""
    return mask.shape[-1] if isinstance(mask, torch.Tensor) and mask.dim() == 2 else None


class FlamingoFusion(nn.Module):
    """Owns the xattn layers and their hooks on one LM."""

    def __init__(self, lm: nn.Module, dim_audio: int, xattn_cfg, audio_token_id: int):
        super().__init__()
        # A plain list, so the LM's layers are not registered (and saved) a second time here.
        self._layers = list(find_decoder_layers(lm))
        dim = lm.config.hidden_size
        every = xattn_cfg.every_n_layers
        self.layer_ids = [i for i in range(len(self._layers)) if i % every == 0]
        self.xattn = nn.ModuleDict({str(i): GatedXAttnDense(dim, dim_audio, xattn_cfg) for i in self.layer_ids})
        self.audio_token_id = audio_token_id
        self.state: AudioState | None = None
        self._handles = []
        self._packed = False
        self._register_state_dict_hook(contiguous_state)
        self.attach(lm)

    def attach(self, lm: nn.Module) -> None:
        """Hook these xattn layers into `lm` (and out of the LM they were on): an LM with the same
        layout, e.g. the transformers twin of a lean inference LM."""
        self.remove_hooks()
        self._layers = list(find_decoder_layers(lm))
        self._handles = [lm.register_forward_pre_hook(self._on_lm_call, with_kwargs=True)]
        for i in self.layer_ids:
            self._handles.append(self._layers[i].register_forward_pre_hook(self._make_layer_hook(i), with_kwargs=True))

    def follow_layout(self, lm: nn.Module) -> None:
        """Once the lean inference LM has laid itself out for decoding, the xattn layers follow."""
        if getattr(lm, "packed", False) and not self._packed:
            for blk in self.xattn.values():
                blk.pack()
            self._packed = True

    def _on_lm_call(self, module, args, kwargs):
        self.follow_layout(module)
        st = self.state
        if st is None:
            return None
        bound = kwargs
        if args:  # positional arguments, named by the LM's own signature
            import inspect

            bound = {**inspect.signature(module.forward).bind_partial(*args).arguments, **kwargs}
        input_ids = bound.get("input_ids")
        if input_ids is None:
            raise ValueError("audio conditioning needs input_ids (the <audio> positions define the mask)")
        st.expand_to(input_ids.shape[0])
        st.advance(input_ids, self.audio_token_id, _mask_width(bound.get("attention_mask")))
        return None

    def _make_layer_hook(self, idx: int):
        block = self.xattn[str(idx)]

        def hook(module, args, kwargs):
            st = self.state
            if args:
                hidden = args[0]
            else:
                hidden = kwargs["hidden_states"]
            if st is None:
                new = block(
                    hidden, *self._empty_kv(hidden), hidden.new_zeros(hidden.shape[:2] + (0,), dtype=torch.bool)
                )
            else:
                k, v = self._kv(idx, block, st)
                if st.step_mask is None:  # the same for every layer of this LM call
                    mask = cross_attention_mask(st.query_sample, st.key_audio, st.key_valid)
                    st.step_mask = (mask, block.attn.prepare(mask))
                mask, prepared = st.step_mask
                new = block(hidden, k, v, mask, prepared)
            if args:
                return (new,) + tuple(args[1:]), kwargs
            kwargs["hidden_states"] = new
            return args, kwargs

        return hook

    def _empty_kv(self, hidden):
        b = hidden.shape[0]
        some = next(iter(self.xattn.values())).attn
        z = hidden.new_zeros(b, some.heads, 0, some.dim_head)
        return z, z

    @staticmethod
    def _kv(idx: int, block: GatedXAttnDense, st: AudioState):
        if st.cache_kv and idx in st.kv:
            return st.kv[idx]
        kv = _project_kv(block, st.audio)
        if st.cache_kv:
            st.kv[idx] = kv
        return kv

    def remove_hooks(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
