# The two commands of the README: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
BOTREPORTS := $(VENV)/bin/botreports
DATA_DIR ?= ./data
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

demo: install
	@test -f $(DATA_DIR)/analytics.db || $(BOTREPORTS) demo-data --data-dir $(DATA_DIR) --days 30 --bots 20 --messages 300000 --seed 1
	$(BOTREPORTS) generate --data-dir $(DATA_DIR) --type usage --period last_30_days --format json --out $(DATA_DIR)/demo-usage.json
	@echo "Usage report over the demo data: $(DATA_DIR)/demo-usage.json"

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

bench: install
	$(PY) bench/bench_demo_data.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis
