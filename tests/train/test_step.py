"""The training step computes logits only where some row has a target (`logits_to_keep`, a public
argument of transformers' causal LMs): same loss and gradients as over every position."""

import pytest
import torch
import torch.nn.functional as F

from audioflamingo.presets import build
from audioflamingo.train.stages import set_trainable
from audioflamingo.train.step import TrainStep


def _batch(model):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(10, 200, (3, 14), generator=g)
    ids[:, 3] = model.special.audio
    mask = torch.ones_like(ids)
    mask[2, :4] = 0  # left padding
    labels = torch.full_like(ids, -100)
    labels[0, 8:] = ids[0, 8:]  # targets at different positions in each row
    labels[1, 11:13] = ids[1, 11:13]
    labels[2, 6:9] = ids[2, 6:9]
    c = model.config.encoder
    clips = [[torch.randn(2, c.tokens_per_window, c.dim, generator=g)] for _ in range(3)]
    return ids, mask, labels, clips


def _full_loss(model, ids, mask, labels, clips):
    logits = model(ids, mask, audio=model.audio_state(clips), use_cache=False).logits
    return F.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100, reduction="sum")


@pytest.fixture()
def model():
    model, _ = build("tiny", seed=0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("_gate"):  # open the gates so the xattn blocks matter
                p.fill_(0.5)
    set_trainable(model, "sft")
    return model


def _grads(model):
    out = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return out


def test_loss_and_gradients_equal_the_full_logits(model):
    step = TrainStep(model)
    assert step.select, "transformers' LM no longer takes logits_to_keep: the step computes every logit"
    batch = _batch(model)
    selected = step(*batch)
    selected.backward()
    g_sel = _grads(model)
    full = _full_loss(model, *batch)
    full.backward()
    g_full = _grads(model)
    torch.testing.assert_close(selected, full, rtol=1e-5, atol=1e-5)
    assert g_sel.keys() == g_full.keys() and any(k.startswith("fusion.xattn") for k in g_sel)
    for name in g_full:
        torch.testing.assert_close(g_sel[name], g_full[name], rtol=1e-4, atol=1e-6, msg=name)


def test_the_output_projection_sees_only_target_positions(model):
    seen = []
    head = model.lm.get_output_embeddings()
    handle = head.register_forward_hook(lambda m, a, out: seen.append(a[0].shape[1]))
    try:
        TrainStep(model)(*_batch(model))
    finally:
        handle.remove()
    assert seen == [8]  # positions 5..12: the union of the three rows' target positions (of 13)


def test_no_targets_gives_zero_loss_and_a_whole_graph(model):
    ids, mask, labels, clips = _batch(model)
    loss = TrainStep(model)(ids, mask, torch.full_like(labels, -100), clips)
    assert float(loss.detach()) == 0.0
    loss.backward()  # DDP needs the backward to run even for a stand-in row
