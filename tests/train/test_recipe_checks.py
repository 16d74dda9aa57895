"""Recipes are checked (recipe.schema.json and the files they name) before any work: one line
naming the recipe file and the key, exit 2, no output folder."""

from pathlib import Path

import pytest
import yaml

from audioflamingo.cli import main
from audioflamingo.data.toy import write_recipe, write_toy
from audioflamingo.train.recipe import load_recipe
from audioflamingo.train.recipe_check import RecipeError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return write_toy(tmp_path_factory.mktemp("toy"), n=2, seconds=0.3)


def _recipe(tmp_path, toy, edit=None):
    r = write_recipe(tmp_path / "r.yaml", toy, tmp_path / "run", steps=1, micro=2)
    raw = yaml.safe_load(r.read_text())
    if edit:
        edit(raw)
    r.write_text(yaml.safe_dump(raw))
    return r


def _stage(**kw):
    return lambda r: r["stages"][0].update(kw)


def _train(**kw):
    return lambda r: r["train"].update(kw)


BAD = {
    "steps-string": (_stage(steps="ten"), "stages[0].steps"),
    "steps-negative": (_stage(steps=-5), "stages[0].steps"),
    "steps-zero": (_stage(steps=0), "stages[0].steps"),
    "steps-bool": (_stage(steps=True), "stages[0].steps"),
    "duplicate-stage-names": (lambda r: r["stages"].append(dict(r["stages"][0])), "stages[1].name"),
    "keep_last-zero": (_train(keep_last=0), "train.keep_last"),
    "micro_batch_size-zero": (_train(micro_batch_size=0), "train.micro_batch_size"),
    "save_every-negative": (_train(save_every=-1), "train.save_every"),
    "lr-string": (_stage(lr="fast"), "stages[0].lr"),
    "weight-string": (lambda r: r["stages"][0]["datasets"][0].update(weight="heavy"), "datasets[0].weight"),
    "stages-mapping": (lambda r: r.update(stages={"a": 1}), "stages"),
    "stages-of-ints": (lambda r: r.update(stages=[1]), "stages[0]"),
    "model-string": (lambda r: r.update(model="tiny"), "model"),
    "output_dir-int": (lambda r: r.update(output_dir=5), "output_dir"),
    "unknown-stage-key": (_stage(learning_rate=1), "learning_rate"),
    "manifest-missing": (lambda r: r["stages"][0]["datasets"][0].update(manifest="nope.jsonl"), "manifest"),
    "init-missing": (lambda r: r.update(model={"init": "no/such/dir"}), "model.init"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_recipe_is_one_line_naming_file_and_key_before_any_work(name, tmp_path, toy, capsys):
    edit, key = BAD[name]
    r = _recipe(tmp_path, toy, edit)
    for extra in (["--dry-run"], ["--no-progress"]):
        assert main(["train", str(r), *extra]) != 0  # one line, non-zero exit
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and str(r) in err and key in err, err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "text,where",
    [
        ("stages:\n  - name: [unclosed\n    kind: sft\n", ":3: YAML syntax error"),
        ("just some words\n", "this one is a str"),
        ("- 1\n- 2\n", "this one is a list"),
        ("seed: 1\nseed: 2\nstages: []\n", ":2: key 'seed' appears twice"),
    ],
)
def test_unparsable_recipes_are_one_line(text, where, tmp_path, capsys):
    r = tmp_path / "r.yaml"
    r.write_text(text)
    assert main(["train", str(r), "--dry-run"]) != 0  # one line, non-zero exit
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{r}{where}" in err if where.startswith(":") else where in err, err


def test_exponent_without_a_dot_is_a_number(tmp_path, toy):
    r = _recipe(tmp_path, toy)
    r.write_text(r.read_text().replace("lr: 0.003", "lr: 3e-3"))
    assert "lr: 3e-3" in r.read_text()
    assert load_recipe(r).stages[0].lr == 3e-3


def test_shipped_recipes_pass_the_schema():
    from audioflamingo.train.recipe_check import check_schema, read_yaml

    for f in sorted((REPO / "recipes").glob("*.yaml")):
        raw = read_yaml(f)
        if "stages" in raw:  # clap recipes have their own loader
            check_schema(raw, f)


def test_recipe_error_is_still_a_value_error(tmp_path, toy):
    with pytest.raises(ValueError):
        load_recipe(_recipe(tmp_path, toy, _stage(steps=-5)))
    assert issubclass(RecipeError, ValueError)


@pytest.mark.parametrize(
    "text,where", [("datasets: [unclosed\n", ":2: YAML syntax error"), ("- a\n", "this one is a list")]
)
def test_clap_recipes_read_the_same_way(text, where, tmp_path, capsys):
    r = tmp_path / "clap.yaml"
    r.write_text(text)
    assert main(["clap", "train", str(r)]) != 0  # one line, non-zero exit
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(r) in err and where in err, err
