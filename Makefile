# The two commands of the README: `make demo` and `make test`.
# Both create .venv on first use and install everything (torch==2.13.0 first, so pip
# never pulls a multi-GB CUDA build), then run.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.seqrec-installed

.PHONY: setup kernels demo test lint clean

setup: $(STAMP) kernels

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	@touch $(STAMP)

# the compiled CPU training kernels, once per machine (a no-op when they are built);
# without a compiler training takes the slower pure-torch path, so this never fails
kernels: $(STAMP)
	@$(VENV)/bin/seqrec build-kernels || echo "note: continuing without the compiled kernels"

demo: setup
	$(VENV)/bin/seqrec demo

test: setup
	@bash .ci/system-deps || echo "note: redis-server not installed; Redis tests will skip"
	$(PY) -m ruff check seqrec tests benchmarks
	$(PY) -m pytest

lint: setup
	$(PY) -m ruff check seqrec tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
