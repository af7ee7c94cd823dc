"""The replay graph with SAM 2 asynchronous (`runtime.mode: async`, on a worker thread or in a worker process): every
frame goes through with the newest prior, its age is reported, and a SAM 2 failure mid-run leaves the fast path
running and the exit code at 1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from graph_helpers import write_graph
from test_export import export_tiny_refiner

from surgseg.app.graph_spec import read_yaml
from surgseg.graphs import graph_path

FRAMES = 24
MODEL_SIZE = (128, 160)


@pytest.fixture(scope="module")
def refiner(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("refiner")
    return export_tiny_refiner(folder, num_classes=2, size=MODEL_SIZE).folder / "refiner.onnx"


def async_graph(folder: Path, refiner: Path, warp: str = "flow", worker: str = "thread") -> Path:
    raw = read_yaml(graph_path("replay_fast"))
    raw["device"] = "cpu"
    raw["operators"]["source"] = {"type": "SyntheticSource", "frames": FRAMES, "size": [160, 128], "seed": 4,
                                  "presence": [[0, FRAMES]], "realtime": True, "fps": 30}
    prior = raw["operators"]["prior"]
    prior["model"]["image_size"] = 128
    # nice 0: these tests are about what the graph does with SAM 2's results, which a loaded test machine must not
    # starve a lower-priority SAM 2 of (the priority itself: tests/sam2/test_async_prior.py)
    prior["runtime"] = {"mode": "async", "warp": warp, "worker": worker, "nice": 0}
    raw["operators"]["refiner"]["artifact"] = str(refiner)
    raw["operators"]["metrics"]["path"] = str(folder / "metrics.json")
    raw["operators"]["latency"]["path"] = str(folder / "latency.json")
    return write_graph(folder, raw)


def test_every_frame_goes_through_with_the_age_of_its_prior(tmp_path, refiner) -> None:
    from surgseg.app.cli import main

    assert main(["run", str(async_graph(tmp_path, refiner))]) == 0
    latency = json.loads((tmp_path / "latency.json").read_text())
    assert latency["frames_processed"] == FRAMES and latency["frames_dropped"] == 0
    ages = latency["prior_age_frames"]
    assert ages and 0 <= ages["p50"] <= FRAMES - 1
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["frames_scored"] == FRAMES


def test_sam2_in_a_worker_process_lets_every_frame_through(tmp_path, refiner) -> None:
    import multiprocessing

    from surgseg.app.cli import main

    assert main(["run", str(async_graph(tmp_path, refiner, worker="process"))]) == 0
    latency = json.loads((tmp_path / "latency.json").read_text())
    assert latency["frames_processed"] == FRAMES and latency["frames_dropped"] == 0
    assert latency["prior_age_frames"], "SAM 2's priors came back from the worker process"
    assert json.loads((tmp_path / "metrics.json").read_text())["frames_scored"] == FRAMES
    assert not multiprocessing.active_children(), "the worker process is stopped with the graph"


def test_a_sam2_failure_mid_run_keeps_the_fast_path_and_exits_1(tmp_path, refiner, monkeypatch, caplog) -> None:
    from surgseg.app.cli import main
    from surgseg.engines.sam2.stream import StreamingSAM2

    def failing_seed(self, frame, prompts):
        raise RuntimeError("simulated CUDA error")

    monkeypatch.setattr(StreamingSAM2, "seed", failing_seed)
    assert main(["run", str(async_graph(tmp_path, refiner, warp="none"))]) == 1
    latency = json.loads((tmp_path / "latency.json").read_text())
    assert latency["frames_processed"] == FRAMES
    failures = [r.getMessage() for r in caplog.records if "simulated CUDA error" in r.getMessage()]
    assert failures and all("SAM 2 failed on frame" in line for line in failures)


def test_the_hud_line_says_how_old_the_prior_is() -> None:
    from surgseg.operators.overlay import prior_age_line

    assert prior_age_line({"frames": 4, "ms": 133.4}) == "prior age 4 fr / 133 ms"
    assert prior_age_line({"frames": 2, "ms": None}) == "prior age 2 fr"
    assert prior_age_line({"frames": None, "ms": None}) == "prior: none yet"


def test_qa_records_carry_the_prior_age() -> None:
    from surgseg.operators.qa_monitor import seeding_record

    assert seeding_record({"prior_age": {"frames": 3, "ms": 99.0}})["prior_age"] == {"frames": 3, "ms": 99.0}
    assert "prior_age" not in seeding_record({})


def test_a_sam2_failure_on_a_later_frame_is_logged_once_with_that_frame(tmp_path, refiner, monkeypatch,
                                                                        caplog) -> None:
    from surgseg.app.cli import main
    from surgseg.engines.sam2.stream import StreamingSAM2

    working_step = StreamingSAM2.step
    steps = []

    def step_failing_once(self, frame):
        steps.append(self.frame_index)
        if len(steps) == 2:
            raise RuntimeError("simulated failure in a tracking step")
        return working_step(self, frame)

    monkeypatch.setattr(StreamingSAM2, "step", step_failing_once)
    assert main(["run", str(async_graph(tmp_path, refiner, warp="none"))]) == 1
    latency = json.loads((tmp_path / "latency.json").read_text())
    assert latency["frames_processed"] == FRAMES and latency["frames_dropped"] == 0
    failures = [r for r in caplog.records if "simulated failure in a tracking step" in r.getMessage()]
    when_it_failed = [r.getMessage() for r in failures if r.name == "surgseg.engines.sam2.async_prior"]
    assert len(when_it_failed) == 1 and len(failures) == 2, "logged when it fails, repeated once in the run's summary"
    failed_frame = int(when_it_failed[0].split("SAM 2 failed on frame ")[1].split(":")[0])
    assert 0 < failed_frame < FRAMES
    assert len(steps) == 2, "SAM 2 stops after its failure; no further steps"
