"""The machine and package versions a report was made on."""

from __future__ import annotations

import datetime as dt
import importlib.metadata as md
import os
import platform
from pathlib import Path
from typing import Any

PACKAGES = ("surgseg", "torch", "holoscan-cu12", "sam2", "onnxruntime", "numpy", "opencv-python-headless", "av",
            "plotly")


def cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def gpu_name() -> str | None:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def machine_info() -> dict[str, Any]:
    """CPU, cores, GPU, Python, platform, package versions (None when absent) and the date."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = None
    return {"cpu": cpu_name(), "cores": os.cpu_count(), "gpu": gpu_name(), "python": platform.python_version(),
            "platform": platform.platform(), "packages": versions,
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


def machine_rows(info: dict[str, Any]) -> list[list[Any]]:
    """Rows for a two-column table."""
    rows = [[key, info[key]] for key in ("cpu", "cores", "gpu", "python", "platform", "date")]
    return rows + [[name, version or "not installed"] for name, version in info["packages"].items()]
