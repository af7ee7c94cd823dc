"""Run a graph over evaluation clips for every point of a parameter grid; keep accuracy and latency per point.

Each configuration's result is written atomically to `runs/<id>.json` as soon as it is done, so a sweep resumes
where it stopped and shards (`--shard i/n`) on several machines merge by copying their `runs/` together.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from tqdm import tqdm

from surgseg.app.graph_spec import load_graph
from surgseg.app.pareto import markdown_table, pareto_front, plot_front
from surgseg.app.report.sweep import write_sweep_report
from surgseg.app.runtime import run_graph
from surgseg.engines.atomic import atomic_write_json, atomic_write_text
from surgseg.engines.errors import InputError

log = logging.getLogger(__name__)

METRICS = ("dice", "iou", "boundary_f")
AXIS_ALIASES = {
    "size": "operators.prior.model.image_size",
    "memory_every": "operators.prior.memory.every",
    "max_memories": "operators.prior.memory.max_memories",
    "mode": "operators.prior.runtime.mode",
    "backend": "operators.prior.runtime.backend",
    "precision": "operators.prior.runtime.precision",
}


@dataclass(frozen=True)
class Clip:
    name: str
    images: Path
    masks: Path


@dataclass(frozen=True)
class SweepPoint:
    values: tuple[tuple[str, Any], ...]
    """(axis as written, value) pairs."""

    @property
    def label(self) -> str:
        return " ".join(f"{axis}={value}" for axis, value in self.values)

    @property
    def id(self) -> str:
        return hashlib.sha1(self.label.encode()).hexdigest()[:12]

    def overrides(self) -> list[str]:
        return [f"{AXIS_ALIASES.get(axis, axis)}={json.dumps(value)}" for axis, value in self.values]


def parse_grid(items: list[str]) -> list[SweepPoint]:
    """`axis=v1,v2` items (axis: an alias or any dotted `--set` key) → every combination, in a stable order."""
    axes: list[tuple[str, list[Any]]] = []
    for item in items:
        axis, sep, values = item.partition("=")
        if not sep or not values:
            raise InputError(f"--grid {item}: expected AXIS=V1,V2,...")
        axes.append((axis, [yaml.safe_load(v) for v in values.split(",")]))
    return [SweepPoint(tuple(zip([a for a, _ in axes], combo))) for combo in itertools.product(*(v for _, v in axes))]


def take_shard(points: list[SweepPoint], shard: str | None) -> list[SweepPoint]:
    """The i-th of n interleaved shares of the points (`i/n`, 0-based)."""
    if shard is None:
        return points
    try:
        index, count = (int(part) for part in shard.split("/"))
    except ValueError:
        raise InputError(f"--shard {shard}: expected i/n, e.g. 0/4") from None
    if not 0 <= index < count:
        raise InputError(f"--shard {shard}: i must be in 0..n-1")
    return points[index::count]


def clips_from_index(index: Path, split: str | None, workdir: Path) -> list[Clip]:
    """Group an index's rows by video into image/mask folders of symlinks (no pixels copied)."""
    if index.is_dir():
        index = index / "dataset.jsonl"
    if not index.exists():
        raise InputError(f"{index}: no dataset index (make one with `surgseg data index` or `surgseg data synth`)")
    rows = [json.loads(line) for line in index.read_text().splitlines() if line.strip()]
    if split is not None and any("split" in row for row in rows):
        rows = [row for row in rows if row.get("split") == split]
    if not rows:
        raise InputError(f"{index}: no rows{f' in split {split!r}' if split else ''}")
    by_video: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_video[str(row["video_id"])].append(row)
    clips = []
    base = index.parent
    for video, members in sorted(by_video.items()):
        folder = workdir / "clips" / video.replace("/", "_")
        for kind, key in (("images", "image_path"), ("masks", "mask_path")):
            (folder / kind).mkdir(parents=True, exist_ok=True)
            for order, row in enumerate(sorted(members, key=_frame_order)):
                link = folder / kind / f"{order:06d}{Path(row[key]).suffix}"
                if not link.is_symlink():
                    link.symlink_to((base / row[key]).resolve())
        clips.append(Clip(video, folder / "images", folder / "masks"))
    return clips


