"""What each training stage trains (the rest is frozen and kept out of the optimizer).

pretrain: transformation layers + xattn-dense only (LM frozen)
sft, chat: the above and the whole LM
(the audio encoder too, in these three, when its config says it is not frozen: recipe `train_encoder`)
lm: the LM alone, on text only (language-model pre-training of a model built from scratch)
"""
from __future__ import annotations

import torch
from torch import nn


def set_trainable(model, kind: str) -> None:
    model.requires_grad_(False)
    if kind == "lm":
        model.lm.requires_grad_(True)
        return
    model.transformation.requires_grad_(True)
    model.fusion.xattn.requires_grad_(True)
    if model.audio_proj is not None:
        model.audio_proj.requires_grad_(True)
    if kind in ("sft", "chat"):
        model.lm.requires_grad_(True)
    elif kind != "pretrain":
        raise ValueError(f"unknown stage kind {kind!r}")
    if not model.config.encoder.frozen:
        model.encoder.requires_grad_(True)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Decay matrices only; gates, norms, biases and embeddings' 1-D params are not decayed."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (decay if p.ndim >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def count(model: nn.Module) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())
    train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"total": total, "trainable": train}


def lr_lambda(warmup: int, total: int, schedule: str, min_ratio: float):
    import math

    def f(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return f


def make_optimizer(model, stage, train) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    opt = torch.optim.AdamW(param_groups(model, train.weight_decay), lr=stage.lr, betas=tuple(train.betas))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lr_lambda(stage.warmup_steps, stage.steps, stage.schedule, stage.min_lr_ratio))
    return opt, sched
