"""A byte-level BPE tokenizer trained on a corpus' own text (the default model's vocabulary).

Byte-level, so any text still encodes (unseen words fall back to pieces); the template's special
tokens are whole tokens with fixed ids right after the byte alphabet's merges are learnt.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

from audioflamingo.text.templates import DEFAULT_INSTRUCTIONS, ICL_HEADER, TASK_DESCRIPTIONS
from audioflamingo.text.tokenizer import AUDIO, EOC, SEP

SPECIALS = ["<s>", "</s>", "<pad>", AUDIO, SEP, EOC]


def manifest_texts(paths: Iterable[str | Path]) -> Iterator[str]:
    """Every string a template can put in front of the model, from manifests and the templates."""
    from audioflamingo.data.manifest import load_manifest

    yield from TASK_DESCRIPTIONS.values()
    yield from DEFAULT_INSTRUCTIONS.values()
    yield ICL_HEADER + "\nOptions:\n- \nuser: \nassistant: "
    for p in paths:
        for r in load_manifest(p):
            yield from (r.instruction, r.output, *(r.positives or []), *(r.options or []))
            for t in r.turns or []:
                yield t["user"]
                yield t["assistant"]


def train_bpe(texts: Iterable[str], vocab_size: int = 2048, min_frequency: int = 2):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator((t for t in texts if t), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    fast.add_tokens([AUDIO, SEP, EOC], special_tokens=True)  # marks them special for decode(skip_special_tokens)
    return fast
