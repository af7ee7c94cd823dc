"""Settings that must agree across operators, checked when a graph loads, before any operator exists.

A graph has one model input size and one class count: every Preproc `size`, every Refiner `size` and each refiner
artefact's `input_size` are equal; `num_classes` agrees across SAM2Prior, Refiner, the refiner artefact's `classes`
and MetricsSink (its `num_classes` and the length of its `classes`); an exported SAM 2 (`runtime.exported`) was
made for the configured `model.name` and `model.image_size`. Operators are found by type and any of them may be
absent. Each error names both keys at odds. (That `model.image_size` suits the model at all is checked by SAM 2's
own configuration, engines/sam2/config.py, as the operator's parameters are read.)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from surgseg.engines.errors import InputError
from surgseg.engines.refiner.artifact import RefinerArtifact, metadata_path_for

if TYPE_CHECKING:
    from surgseg.app.graph_spec import GraphSpec


@dataclass(frozen=True)
class Setting:
    """One value that must match others, with the key (or file and key) it comes from."""

    key: str
    value: Any
    shown: str = ""

    def describe(self) -> str:
        return f"{self.key} {self.shown or self.value}"


def check_agreement(spec: GraphSpec, check_paths: bool = True) -> None:
    """Refuse a graph whose operators disagree; `check_paths=False` skips refiner artefacts that are not on disk."""
    artifacts = refiner_artifacts(spec, check_paths)
    require_equal(model_sizes(spec, artifacts), "the refiner takes Preproc's letterboxed image as it is")
    require_equal(class_counts(spec, artifacts), "every operator must count the same classes, background included")
    for name in spec.of_type("SAM2Prior"):
        check_sam2_export(name, spec.operators[name].params, check_paths)


def refiner_artifacts(spec: GraphSpec, check_paths: bool) -> dict[str, RefinerArtifact]:
    """Each Refiner's artefact metadata (`refiner.json` beside the ONNX), by operator name."""
    found = {}
    for name in spec.of_type("Refiner"):
        path = Path(spec.operators[name].params.artifact)
        if check_paths or metadata_path_for(path).is_file():
            found[name] = RefinerArtifact.load(path)
    return found


def model_sizes(spec: GraphSpec, artifacts: dict[str, RefinerArtifact]) -> list[Setting]:
    settings = [Setting(f"operators.{name}.size", list(spec.operators[name].params.size))
                for name in spec.of_type("Preproc")]
    for name in spec.of_type("Refiner"):
        settings.append(Setting(f"operators.{name}.size", list(spec.operators[name].params.size)))
        if name in artifacts:
            settings.append(Setting(f"{artifacts[name].metadata_path} input_size", list(artifacts[name].input_size)))
    return settings


def class_counts(spec: GraphSpec, artifacts: dict[str, RefinerArtifact]) -> list[Setting]:
    settings = [Setting(f"operators.{name}.num_classes", spec.operators[name].params.num_classes)
                for name in spec.of_type("SAM2Prior")]
    for name in spec.of_type("Refiner"):
        settings.append(Setting(f"operators.{name}.num_classes", spec.operators[name].params.num_classes))
        if name in artifacts:
            classes = artifacts[name].classes
            settings.append(Setting(f"{artifacts[name].metadata_path} classes", len(classes), _count(classes)))
    for name in spec.of_type("MetricsSink"):
        params = spec.operators[name].params
        settings.append(Setting(f"operators.{name}.num_classes", params.num_classes))
        if params.classes:
            settings.append(Setting(f"operators.{name}.classes", len(params.classes), _count(params.classes)))
    return settings


def require_equal(settings: list[Setting], why: str) -> None:
    """InputError naming the first setting and the first one that differs from it."""
    for other in settings[1:]:
        if other.value != settings[0].value:
            raise InputError(f"{settings[0].describe()} and {other.describe()} differ: {why}")


def check_sam2_export(name: str, config: Any, check_paths: bool) -> None:
    """An exported SAM 2 (`runtime.exported`) was made for the configured model and `model.image_size`."""
    folder = config.runtime.exported
    if folder is None or config.runtime.backend == "torch" or not (check_paths or Path(folder).exists()):
        return
    from surgseg.engines.sam2.config import canonical_model_name
    from surgseg.engines.sam2.manifest import ExportManifest

    manifest = ExportManifest.load(folder)
    key = f"operators.{name}.model"
    require_equal([Setting(f"{key}.image_size", config.model.image_size),
                   Setting(f"{manifest.path} image_size", manifest.image_size)],
                  "SAM 2's exported modules have a static input size (export again at this size)")
    require_equal([Setting(f"{key}.name", canonical_model_name(config.model.name)),
                   Setting(f"{manifest.path} model", manifest.model)], "the export holds another model")


def _count(classes: Any) -> str:
    return f"{len(classes)} ({', '.join(classes)})"
