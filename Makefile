# Two commands do everything on a fresh machine:
#   make demo   set up .venv, then run the whole study end to end on built-in phantom data
#   make test   set up .venv, then run the test suite (what CI runs)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
OUT ?= demo_out
DATA ?=
KIMG ?=
DEMO_ARGS ?=
# test workers: one per core, at most 4 (each is a TensorFlow process); test files stay whole on one worker
# so that their module fixtures are built once
TEST_ARGS ?= -n auto --maxprocesses 4 --dist loadfile

.PHONY: setup test test-fast lint demo bench clean

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

setup: $(VENV)/.installed

test: setup
	$(PY) -m pytest -q $(TEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .

test-fast: setup
	$(PY) -m pytest -q -m "not slow" $(TEST_ARGS)

demo: setup
	$(PY) -m launchers.demo --out $(OUT) $(if $(DATA),--data $(DATA)) $(if $(KIMG),--kimg $(KIMG)) $(DEMO_ARGS)

bench: setup
	$(PY) -m launchers.benchmark --preset bench32

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
