# `make demo` and `make test` each build .venv on first use (CPU torch from the local wheel).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
AF     := $(VENV)/bin/audioflamingo
CLIP   := examples/bell_and_chirp.flac
DEMO   := demo-model

SYNTH  := data/synth
SPLITS := $(SYNTH)/train_caption.jsonl $(SYNTH)/train_aqa.jsonl $(SYNTH)/train_classify.jsonl $(SYNTH)/train_dialogue.jsonl

.PHONY: demo test bench clean synth-deps default-model default-model-eval

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	touch $@

demo: $(VENV)/.installed
	@test -f $(DEMO)/config.json || $(AF) init --preset tiny --out $(DEMO)
	@echo "== caption (untrained tiny model until the default model ships: expect noise) =="
	$(AF) caption $(CLIP) --model $(DEMO) --max-new-tokens 24
	@echo "== ask =="
	$(AF) ask $(CLIP) "What do you hear first?" --model $(DEMO) --max-new-tokens 24
	@echo "== classify =="
	$(AF) classify $(CLIP) --labels bell,chirp,speech --model $(DEMO) --json

test: $(VENV)/.installed
	$(PY) -m pytest -q tests

bench: $(VENV)/.installed
	$(PY) bench/decode.py

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache

# Regenerating the default model: the corpus sources are Debian packages (root) plus mido.
synth-deps: $(VENV)/.installed
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends fluidsynth fluid-soundfont-gm espeak-ng sound-theme-freedesktop
	$(PY) -m pip install -q -e '.[synth]'

# The whole recipe (docs/TRAINING.md): corpus -> BPE -> AF-CLAP -> kNN ICL -> lm/pretrain/sft/chat stages.
default-model: $(VENV)/.installed
	$(AF) data synth --out $(SYNTH) --seed 0 --hours 3
	$(AF) data train-tokenizer $(SPLITS) --vocab-size 2048 --out runs/default-tokenizer
	$(AF) clap train recipes/default-clap.yaml
	$(AF) data build-icl $(SYNTH)/train_classify.jsonl --encoder runs/default-clap/final --k 8
	$(AF) data build-icl $(SYNTH)/train_caption.jsonl --encoder runs/default-clap/final --k 8
	$(AF) train recipes/default.yaml
