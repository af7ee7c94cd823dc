# Two commands set everything up from nothing: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SAM2_VERSION := 1.1.0

.PHONY: setup system-extras demo test bench qa fuzz gpu-check lint clean

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

# Optional, as root on Debian: GStreamer's Python bindings (graphs/capture_gst.yaml: SDI capture cards) and Chromium
# (the report page's browser test). Everything else works without them; their tests skip, naming this target.
system-extras: $(STAMP)
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium gir1.2-gstreamer-1.0 \
	  gir1.2-gst-plugins-base-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-tools \
	  libgirepository1.0-dev libcairo2-dev pkg-config
	$(BIN)/pip install -q --disable-pip-version-check PyGObject==3.50.2 pycairo==1.29.2

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

# The bad-input campaign (issue 19): ≥ 5,000 generated cases through the readers, the CLI and the replay graph, each
# judged clean or not (exit code, one error line, no traceback, nothing half-written) → benchmarks/results/fuzz.json.
fuzz: $(STAMP)
	nice -n 10 $(BIN)/python -m benchmarks.fuzz

# No set-up dependency: the GPU machines have no network; the script installs carried wheels (.whl/) itself.
gpu-check:
	$$(test -x $(BIN)/python && echo $(BIN)/python || echo python3) benchmarks/gpu_check.py

lint: $(STAMP)
	$(BIN)/hadolint Dockerfile

clean:
	rm -rf $(VENV) out runs .pytest_cache
