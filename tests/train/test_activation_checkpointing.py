"""Activation checkpointing: decoder layers and xattn blocks run again in backward (so their
activations were not kept), and the gradients are those of a plain backward."""

import torch

from audioflamingo.presets import build
from audioflamingo.train.sharding import enable_activation_checkpointing
from audioflamingo.train.stages import set_trainable
from audioflamingo.train.step import TrainStep


def _batch(model):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(10, 200, (2, 10), generator=g)
    ids[:, 1] = model.special.audio
    labels = ids.clone()
    labels[:, :2] = -100
    c = model.config.encoder
    clips = [[torch.randn(2, c.tokens_per_window, c.dim, generator=g)] for _ in range(2)]
    return ids, torch.ones_like(ids), labels, clips


def _grads(checkpointed: bool):
    model, _ = build("tiny", seed=0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("_gate"):  # open the gates so the xattn blocks get gradients
                p.fill_(0.5)
    set_trainable(model, "sft")
    calls = {"layers": 0, "xattn": 0}
    modules = [("layers", m) for m in model.lm.model.layers] + [("xattn", m) for m in model.fusion.xattn.values()]
    for kind, module in modules:
        inner = module.forward

        def counted(*a, _inner=inner, _kind=kind, **k):
            calls[_kind] += 1
            return _inner(*a, **k)

        module.forward = counted
    if checkpointed:
        enable_activation_checkpointing(model)
    TrainStep(model)(*_batch(model)).backward()
    return {n: p.grad for n, p in model.named_parameters() if p.grad is not None}, calls


def test_checkpointed_layers_recompute_and_give_the_same_gradients():
    plain, plain_calls = _grads(False)
    ckpt, ckpt_calls = _grads(True)
    assert plain_calls == {"layers": 2, "xattn": 2}
    assert ckpt_calls == {"layers": 4, "xattn": 4}  # each forward once more, in backward
    assert plain.keys() == ckpt.keys() and any(k.startswith("fusion.xattn") for k in plain)
    for name in plain:
        torch.testing.assert_close(ckpt[name], plain[name], rtol=1e-5, atol=1e-7, msg=name)
