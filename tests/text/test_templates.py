"""Exact rendered strings and loss masks of the paper's three templates."""

from audioflamingo.text.templates import (
    IGNORE,
    TASK_DESCRIPTIONS,
    Example,
    render_dialogue,
    render_interleaved,
    render_single,
    tokenize,
)
from audioflamingo.text.tokenizer import add_special_tokens, byte_level_tokenizer


def _tok():
    t = byte_level_tokenizer()
    add_special_tokens(t)
    return t


def _targets(r, tok):
    ids, labels = tokenize(r, tok)
    assert len(ids) == len(labels)
    # Tokenising segment by segment equals tokenising the whole string.
    assert ids == tok(r.text, add_special_tokens=False)["input_ids"]
    return tok.decode([i for i in labels if i != IGNORE])


def test_single_with_options():
    tok = _tok()
    r = render_single(TASK_DESCRIPTIONS["classify"], Example("Which instrument?", "piano", ["piano", "violin"]), tok)
    assert r.text == (
        "<s>The task is audio classification.<audio>Which instrument?\nOptions:\n- piano\n- violin\n<SEP>piano<EOC></s>"
    )
    assert _targets(r, tok) == "piano<EOC></s>"


def test_single_without_options_and_open_prompt():
    tok = _tok()
    r = render_single("The task is audio captioning.", Example("Describe."), tok)
    assert r.text == "<s>The task is audio captioning.<audio>Describe.<SEP>"
    assert _targets(r, tok) == ""


def test_dialogue_every_answer_in_loss():
    tok = _tok()
    r = render_dialogue([("What is it?", "A dog."), ("How many?", "Two.")], tok)
    assert r.text == (
        "<s>The task is dialogue.<audio>\nuser: What is it?\nassistant: <SEP>A dog.<EOC>"
        "\nuser: How many?\nassistant: <SEP>Two.<EOC></s>"
    )
    assert _targets(r, tok) == "A dog.<EOC>Two.<EOC></s>"
    ids, labels = tokenize(r, tok)
    # The user's words are never targets.
    user = tok("How many?", add_special_tokens=False)["input_ids"]
    start = next(i for i in range(len(ids)) if ids[i : i + len(user)] == user)
    assert all(l == IGNORE for l in labels[start : start + len(user)])


def test_interleaved_icl():
    tok = _tok()
    shots = [Example("Describe.", "rain"), Example("Describe.", "a bell")]
    r = render_interleaved("The task is audio captioning.", shots, Example("Describe.", "a dog"), tok)
    assert r.text == (
        "<s>The task is audio captioning.Here are similar samples.\n"
        "<audio>Describe.<SEP>rain<EOC>\n<audio>Describe.<SEP>a bell<EOC>\n"
        "<audio>Describe.<SEP>a dog<EOC></s>"
    )
    assert _targets(r, tok) == "rain<EOC>a bell<EOC>a dog<EOC></s>"
    assert r.text.count("<audio>") == 3


def test_special_tokens_added_once_and_resizable():
    tok = _tok()
    n = len(tok)
    ids = add_special_tokens(tok)
    assert len(tok) == n and len({ids.audio, ids.sep, ids.eoc}) == 3
    assert tok.convert_ids_to_tokens([ids.audio, ids.sep, ids.eoc]) == ["<audio>", "<SEP>", "<EOC>"]


def test_works_with_gpt2_style_tokenizer_without_bos_pad():
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    base = byte_level_tokenizer()
    t = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(base.backend_tokenizer.to_str()), eos_token="</s>")
    ids = add_special_tokens(t)
    assert ids.pad == t.eos_token_id  # pad falls back to EOS, as GPT-2 users expect
    r = render_single("T.", Example("q", "a"), t)
    assert r.text == "T.<audio>q<SEP>a<EOC></s>"  # no BOS when the tokenizer has none


def test_official_eoc_spelling_and_no_whole_vocab_copy():
    """A tokenizer without <EOC> but with the official checkpoints' <|endofchunk|> gets the latter;
    tokenize asks token by token instead of copying the whole vocabulary each call (30 ms for a 49k
    vocabulary, most of a GPU training step's time)."""
    from audioflamingo.text.templates import OFFICIAL_EOC
    from audioflamingo.text.tokenizer import AUDIO, SEP

    tok = byte_level_tokenizer()
    tok.add_tokens([AUDIO, SEP, OFFICIAL_EOC], special_tokens=True)

    class NoVocabCopy:
        def __init__(self, t):
            self._t = t

        def get_vocab(self):
            raise AssertionError("tokenize copied the whole vocabulary")

        def __getattr__(self, name):
            return getattr(self._t, name)

        def __call__(self, *a, **k):
            return self._t(*a, **k)

    r = render_single(TASK_DESCRIPTIONS["classify"], Example("Which?", "piano"), tok)
    ids, labels = tokenize(r, NoVocabCopy(tok))
    eoc = tok.convert_tokens_to_ids(OFFICIAL_EOC)
    assert eoc in ids and eoc in labels
    own = _tok()  # with <EOC> of its own: kept
    ids, _ = tokenize(r, NoVocabCopy(own))
    assert own.convert_tokens_to_ids("<EOC>") in ids
