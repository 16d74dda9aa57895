"""The inference half of a transformers fast tokenizer, on the `tokenizers` library alone.

`AutoTokenizer` imports transformers (about 1 s of start-up on 2 cores); a model directory whose
tokenizer is a plain `tokenizer.json` needs nothing of it to encode prompts and decode answers.
Outputs equal transformers' (tested in tests/text/test_lite_tokenizer.py); anything this class does
not cover loads the transformers tokenizer instead (`load_tokenizer`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

# Tokenizer classes that are a bare tokenizer.json plus special-token names (no Python-side rules).
PLAIN_CLASSES = ("TokenizersBackend", "PreTrainedTokenizerFast")
FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


class LiteTokenizer:
    def __init__(self, directory: str | Path):
        from tokenizers import Tokenizer

        self.directory = Path(directory)
        self._tok = Tokenizer.from_file(str(self.directory / "tokenizer.json"))
        cfg = json.loads((self.directory / "tokenizer_config.json").read_text())
        for role in ("bos", "eos", "pad", "unk"):
            value = cfg.get(f"{role}_token")
            if isinstance(value, dict):  # older files store AddedToken dicts
                value = value.get("content")
            setattr(self, f"{role}_token", value)
        self._vocab = self._tok.get_vocab(with_added_tokens=True)

    @staticmethod
    def can_load(directory: str | Path) -> bool:
        d = Path(directory)
        try:
            cfg = json.loads((d / "tokenizer_config.json").read_text())
        except (OSError, ValueError):
            return False
        return (
            (d / "tokenizer.json").is_file()
            and cfg.get("tokenizer_class") in PLAIN_CLASSES
            and not cfg.get("clean_up_tokenization_spaces")
            and not cfg.get("add_bos_token")
            and not cfg.get("add_eos_token")
        )

    def _id(self, token: str | None) -> int | None:
        return None if token is None else self._vocab.get(token)

    @property
    def bos_token_id(self):
        return self._id(self.bos_token)

    @property
    def eos_token_id(self):
        return self._id(self.eos_token)

    @property
    def pad_token_id(self):
        return self._id(self.pad_token)

    @property
    def unk_token_id(self):
        return self._id(self.unk_token)

    def get_vocab(self) -> dict[str, int]:
        return dict(self._vocab)

    def __len__(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    def convert_tokens_to_ids(self, tokens):
        if isinstance(tokens, str):
            return self._vocab.get(tokens, self.unk_token_id)
        return [self._vocab.get(t, self.unk_token_id) for t in tokens]

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        ids = self._tok.encode(text, add_special_tokens=add_special_tokens).ids
        return {"input_ids": ids, "attention_mask": [1] * len(ids)}

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        return self._tok.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def save_pretrained(self, directory: str | Path) -> None:
        for name in FILES:
            if (self.directory / name).is_file():
                shutil.copyfile(self.directory / name, Path(directory) / name)


def load_tokenizer(directory: str | Path, lite: bool = False):
    """The tokenizer of a model directory: `LiteTokenizer` when asked and it fits, else transformers'."""
    if lite and LiteTokenizer.can_load(directory):
        return LiteTokenizer(directory)
    from transformers import AutoTokenizer, PretrainedConfig

    kw = {}
    try:
        named = bool(json.loads((Path(directory) / "tokenizer_config.json").read_text()).get("tokenizer_class"))
    except (OSError, ValueError):
        named = False
    if named:
        # The class is named, so the model's config.json need not be read: its model_type
        # ("audioflamingo") is unknown to AutoConfig unless audioflamingo.hf was imported, and
        # transformers' fallback warns that the config does not match (a line on every command).
        kw["config"] = PretrainedConfig()
    return AutoTokenizer.from_pretrained(str(directory), **kw)
