"""Every shipped graph validates against the files `surgseg demo` makes; the replay graph (random SAM 2 weights at
256 px) and the lite graph run end-to-end on CPU over a short synthetic clip."""

from __future__ import annotations

import json
import math
from pathlib import Path

import av
import numpy as np
import pytest
from graph_helpers import surgseg
from test_export import export_tiny_refiner

from surgseg.app.graph_spec import apply_override, load_graph, read_yaml, validate
from surgseg.engines.metrics import dice
from surgseg.engines.video.image_folder import read_mask
from surgseg.graphs import graph_path, shipped_graphs

FRAMES = 6
MODEL_SIZE = (128, 160)  # the shipped graphs' Preproc/Refiner size


@pytest.fixture(scope="module")
def demo_tree(tmp_path_factory) -> Path:
    """A folder holding, at the shipped graphs' default paths, a short clip, its masks and a tiny refiner."""
    from surgseg.training.synth_dataset import SynthDatasetConfig, write_synthetic_dataset

    root = tmp_path_factory.mktemp("tree")
    write_synthetic_dataset(SynthDatasetConfig(out=root / "out/demo/clip", clips=1, frames=FRAMES, size=(320, 256),
                                               num_classes=2, seed=3))
    (root / "build").mkdir()
    refiner = export_tiny_refiner(root / "build", num_classes=2, size=MODEL_SIZE)
    (root / "out/demo/refiner").symlink_to(refiner.folder)
    return root


def test_every_graph_is_shipped():
    names = {p.stem for p in shipped_graphs()}
    assert {"replay", "replay_fast", "capture_v4l2", "replay_recording", "lite", "smoke"} <= names


@pytest.mark.parametrize("name", [p.stem for p in shipped_graphs()])
def test_shipped_graph_passes_check_against_the_demo_files(name, demo_tree, monkeypatch):
    monkeypatch.chdir(demo_tree)
    spec = load_graph(graph_path(name))
    assert spec.operators and (spec.flows or len(spec.operators) == 1)


def test_graph_check_cli_accepts_replay(demo_tree, monkeypatch):
    monkeypatch.chdir(demo_tree)
    assert surgseg("graph", "check", "replay").returncode == 0


@pytest.mark.parametrize(("name", "outputs"), [pytest.param("replay", "out", marks=pytest.mark.slow), ("lite", "out/lite")])
def test_graph_runs_end_to_end_on_cpu(name, outputs, demo_tree, monkeypatch):
    from surgseg.app.runtime import run_graph

    monkeypatch.chdir(demo_tree)
    clip = Path("out/demo/clip/clip_000")
    raw = read_yaml(graph_path(name))
    with_gt = f"operators.source={{type: ImageFolderSource, path: {clip}/frames, masks: {clip}/masks}}"
    for item in ("device=cpu", with_gt):
        apply_override(raw, item)
    out = Path(outputs)
    raw["operators"]["masks"] = {"type": "MaskSink", "folder": str(out / "masks")}
    raw["flows"].append(["ema", "masks"])
    run_graph(validate(raw, graph_path(name)))
    with av.open(str(out / "overlay.mp4")) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == FRAMES and frames[0].shape == (256, 320, 3)
    metrics = json.loads((out / "metrics.json").read_text())
    masks = sorted((out / "masks").glob("*.png"))
    scored = [dice(read_mask(m) == 1, read_mask(clip / "masks" / m.name) == 1) for m in masks]
    assert metrics["frames"] == len(masks) == FRAMES
    assert metrics["mean_dice"] == pytest.approx(float(np.mean(scored)))  # the graph's masks against the clip's GT
    latency = json.loads((out / "latency.json").read_text())
    assert latency["frames_processed"] == FRAMES and latency["frames_dropped"] == 0
    numbers = [v for v in _leaves(latency) if isinstance(v, (int, float)) and not isinstance(v, bool)]
    assert numbers and all(math.isfinite(v) and v >= 0 for v in numbers)


def _leaves(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    else:
        yield value
