# The README's two commands: `make demo` (the main job) and `make test`.
# Both create .venv at the repo root on first use and install the project into it.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OUT ?= out/demo
SEED ?= 0

.PHONY: demo test install clean-demo

install: $(STAMP)

# torch==2.13.0 first: on our CPU machines pip takes that wheel from local disk; on a machine with
# a GPU the same pin gives PyPI's CUDA build. The project's own range (torch>=2.4) then installs nothing.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	$(BIN)/python scripts/demo.py --out $(OUT) --seed $(SEED)

clean-demo:
	rm -rf $(OUT)
