"""What each training stage trains (the rest is frozen and kept out of the optimizer).

pretrain: transformation layers + xattn-dense only (LM frozen)
sft, chat: the above and the whole LM
The audio encoder joins pretrain/sft/chat when the stage says `train_encoder: true` (or, when the
stage says nothing, when the model config's encoder is not frozen); it gets its own learning rate
and no weight decay, so fine-tuning nudges the CLAP-trained features rather than decaying them.
lm: the LM alone, on text only (language-model pre-training of a model built from scratch)
"""

from __future__ import annotations

import torch
from torch import nn


def set_trainable(model, kind: str, train_encoder: bool | None = None) -> None:
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
    if train_encoder if train_encoder is not None else not model.config.encoder.frozen:
        model.encoder.requires_grad_(True)


def param_groups(
    model: nn.Module, weight_decay: float, encoder_lr: float | None = None, transformation_lr: float | None = None
) -> list[dict]:
    """Decay matrices only; gates, norms, biases and embeddings' 1-D params are not decayed.
    A trained audio encoder is its own group (encoder_lr, no decay); so are the transformation
    layers when `transformation_lr` is given (decay as above)."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    encoder: list[nn.Parameter] = []
    tdecay: list[nn.Parameter] = []
    tno_decay: list[nn.Parameter] = []
    enc = {id(p) for p in model.encoder.parameters()} if hasattr(model, "encoder") else set()
    own = transformation_lr is not None and hasattr(model, "transformation")
    tra = {id(p) for p in model.transformation.parameters()} if own else set()
    for _, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if id(p) in enc:
            encoder.append(p)
        elif id(p) in tra:
            (tdecay if p.ndim >= 2 else tno_decay).append(p)
        else:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if encoder:
        groups.append({"params": encoder, "weight_decay": 0.0, **({"lr": encoder_lr} if encoder_lr else {})})
    if tdecay or tno_decay:
        groups += [
            {"params": tdecay, "weight_decay": weight_decay, "lr": transformation_lr},
            {"params": tno_decay, "weight_decay": 0.0, "lr": transformation_lr},
        ]
    return groups


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
    if stage.transformation_lr == 0:  # frozen in this stage: no gradients computed for it either
        model.transformation.requires_grad_(False)
    opt = torch.optim.AdamW(
        param_groups(model, train.weight_decay, stage.encoder_lr, stage.transformation_lr or None),
        lr=stage.lr,
        betas=tuple(train.betas),
    )
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lr_lambda(stage.warmup_steps, stage.steps, stage.schedule, stage.min_lr_ratio)
    )
    return opt, sched
