"""The exported SAM 2 modules' manifest (`sam2_export.json`): what was exported, from which weights, with checksums.

`ExportManifest.load(folder).check(model_config, backend, precision)` refuses, with one line naming the manifest,
a folder exported for another model, image size, post-processing, weights, or backend; `file(part)` verifies a
module file's SHA-256 before it is used.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from surgseg.engines.atomic import atomic_write_json
from surgseg.engines.errors import InputError
from surgseg.engines.json_file import read_json
from surgseg.engines.sam2.config import ModelConfig, canonical_model_name
from surgseg.engines.sam2.weights import file_sha256

SCHEMA_VERSION = 1
MANIFEST_NAME = "sam2_export.json"
PARTS = ("image_encoder", "memory_attention", "heads", "heads_multimask", "mask_heads", "memory_encoder")
OPTIONAL_PARTS = ("memory_encoder_points",)  # exported when the model binarises click masks for memory
QUANTISED_PARTS = ("image_encoder", "memory_attention")  # int8: dynamic quantisation of these two
BACKEND_PRECISIONS = {"onnxruntime": ("fp32", "int8"), "tensorrt": ("fp16",)}
REQUIRED_KEYS = ("schema_version", "model", "image_size", "postprocessing", "opset", "weights", "backends",
                 "feat_sizes", "files", "exporter")


def weights_label(model: ModelConfig) -> str:
    """`sha256:<hex>` of the checkpoint, or `random weights seed N`."""
    if model.checkpoint is None:
        return f"random weights seed {model.random_weights_seed}"
    return f"sha256:{file_sha256(model.checkpoint)}"


def int8_name(part: str) -> str:
    return f"{part}.int8"


@dataclass(frozen=True)
class ExportManifest:
    """A parsed, validated `sam2_export.json` and the folder it sits in."""

    folder: Path
    model: str
    image_size: int
    postprocessing: bool
    opset: int
    weights: str
    backends: tuple[str, ...]
    feat_sizes: tuple[tuple[int, int], ...]
    files: dict[str, dict[str, str]]
    exporter: dict[str, str]

    @property
    def path(self) -> Path:
        return self.folder / MANIFEST_NAME

    def to_json(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "model": self.model, "image_size": self.image_size,
                "postprocessing": self.postprocessing, "opset": self.opset, "weights": self.weights,
                "backends": list(self.backends), "feat_sizes": [list(s) for s in self.feat_sizes],
                "precisions": sorted({"fp32", *("int8" for k in self.files if k.endswith(".int8"))}),
                "files": self.files, "exporter": self.exporter}

    def save(self) -> Path:
        atomic_write_json(self.path, self.to_json())
        return self.path

    def with_file(self, part: str, name: str, **details: str) -> ExportManifest:
        """This manifest plus (or with a new checksum for) the file `name` of `part`, beside it."""
        entry = {"name": name, "sha256": file_sha256(self.folder / name), **details}
        return replace(self, files={**self.files, part: entry})

    def has(self, part: str) -> bool:
        return part in self.files

    def file(self, part: str) -> Path:
        """The path of `part`'s file, its SHA-256 checked against the manifest."""
        if part not in self.files:
            raise InputError(f"{self.path}: files: no '{part}' module in this export")
        path = self.folder / self.files[part]["name"]
        if not path.is_file():
            raise InputError(f"{path}: missing (named by {self.path} files.{part})")
        digest = file_sha256(path)
        if digest != self.files[part]["sha256"]:
            raise InputError(f"{path}: SHA-256 {digest[:12]} differs from {self.path} files.{part}.sha256 "
                             f"{self.files[part]['sha256'][:12]}: file and manifest come from different exports")
        return path

    def check(self, model: ModelConfig, backend: str, precision: str) -> None:
        """Refuse this export when it was made for another model, size, post-processing, weights or backend."""
        problems = []
        wanted = canonical_model_name(model.name)
        if self.model != wanted:
            problems.append(f"model {self.model} != configured {wanted}")
        if self.image_size != model.image_size:
            problems.append(f"image_size {self.image_size} != configured {model.image_size}")
        if self.postprocessing != model.postprocessing:
            problems.append(f"postprocessing {self.postprocessing} != configured {model.postprocessing}")
        if backend not in self.backends:
            problems.append(f"backend {backend!r} not among the exported backends {list(self.backends)}")
        elif precision not in BACKEND_PRECISIONS[backend]:
            problems.append(f"precision {precision!r} not available with {backend} "
                            f"({', '.join(BACKEND_PRECISIONS[backend])})")
        if not problems:
            weights = weights_label(model)
            if self.weights != weights:
                problems.append(f"weights {self.weights!r} != configured {weights!r}")
        if problems:
            raise InputError(f"{self.path}: export does not match the configuration: {'; '.join(problems)}")

    @classmethod
    def load(cls, folder: str | os.PathLike) -> ExportManifest:
        """Read the manifest of an export folder (or the manifest file itself)."""
        folder = Path(folder)
        path = folder if folder.suffix == ".json" else folder / MANIFEST_NAME
        payload = read_json(path, missing="SAM 2 export manifest not found (run `surgseg export-sam2`)")
        return cls.from_json(payload, path)

    @classmethod
    def from_json(cls, payload: Any, path: Path) -> ExportManifest:
        """Validate a parsed manifest; an InputError names the file and the first bad key."""
        if not isinstance(payload, dict):
            raise InputError(f"{path}: expected a JSON object, got {type(payload).__name__}")
        missing = [key for key in REQUIRED_KEYS if key not in payload]
        if missing:
            raise InputError(f"{path}: missing key '{missing[0]}'")
        if payload["schema_version"] != SCHEMA_VERSION:
            raise InputError(f"{path}: schema_version {payload['schema_version']!r} unsupported "
                             f"(this runtime reads {SCHEMA_VERSION})")
        checks = {
            "model": isinstance(payload["model"], str),
            "image_size": isinstance(payload["image_size"], int),
            "postprocessing": isinstance(payload["postprocessing"], bool),
            "opset": isinstance(payload["opset"], int),
            "weights": isinstance(payload["weights"], str) and bool(payload["weights"]),
            "backends": isinstance(payload["backends"], list)
            and all(b in BACKEND_PRECISIONS for b in payload["backends"]),
            "feat_sizes": isinstance(payload["feat_sizes"], list)
            and all(isinstance(s, list) and len(s) == 2 for s in payload["feat_sizes"]),
            "files": _valid_files(payload["files"]),
            "exporter": isinstance(payload["exporter"], dict),
        }
        bad = [key for key, ok in checks.items() if not ok]
        if bad:
            raise InputError(f"{path}: {bad[0]}: invalid value {payload[bad[0]]!r}")
        absent = [part for part in PARTS if part not in payload["files"]]
        if absent:
            raise InputError(f"{path}: files: missing module '{absent[0]}'")
        return cls(folder=path.parent, model=payload["model"], image_size=payload["image_size"],
                   postprocessing=payload["postprocessing"], opset=payload["opset"], weights=payload["weights"],
                   backends=tuple(payload["backends"]), feat_sizes=tuple(tuple(s) for s in payload["feat_sizes"]),
                   files=payload["files"], exporter=payload["exporter"])


def _valid_files(files: Any) -> bool:
    if not isinstance(files, dict):
        return False
    for entry in files.values():
        if not (isinstance(entry, dict) and all(isinstance(entry.get(key), str) for key in ("name", "sha256"))):
            return False
        if Path(entry["name"]).name != entry["name"]:
            return False
    return True
