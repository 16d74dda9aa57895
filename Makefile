# `make demo` and `make test` each build .venv on first use (CPU torch from the local wheel).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
AF     := $(VENV)/bin/audioflamingo
CLIP   := examples/bell_and_chirp.flac
DEMO   := demo-model

.PHONY: demo test bench clean

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
