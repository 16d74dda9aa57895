"""Reading and checking a recipe before any work: YAML, then recipe.schema.json, then the files it names.

Every problem is one `RecipeError` line naming the recipe file and the key (`stages[1].steps`), so a
typo is found by `--dry-run` in a second, not by a crash an hour into `train`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from audioflamingo.errors import AudioFlamingoError

SCHEMA_PATH = Path(__file__).with_name("recipe.schema.json")


class RecipeError(AudioFlamingoError, ValueError):
    """A recipe that cannot run; the message is `recipe: key: problem`."""


class _Loader(yaml.SafeLoader):
    """YAML with two fixes for recipes: `1e-4` is a number (YAML 1.1 reads it as a string unless
    written `1.0e-4`), and a key written twice in one mapping is an error, not the last one wins."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise RecipeError(
                    f"{getattr(self, 'path', '<recipe>')}:{key_node.start_mark.line + 1}: key {key!r} "
                    f"appears twice in one mapping (first on line {seen[key]})"
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def read_yaml(path: str | Path) -> Any:
    """The recipe file parsed; a missing file, bad UTF-8 or a YAML syntax error is one line."""
    p = Path(path)
    if p.is_dir():
        raise RecipeError(f"{p}: is a directory, not a recipe file")
    if not p.is_file():
        raise RecipeError(f"{p}: recipe not found")
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise RecipeError(f"{p}: not UTF-8 text (byte {err.start})") from None
    loader = _Loader(text)
    loader.path = str(p)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{p}:{mark.line + 1}" if mark is not None else str(p)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise RecipeError(f"{where}: YAML syntax error ({problem})") from None
    finally:
        loader.dispose()


def _where(err) -> str:
    out = ""
    for part in err.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _explain(err) -> str:
    if err.validator == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        extra = sorted(set(err.instance) - set(allowed))
        return f"unknown key(s) {', '.join(map(str, extra))}; allowed: {', '.join(allowed)}"
    if err.validator == "type" and isinstance(err.instance, bool):
        return f"{err.instance!r} (a boolean) is not of type {err.validator_value!r}"
    return err.message


def check_schema(raw: Any, path: str | Path) -> dict:
    """`raw` (the parsed YAML) against recipe.schema.json, plus what a schema cannot say."""
    import jsonschema

    p = Path(path)
    if not isinstance(raw, dict):
        kind = "empty" if raw is None else f"a {type(raw).__name__}"
        raise RecipeError(f"{p}: a recipe is a mapping with model, train and stages keys; this one is {kind}")
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text()))
    errors = list(validator.iter_errors(raw))
    if errors:
        # The deepest error is the most specific (a stage's key rather than "stages is invalid").
        err = max(errors, key=lambda e: (len(e.absolute_path), -len(str(e.message))))
        where = _where(err)
        raise RecipeError(f"{p}: {where + ': ' if where else ''}{_explain(err)}")
    names: dict[str, int] = {}
    for n, stage in enumerate(raw["stages"]):
        if stage["name"] in names:
            raise RecipeError(
                f"{p}: stages[{n}].name: {stage['name']!r} is already the name of "
                f"stages[{names[stage['name']]}] (stage names must be unique)"
            )
        names[stage["name"]] = n
    return raw


def check_files(recipe) -> None:
    """Every file and folder the recipe names exists (after resolving against the recipe's folder)."""
    from audioflamingo.presets import PRESETS

    p = recipe.path
    m = recipe.model
    init = str(m.get("init", "tiny"))
    if init not in PRESETS and not Path(init).is_dir():
        raise RecipeError(f"{p}: model.init: {init!r} is neither a preset ({', '.join(PRESETS)}) nor a model directory")
    for key in ("lm", "clap", "afclap", "tokenizer"):
        if m.get(key) and not Path(m[key]).is_dir():
            raise RecipeError(f"{p}: model.{key}: {m[key]}: directory not found")
    for n, stage in enumerate(recipe.stages):
        for k, d in enumerate(stage.datasets):
            if not Path(d.manifest).is_file():
                raise RecipeError(f"{p}: stages[{n}].datasets[{k}].manifest: {d.manifest}: file not found")
            if d.icl_file and not Path(d.icl_file).is_file():
                raise RecipeError(f"{p}: stages[{n}].datasets[{k}].icl_file: {d.icl_file}: file not found")
        for v in stage.val:
            if not Path(v).is_file():
                raise RecipeError(f"{p}: stages[{n}].val: {v}: file not found")
