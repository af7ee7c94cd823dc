"""Messages under fan-out: each branch writes its own `meta`, also when the multi-thread scheduler runs both at
once (copy on receive, operators/base.py)."""

from __future__ import annotations

import json
from pathlib import Path

from graph_helpers import surgseg, write_graph

FRAMES = 40


def test_sibling_branches_never_see_each_others_meta_writes(tmp_path: Path) -> None:
    branch = {"type": "MetaWriter", "pause_ms": 3.0}
    graph = {
        "name": "fanout", "device": "cpu", "plugins": ["graph_plugins"],
        "scheduler": {"type": "multithread", "workers": 2},
        "operators": {
            "source": {"type": "TestPatternSource", "size": [16, 16], "frames": FRAMES},
            "left": {**branch, "path": str(tmp_path / "left.json")},
            "right": {**branch, "path": str(tmp_path / "right.json")},
        },
        "flows": [["source", "left"], ["source", "right"]],
    }
    done = surgseg("run", str(write_graph(tmp_path, graph)))
    assert done.returncode == 0, done.stderr[-2000:]
    for side in ("left", "right"):
        record = json.loads((tmp_path / f"{side}.json").read_text())
        assert record == {"frames": FRAMES, "overwritten": []}
