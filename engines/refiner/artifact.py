"""The refiner artefact's metadata (`refiner.json`): read, validate, write, and check against a graph."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from surgseg.engines.atomic import atomic_write_json
from surgseg.engines.errors import InputError

SCHEMA_VERSION = 1
METADATA_NAME = "refiner.json"
CHANNEL_ORDERS = ("RGB",)
PRIOR_ENCODINGS = ("logits", "probabilities")
FILE_KINDS = ("onnx", "torch")
INPUT_NAMES = ("image", "prior")
OUTPUT_NAME = "logits"
REQUIRED_KEYS = (
    "schema_version",
    "classes",
    "input_size",
    "channel_order",
    "normalisation",
    "prior_encoding",
    "data_fingerprint",
    "val_metrics",
    "exporter",
    "files",
)


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
        """Validate a parsed `refiner.json`; an InputError names the first bad key."""
        if not isinstance(payload, dict):
            raise InputError(f"{meta_path}: expected a JSON object, got {type(payload).__name__}")
        missing = [key for key in REQUIRED_KEYS if key not in payload]
        if missing:
            raise InputError(f"{meta_path}: missing key '{missing[0]}'")
        check = _Checker(meta_path)
        version = payload["schema_version"]
        if version != SCHEMA_VERSION:
            raise InputError(f"{meta_path}: schema_version {version!r} unsupported (this runtime reads "
                             f"{SCHEMA_VERSION})")
        mean, std = check.normalisation(payload["normalisation"])
        known = set(REQUIRED_KEYS) | {"layout", "inputs", "outputs"}
        return cls(
            folder=meta_path.parent,
            classes=check.classes(payload["classes"]),
            input_size=check.input_size(payload["input_size"]),
            mean=mean,
            std=std,
            prior_encoding=check.choice("prior_encoding", payload["prior_encoding"], PRIOR_ENCODINGS),
            data_fingerprint=check.text("data_fingerprint", payload["data_fingerprint"]),
            val_metrics=check.mapping("val_metrics", payload["val_metrics"]),
            exporter=check.versions(payload["exporter"]),
            files=check.files(payload["files"]),
            channel_order=check.choice("channel_order", payload["channel_order"], CHANNEL_ORDERS),
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


class _Checker:
    """Type checks for `refiner.json` fields; each failure is an InputError naming file and key."""

    def __init__(self, meta_path: Path) -> None:
        self.meta_path = meta_path

    def fail(self, key: str, what: str) -> InputError:
        return InputError(f"{self.meta_path}: {key}: {what}")

    def classes(self, value: Any) -> tuple[str, ...]:
        if not isinstance(value, list) or len(value) < 2 or not all(isinstance(v, str) and v for v in value):
            raise self.fail("classes", f"expected a list of at least 2 names (background first), got {value!r}")
        if len(set(value)) != len(value):
            raise self.fail("classes", f"duplicate names in {value!r}")
        return tuple(value)

    def input_size(self, value: Any) -> tuple[int, int]:
        ok = isinstance(value, list) and len(value) == 2 and all(_is_int(v) and v > 0 for v in value)
        if not ok:
            raise self.fail("input_size", f"expected [height, width] positive integers, got {value!r}")
        return int(value[0]), int(value[1])

    def normalisation(self, value: Any) -> tuple[tuple[float, ...], tuple[float, ...]]:
        if not isinstance(value, dict):
            raise self.fail("normalisation", f"expected {{mean: [3], std: [3]}}, got {value!r}")
        result = []
        for key in ("mean", "std"):
            triple = value.get(key)
            if not (isinstance(triple, list) and len(triple) == 3 and all(_is_number(v) for v in triple)):
                raise self.fail(f"normalisation.{key}", f"expected 3 numbers, got {triple!r}")
            result.append(tuple(float(v) for v in triple))
        if min(result[1]) <= 0:
            raise self.fail("normalisation.std", f"must be positive, got {list(result[1])}")
        return result[0], result[1]

    def choice(self, key: str, value: Any, allowed: tuple[str, ...]) -> str:
        if value not in allowed:
            raise self.fail(key, f"{value!r} is not one of {', '.join(allowed)}")
        return value

    def text(self, key: str, value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(key, f"expected a non-empty string, got {value!r}")
        return value

    def mapping(self, key: str, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, f"expected an object, got {type(value).__name__}")
        return value

    def versions(self, value: Any) -> dict[str, str]:
        versions = self.mapping("exporter", value)
        for name, version in versions.items():
            if not isinstance(version, str):
                raise self.fail(f"exporter.{name}", f"expected a version string, got {version!r}")
        if "torch" not in versions:
            raise self.fail("exporter", "missing key 'torch'")
        return versions

    def files(self, value: Any) -> dict[str, dict[str, str]]:
        files = self.mapping("files", value)
        if "onnx" not in files:
            raise self.fail("files", "missing key 'onnx'")
        for kind, entry in files.items():
            if kind not in FILE_KINDS:
                raise self.fail(f"files.{kind}", f"unknown model kind (known: {', '.join(FILE_KINDS)})")
            for key in ("name", "sha256"):
                if not isinstance(entry, dict) or not isinstance(entry.get(key), str) or not entry.get(key):
                    raise self.fail(f"files.{kind}.{key}", "expected a non-empty string")
            if Path(entry["name"]).name != entry["name"]:
                raise self.fail(f"files.{kind}.name", f"{entry['name']!r} must be a file name beside refiner.json")
        return files


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
