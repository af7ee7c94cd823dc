"""refiner.json: read and validated; malformed metadata refused naming the key; graph compatibility checked."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from surgseg.engines.errors import InputError
from surgseg.engines.refiner.artifact import RefinerArtifact, check_compatible, sha256_file

VALID = {
    "schema_version": 1,
    "classes": ["background", "tool"],
    "input_size": [288, 384],
    "channel_order": "RGB",
    "normalisation": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
    "prior_encoding": "logits",
    "data_fingerprint": "sha256:abc",
    "val_metrics": {"mean_dice": 0.91},
    "exporter": {"torch": "2.13.0", "onnx": "1.23.2"},
    "files": {"onnx": {"name": "refiner.onnx", "sha256": ""}},
}


def _write(folder: Path, payload: dict) -> Path:
    model = folder / "refiner.onnx"
    model.write_bytes(b"not really onnx")
    payload = copy.deepcopy(payload)
    if payload.get("files", {}).get("onnx", {}).get("sha256") == "":
        payload["files"]["onnx"]["sha256"] = sha256_file(model)
    (folder / "refiner.json").write_text(json.dumps(payload))
    return folder / "refiner.json"


def test_valid_metadata_loads_from_folder_json_or_model_path(tmp_path):
    _write(tmp_path, VALID)
    for path in (tmp_path, tmp_path / "refiner.json", tmp_path / "refiner.onnx"):
        artifact = RefinerArtifact.load(path)
        assert artifact.num_classes == 2
        assert artifact.input_size == (288, 384)
        assert artifact.prior_shape() == (1, 1, 288, 384)
        assert artifact.std == (0.229, 0.224, 0.225)
        assert artifact.file("onnx") == tmp_path / "refiner.onnx"


def test_round_trip_keeps_every_field(tmp_path):
    _write(tmp_path, {**VALID, "opset": 17})
    artifact = RefinerArtifact.load(tmp_path)
    assert RefinerArtifact.from_json(artifact.to_json(), artifact.metadata_path) == artifact
    assert artifact.extra == {"opset": 17}


@pytest.mark.parametrize("key", ["classes", "input_size", "normalisation", "prior_encoding", "data_fingerprint",
                                 "exporter", "files"])
def test_missing_key_is_named(tmp_path, key):
    payload = {k: v for k, v in VALID.items() if k != key}
    with pytest.raises(InputError, match=rf"refiner\.json: {key}: missing required parameter"):
        RefinerArtifact.load(_write(tmp_path, payload))


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("classes", ["tool"], "classes"),
        ("classes", ["background", "tool", "tool"], "classes"),
        ("input_size", [288], "input_size"),
        ("input_size", [288, -1], "input_size"),
        ("normalisation", {"mean": [0.5, 0.5], "std": [1, 1, 1]}, "normalisation.mean.2"),
        ("normalisation", {"mean": [0, 0, 0], "std": [1, 0, 1]}, "normalisation.std"),
        ("channel_order", "BGR", "channel_order"),
        ("prior_encoding", "masks", "prior_encoding"),
        ("data_fingerprint", "", "data_fingerprint"),
        ("exporter", {"onnx": "1.23"}, "exporter"),
        ("exporter", {"torch": 2.13}, "exporter.torch"),
        ("files", {"onnx": {"name": "../x.onnx", "sha256": "0"}}, "files.onnx.name"),
        ("files", {"onnx": {"name": "a", "sha256": "0"}, "tf": {"name": "x", "sha256": "0"}}, "files.tf"),
    ],
)
def test_malformed_value_is_refused_naming_the_key(tmp_path, key, value, named):
    with pytest.raises(InputError, match=rf"refiner\.json: {named}:"):
        RefinerArtifact.load(_write(tmp_path, {**VALID, key: value}))


def test_newer_schema_version_is_refused(tmp_path):
    with pytest.raises(InputError, match="schema_version 2 unsupported"):
        RefinerArtifact.load(_write(tmp_path, {**VALID, "schema_version": 2}))


def test_unreadable_or_absent_metadata_is_refused(tmp_path):
    with pytest.raises(InputError, match="not found"):
        RefinerArtifact.load(tmp_path / "refiner.onnx")
    (tmp_path / "refiner.json").write_text("{ half")
    with pytest.raises(InputError, match="not readable JSON"):
        RefinerArtifact.load(tmp_path)


def test_model_file_from_another_export_is_refused(tmp_path):
    _write(tmp_path, VALID)
    (tmp_path / "refiner.onnx").write_bytes(b"another model")
    with pytest.raises(InputError, match="different exports"):
        RefinerArtifact.load(tmp_path).file("onnx")


def test_compatible_graph_passes(tmp_path):
    check_compatible(RefinerArtifact.load(_write(tmp_path, VALID)), 2, (288, 384))


def test_class_count_and_input_size_mismatch_are_both_named(tmp_path):
    artifact = RefinerArtifact.load(_write(tmp_path, VALID))
    expected = r"num_classes 2 .* graph's 3; input_size \[288, 384\] != graph's \[512, 512\]"
    with pytest.raises(InputError, match=expected):
        check_compatible(artifact, 3, (512, 512))
