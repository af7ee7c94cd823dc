"""Settings that must agree across operators are refused at load, naming both keys (and exit 2 from the CLI)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from graph_helpers import surgseg, write_graph

from surgseg.app.graph_spec import load_graph
from surgseg.engines.errors import InputError
from surgseg.engines.refiner.artifact import RefinerArtifact

SIZE = [48, 64]


def fake_artifact(folder: Path, classes: tuple[str, ...] = ("background", "tool"), size: list[int] = SIZE) -> Path:
    """`refiner.json` beside an empty `refiner.onnx`: enough for the graph check, which reads only the metadata."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "refiner.onnx").write_bytes(b"")
    RefinerArtifact(folder=folder, classes=classes, input_size=tuple(size), mean=(0.5,) * 3, std=(0.25,) * 3,
                    prior_encoding="logits", data_fingerprint="test", val_metrics={}, exporter={"torch": "0"},
                    files={"onnx": {"name": "refiner.onnx", "sha256": "0" * 64}}).save()
    return folder / "refiner.onnx"


@pytest.fixture
def graph(tmp_path: Path) -> dict:
    return {
        "device": "cpu",
        "operators": {
            "source": {"type": "TestPatternSource", "size": [120, 160], "frames": 3},
            "preproc": {"type": "Preproc", "size": SIZE},
            "prior": {"type": "SAM2Prior", "num_classes": 2, "model": {"image_size": 256}},
            "refiner": {"type": "Refiner", "artifact": str(fake_artifact(tmp_path / "refiner")), "num_classes": 2,
                        "size": SIZE},
            "ema": {"type": "TemporalEMA"},
            "metrics": {"type": "MetricsSink", "path": str(tmp_path / "metrics.json"), "classes": ["background", "tool"]},
        },
        "flows": [["source", "preproc"], ["preproc", "prior.image"], ["prior", "refiner.image"], ["refiner", "ema"],
                  ["ema", "metrics"]],
    }


def error_of(tmp_path: Path, graph: dict, check_paths: bool = True) -> str:
    with pytest.raises(InputError) as caught:
        load_graph(write_graph(tmp_path, graph), check_paths=check_paths)
    return str(caught.value)


def test_agreeing_graph_loads(tmp_path: Path, graph: dict) -> None:
    spec = load_graph(write_graph(tmp_path, graph))
    assert spec.operators["refiner"].params.size == tuple(SIZE)


def test_graph_without_prior_or_metrics_loads(tmp_path: Path, graph: dict) -> None:
    lite = copy.deepcopy(graph)
    for name in ("prior", "metrics"):
        del lite["operators"][name]
    lite["flows"] = [["source", "preproc"], ["preproc", "refiner.image"], ["refiner", "ema"]]
    assert sorted(load_graph(write_graph(tmp_path, lite)).operators) == ["ema", "preproc", "refiner", "source"]


def test_preproc_size_differing_from_refiner_size_names_both(tmp_path: Path, graph: dict) -> None:
    graph["operators"]["preproc"]["size"] = [96, 96]
    assert error_of(tmp_path, graph).startswith(
        "operators.preproc.size [96, 96] and operators.refiner.size [48, 64] differ")


def test_refiner_size_differing_from_its_artefact_names_the_file(tmp_path: Path, graph: dict) -> None:
    graph["operators"]["refiner"]["artifact"] = str(fake_artifact(tmp_path / "other", size=[64, 64]))
    assert error_of(tmp_path, graph).startswith(
        f"operators.preproc.size [48, 64] and {tmp_path / 'other' / 'refiner.json'} input_size [64, 64] differ")


@pytest.mark.parametrize(("operator", "key"), [("prior", "num_classes"), ("refiner", "num_classes"),
                                               ("metrics", "num_classes")])
def test_class_count_disagreement_names_both_keys(tmp_path: Path, graph: dict, operator: str, key: str) -> None:
    graph["operators"][operator][key] = 3
    other = "operators.refiner.num_classes 2" if operator == "prior" else "operators.prior.num_classes 2"
    assert {f"operators.{operator}.num_classes 3", other} <= set(error_of(tmp_path, graph).split(" differ")[0]
                                                                  .split(" and "))


def test_artefact_classes_differing_from_the_graph_names_the_file(tmp_path: Path, graph: dict) -> None:
    graph["operators"]["refiner"]["artifact"] = str(fake_artifact(tmp_path / "three", ("bg", "a", "b")))
    assert error_of(tmp_path, graph).startswith(
        f"operators.prior.num_classes 2 and {tmp_path / 'three' / 'refiner.json'} classes 3 (bg, a, b) differ")


def test_metrics_class_names_differing_from_the_class_count_are_refused(tmp_path: Path, graph: dict) -> None:
    graph["operators"]["metrics"]["classes"] = ["background", "tool", "gauze"]
    assert error_of(tmp_path, graph).startswith(
        "operators.prior.num_classes 2 and operators.metrics.classes 3 (background, tool, gauze) differ")


def test_sam2_image_size_the_model_cannot_take_is_refused_at_load(tmp_path: Path, graph: dict) -> None:
    graph["operators"]["prior"]["model"]["image_size"] = 200
    assert error_of(tmp_path, graph).startswith("operators.prior.model.image_size: 200 must be a multiple of 32")


def test_sam2_export_made_at_another_image_size_names_both(tmp_path: Path, graph: dict) -> None:
    from surgseg.engines.sam2.manifest import PARTS, ExportManifest

    folder = tmp_path / "sam2_export"
    folder.mkdir()
    ExportManifest(folder=folder, model="sam2.1_hiera_tiny", image_size=512, postprocessing=False, opset=17,
                   weights="random weights seed 0", backends=("onnxruntime",), feat_sizes=((128, 128),),
                   files={part: {"name": f"{part}.onnx", "sha256": "0" * 64} for part in PARTS},
                   exporter={"torch": "0"}).save()
    graph["operators"]["prior"]["runtime"] = {"backend": "onnxruntime", "exported": str(folder)}
    assert error_of(tmp_path, graph).startswith(
        f"operators.prior.model.image_size 256 and {folder / 'sam2_export.json'} image_size 512 differ")


def test_missing_artefact_is_skipped_without_path_checks(tmp_path: Path, graph: dict) -> None:
    graph["operators"]["refiner"]["artifact"] = str(tmp_path / "elsewhere" / "refiner.onnx")
    graph["operators"]["preproc"]["size"] = [96, 96]
    assert error_of(tmp_path, graph, check_paths=False).startswith("operators.preproc.size [96, 96] and ")


def test_cli_check_of_the_shipped_replay_graph_refuses_a_preproc_size_and_exits_2(tmp_path: Path) -> None:
    artifact = fake_artifact(tmp_path / "refiner", size=[128, 160])
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"")
    result = surgseg("graph", "check", "replay", "--set", f"operators.source.path={clip}",
                     "--set", f"operators.refiner.artifact={artifact}", "--set", "operators.preproc.size=[96,96]")
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1
    assert "operators.preproc.size [96, 96] and operators.refiner.size [128, 160] differ" in errors[0]
