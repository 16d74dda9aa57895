"""A stage's `transformation_lr`: its own rate for the transformation layers, 0 freezing them."""

import pytest

from audioflamingo.presets import build
from audioflamingo.train.recipe import StageSpec, TrainSpec
from audioflamingo.train.stages import make_optimizer, set_trainable


def _groups(transformation_lr):
    model, _ = build("tiny", seed=0)
    set_trainable(model, "pretrain")
    stage = StageSpec(name="s", kind="pretrain", steps=10, datasets=[], lr=1e-3, transformation_lr=transformation_lr)
    opt, _ = make_optimizer(model, stage, TrainSpec())
    ids = {id(p) for p in model.transformation.parameters()}
    rates = {g["lr"] for g in opt.param_groups for p in g["params"] if id(p) in ids}
    others = {g["lr"] for g in opt.param_groups for p in g["params"] if id(p) not in ids}
    return model, rates, others


@pytest.mark.parametrize("rate", [None, 2e-5])
def test_transformation_layers_train_at_their_own_rate(rate):
    model, rates, others = _groups(rate)
    assert all(p.requires_grad for p in model.transformation.parameters())
    assert rates == {rate or 1e-3} and others == {1e-3}


def test_zero_freezes_them_for_the_stage():
    model, rates, others = _groups(0.0)
    assert not any(p.requires_grad for p in model.transformation.parameters())
    assert rates == set() and others == {1e-3}
    set_trainable(model, "pretrain")  # the next stage decides again
    assert all(p.requires_grad for p in model.transformation.parameters())
