"""The training step's forward: audio path + LM, returning the summed loss over target tokens.

Its own module (torch only) so that benchmarks can run it without the data pipeline's imports."""

from __future__ import annotations

import inspect


import torch.nn.functional as F
from torch import nn

from audioflamingo.text.templates import IGNORE


def accepts_logits_to_keep(lm) -> bool:
    """transformers' causal LMs take `logits_to_keep` (an int, or a 1-D tensor of sequence indices);
    other LMs get the full logits."""
    return "logits_to_keep" in inspect.signature(lm.forward).parameters


class TrainStep(nn.Module):
    """What DDP wraps: audio path + LM forward, returning the summed loss over target tokens.

    Logits are computed only at the positions where some row has a target: the output projection over
    a 49k vocabulary at every position was 40% of a v2 step (docs/TRAINING.md), and targets are a
    fraction of each sequence. The loss is the same sum (tests/train/test_step.py)."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.select = accepts_logits_to_keep(model.lm)

    def forward(self, input_ids, attention_mask, labels, clips):
        state = self.model.audio_state(clips) if any(clips) else None
        targets = labels[:, 1:]
        kw = {}
        if self.select:
            keep = (targets != IGNORE).any(0).nonzero().flatten()
            if not len(keep):  # a stand-in row without targets: one ignored position keeps the graph whole
                keep = keep.new_zeros(1)
            kw["logits_to_keep"] = keep
            targets = targets[:, keep]
        # No KV cache: nothing reads it in training, and a recomputed (checkpointed) layer would grow it.
        logits = self.model(input_ids, attention_mask, audio=state, use_cache=False, **kw).logits
        if not self.select:
            logits = logits[:, :-1]
        return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE, reduction="sum")
