"""The templates' special tokens on a frozen pretrained LM: renamed reserved tokens, no new rows.

`<audio>`, `<SEP>` and `<EOC>` must each be one token. Adding them (text/tokenizer.py) grows the
embedding table, and with tied embeddings the output layer too: the LM's tensors would no longer be
the ones its package converts to, and the new rows would have to be trained and shipped with every
model. Many pretrained tokenizers carry special tokens their instruct model never uses (SmolLM2:
the code-corpus markers `<repo_name>`, `<filename>`, `<jupyter_start>`, ...). Renaming three of them
keeps every id and every tensor of the base LM as it is; only the tokenizer files of the model
directory change. Which tokens to reuse is a property of the base LM (chosen in base_parts, where
it is measured); this module rewrites the files and refuses a rename that could break something:
a token the chat template or a role (bos, eos, pad, unk) uses, a name already in the vocabulary.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja")
ROLES = ("bos_token", "eos_token", "pad_token", "unk_token")


class ReservedTokenError(ValueError):
    """A rename that cannot be done safely: one line naming the token and why."""


def _chat_template(src: Path, cfg: dict) -> str:
    f = src / "chat_template.jinja"
    text = f.read_text() if f.is_file() else ""
    tmpl = cfg.get("chat_template")
    if isinstance(tmpl, str):
        text += tmpl
    elif isinstance(tmpl, list):  # named templates: [{"name": ..., "template": ...}]
        text += "".join(t.get("template", "") for t in tmpl if isinstance(t, dict))
    return text


def _role_name(value) -> str | None:
    return value.get("content") if isinstance(value, dict) else value


def rename_special_tokens(src: str | Path, out: str | Path, renames: dict[str, str]) -> dict[str, int]:
    """Copy the tokenizer files of `src` into `out` with the special tokens `renames` (old -> new)
    renamed in place; returns {new: id}. The ids, the rest of the vocabulary, the merges and the chat
    template are unchanged."""
    src, out = Path(src), Path(out)
    tj = json.loads((src / "tokenizer.json").read_text())
    cfg = json.loads((src / "tokenizer_config.json").read_text())
    added = {a["content"]: a for a in tj.get("added_tokens", [])}
    vocab = tj.get("model", {}).get("vocab")
    vocab = vocab if isinstance(vocab, dict) else {}
    template = _chat_template(src, cfg)
    roles = {_role_name(cfg.get(r)) for r in ROLES} - {None}
    ids: dict[str, int] = {}
    for old, new in renames.items():
        if old not in added or not added[old].get("special"):
            raise ReservedTokenError(f"{src}: {old!r} is not a special token of this tokenizer")
        if old in roles:
            raise ReservedTokenError(f"{src}: {old!r} is a role token (bos/eos/pad/unk); it cannot be reused")
        if old in template:
            raise ReservedTokenError(f"{src}: the chat template uses {old!r}; it cannot be reused")
        if new in added or new in vocab:
            raise ReservedTokenError(f"{src}: {new!r} is already in the vocabulary")
        ids[new] = int(added[old]["id"])
    if len(set(renames.values())) != len(renames):
        raise ReservedTokenError(f"{src}: two tokens renamed to the same name")
    for old, new in renames.items():
        added[old]["content"] = new
        if old in vocab:  # some tokenizers list added tokens in the model's vocabulary too
            vocab[new] = vocab.pop(old)
    out.mkdir(parents=True, exist_ok=True)
    (out / "tokenizer.json").write_text(json.dumps(tj, ensure_ascii=False, indent=2) + "\n")
    decoder = cfg.get("added_tokens_decoder")
    if isinstance(decoder, dict):
        for entry in decoder.values():
            if isinstance(entry, dict) and entry.get("content") in renames:
                entry["content"] = renames[entry["content"]]
    for key in ("additional_special_tokens", "extra_special_tokens"):
        if isinstance(cfg.get(key), list):
            cfg[key] = [renames.get(t, t) if isinstance(t, str) else t for t in cfg[key]]
    (out / "tokenizer_config.json").write_text(json.dumps(cfg, ensure_ascii=False, indent=2) + "\n")
    for name in TOKENIZER_FILES[2:]:
        if (src / name).is_file():
            if name == "special_tokens_map.json":
                m = json.loads((src / name).read_text())
                for key in ("additional_special_tokens", "extra_special_tokens"):
                    if isinstance(m.get(key), list):
                        m[key] = [renames.get(t, t) if isinstance(t, str) else t for t in m[key]]
                (out / name).write_text(json.dumps(m, ensure_ascii=False, indent=2) + "\n")
            else:
                shutil.copyfile(src / name, out / name)
    _check_written(out, ids)
    return ids


def _check_written(out: Path, ids: dict[str, int]) -> None:
    """Each new name encodes to its one id, alone and inside text (never split)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    for name, i in ids.items():
        for text, want in ((name, [i]), (f"a{name}b", None)):
            got = tok.encode(text, add_special_tokens=False).ids
            if (want is not None and got != want) or (want is None and got.count(i) != 1):
                raise ReservedTokenError(f"{out}: {name!r} does not encode to the single id {i} (got {got})")
