"""Special tokens of the templates, added to any Hugging Face tokenizer."""

from __future__ import annotations

from dataclasses import dataclass

AUDIO, SEP, EOC = "<audio>", "<SEP>", "<EOC>"


@dataclass(frozen=True)
class SpecialIds:
    audio: int
    sep: int
    eoc: int
    eos: int | None
    bos: int | None
    pad: int


def add_special_tokens(tokenizer, audio: str = AUDIO, sep: str = SEP, eoc: str = EOC) -> SpecialIds:
    """Register `<audio>`, `<SEP>`, `<EOC>` (and a pad token if missing); return their ids.

    The caller resizes the LM's embeddings to `len(tokenizer)`.
    """
    missing = [t for t in (audio, sep, eoc) if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_tokens(missing, special_tokens=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token if tokenizer.eos_token is not None else eoc
    return special_ids(tokenizer, audio, sep, eoc)


def special_ids(tokenizer, audio: str = AUDIO, sep: str = SEP, eoc: str = EOC) -> SpecialIds:
    ids = tokenizer.convert_tokens_to_ids([audio, sep, eoc])
    unk = tokenizer.unk_token_id
    for tok, i in zip((audio, sep, eoc), ids):
        if i is None or (unk is not None and i == unk):
            raise ValueError(f"tokenizer has no {tok} token; call add_special_tokens first")
    return SpecialIds(
        audio=ids[0],
        sep=ids[1],
        eoc=ids[2],
        eos=tokenizer.eos_token_id,
        bos=tokenizer.bos_token_id,
        pad=tokenizer.pad_token_id,
    )


def byte_level_tokenizer():
    """A byte-level BPE tokenizer with no merges: covers any text, needs no download.

    Used by the `tiny` preset and tests; real models bring their own tokenizer.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    # Ordered by byte value so ids are the same on every machine.
    alphabet = [_byte_char(b) for b in range(256)]
    tok = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


def _byte_char(b: int) -> str:
    """The printable stand-in byte-level BPE uses for byte `b` (GPT-2's byte-to-unicode table)."""
    printable = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    if b in printable:
        return chr(b)
    others = [x for x in range(256) if x not in printable]
    return chr(256 + others.index(b))
