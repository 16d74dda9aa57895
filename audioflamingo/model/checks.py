"""Checks on a model folder before anything is built from it, each failure one line naming the file.

`config.json` is checked against the config dataclasses (unknown keys, types, sizes that must be
positive) and the LM section's sizes; `model.safetensors` by its header (complete, well-formed);
the tokenizer files by existence and parse. A folder that passes still fails on a weights/config
mismatch, but that message already names the file (AudioFlamingo.from_pretrained).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

from audioflamingo.config import AudioFlamingoConfig, EncoderConfig, TransformationConfig, WindowConfig, XAttnConfig
from audioflamingo.errors import ModelLoadError
from audioflamingo.files import check_safetensors, read_json, require_file

SECTIONS = {
    "window": WindowConfig,
    "encoder": EncoderConfig,
    "transformation": TransformationConfig,
    "xattn": XAttnConfig,
}
# Sizes that build tensors or divide: zero or negative ones crash deep inside torch.
POSITIVE = {
    "window": ("sample_rate", "window_seconds", "hop_seconds", "max_windows", "max_duration_seconds"),
    "encoder": ("dim", "n_mels", "hidden"),
    "transformation": ("dim", "num_heads", "ffn_dim", "max_positions", "rotary_base"),
    "xattn": ("every_n_layers", "heads", "dim_head", "ff_mult"),
}
NON_NEGATIVE = {"transformation": ("num_layers",)}
# LM config keys (transformers names, several families) that must be positive integers when present.
LM_SIZES = (
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "hidden_size",
    "intermediate_size",
    "vocab_size",
    "head_dim",
    "max_position_embeddings",
    "n_layer",
    "n_head",
    "n_embd",
    "n_positions",
    "ffn_dim",
    "word_embed_proj_dim",
)
# Files a saved slow tokenizer may have instead of tokenizer.json.
SLOW_TOKENIZER_FILES = ("vocab.json", "tokenizer.model", "spiece.model", "vocab.txt", "sentencepiece.bpe.model")


def _type_ok(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    return True  # anything else is checked by the code that uses it


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    if origin is not None and origin is not dict:
        return " or ".join(_describe(h) for h in typing.get_args(hint))
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string", type(None): "null"}.get(
        hint, getattr(hint, "__name__", str(hint))
    )


def _check_section(path: Path, name: str, raw: Any, cls) -> None:
    if not isinstance(raw, dict):
        raise ModelLoadError(f"{path}: {name} must be an object, not {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ModelLoadError(f"{path}: {name}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(known))})")
    for key, value in raw.items():
        if not _type_ok(value, hints[key]):
            raise ModelLoadError(f"{path}: {name}.{key} must be {_describe(hints[key])}, not {value!r}")
    for key in POSITIVE.get(name, ()):
        if key in raw and raw[key] is not None and raw[key] <= 0:
            raise ModelLoadError(f"{path}: {name}.{key} must be positive, not {raw[key]!r}")
    for key in NON_NEGATIVE.get(name, ()):
        if key in raw and raw[key] < 0:
            raise ModelLoadError(f"{path}: {name}.{key} must be 0 or more, not {raw[key]!r}")


def _check_lm(path: Path, lm: Any) -> None:
    if not isinstance(lm, dict) or not lm:
        raise ModelLoadError(f"{path}: lm must be the language model's config (an object), not {lm!r}")
    if not isinstance(lm.get("model_type"), str):
        raise ModelLoadError(f"{path}: lm.model_type must be a string, not {lm.get('model_type')!r}")
    for key in LM_SIZES:
        v = lm.get(key)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, int):
            raise ModelLoadError(f"{path}: lm.{key} must be an integer, not {v!r}")
        if v <= 0:
            raise ModelLoadError(f"{path}: lm.{key} must be positive, not {v!r}")
    heads, hidden = lm.get("num_attention_heads"), lm.get("hidden_size")
    if heads and hidden and not lm.get("head_dim") and hidden % heads:
        raise ModelLoadError(f"{path}: lm.hidden_size ({hidden}) is not divisible by lm.num_attention_heads ({heads})")
    kv = lm.get("num_key_value_heads")
    if heads and kv and heads % kv:
        raise ModelLoadError(
            f"{path}: lm.num_attention_heads ({heads}) is not divisible by lm.num_key_value_heads ({kv})"
        )


def load_config(path: str | Path) -> AudioFlamingoConfig:
    """`config.json` checked key by key, then built; every problem is one line naming the file."""
    p = Path(path)
    raw = read_json(p, " (not an audioflamingo model directory)")
    if not isinstance(raw, dict):
        raise ModelLoadError(f"{p}: must be a JSON object, not {type(raw).__name__}")
    # Unknown top-level keys are allowed: transformers writes its own (architectures, model_type, ...).
    for name, cls in SECTIONS.items():
        if name in raw:
            _check_section(p, name, raw[name], cls)
    t = raw.get("transformation", {})
    dim, heads = t.get("dim", TransformationConfig.dim), t.get("num_heads", TransformationConfig.num_heads)
    if dim % heads:
        raise ModelLoadError(f"{p}: transformation.dim ({dim}) is not divisible by transformation.num_heads ({heads})")
    for key in ("audio_token", "sep_token", "eoc_token", "preset", "prompt_style"):
        if key in raw and not isinstance(raw[key], str):
            raise ModelLoadError(f"{p}: {key} must be a string, not {raw[key]!r}")
    _check_lm(p, raw.get("lm"))
    return AudioFlamingoConfig.from_dict(raw)


def check_tokenizer_files(directory: str | Path) -> None:
    """The tokenizer files exist and parse: a missing or broken one is named before loading."""
    d = Path(directory)
    cfg = read_json(d / "tokenizer_config.json", " (it names the special tokens: pad, eos)")
    if not isinstance(cfg, dict):
        raise ModelLoadError(f"{d / 'tokenizer_config.json'}: must be a JSON object")
    tj = d / "tokenizer.json"
    if not tj.exists() and not tj.is_symlink():
        if any((d / f).is_file() for f in SLOW_TOKENIZER_FILES):
            return  # a slow tokenizer's own files; transformers reads and checks them
        raise ModelLoadError(f"{tj}: missing (the model's tokenizer)")
    read_json(tj)
    from tokenizers import Tokenizer

    try:
        Tokenizer.from_file(str(tj))
    except Exception as err:  # noqa: BLE001 - the tokenizers library raises a bare Exception
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelLoadError(f"{tj}: not a valid tokenizer file ({first[:200]})") from None


def check_tokenizer(tokenizer, directory: str | Path) -> None:
    """What generation needs of a loaded tokenizer: a pad token (batches are padded with it)."""
    if tokenizer.pad_token_id is None:
        raise ModelLoadError(
            f"{Path(directory) / 'tokenizer_config.json'}: defines no pad token (pad_token), which batching needs"
        )


def check_model_dir(directory: str | Path, weights_name: str, config_name: str) -> AudioFlamingoConfig:
    """Everything in a model folder that can be checked without building the model."""
    d = Path(directory)
    if d.exists() and not d.is_dir():
        raise ModelLoadError(f"{d}: not a directory (expected a model directory)")
    if not d.exists():
        raise ModelLoadError(f"{d}: model directory not found")
    cfg = load_config(d / config_name)
    require_file(d / weights_name, " (not an audioflamingo model directory)")
    check_safetensors(d / weights_name)
    check_tokenizer_files(d)
    return cfg


def build_lm(lm_config: dict, lite: bool, config_path: str | Path):
    """The LM of `lm_config` (the lean runtime when asked and supported); a config transformers
    cannot build is one line naming the file instead of its traceback."""
    from audioflamingo.model import lite as lite_lm

    try:
        if lite and lite_lm.supports(lm_config):
            return lite_lm.LiteCausalLM(lm_config)
        from transformers import AutoConfig, AutoModelForCausalLM

        lm_cfg = dict(lm_config)
        model_type = lm_cfg.pop("model_type")
        try:
            hf_config = AutoConfig.for_model(model_type, **lm_cfg)
        except ValueError:
            raise ModelLoadError(
                f"{config_path}: lm.model_type {model_type!r} is not a language model this transformers version knows"
            ) from None
        return AutoModelForCausalLM.from_config(hf_config)
    except ModelLoadError:
        raise
    except (ValueError, TypeError, KeyError, RuntimeError, ZeroDivisionError, AttributeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelLoadError(f"{config_path}: lm: cannot build the language model ({first[:200]})") from None
