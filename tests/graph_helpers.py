"""Writing graph YAMLs and running `surgseg` in a subprocess, for the runtime tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

TESTS = Path(__file__).resolve().parent


def write_graph(folder: Path, graph: dict[str, Any], name: str = "graph.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(graph, sort_keys=False))
    return path


def smoke_graph(counts: Path, frames: int = 20, scheduler: str = "greedy", **source: Any) -> dict[str, Any]:
    return {
        "name": "smoke",
        "device": "cpu",
        "scheduler": {"type": scheduler, "workers": 2},
        "operators": {
            "source": {"type": "TestPatternSource", "size": [48, 64], "frames": frames, **source},
            "relay": {"type": "PassThrough"},
            "sink": {"type": "FrameCounterSink", "path": str(counts)},
        },
        "flows": [["source", "relay"], ["relay", "sink"]],
    }


def cli_env() -> dict[str, str]:
    """Environment for a `surgseg` subprocess that can import the test plugins."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")]))
    env.pop("LD_LIBRARY_PATH", None)
    return env


def surgseg(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "surgseg.app.cli", *args], capture_output=True, text=True,
                          env=cli_env(), timeout=timeout)


def surgseg_popen(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "surgseg.app.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=cli_env())


def shipped_model_size(name: str = "replay_fast") -> tuple[int, int]:
    """The (height, width) a shipped graph's refiner expects, so test artefacts fit whatever the graph says."""
    from surgseg.graphs import graph_path

    height, width = yaml.safe_load(graph_path(name).read_text())["operators"]["refiner"]["size"]
    return height, width
