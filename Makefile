# Two commands on a fresh machine with Python 3.11+: `make demo` and `make test`.
# Each creates .venv if missing and installs the project (with its test extra) first.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup demo test bench lint clean

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "nng-consensus needs Python >= 3.11, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(PY) examples/vote.py
	$(PY) examples/roundtable.py

test: setup
	$(PY) -m pytest

# The quick suite (about 3 minutes). The Redis peer needs redis-server from the OS packages:
# installed here when missing and possible, else that peer is skipped with a line in the report.
bench: setup
	$(PY) -m pip install --quiet -e '.[test,bench]'
	@command -v redis-server >/dev/null || (apt-get install -y redis-server >/dev/null 2>&1 \
		|| (apt-get update >/dev/null 2>&1 && apt-get install -y redis-server >/dev/null 2>&1) \
		|| echo 'redis-server unavailable: the Redis peer will be skipped')
	$(PY) -m bench --quick

lint: setup
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m ruff check consensus patterns tests examples bench
	$(PY) -m mypy consensus patterns

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
