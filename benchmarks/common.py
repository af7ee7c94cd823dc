"""Benchmark plumbing: where results go and the machine facts stored with every result."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from surgseg.app.report.machine import machine_info as machine
from surgseg.engines.atomic import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results"
__all__ = ["RESULTS", "machine", "write_result"]


def write_result(name: str, payload: dict[str, Any]) -> Path:
    """Write benchmarks/results/<name>.json with the machine facts (CPU, cores, GPU, versions, date) added."""
    path = RESULTS / f"{name}.json"
    atomic_write_json(path, {"benchmark": name, "machine": machine(), **payload})
    return path
