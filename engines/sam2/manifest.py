"""The exported SAM 2 modules' manifest (`sam2_export.json`): what was exported, from which weights, with checksums.

`ExportManifest.load(folder).check(model_config, backend, precision)` refuses, with one line naming the manifest,
a folder exported for another model, image size, post-processing, weights, or backend; `file(part)` verifies a
module file's SHA-256 before it is used.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from surgseg.engines.atomic import atomic_write_json
from surgseg.engines.config import validate_config
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
        """Validate a parsed manifest (`validate_config` against `ManifestFile`); InputError names the file and key."""
        try:
            fields = validate_config(ManifestFile, payload, "", check_paths=False)
        except InputError as exc:
            raise InputError(f"{path}: {exc}") from None
        files = {part: {key: value for key, value in asdict(entry).items() if value is not None}
                 for part, entry in fields.files.items()}
        return cls(folder=path.parent, model=fields.model, image_size=fields.image_size,
                   postprocessing=fields.postprocessing, opset=fields.opset, weights=fields.weights,
                   backends=tuple(fields.backends), feat_sizes=tuple(tuple(s) for s in fields.feat_sizes),
                   files=files, exporter=fields.exporter)


@dataclass(frozen=True)
class ExportedFile:
    """One module file of the export, beside the manifest."""

    name: str
    sha256: str
    quantisation: str | None = None

    def __post_init__(self) -> None:
        if not self.name or Path(self.name).name != self.name:
            raise InputError(f"name: {self.name!r} must be a file name in the export folder")


@dataclass(frozen=True)
class ManifestFile:
    """The schema of `sam2_export.json`."""

    schema_version: int
    model: str
    image_size: int
    postprocessing: bool
    opset: int
    weights: str
    backends: list[str]
    feat_sizes: list[tuple[int, int]]
    files: dict[str, ExportedFile]
    exporter: dict[str, str]
    precisions: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.schema_version != SCHEMA_VERSION:
            raise InputError(f"schema_version: {self.schema_version!r} unsupported (this runtime reads "
                             f"{SCHEMA_VERSION})")
        if not self.weights:
            raise InputError("weights: empty")
        unknown = [b for b in self.backends if b not in BACKEND_PRECISIONS]
        if unknown:
            raise InputError(f"backends: unknown backend {unknown[0]!r} ({', '.join(BACKEND_PRECISIONS)})")
        absent = [part for part in PARTS if part not in self.files]
        if absent:
            raise InputError(f"files: missing module '{absent[0]}'")
