# The set-up commands of the README: `make demo`, `make test` and `make run`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch is pinned exactly and installed first: the CPU wheel of this pin is on the build machines,
# and on a GPU box the same pin resolves to the CUDA build. Any other spec would download gigabytes.
TORCH_PIN := torch==2.13.0

.PHONY: demo test run lint bench clean image-check

# spandrel (the learned upscalers' loader) is installed without its dependencies: it lists
# torchvision, whose only wheel for this torch pin is a CUDA build that crashes beside the CPU
# torch; spandrel uses torchvision only in models we never load (bot/core/enhance/esrgan.py).
SPANDREL_PIN := spandrel==0.4.2

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH_PIN)
	$(BIN)/pip install --quiet --no-deps $(SPANDREL_PIN)

$(VENV)/.stamp-run: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.stamp-dev: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

demo: $(VENV)/.stamp-run
	$(BIN)/videobot generate "a paper boat drifting on a pond" --model tiny_animatediff \
		--num-frames 16 --fps 8 --width 128 --height 128 --steps 10 --seed 7 -o outputs/demo.mp4

# `make run SYNC=1` registers the slash commands (the first start, and after upgrading);
# `make run ARGS="..."` passes any other `videobot run` arguments.
run: $(VENV)/.stamp-run
	$(BIN)/videobot run $(if $(SYNC),--sync-commands) $(ARGS)

# Two pytest-xdist workers (the Ray tests share one, and one cluster); TEST_WORKERS=0 runs serially.
TEST_WORKERS ?= 2
test: $(VENV)/.stamp-dev
	$(BIN)/ruff check bot cogs tests bench
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadgroup

lint: $(VENV)/.stamp-dev
	$(BIN)/ruff check bot cogs tests bench
	$(BIN)/ruff format --check bot cogs tests bench
	$(BIN)/mypy bot cogs

bench: $(VENV)/.stamp-dev
	$(BIN)/python bench/engine_overhead.py
	$(BIN)/python bench/encode_throughput.py
	$(BIN)/python bench/load_test.py

# Builds the Dockerfile with buildah (no Docker daemon), runs the image and checks it: by hand, as
# root, never part of `make test` (many minutes, gigabytes). docs/DOCKER.md says what it does.
image-check:
	scripts/image_check.sh

clean:
	rm -rf $(VENV) outputs .pytest_cache