def _frame_order(row: dict[str, Any]) -> tuple[float, str]:
    frame = str(row.get("frame_id", ""))
    return (float(frame), frame) if frame.replace(".", "", 1).isdigit() else (float("inf"), frame)


def run_point(graph: Path, point: SweepPoint, clips: list[Clip], base_overrides: list[str], workdir: Path,
              frame_limit: int | None) -> dict[str, Any]:
    """Run every clip with this point's overrides; pool per-frame scores and latencies over the clips."""
    scores: dict[str, list[float]] = defaultdict(list)
    latencies: list[float] = []
    per_clip = {}
    for clip in clips:
        out = workdir / "work" / point.id / clip.name
        spec = load_graph(graph, [*base_overrides, *point.overrides(), *clip_overrides(graph, clip, out)])
        run_graph(spec, frame_limit=frame_limit)
        metrics = json.loads((out / "metrics.json").read_text())
        latency = json.loads((out / "latency.json").read_text())
        frames = metrics["frames_scored"]
        per_clip[clip.name] = {"frames": frames, **{name: metrics[f"mean_{name}"] for name in METRICS}}
        for name in METRICS:
            scores[name] += [metrics[f"mean_{name}"]] * frames
        latencies += latency["end_to_end_samples_ms"]
    return {
        "id": point.id, "label": point.label, "values": dict(point.values),
        "frames": len(scores["dice"]), "clips": per_clip,
        "metrics": {name: float(np.mean(values)) for name, values in scores.items()},
        "latency_ms": {f"p{p}": float(np.percentile(latencies, p)) for p in (50, 95, 99)},
    }


def clip_overrides(graph: Path, clip: Clip, out: Path) -> list[str]:
    """Point the graph's source at the clip and its metrics/latency sinks into `out`."""
    spec = load_graph(graph, check_paths=False)
    source = spec.single_source()
    overrides = [f"operators.{source}.type=ImageFolderSource", f"operators.{source}.path={clip.images}",
                 f"operators.{source}.masks={clip.masks}", f"operators.{source}.sequence={clip.name}"]
    for kind, filename in (("MetricsSink", "metrics.json"), ("LatencyReport", "latency.json")):
        names = spec.of_type(kind)
        if len(names) != 1:
            raise InputError(f"{graph}: a sweep needs exactly one {kind} operator")
        overrides.append(f"operators.{names[0]}.path={out / filename}")
    return overrides


def run_sweep(graph: Path, data: Path, grid: list[str], out: Path, overrides: list[str] = (), split: str | None = "test",
              shard: str | None = None, frame_limit: int | None = None) -> list[dict[str, Any]]:
    """Run the missing points of this shard, then rebuild results.json, pareto.png, pareto.md and report.html from
    runs/."""
    points = take_shard(parse_grid(grid), shard)
    clips = clips_from_index(data, split, out)
    todo = [p for p in points if not (out / "runs" / f"{p.id}.json").exists()]
    log.info("sweep: %d configurations (%d already done) × %d clips", len(points), len(points) - len(todo), len(clips))
    for point in tqdm(todo, desc="sweep", unit="config"):
        result = run_point(graph, point, clips, list(overrides), out, frame_limit)
        atomic_write_json(out / "runs" / f"{point.id}.json", result)
        log.info("%s: Dice %.3f, p50 %.1f ms", point.label, result["metrics"]["dice"], result["latency_ms"]["p50"])
    return summarise(out, graph)


def summarise(out: Path, graph: Path) -> list[dict[str, Any]]:
    rows = [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*.json"))]
    if not rows:
        raise InputError(f"{out}: no finished configurations")
    rows.sort(key=lambda row: row["label"])
    front = pareto_front([(row["latency_ms"]["p50"], row["metrics"]["dice"]) for row in rows])
    for i, row in enumerate(rows):
        row["pareto"] = i in front
    atomic_write_json(out / "results.json", {"graph": str(graph), "configurations": rows})
    plot_front(rows, front, out / "pareto.png", f"{graph.stem}: latency vs Dice ({len(rows)} configurations)")
    atomic_write_text(out / "pareto.md", markdown_table(rows, front))
    write_sweep_report(out / "report.html", rows, front, graph)
    return rows
