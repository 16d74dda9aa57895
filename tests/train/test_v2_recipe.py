"""recipes/default-v2.yaml keeps both base parts frozen in every stage (AF2) and reads what
`make default-model-v2` writes: its initial model directory and the kNN files of its own encoder."""

import re
from pathlib import Path

from audioflamingo.train.recipe_check import check_schema, read_yaml

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "default-v2.yaml"


def _target() -> str:
    makefile = (ROOT / "Makefile").read_text()
    return makefile[makefile.index("\ndefault-model-v2:") :].split("\n\n")[0]


def test_every_stage_trains_only_the_new_layers():
    raw = check_schema(read_yaml(RECIPE), RECIPE)
    names = [s["name"] for s in raw["stages"]]
    assert names == ["pretrain", "sft", "chat"]  # the paper's stages, in order
    for s in raw["stages"]:
        # `pretrain` is the kind that trains transformation + xattn-dense alone (train/stages.py);
        # sft/chat kinds would unfreeze the base LM, whose tensors the model directory does not hold.
        assert s["kind"] == "pretrain", s["name"]
        assert not s.get("train_encoder"), s["name"]
    shots = [d for s in raw["stages"] for d in s["datasets"] if d.get("icl_shots")]
    assert shots and all(d["icl_file"].endswith(".v2.icl.jsonl") for d in shots)
    assert any(d["manifest"].endswith("train_dialogue.jsonl") for d in raw["stages"][2]["datasets"])


def test_the_make_target_writes_what_the_recipe_reads():
    raw = read_yaml(RECIPE)
    target = _target()
    init = raw["model"]["init"].removeprefix("../")
    assert f"init --out {init}" in target
    assert f"train {RECIPE.relative_to(ROOT)}" in target
    for d in {d["icl_file"] for s in raw["stages"] for d in s["datasets"] if d.get("icl_file")}:
        m = re.fullmatch(r"\.\./data/synth/train_(\w+)\.v2\.icl\.jsonl", d)
        assert m, d
        assert "for m in classify caption" in target and m.group(1) in ("classify", "caption")
        assert "--out $(SYNTH)/train_$$m.v2.icl.jsonl" in target
