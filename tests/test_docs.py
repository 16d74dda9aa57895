"""The docs name the folders the Makefile writes."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_model_paths_in_the_docs_are_the_makefile_outputs():
    makefile = (ROOT / "Makefile").read_text()
    written = set(re.findall(r"--out (runs/\S+)", makefile)) | set(re.findall(r"^MODEL\s*\?=\s*(\S+)", makefile, re.M))
    for recipe in set(re.findall(r"train (recipes/\S+\.yaml)", makefile)):  # a recipe's run writes OUT/final
        out = re.search(r"^output_dir:\s*\.\./(\S+)", (ROOT / recipe).read_text(), re.M)
        if out:
            written.add(f"{out.group(1)}/final")
    for doc in ("docs/MODEL_CARD.md", "docs/TRAINING.md"):
        for path in re.findall(r"MODEL=(runs/[\w/.-]+)", (ROOT / doc).read_text()):
            assert path in written, f"{doc}: MODEL={path} is not a folder the Makefile writes ({sorted(written)})"
    recipe = (ROOT / "recipes" / "default-aqa.yaml").read_text()
    init = re.search(r"init:\s*\.\./(\S+)", recipe).group(1)
    assert init in written, init
