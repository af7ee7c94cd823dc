# surgseg on NVIDIA's Holoscan container (CUDA 12, discrete GPU), with the GPU extra (TensorRT, cupy, cuda-python).
# Not built on the CPU-only development machine (no Docker engine there); `make lint` / tests/test_dockerfile.py run
# hadolint over it. Run:
#   docker run --rm --gpus all --ulimit stack=33554432 --device /dev/video0 -v "$PWD/out:/work/out" \
#       surgseg run capture_v4l2 --set operators.refiner.artifact=/work/out/demo/refiner/refiner.onnx
ARG HOLOSCAN_IMAGE=nvcr.io/nvidia/clara-holoscan/holoscan:v4.6.0-cuda12-dgpu
FROM ${HOLOSCAN_IMAGE}

ARG SAM2_VERSION=1.1.0
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/surgseg \
    PATH=/opt/surgseg/bin:${PATH}

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /opt/src/surgseg

# Exact pins first (cached layer), then sam2 without its CUDA torchvision and extension build (see FACTS.md).
COPY requirements.lock ./
RUN python3 -m venv "${VIRTUAL_ENV}" \
    && pip install -r requirements.lock \
    && SAM2_BUILD_CUDA=0 pip install --no-build-isolation --no-deps "sam2==${SAM2_VERSION}"

COPY pyproject.toml README.md ./
COPY app ./app
COPY engines ./engines
COPY graphs ./graphs
COPY operators ./operators
COPY training ./training
# The project itself (its dependencies are the pins above) and the GPU extra, pinned as in pyproject.toml.
RUN pip install --no-build-isolation --no-deps . \
    && pip install "tensorrt-cu12==10.13.3.9" "cupy-cuda12x==13.6.0" "cuda-python==12.9.0" \
    && python -c "import surgseg.app.cli, surgseg.engines.sam2.stream"

RUN useradd --create-home --uid 10001 --groups video surgseg \
    && mkdir -p /work \
    && chown 10001 /work
USER 10001
WORKDIR /work

ENTRYPOINT ["surgseg"]
CMD ["demo"]
