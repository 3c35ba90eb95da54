# The two commands of README.md. Each sets everything up in .venv first (idempotent).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test check bench clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[fast,test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/dakia-master start -c etc/dakia/dakia.yaml

test: $(STAMP)
	$(BIN)/mypy
	$(BIN)/python -m pytest

check: $(STAMP)
	$(BIN)/dakia-master check -c etc/dakia/dakia.yaml

bench: $(STAMP)
	$(BIN)/python tools/bench/run.py

clean:
	rm -rf $(VENV) var build *.egg-info .mypy_cache
