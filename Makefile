# The README's two commands: `make demo` (the main job) and `make test`.
# Both create .venv at the repo root on first use and install the project into it.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
OUT ?= out/demo
SEED ?= 0

.PHONY: demo test install clean-demo

install: $(STAMP)

# torch==2.13.0 first: on our CPU machines pip takes that wheel from local disk; on a machine with
# a GPU the same pin gives PyPI's CUDA build. The project's own range (torch>=2.4) then installs nothing.
# The demo needs the project alone; the tests add the [test] extra (independent references).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -e .
	touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(TEST_STAMP)

test: $(TEST_STAMP)
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	$(BIN)/python scripts/demo.py --out $(OUT) --seed $(SEED)

clean-demo:
	rm -rf $(OUT)
