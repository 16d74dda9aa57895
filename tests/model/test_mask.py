"""Block-triangular cross-attention, before and during KV-cached decoding."""
import pytest
import torch

from audioflamingo.model.mask import cross_attention_mask, running_audio_count, sample_index
from tests.conftest import make_model, noise

A = 9  # audio token id in the unit tests below


def test_running_count_and_sample_index():
    ids = torch.tensor([[5, 5, A, 5, 5, A, 5, A, 5]])
    count = running_audio_count(ids, A)
    assert count.tolist() == [[0, 0, 1, 1, 1, 2, 2, 3, 3]]
    assert sample_index(count).tolist() == [[1, 1, 1, 1, 1, 2, 2, 3, 3]]
    # Continuing from a cached prefix gives the same numbers as counting the whole sequence.
    head, tail = ids[:, :6], ids[:, 6:]
    cont = running_audio_count(tail, A, start=running_audio_count(head, A)[:, -1])
    assert cont.tolist() == count[:, 6:].tolist()


def test_block_triangular_mask():
    q = torch.tensor([[1, 2, 3]])
    key_audio = torch.tensor([[0, 0, 1, 1, 2, 2]])
    valid = torch.tensor([[True, True, True, False, True, True]])
    m = cross_attention_mask(q, key_audio, valid)[0].int().tolist()
    assert m == [[1, 1, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0], [1, 1, 1, 0, 1, 1]]


def _three_audio_prompt(model, tok):
    text = ("<s>The task is audio captioning.Here are similar samples.\n"
            "<audio>describe<SEP>a dog<EOC>\n<audio>describe<SEP>rain falls<EOC>\n<audio>describe<SEP>")
    ids = torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])
    clips = model.encode_clips([noise(1.2, seed=1), noise(2.0, seed=2), noise(0.6, seed=3)])
    return ids, clips


@pytest.mark.parametrize("family", ["qwen2", "opt", "gpt2", "llama"])
def test_cached_decoding_matches_full_forward_with_three_audios(family):
    model, tok = make_model(family, gates=0.9)
    ids, clips = _three_audio_prompt(model, tok)
    out = model.generate(ids, torch.ones_like(ids), model.audio_state([clips]), max_new_tokens=12,
                         do_sample=False, min_new_tokens=12, output_logits=True, return_dict_in_generate=True)
    seq = out.sequences
    step_logits = torch.stack(out.logits, dim=1)  # (1, new, vocab), computed step by step with caches
    with torch.no_grad():
        full = model(seq, torch.ones_like(seq), audio=model.audio_state([clips])).logits
    n = ids.shape[1]
    ref = full[:, n - 1 : seq.shape[1] - 1].clone()
    ref[..., model.special.audio] = step_logits[..., model.special.audio]  # suppressed while generating
    torch.testing.assert_close(step_logits, ref, atol=1e-4, rtol=0)


def test_generated_tokens_see_the_last_audio():
    """The official code's bug: after the first generated token only audio 1 was visible."""
    model, tok = make_model("qwen2", gates=0.9)
    ids, clips = _three_audio_prompt(model, tok)
    other = model.encode_clips([noise(0.6, seed=7)])[0]
    kw = dict(max_new_tokens=6, min_new_tokens=6, do_sample=False, output_logits=True, return_dict_in_generate=True)
    a = model.generate(ids, torch.ones_like(ids), model.audio_state([clips]), **kw)
    b = model.generate(ids, torch.ones_like(ids), model.audio_state([clips[:2] + [other]]), **kw)
    # Force identical tokens so only the audio differs, then compare later steps' logits.
    seq = a.sequences
    with torch.no_grad():
        la = model(seq, torch.ones_like(seq), audio=model.audio_state([clips])).logits
        lb = model(seq, torch.ones_like(seq), audio=model.audio_state([clips[:2] + [other]])).logits
    assert (la[0, -3:] - lb[0, -3:]).abs().max() > 1e-3
    # ...and the prefix before the third <audio> does not see audio 3 at all.
    third = (ids[0] == model.special.audio).nonzero()[-1].item()
    torch.testing.assert_close(la[0, :third], lb[0, :third], atol=1e-6, rtol=0)
    assert b.sequences.shape == a.sequences.shape
