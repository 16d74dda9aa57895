"""The v2 recipes keep both base parts frozen in every stage (AF2) and read what their make target
writes: the initial model directory, the kNN files of the v2 encoder and the episodes built from
them; the continued runs start from the run before them, in the target's order."""

import re
from pathlib import Path

import pytest

from audioflamingo.train.recipe_check import check_schema, read_yaml

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "recipes"
# recipe -> the make target that runs it
FROM_SCRATCH = {"default-v2.yaml": "default-model-v2", "default-v2-gpu.yaml": "default-model-v2-gpu"}
# run after default-v2.yaml, in this order; each starts from the run before or from a mean of runs before
CONTINUED = [
    "default-v2-more.yaml",
    "default-v2-more2.yaml",
    "default-v2-more3.yaml",
    "default-v2-more4.yaml",
    "default-v2-more6.yaml",
    "default-v2-more7.yaml",
    "default-v2-more8.yaml",
]


def _target(name: str) -> str:
    """The make target's recipe lines, with those of the data target it depends on."""
    makefile = (ROOT / "Makefile").read_text()
    block = makefile[makefile.index(f"\n{name}:") :].split("\n\n")[0]
    data = makefile[makefile.index("\ndefault-model-v2-data:") :].split("\n\n")[0]
    assert "default-model-v2-data" in block.splitlines()[1]
    return data + block


def _stages(recipe: Path) -> list[dict]:
    raw = check_schema(read_yaml(recipe), recipe)
    for s in raw["stages"]:
        # `pretrain` is the kind that trains transformation + xattn-dense alone (train/stages.py);
        # sft/chat kinds would unfreeze the base LM, whose tensors the model directory does not hold.
        assert s["kind"] == "pretrain", (recipe.name, s["name"])
        assert not s.get("train_encoder"), (recipe.name, s["name"])
    shots = [d for s in raw["stages"] for d in s["datasets"] if d.get("icl_shots")]
    assert shots and all(d["icl_file"].endswith(".v2.icl.jsonl") for d in shots)
    return raw["stages"]


@pytest.mark.parametrize("name", sorted(FROM_SCRATCH))
def test_every_stage_trains_only_the_new_layers(name):
    stages = _stages(RECIPES / name)
    assert [s["name"] for s in stages] == ["pretrain", "sft", "chat"]  # the paper's stages, in order
    assert stages[0]["transformation_lr"] == 0  # frozen in pretrain (TRAINING.md: the constant-audio collapse)
    assert any(d["manifest"].endswith("train_dialogue.jsonl") for d in stages[2]["datasets"])


@pytest.mark.parametrize("name", CONTINUED)
def test_continued_runs_train_only_the_new_layers(name):
    _stages(RECIPES / name)


def _reads(raw: dict, target: str) -> None:
    for d in {d["icl_file"] for s in raw["stages"] for d in s["datasets"] if d.get("icl_file")}:
        m = re.fullmatch(r"\.\./data/synth/train_(\w+)\.v2\.icl\.jsonl", d)
        assert m, d
        assert "for m in classify caption" in target and m.group(1) in ("classify", "caption")
        assert "--out $(SYNTH)/train_$$m.v2.icl.jsonl" in target
    for d in {d["manifest"] for s in raw["stages"] for d in s["datasets"]}:
        if "episodes" in d:
            assert f"--out $(SYNTH)/{Path(d).name}" in target
        if d.startswith("../data/synth-voices/"):  # the extra voices (`data synth-voices`)
            assert "data synth-voices --out $(SYNTH)-voices" in target and d.endswith("/train_aqa_all.jsonl")
        if d.startswith("../data/synth-voices-rec/"):  # with 0 A.D.'s recorded voices
            assert "data synth-voices --recorded --out $(SYNTH)-voices-rec" in target
            assert d.endswith("/train_aqa_all.jsonl")


@pytest.mark.parametrize("name", sorted(FROM_SCRATCH))
def test_the_make_target_writes_what_the_recipe_reads(name):
    raw = read_yaml(RECIPES / name)
    target = _target(FROM_SCRATCH[name])
    assert f"init --out {raw['model']['init'].removeprefix('../')}" in target
    assert f"train recipes/{name}" in target
    _reads(raw, target)


def test_continued_runs_follow_the_run_they_start_from():
    target = _target("default-model-v2")
    order = ["default-v2.yaml", *CONTINUED]
    at = [target.index(f"train recipes/{n}") for n in order]
    assert at == sorted(at)
    for i, name in enumerate(CONTINUED):
        raw = read_yaml(RECIPES / name)
        init = raw["model"]["init"].removeprefix("../")
        done = [read_yaml(RECIPES / n)["output_dir"].removeprefix("../") + "/final" for n in order[: i + 1]]
        if init != done[-1]:  # a soup: `average` of finished runs' finals, written before this run
            avg = next(line for line in target.splitlines() if f"--out {init}" in line and " average " in line)
            parts = avg.split(" average ")[1].split(" --out ")[0].split()
            assert parts and set(parts) <= set(done), (name, parts)
            assert target.index(avg) < target.index(f"train recipes/{name}") and f"rm -rf {init}" in target
        _reads(raw, target)
