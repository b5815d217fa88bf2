# The README's two commands: `make demo` and `make test`. Both set up .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test schemas
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[test]'
	touch $@

demo: setup
	$(BIN)/python jobs/demo.py --output runs/demo

test: setup
	$(BIN)/python -m pytest -q

schemas: setup
	$(BIN)/python -m fst_ray.schemas
