# marl: the tasks a user and CI run. `make install && make train`, then `make test`.
PYTHON ?= python3
PIP := $(PYTHON) -m pip
TORCH_VERSION ?= 2.13.0

.PHONY: install install-smac train test test-all test-gpu gpu-wheels lint format typecheck bench clean

install:  ## torch first (a CPU wheel that satisfies the project's range), then marl with dev and env extras
	$(PIP) install "torch==$(TORCH_VERSION)"
	$(PIP) install -e ".[dev,envs]"

install-smac:  ## env=sc2: smac from git + pysc2 without protobuf<3.21/enum34 (then install SC2 as it prints)
	PYTHON=$(PYTHON) bash scripts/install_smac.sh

train:  ## the default run: QMIX on the default env
	marl-train

test:  ## the CI suite (no slow tests); fails if no test ran
	$(PYTHON) -m pytest -q

test-all:  ## everything, including slow learning tests
	$(PYTHON) -m pytest -q -m "slow or not slow"

test-gpu:  ## the tests that need a CUDA GPU (device rollouts, CUDA graphs)
	$(PYTHON) -m pytest -q -m gpu

gpu-wheels:  ## wheels scripts/gpu_check.sh needs on a GPU machine without network, into .whl/
	rm -rf .whl && mkdir .whl
	$(PYTHON) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
		--implementation cp --platform manylinux2014_x86_64 -d .whl \
		hydra-core==1.3.2 omegaconf==2.3.0
	$(PYTHON) -m pip wheel -q --no-deps -w .whl antlr4-python3-runtime==4.9.3

lint:
	ruff check marl tests scripts
	ruff format --check marl tests scripts

format:
	ruff format marl tests scripts
	ruff check --fix marl tests scripts

typecheck:
	mypy marl

bench:  ## throughput of a fixed config, one JSON line
	$(PYTHON) scripts/bench_train.py

clean:
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache .mypy_cache
