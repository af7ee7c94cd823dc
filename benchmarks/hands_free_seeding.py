"""Hands-free seeding: a synthetic clip where the instrument enters at frame 10, leaves, and comes back.

No seed is given. SAM2Prior leaves SAM 2 off while nothing is tracked (the refiner then segments from the image
alone: its prior is empty), seeds SAM 2 from the refined mask once the instrument has been visible for
`seeding.frames` frames, releases it when the refined mask stays empty for `seeding.release_after` frames, and
seeds it again when the instrument returns. Reported: frames from each entry to its seed, seeds while the instrument
is absent, frames from each exit to the release, Dice, and per-frame milliseconds with and without SAM 2 running
(the image-only check is the refiner pass every frame gets anyway).
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from surgseg.app.graph_spec import read_yaml, validate
from surgseg.app.runtime import run_graph
from surgseg.engines.atomic import atomic_path
from surgseg.engines.video.synthetic import EVENT_TAGS
from surgseg.graphs import graph_path

log = logging.getLogger("hands_free_seeding")
DOCS = Path(__file__).resolve().parents[1] / "docs"
Interval = tuple[int, int]


@dataclass(frozen=True)
class SeedingClip:
    frames: int = 72
    presence: tuple[Interval, ...] = ((10, 30), (52, 72))
    """Absent for 22 frames in the middle: longer than `seeding.release_after` (15)."""
    size: tuple[int, int] = (320, 256)
    """(width, height) of the frames."""
    seed: int = 7
    difficulties: bool = False
    """Smoke, glare, occlusion and fast motion drawn from `seed` (smoke and glare may fall on absent frames)."""


def seeding_graph(clip: SeedingClip, refiner: Path, model_size: tuple[int, int], out: Path,
                  sam2_size: int = 256) -> dict[str, Any]:
    """The shipped replay graph on the clip, without any seed, with a QA log of every frame."""
    raw = read_yaml(graph_path("replay"))
    h, w = model_size
    raw["device"] = "cpu"
    raw["operators"]["source"] = {"type": "SyntheticSource", "size": list(clip.size), "frames": clip.frames,
                                  "seed": clip.seed, "presence": [list(span) for span in clip.presence]}
    if not clip.difficulties:
        raw["operators"]["source"].update({name: [] for name in EVENT_TAGS})
    raw["operators"]["preproc"]["size"] = [h, w]
    raw["operators"]["prior"]["model"]["image_size"] = sam2_size
    raw["operators"]["prior"]["seed"] = {}
    raw["operators"]["refiner"].update(artifact=str(refiner / "refiner.onnx"), size=[h, w])
    raw["operators"]["video"]["path"] = str(out / "overlay.mp4")
    raw["operators"]["metrics"]["path"] = str(out / "metrics.json")
    raw["operators"]["latency"]["path"] = str(out / "latency.json")
    raw["operators"]["qa"] = {"type": "QAMonitor", "path": str(out / "qa.jsonl")}
    if ["ema", "qa"] not in raw["flows"]:  # the shipped replay graph already has it
        raw["flows"].append(["ema", "qa"])
    return raw


def seeding_report(lines: list[dict[str, Any]], presence: tuple[Interval, ...]) -> dict[str, Any]:
    """Entry → seed and exit → release delays, false seeds and per-frame cost from a run's QA lines."""
    present = {t for start, end in presence for t in range(start, end)}
    seeds = [line["frame_index"] for line in lines if line.get("seeded") or line.get("reseeded")]
    releases = [line["frame_index"] for line in lines if line.get("released")]
    exits = [end for _, end in presence if end < len(lines)]
    # an automatic seed at frame t is made on frame t−1 (the refined mask fed back): false when both lack the instrument
    false_seeds = [t for t in seeds if t not in present and t - 1 not in present]
    return {
        "entries": [start for start, _ in presence], "seeds": seeds, "exits": exits, "releases": releases,
        "frames_entry_to_seed": [_first_after(seeds, start, end) for start, end in presence],
        "frames_exit_to_release": [_first_after(releases, end, len(lines)) for end in exits],
        "false_seeds": false_seeds,
        "tag_frames": dict(Counter(tag for line in lines for tag in line.get("tags", []))),
        "cost_ms": _cost(lines),
    }


def _first_after(events: list[int], start: int, end: int) -> int | None:
    """Frames from `start` to the first event in [start, end), None when there is none."""
    hits = [t - start for t in events if start <= t < end]
    return hits[0] if hits else None


