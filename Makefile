# Two commands matter: `make demo` and `make test`. Both set up everything they need.
SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
TB := $(BIN)/tokenboard

# The test stack runs on its own ports and run folder, so a running demo does not collide.
TEST_KAFKA_PORT ?= 19092
TEST_REDIS_PORT ?= 16379
TEST_ENV := TOKENBOARD_RUN_DIR=.run/test TOKENBOARD_KAFKA_PORT=$(TEST_KAFKA_PORT) \
	TOKENBOARD_KAFKA_CONTROLLER_PORT=$$(($(TEST_KAFKA_PORT) + 1)) \
	TOKENBOARD_REDIS_PORT=$(TEST_REDIS_PORT) \
	TOKENBOARD_KAFKA_BOOTSTRAP=127.0.0.1:$(TEST_KAFKA_PORT) \
	TOKENBOARD_REDIS_URL=redis://127.0.0.1:$(TEST_REDIS_PORT)/0
# pytest's default temp folder is shared by every run of the machine's user, and each run
# deletes all but the newest three: two checkouts testing at once would delete each
# other's test folders (private brokers' data, process logs). Each checkout keeps its own.
TEST_TMP := $(CURDIR)/.run/test/pytest-tmp
DEMO_ENV := TOKENBOARD_RUN_DIR=.run
# Two pytest workers: most integration tests wait on brokers, workers and timeouts, not on a
# core. A module whose fixture starts a private cluster keeps its tests on one worker
# (xdist_group). PYTEST_WORKERS=0 runs the suite in one process.
PYTEST_WORKERS ?= 2
PYTEST_PARALLEL := $(if $(filter-out 0,$(PYTEST_WORKERS)),-n $(PYTEST_WORKERS) --dist loadgroup)

.PHONY: setup system-deps demo demo-down test lint unit bench stack-up stack-down clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

system-deps:
	@bash deploy/local/install-system-deps.sh

setup: system-deps $(BIN)/.installed

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

unit: setup
	$(BIN)/pytest tests/aggregations -q

test: setup lint
	status=0; \
	$(TEST_ENV) $(TB) stack up && $(TEST_ENV) $(BIN)/pytest --basetemp=$(TEST_TMP) \
		$(PYTEST_PARALLEL) --durations=25 $(PYTEST_ARGS) || status=$$?; \
	$(TEST_ENV) $(TB) stack down; exit $$status

# The demo needs no browser; its prerequisites inherit this.
demo: export TOKENBOARD_SKIP_BROWSER := 1
demo: setup
	$(DEMO_ENV) bash deploy/local/demo.sh

demo-down:
	$(DEMO_ENV) bash deploy/local/demo.sh down

bench: setup
	$(BIN)/pip install -q -e '.[bench]'
	$(TEST_ENV) $(TB) stack up
	status=0; $(TEST_ENV) $(BIN)/python -m bench.run || status=$$?; \
	$(TEST_ENV) $(TB) stack down; exit $$status

stack-up: setup
	$(TB) stack up

stack-down:
	$(TB) stack down

clean:
	-$(TEST_ENV) $(TB) stack reset
	-$(DEMO_ENV) $(TB) stack reset
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
