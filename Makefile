# Two commands set everything up from nothing: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SAM2_VERSION := 1.1.0

.PHONY: setup demo test bench qa gpu-check lint clean

setup: $(STAMP)

# Re-runs only when the pins or the package metadata change; otherwise a no-op.
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.lock
	# sam2 without its CUDA torch/torchvision and without compiling its CUDA extension (see shared/FACTS.md)
	SAM2_BUILD_CUDA=0 $(BIN)/pip install -q --disable-pip-version-check --no-build-isolation --no-deps sam2==$(SAM2_VERSION)
	$(BIN)/pip install -q --disable-pip-version-check --no-build-isolation --no-deps -e .
	$(BIN)/python -m surgseg.app.envcheck
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/surgseg demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run_all

# The difficult-frames regression check of the demo's refiner (reproducible: trained for a fixed number of epochs)
# against the committed baseline; exits 1 when a tag's Dice drops by more than 0.02.
qa: $(STAMP)
	$(BIN)/surgseg demo
	$(BIN)/surgseg qa --baseline qa/baseline.json

# No set-up dependency: the GPU machines have no network; the script installs carried wheels (.whl/) itself.
gpu-check:
	$$(test -x $(BIN)/python && echo $(BIN)/python || echo python3) benchmarks/gpu_check.py

lint: $(STAMP)
	$(BIN)/hadolint Dockerfile

clean:
	rm -rf $(VENV) out runs .pytest_cache