def _cost(lines: list[dict[str, Any]]) -> dict[str, Any]:
    """Median prior and refiner milliseconds on frames with SAM 2 tracking and frames without (image-only)."""
    cost: dict[str, Any] = {}
    for state, chosen in (("sam2_tracking", [ln for ln in lines if ln.get("tracked")]),
                          ("image_only", [ln for ln in lines if not ln.get("tracked")])):
        cost[state] = {"frames": len(chosen)}
        for name in ("prior", "refiner"):
            values = [ln["timings_ms"][name] for ln in chosen if name in ln.get("timings_ms", {})]
            cost[state][f"{name}_ms_p50"] = float(np.median(values)) if values else None
    return cost


def plot_timeline(lines: list[dict[str, Any]], path: Path, title: str) -> None:
    """Per frame: instrument in view, SAM 2 tracking, seeds and releases, and SAM2Prior's milliseconds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frames = np.arange(len(lines))
    in_view = np.array(["absent" not in line.get("tags", []) for line in lines])
    tracking = np.array([bool(line.get("tracked")) for line in lines])
    prior_ms = [line.get("timings_ms", {}).get("prior", np.nan) for line in lines]
    fig, (bands, cost) = plt.subplots(2, 1, figsize=(9, 3.6), sharex=True, height_ratios=[1, 1.4])
    bands.fill_between(frames, 1.1, 1.9, where=in_view, step="mid", color="tab:orange", label="instrument in view")
    bands.fill_between(frames, 0.1, 0.9, where=tracking, step="mid", color="tab:blue", label="SAM 2 tracking")
    for key, colour in (("seeded", "green"), ("reseeded", "green"), ("released", "red")):
        for t in [line["frame_index"] for line in lines if line.get(key)]:
            bands.axvline(t, color=colour, lw=1.5)
            bands.text(t, 2.0, key, color=colour, fontsize=7, ha="center")
    bands.set_yticks([0.5, 1.5], ["SAM 2", "in view"])
    bands.set_ylim(0, 2.3)
    bands.set_title(title, fontsize=9)
    cost.plot(frames, prior_ms, color="tab:blue", lw=1)
    cost.set_ylabel("SAM2Prior ms")
    cost.set_xlabel("frame")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def run_seeding(clip: SeedingClip, refiner: Path, model_size: tuple[int, int], out: Path, sam2_size: int = 256,
                overrides: dict[str, Any] | None = None, timeline: Path | None = None) -> dict[str, Any]:
    """Run the graph on the clip and report; `overrides` update the prior's settings (e.g. seeding); `timeline`
    is where to draw the per-frame picture."""
    raw = seeding_graph(clip, refiner, model_size, out, sam2_size)
    raw["operators"]["prior"].update(overrides or {})
    run_graph(validate(raw, graph_path("replay")))
    lines = [json.loads(line) for line in (out / "qa.jsonl").read_text().splitlines()]
    if timeline is not None:
        events = "smoke, glare, occlusion, fast motion" if clip.difficulties else "no other difficulty"
        plot_timeline(lines, timeline, f"hands-free seeding, synthetic clip ({events}); SAM 2 {sam2_size} px")
    metrics = json.loads((out / "metrics.json").read_text())
    return {"clip": {"frames": clip.frames, "presence": [list(s) for s in clip.presence], "size": list(clip.size),
                     "seed": clip.seed, "difficulties": clip.difficulties},
            "seeding": raw["operators"]["prior"].get("seeding", {}),
            **seeding_report(lines, clip.presence), "mean_dice": metrics.get("mean_dice")}


def main() -> None:
    from benchmarks.common import write_result
    from surgseg.app.demo import DemoConfig, ensure_refiner

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("out"), help="where the demo refiner is cached")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    demo = DemoConfig(out=args.out)
    refiner, _, _ = ensure_refiner(demo)
    results = {}
    for name, clip in (("clean", SeedingClip()), ("difficult", SeedingClip(difficulties=True))):
        with tempfile.TemporaryDirectory() as tmp:
            timeline = DOCS / "hands_free_seeding.png" if clip.difficulties else None
            results[name] = result = run_seeding(clip, refiner, demo.model_size, Path(tmp), timeline=timeline)
        log.info("%s clip: entries %s → seeded after %s frames; exits %s → released after %s frames; false seeds %s; "
                 "prior+refiner p50 %s", name, result["entries"], result["frames_entry_to_seed"], result["exits"],
                 result["frames_exit_to_release"], result["false_seeds"], result["cost_ms"])
    log.info("wrote %s", write_result("hands_free_seeding", results))


if __name__ == "__main__":
    main()
