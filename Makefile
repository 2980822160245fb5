# The two commands of the README: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
BOTREPORTS := $(VENV)/bin/botreports
DATA_DIR ?= ./data
PORT ?= 8080
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: demo test install system-packages bench clean

install: system-packages $(STAMP)

system-packages:
	@./scripts/install-system-packages

$(PY):
	python3 -m venv $(VENV)

$(STAMP): $(PY) setup.py
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev,postgres,redis]'
	@touch $(STAMP)

# Demo data if missing, an admin API key and curl examples, then the API in the foreground.
demo: install
	@./scripts/demo-serve $(BOTREPORTS) $(DATA_DIR) $(PORT)

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

bench: install
	$(PY) bench/bench_demo_data.py
	$(PY) bench/bench_http.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis
