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
    text = (
        "<s>The task is audio captioning.Here are similar samples.\n"
        "<audio>describe<SEP>a dog<EOC>\n<audio>describe<SEP>rain falls<EOC>\n<audio>describe<SEP>"
    )
    ids = torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])
    clips = model.encode_clips([noise(1.2, seed=1), noise(2.0, seed=2), noise(0.6, seed=3)])
    return ids, clips


class _Record:
    """Logits processor placed first: keeps each step's full sequences and the scores it was given."""

    def __init__(self):
        self.steps: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __call__(self, input_ids, scores):
        self.steps.append((input_ids.clone(), scores.detach().clone()))
        return scores


MODES = {
    "greedy": dict(do_sample=False),
    "beams": dict(do_sample=False, num_beams=3),
    "sample": dict(do_sample=True, top_k=20, temperature=0.9, seed=3),
    "left-padded batch": dict(do_sample=False),
}


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("family", ["qwen2", "opt", "gpt2", "llama"])
def test_cached_decoding_matches_full_forward_with_three_audios(family, mode):
    """Every step of KV-cached generation scores what a full forward over that step's sequence scores,
    whatever keyword names or cache classes the installed transformers uses."""
    from audioflamingo.tasks import left_pad

    model, tok = make_model(family, gates=0.9)
    ids, clips = _three_audio_prompt(model, tok)
    rows, pad = [clips], [0]
    if mode == "left-padded batch":  # a second, shorter row with its own three audios
        short = tok("<audio>a<SEP>b<EOC>\n<audio>c<SEP>d<EOC>\n<audio>e<SEP>", add_special_tokens=False)["input_ids"]
        ids, mask = left_pad([ids[0].tolist(), short], model.special.pad, "cpu")
        rows = [clips, model.encode_clips([noise(0.9, seed=4), noise(1.5, seed=5), noise(0.7, seed=6)])]
        pad = [0, ids.shape[1] - len(short)]
    else:
        mask = torch.ones_like(ids)
    rec = _Record()
    model.generate(
        ids, mask, model.audio_state(rows), max_new_tokens=8, min_new_tokens=8, logits_processor=[rec], **MODES[mode]
    )
    assert len(rec.steps) == 8
    per_row = len(rec.steps[0][0]) // len(rows)  # beams repeat each row
    state_rows = [r for r in rows for _ in range(per_row)]
    pads = [p for p in pad for _ in range(per_row)]
    for seq, scores in rec.steps:
        full_mask = torch.ones_like(seq)
        for r, p in enumerate(pads):
            full_mask[r, :p] = 0
        with torch.no_grad():
            full = model(seq, full_mask, audio=model.audio_state(state_rows)).logits[:, -1]
        # beam search hands processors log-probabilities, the others raw logits; the ids that
        # min_new_tokens banned before this processor ran are -inf
        ref = full.log_softmax(-1) if mode == "beams" else full
        kept = torch.isfinite(scores)
        assert kept.sum() >= scores.numel() - 2 * len(scores)
        torch.testing.assert_close(scores[kept], ref[kept], atol=1e-4, rtol=0)


def test_a_call_that_does_not_continue_the_pass_is_refused():
    from audioflamingo.model.fusion import AudioPlacementError

    model, tok = make_model("qwen2", gates=0.9)
    ids, clips = _three_audio_prompt(model, tok)
    state = model.audio_state([clips])
    with model.conditioned(state), torch.no_grad():
        model.lm(input_ids=ids, attention_mask=torch.ones_like(ids))
        assert state.counted == ids.shape[1] and state.last_count.tolist() == [3]
        # A second full pass inside the same one (e.g. a rolled-back cache) cannot be placed.
        with pytest.raises(AudioPlacementError, match=f"{ids.shape[1]} tokens were counted"):
            model.lm(input_ids=ids, attention_mask=torch.ones_like(ids))
    # A new pass starts from zero again.
    with torch.no_grad():
        model(ids, torch.ones_like(ids), audio=state)
    assert state.counted == ids.shape[1]


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
