"""Real Holoscan applications on CPU: schedulers, frame limits, feedback edges, failures and stop signals."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from graph_helpers import smoke_graph, surgseg, surgseg_popen, write_graph

from surgseg.app.graph_spec import load_graph
from surgseg.app.runtime import run_graph


@pytest.mark.parametrize("scheduler", ["greedy", "event", "multithread"])
def test_every_scheduler_delivers_every_frame_in_order(tmp_path: Path, scheduler: str) -> None:
    counts = tmp_path / "counts.json"
    run_graph(load_graph(write_graph(tmp_path, smoke_graph(counts, frames=25, scheduler=scheduler))))
    seen = json.loads(counts.read_text())
    assert seen["frames"] == 25
    assert seen["frame_indices"] == list(range(25))


def test_frame_limit_stops_the_sources(tmp_path: Path) -> None:
    counts = tmp_path / "counts.json"
    run_graph(load_graph(write_graph(tmp_path, smoke_graph(counts, frames=0))), frame_limit=12)
    assert json.loads(counts.read_text())["frames"] == 12


def test_count_condition_from_yaml_limits_an_operator(tmp_path: Path) -> None:
    counts = tmp_path / "counts.json"
    graph = smoke_graph(counts, frames=0)
    graph["operators"]["source"]["conditions"] = {"count": 9}
    run_graph(load_graph(write_graph(tmp_path, graph)))
    assert json.loads(counts.read_text())["frames"] == 9


def test_feedback_edge_delivers_previous_frame_and_none_first(tmp_path: Path) -> None:
    seen_path = tmp_path / "seen.json"
    graph = smoke_graph(tmp_path / "counts.json", frames=8)
    graph["plugins"] = ["graph_plugins"]
    graph["operators"]["probe"] = {"type": "FeedbackProbe", "path": str(seen_path)}
    graph["flows"] = [["source", "probe.in"], ["probe", "relay"],
                      {"from": "relay", "to": "probe.feedback", "feedback": True}, ["relay", "sink"]]
    run_graph(load_graph(write_graph(tmp_path, graph)))
    assert json.loads(seen_path.read_text()) == [[0, None]] + [[t, t - 1] for t in range(1, 8)]


def test_exception_in_compute_exits_1_naming_the_operator(tmp_path: Path) -> None:
    graph = smoke_graph(tmp_path / "counts.json", frames=10)
    graph["plugins"] = ["graph_plugins"]
    graph["operators"]["relay"] = {"type": "FailAt", "frame": 3}
    result = surgseg("run", str(write_graph(tmp_path, graph)))
    assert result.returncode == 1
    assert "operator 'relay' (FailAt): ValueError: boom at frame 3" in result.stderr


def test_sinks_finalise_when_an_operator_fails(tmp_path: Path) -> None:
    counts = tmp_path / "counts.json"
    graph = smoke_graph(counts, frames=10)
    graph["plugins"] = ["graph_plugins"]
    graph["operators"]["relay"] = {"type": "FailAt", "frame": 4}
    surgseg("run", str(write_graph(tmp_path, graph)))
    assert json.loads(counts.read_text())["frame_indices"] == [0, 1, 2, 3]


def test_constructor_bug_exits_1_with_its_traceback_in_the_log(tmp_path: Path) -> None:
    graph = smoke_graph(tmp_path / "counts.json", frames=5)
    graph["plugins"] = ["graph_plugins"]
    graph["operators"]["relay"] = {"type": "FailToStart"}
    result = surgseg("run", str(write_graph(tmp_path, graph)))
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "operators.relay: cannot create FailToStart: RuntimeError: CUDA out of memory (simulated)" in result.stderr


def test_constructor_bad_input_exits_2_with_one_line(tmp_path: Path) -> None:
    graph = smoke_graph(tmp_path / "counts.json", frames=5)
    graph["plugins"] = ["graph_plugins"]
    graph["operators"]["relay"] = {"type": "FailToStart", "bad_input": True}
    result = surgseg("run", str(write_graph(tmp_path, graph)))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert [line.split("ERROR surgseg: ")[1] for line in result.stderr.splitlines() if "ERROR" in line] == \
        ["operators.relay.bad_input: refused"]


def wait_for(path: Path, process: subprocess.Popen[str], timeout_s: float = 60.0) -> None:
    """Poll until `path` exists (frames are flowing); fail early if the process ends first."""
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if process.poll() is not None:
            pytest.fail(f"the graph ended before {path.name} appeared: {process.communicate()[1]}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"{path.name} did not appear within {timeout_s} s")
        time.sleep(0.02)


@pytest.mark.parametrize("scheduler", ["greedy", "event", "multithread"])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_stop_signal_drains_and_exits_0(tmp_path: Path, scheduler: str, signum: int) -> None:
    counts, flowing = tmp_path / "counts.json", tmp_path / "flowing"
    graph = smoke_graph(counts, frames=0, scheduler=scheduler, realtime=True, fps=60.0)
    graph["plugins"] = ["graph_plugins"]
    graph["operators"]["relay"] = {"type": "MarkAfter", "path": str(flowing), "frames": 3}
    process = surgseg_popen("run", str(write_graph(tmp_path, graph)))
    wait_for(flowing, process)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    seen = json.loads(counts.read_text())
    assert seen["frames"] > 0
    assert seen["frame_indices"] == list(range(seen["frames"]))
    assert "draining in-flight frames" in stderr


def test_run_accepts_a_shipped_graph_name_and_overrides(tmp_path: Path) -> None:
    counts = tmp_path / "smoke.json"
    result = surgseg("run", "smoke", "--set", f"operators.sink.path={counts}", "--frames", "5")
    assert result.returncode == 0, result.stderr
    assert json.loads(counts.read_text())["frames"] == 5
