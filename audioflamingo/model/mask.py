"""The block-triangular cross-attention mask of interleaved samples (paper section 4).

A text token belongs to sample j when j `<audio>` tokens occur at or before it (tokens before the
first `<audio>`, such as the task description, belong to sample 1). Text of sample j may attend to
the audio tokens of audios 1..j, never to padded windows.

The sample index is a running count, so during KV-cached decoding only the count at the end of the
cached prefix needs to be carried: new tokens continue it. (The official code rebuilt the mask from
the one-token window during decoding, so every generated token saw only the first audio.)
"""

from __future__ import annotations

import torch


def running_audio_count(
    input_ids: torch.Tensor, audio_token_id: int, start: torch.Tensor | None = None
) -> torch.Tensor:
    """(B, T) number of `<audio>` tokens at or before each position, continuing from `start` (B,)."""
    count = (input_ids == audio_token_id).long().cumsum(dim=1)
    if start is not None:
        count = count + start[:, None].to(count.device)
    return count


def sample_index(count: torch.Tensor) -> torch.Tensor:
    """Running `<audio>` count -> 1-based sample index (text before the first audio is sample 1)."""
    return count.clamp_min(1)


def cross_attention_mask(query_sample: torch.Tensor, key_audio: torch.Tensor, key_valid: torch.Tensor) -> torch.Tensor:
    """(B, Q) sample index, (B, K) 0-based audio index per key, (B, K) validity -> (B, Q, K) bool."""
    return key_valid[:, None, :] & (key_audio[:, None, :] < query_sample[:, :, None])
