"""Benchmark plumbing: where results go and the machine facts stored with every result."""

from __future__ import annotations

import datetime as dt
import importlib.metadata as md
import os
import platform
from pathlib import Path
from typing import Any

from surgseg.engines.atomic import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results"
PACKAGES = ("torch", "holoscan-cu12", "sam2", "onnxruntime", "numpy", "opencv-python-headless", "av")


def machine() -> dict[str, Any]:
    """What ran the benchmark: CPU model, core count, GPU (if any), Python and package versions, date."""
    cpu = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "gpu": _gpu_name(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _gpu_name() -> str | None:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def write_result(name: str, payload: dict[str, Any]) -> Path:
    """Write benchmarks/results/<name>.json with the machine facts added; return its path."""
    path = RESULTS / f"{name}.json"
    atomic_write_json(path, {"benchmark": name, "machine": machine(), **payload})
    return path
