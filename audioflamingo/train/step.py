"""The training step's forward: audio path + LM, returning the summed loss over target tokens.

Its own module (torch only) so that benchmarks can run it without the data pipeline's imports."""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from audioflamingo.text.templates import IGNORE


class TrainStep(nn.Module):
    """What DDP wraps: audio path + LM forward, returning the summed loss over target tokens."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, labels, clips):
        state = self.model.audio_state(clips) if any(clips) else None
        # No KV cache: nothing reads it in training, and a recomputed (checkpointed) layer would grow it.
        logits = self.model(input_ids, attention_mask, audio=state, use_cache=False).logits
        return F.cross_entropy(
            logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(), ignore_index=IGNORE, reduction="sum"
        )
