# The README's two commands: `make demo` and `make test`. Both set up .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test test-fast schemas
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[test]'
	touch $@

demo: setup
	$(BIN)/python jobs/demo.py --output runs/demo

# two pytest workers (pytest-xdist), a test file each at a time: many tests wait on processes (Ray starting, a job
# killed and resumed, a store paused), so two share the 2 cores well; `-n 0` runs in one process
test: setup
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

# the core without the slow end-to-end tests (pytest -m slow): for the edit-test loop; CI runs `make test`
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

schemas: setup
	$(BIN)/python -m fst_ray.schemas
