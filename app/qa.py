"""The difficult-frames regression check: Dice per difficulty tag against a stored baseline.

Synthetic clips tag their frames (`smoke`, `occlusion`, `glare`, `fast_motion`, `absent`, `clean`); optional real
clips (a dataset index, e.g. the hardest CVC-ClinicDB sequences) add one tag per sequence (`real:<video>`). The
current graph and refiner run over all of them; a tag whose Dice falls more than `tolerance` below the baseline
fails the check.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from surgseg.app.graph_spec import GraphSpec, apply_override, read_yaml, validate
from surgseg.app.runtime import run_graph
from surgseg.engines.atomic import atomic_write_json
from surgseg.engines.errors import InputError
from surgseg.engines.json_file import read_json

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
FILE_SINKS = ("LatencyReport", "VideoFileSink", "QAMonitor", "MaskSink")


@dataclass(frozen=True)
class QAConfig:
    graph: Path
    out: Path
    seeds: tuple[int, ...] = (0, 1, 2)
    frames: int = 48
    overrides: tuple[str, ...] = ()
    real_index: Path | None = None


def tag_scores(config: QAConfig) -> dict[str, dict[str, float]]:
    """{tag: {"dice": mean Dice, "frames": n}} over every synthetic clip (and real sequence when given)."""
    sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for seed in config.seeds:
        metrics = _run(config, {"type": "SyntheticSource", "frames": config.frames, "seed": seed}, f"synthetic-{seed}")
        for tag, scores in metrics.get("tags", {}).items():
            sums[tag][0] += scores["mean_dice"] * scores["frames"]
            sums[tag][1] += scores["frames"]
    if config.real_index is not None:
        from surgseg.app.sweep import clips_from_index

        for clip in clips_from_index(config.real_index, "test", config.out):
            source = {"type": "ImageFolderSource", "path": str(clip.images), "masks": str(clip.masks)}
            metrics = _run(config, source, f"real-{clip.name}")
            sums[f"real:{clip.name}"] = [metrics["mean_dice"] * metrics["frames"], metrics["frames"]]
    return {tag: {"dice": total / count, "frames": count} for tag, (total, count) in sorted(sums.items()) if count}


def _run(config: QAConfig, source: dict[str, Any], name: str) -> dict[str, Any]:
    """Run the graph with `source` swapped in and every file sink redirected into out/<name>/."""
    raw, spec = _overridden_graph(config)
    metrics = spec.of_type("MetricsSink")
    if len(metrics) != 1:
        raise InputError(f"{config.graph}: the QA check needs exactly one MetricsSink")
    out = config.out / name
    raw["operators"][spec.single_source()] = source
    for sink in FILE_SINKS:
        for op in spec.of_type(sink):
            raw["operators"][op]["path"] = str(out / Path(str(raw["operators"][op]["path"])).name)
    raw["operators"][metrics[0]]["path"] = str(out / "metrics.json")
    run_graph(validate(raw, config.graph))
    return json.loads((out / "metrics.json").read_text())


def compare(current: dict[str, dict[str, float]], baseline: dict[str, Any], tolerance: float) -> list[str]:
    """One line per tag whose Dice fell by more than `tolerance` (or that disappeared)."""
    failures = []
    for tag, expected in baseline["tags"].items():
        got = current.get(tag)
        if got is None:
            failures.append(f"{tag}: missing from this run (baseline Dice {expected['dice']:.3f})")
        elif got["dice"] < expected["dice"] - tolerance:
            failures.append(f"{tag}: Dice {got['dice']:.3f} vs baseline {expected['dice']:.3f} "
                            f"(−{expected['dice'] - got['dice']:.3f} > {tolerance})")
    return failures


def read_baseline(path: Path) -> dict[str, Any]:
    baseline = read_json(path, missing="no baseline (create one on purpose with --update)")
    if not isinstance(baseline, dict) or baseline.get("schema_version") != SCHEMA_VERSION or not isinstance(baseline.get("tags"), dict):
        raise InputError(f"{path}: not a QA baseline (schema_version {SCHEMA_VERSION} with 'tags')")
    return baseline


def write_baseline(path: Path, current: dict[str, dict[str, float]], config: QAConfig) -> None:
    atomic_write_json(path, {"schema_version": SCHEMA_VERSION, "graph": config.graph.name, "seeds": list(config.seeds),
                             "frames": config.frames, "overrides": list(config.overrides),
                             "refiner_sha256": refiner_digest(config), "tags": current})


def refiner_digest(config: QAConfig) -> str | None:
    """SHA-256 of the refiner model the QA graph runs (None for a graph without a Refiner)."""
    from surgseg.engines.refiner.artifact import sha256_file

    raw, spec = _overridden_graph(config)
    refiners = spec.of_type("Refiner")
    return sha256_file(raw["operators"][refiners[0]]["artifact"]) if refiners else None


def _overridden_graph(config: QAConfig) -> tuple[dict[str, Any], GraphSpec]:
    """The QA graph's YAML with the overrides applied, and its structure (input files not checked yet)."""
    raw = read_yaml(config.graph)
    for item in config.overrides:
        apply_override(raw, item)
    return raw, validate(raw, config.graph, check_paths=False)
