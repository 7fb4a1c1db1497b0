# The two commands of the README: `make run` and `make test`.  Each creates the
# virtual environment (.venv) and installs the package when it is missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ARGS   ?=

.PHONY: run test test-all venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml setup.py requirements/torch.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -r requirements/torch.txt
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/simla-bench run $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(ARGS)

test-all: $(STAMP)
	$(BIN)/python -m pytest -m '' $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
