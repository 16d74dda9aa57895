"""Gated xattn-dense inside real HF causal LMs of four families."""

import pytest
import torch

from audioflamingo.model.fusion import find_decoder_layers
from tests.conftest import FAMILIES, make_model, noise, tiny_lm


def _prompt(tok, n_audio=1):
    text = "<s>The task is audio captioning." + "".join(
        "<audio>describe it<SEP>a dog barks<EOC>\n" for _ in range(n_audio)
    )
    return torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])


@pytest.mark.parametrize("family", FAMILIES)
def test_zero_gates_leave_the_lm_unchanged(family):
    model, tok = make_model(family, gates=None)  # fresh model: gates start at 0
    bare = tiny_lm(family, len(tok))
    assert all(p.item() == 0 for n, p in model.named_parameters() if n.endswith("_gate"))
    ids = _prompt(tok, 2)
    feats = model.encode_clips([noise(1.5), noise(0.7, seed=1)])
    state = model.audio_state([feats])
    with torch.no_grad():
        ours = model(ids, torch.ones_like(ids), audio=state).logits
        ref = bare(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_hf_weights_and_names_stay_loadable(family):
    model, tok = make_model(family)
    bare = tiny_lm(family, len(tok))
    # The wrapped LM is still the HF class with HF parameter names.
    assert type(model.lm) is type(bare)
    assert set(model.lm.state_dict()) == set(bare.state_dict())
    torch.manual_seed(1)
    other = tiny_lm(family, len(tok))
    for p in other.parameters():
        p.data.normal_()
    model.lm.load_state_dict(other.state_dict(), strict=True)
    # No LM tensor is stored twice under another name by the fusion module.
    assert not any(k.startswith("fusion.") and "xattn" not in k for k in model.state_dict())


@pytest.mark.parametrize("family", FAMILIES)
def test_nonzero_gates_make_output_depend_on_audio(family):
    model, tok = make_model(family, gates=0.8)
    ids = _prompt(tok)
    a = model.audio_state([model.encode_clips([noise(1.0, seed=2)])])
    b = model.audio_state([model.encode_clips([noise(1.0, seed=3)])])
    with torch.no_grad():
        la = model(ids, torch.ones_like(ids), audio=a).logits
        lb = model(ids, torch.ones_like(ids), audio=b).logits
    assert (la - lb).abs().max() > 1e-3


def test_every_nth_layer():
    model, _ = make_model("llama", every=2)
    assert model.fusion.layer_ids == [0, 2]
    assert len(find_decoder_layers(model.lm)) == 3
