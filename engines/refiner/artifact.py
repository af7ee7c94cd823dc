"""The refiner artefact's metadata (`refiner.json`): read, validate, write, and check against a graph."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from surgseg.engines.atomic import atomic_write_json
from surgseg.engines.config import validate_config
from surgseg.engines.errors import InputError

SCHEMA_VERSION = 1
METADATA_NAME = "refiner.json"
CHANNEL_ORDERS = ("RGB",)
PRIOR_ENCODINGS = ("logits", "probabilities")
FILE_KINDS = ("onnx", "torch")
INPUT_NAMES = ("image", "prior")
OUTPUT_NAME = "logits"


@dataclass(frozen=True)
class Normalisation:
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __post_init__(self) -> None:
        if min(self.std) <= 0:
            raise InputError(f"std: must be positive, got {list(self.std)}")


@dataclass(frozen=True)
class ModelFile:
    name: str
    """A file name beside refiner.json."""
    sha256: str

    def __post_init__(self) -> None:
        if not self.name or Path(self.name).name != self.name:
            raise InputError(f"name: {self.name!r} must be a file name beside refiner.json")
        if not self.sha256:
            raise InputError("sha256: expected a non-empty string")


@dataclass(frozen=True)
class Metadata:
    """The schema of `refiner.json` (checked by `engines.config.validate_config`); `inputs`/`outputs` repeat the
    shapes for readers other than this runtime."""

    schema_version: int
    classes: list[str]
    """Class names, background first: num_classes = len(classes)."""
    input_size: list[int]
    """[height, width] of the static model input."""
    channel_order: str
    normalisation: Normalisation
    prior_encoding: str
    data_fingerprint: str
    val_metrics: dict[str, Any]
    exporter: dict[str, str]
    """Package versions that exported the model; `torch` at least."""
    files: dict[str, ModelFile]
    layout: str = "NCHW"
    inputs: dict[str, list[int]] = field(default_factory=dict)
    outputs: dict[str, list[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.classes) < 2 or not all(self.classes) or len(set(self.classes)) != len(self.classes):
            raise InputError(f"classes: expected at least 2 distinct names (background first), got {self.classes!r}")
        if len(self.input_size) != 2 or min(self.input_size) <= 0:
            raise InputError(f"input_size: expected [height, width] positive integers, got {self.input_size!r}")
        for key, value, allowed in (("channel_order", self.channel_order, CHANNEL_ORDERS),
                                    ("prior_encoding", self.prior_encoding, PRIOR_ENCODINGS)):
            if value not in allowed:
                raise InputError(f"{key}: {value!r} is not one of {', '.join(allowed)}")
        if not self.data_fingerprint:
            raise InputError("data_fingerprint: expected a non-empty string")
        if "torch" not in self.exporter:
            raise InputError("exporter: missing key 'torch'")
        unknown = [kind for kind in self.files if kind not in FILE_KINDS]
        if unknown:
            raise InputError(f"files.{unknown[0]}: unknown model kind (known: {', '.join(FILE_KINDS)})")
        if "onnx" not in self.files:
            raise InputError("files: missing key 'onnx'")


@dataclass(frozen=True)
class RefinerArtifact:
    """What `surgseg export` wrote: model files beside a validated `refiner.json`."""

    folder: Path
    classes: tuple[str, ...]
    input_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    prior_encoding: str
    data_fingerprint: str
    val_metrics: dict[str, Any]
    exporter: dict[str, str]
    files: dict[str, dict[str, str]]
    channel_order: str = "RGB"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        """Class count including background."""
        return len(self.classes)

    @property
    def metadata_path(self) -> Path:
        return self.folder / METADATA_NAME

    def image_shape(self) -> tuple[int, int, int, int]:
        return (1, 3, *self.input_size)

    def prior_shape(self) -> tuple[int, int, int, int]:
        return (1, self.num_classes - 1, *self.input_size)

    def logits_shape(self) -> tuple[int, int, int, int]:
        return (1, self.num_classes, *self.input_size)

    def file(self, kind: str) -> Path:
        """Path of the model file of `kind` ('onnx' or 'torch'), its checksum verified."""
        if kind not in self.files:
            raise InputError(f"{self.metadata_path}: files: no '{kind}' model in this artefact")
        entry = self.files[kind]
        path = self.folder / entry["name"]
        if not path.is_file():
            raise InputError(f"{path}: missing (named by {self.metadata_path} files.{kind})")
        digest = sha256_file(path)
        if digest != entry["sha256"]:
            raise InputError(
                f"{path}: checksum {digest[:12]} differs from {self.metadata_path} files.{kind}.sha256 "
                f"{entry['sha256'][:12]}: model file and metadata come from different exports"
            )
        return path

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "classes": list(self.classes),
            "input_size": list(self.input_size),
            "layout": "NCHW",
            "channel_order": self.channel_order,
            "normalisation": {"mean": list(self.mean), "std": list(self.std)},
            "prior_encoding": self.prior_encoding,
            "inputs": {"image": list(self.image_shape()), "prior": list(self.prior_shape())},
            "outputs": {OUTPUT_NAME: list(self.logits_shape())},
            "data_fingerprint": self.data_fingerprint,
            "val_metrics": self.val_metrics,
            "exporter": self.exporter,
            "files": self.files,
            **self.extra,
        }

    def save(self) -> Path:
        """Write `refiner.json` atomically into the artefact folder."""
        atomic_write_json(self.metadata_path, self.to_json())
        return self.metadata_path

    @classmethod
    def load(cls, path: str | os.PathLike) -> RefinerArtifact:
        """Read `refiner.json` given itself, its folder, or any model file beside it (e.g. `refiner.onnx`)."""
        meta_path = metadata_path_for(path)
        try:
            payload = json.loads(meta_path.read_text())
        except FileNotFoundError:
            raise InputError(f"{meta_path}: refiner metadata not found (export writes it beside the model)") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"{meta_path}: not readable JSON ({exc})") from None
        return cls.from_json(payload, meta_path)

    @classmethod
    def from_json(cls, payload: Any, meta_path: Path) -> RefinerArtifact:
        """Validate a parsed `refiner.json`; an InputError names the file and the first bad key."""
        if not isinstance(payload, dict):
            raise InputError(f"{meta_path}: expected a JSON object, got {type(payload).__name__}")
        version = payload.get("schema_version")
        if version != SCHEMA_VERSION:
            raise InputError(f"{meta_path}: schema_version {version!r} unsupported (this runtime reads "
                             f"{SCHEMA_VERSION})")
        known = {f.name for f in dataclasses.fields(Metadata)}
        try:
            meta = validate_config(Metadata, {k: v for k, v in payload.items() if k in known}, "")
        except InputError as exc:
            raise InputError(f"{meta_path}: {exc}") from None
        return cls(
            folder=meta_path.parent,
            classes=tuple(meta.classes),
            input_size=(meta.input_size[0], meta.input_size[1]),
            mean=meta.normalisation.mean,
            std=meta.normalisation.std,
            prior_encoding=meta.prior_encoding,
            data_fingerprint=meta.data_fingerprint,
            val_metrics=meta.val_metrics,
            exporter=meta.exporter,
            files={kind: {"name": entry.name, "sha256": entry.sha256} for kind, entry in meta.files.items()},
            channel_order=meta.channel_order,
            extra={key: value for key, value in payload.items() if key not in known},
        )


def check_compatible(
    artifact: RefinerArtifact, num_classes: int, input_size: tuple[int, int] | list[int] | None = None
) -> None:
    """Refuse an artefact whose class count or input size (H, W) differs from what the graph feeds it."""
    problems = []
    if artifact.num_classes != num_classes:
        problems.append(f"num_classes {artifact.num_classes} ({', '.join(artifact.classes)}) != graph's {num_classes}")
    if input_size is not None and tuple(input_size) != artifact.input_size:
        problems.append(f"input_size {list(artifact.input_size)} != graph's {list(input_size)}")
    if problems:
        raise InputError(f"{artifact.metadata_path}: refiner does not fit the graph: {'; '.join(problems)}")


def metadata_path_for(path: str | os.PathLike) -> Path:
    """`refiner.json` for a folder, the JSON itself, or a model file beside it."""
    path = Path(path)
    if path.is_dir():
        return path / METADATA_NAME
    if path.suffix == ".json":
        return path
    return path.with_name(METADATA_NAME)


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
