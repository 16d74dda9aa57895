"""Contrastive losses for audio-text embeddings (all inputs L2-normalised, `scale` = 1 / temperature).

AF2's loss (REFERENCE.md 6): each audio x_i has M positive captions P(x_i)_m and M x N negatives
N(x_i)_{m,n} (same words, altered temporal order or attribute binding),

    S(j, i)   = sum_m   exp(J(P(x_j)_m) . A(x_i) / tau)
    S_neg(i)  = sum_m,n exp(J(N(x_i)_m,n) . A(x_i) / tau)
    L = -1/B sum_i log( S(i, i) / (S_neg(i) + sum_j S(j, i)) )

computed in log space (logsumexp) so large scales cannot overflow.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce(audio: torch.Tensor, text: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE over a batch of matching (audio_i, text_i) pairs."""
    logits = scale * audio @ text.t()
    target = torch.arange(len(audio), device=audio.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


def af2_loss(
    audio: torch.Tensor,
    positives: torch.Tensor,
    negatives: torch.Tensor | None,
    scale: torch.Tensor,
    pos_mask: torch.Tensor | None = None,
    neg_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """audio (B, D); positives (B, M, D); negatives (B, K, D) with K = M x N, or None.

    pos_mask (B, M) / neg_mask (B, K) mark real entries when samples have fewer of them.
    """
    b, m, _ = positives.shape
    # sim[j, m, i] = J(P(x_j)_m) . A(x_i) / tau
    sim = scale * torch.einsum("jmd,id->jmi", positives, audio)
    if pos_mask is not None:
        sim = sim.masked_fill(~pos_mask[:, :, None], float("-inf"))
    log_s = torch.logsumexp(sim, dim=1)  # (B_j, B_i): log S(j, i)
    denominator_terms = [log_s]  # sum over j of S(j, i)
    if negatives is not None and negatives.shape[1] > 0:
        neg = scale * torch.einsum("ikd,id->ik", negatives, audio)
        if neg_mask is not None:
            neg = neg.masked_fill(~neg_mask, float("-inf"))
        denominator_terms.append(torch.logsumexp(neg, dim=1)[None, :])  # log S_neg(i), as one more "row"
    log_den = torch.logsumexp(torch.cat(denominator_terms, dim=0), dim=0)  # (B_i,)
    return -(log_s.diagonal() - log_den).mean()
