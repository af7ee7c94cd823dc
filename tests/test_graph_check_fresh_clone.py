"""`surgseg graph check` on a fresh clone (no out/): every shipped graph is valid; a default artefact that is not
made yet is a warning naming the command that makes it, not an error; a wrong graph still exits 2."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from surgseg.app.cli import main
from surgseg.graphs import shipped_graphs


@pytest.fixture
def fresh_clone(tmp_path: Path, monkeypatch) -> Path:
    """A folder holding a copy of the shipped graphs and nothing else (no out/), as the working directory."""
    (tmp_path / "graphs").mkdir()
    for graph in shipped_graphs():
        shutil.copy(graph, tmp_path / "graphs" / graph.name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def check(caplog, *args: str) -> tuple[int, list[logging.LogRecord]]:
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="surgseg"):
        code = main(["graph", "check", *args])
    return code, [r for r in caplog.records if r.name == "surgseg"]


def test_every_shipped_graph_passes_check_on_a_fresh_clone(fresh_clone: Path, caplog) -> None:
    for graph in sorted((fresh_clone / "graphs").glob("*.yaml")):
        code, records = check(caplog, f"graphs/{graph.name}")
        assert code == 0, f"{graph.name}: {[r.getMessage() for r in records]}"
        assert not any(r.levelno >= logging.ERROR for r in records)
    assert not (fresh_clone / "out").exists()


def test_missing_default_artefact_is_a_warning_naming_the_command_that_makes_it(fresh_clone: Path, caplog) -> None:
    code, records = check(caplog, "graphs/capture_v4l2.yaml")
    lines = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    assert code == 0 and lines == [
        "graphs/capture_v4l2.yaml: missing input: operators.refiner.artifact: no such file or folder: "
        "out/demo/refiner/refiner.onnx: `surgseg demo` (or `make demo`) makes it",
        "graphs/capture_v4l2.yaml: the graph is valid, but 1 input is missing: `surgseg run` stops until it is there"]


def test_strict_check_exits_2_when_an_input_is_missing(fresh_clone: Path, caplog) -> None:
    assert check(caplog, "graphs/capture_v4l2.yaml", "--strict")[0] == 2


def test_invalid_graph_still_exits_2_naming_the_key(fresh_clone: Path, caplog) -> None:
    code, records = check(caplog, "graphs/capture_v4l2.yaml", "--set", "operators.preproc.size=[8, 8]")
    assert code == 2 and records[-1].levelno == logging.ERROR and "operators.preproc.size" in records[-1].getMessage()


def test_graph_with_every_input_present_is_reported_valid(fresh_clone: Path, caplog) -> None:
    code, records = check(caplog, "graphs/smoke.yaml")
    assert code == 0 and [r.getMessage() for r in records] == ["graphs/smoke.yaml: valid (3 operators, 2 flows)"]
