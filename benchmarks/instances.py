"""Instance tracking: every instrument its own track with a persistent ID, on synthetic multi-instrument clips.

Each clip (engines/video/synthetic_instances.py: instruments that enter, cross, occlude one another, leave and come
back) runs through the shipped replay graph from a PNG folder, with no seed: the demo refiner, SAM 2 with random
weights, `instances.enabled`, MaskSink writing the uint16 instance-ID maps and a QA log of every frame. The
`crossing` clip also runs with the class-level SAM2Prior (instances off) for the per-frame cost.

Scored with py-motmetrics against the exact instance ground truth (an instrument counts on a frame when at least
`MIN_GT_AREA` of its pixels are visible, the model-geometry `seeding.min_area`; a track matches an instrument at IoU
>= 0.5): IDF1, ID switches (also per crossing: a crossing is a run of frames where two instruments' outlines
overlap), MOTA, and the Dice of matched (instrument, track) pairs. The `crossing` clip also runs with the class-level
SAM2Prior (instances off) for the graph's prior milliseconds, and the trackers alone are timed alternating frame by
frame (`step_cost`), which a busy machine skews less. `on_ground_truth_masks` scores the instance tracker alone on
the true class masks (a perfect refiner, no SAM 2), separating the matching from the refiner's segmentation.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from surgseg.app.graph_spec import read_yaml, validate
from surgseg.app.runtime import run_graph
from surgseg.engines.atomic import atomic_path
from surgseg.engines.instance_overlay import draw_instances
from surgseg.engines.video.synthetic_instances import TAGS, InstanceClip, InstanceClipConfig, instance_clips
from surgseg.graphs import graph_path

log = logging.getLogger("instances")
DOCS = Path(__file__).resolve().parents[1] / "docs"
MIN_GT_AREA = 256
"""Source pixels (320x256) of `seeding.min_area` = 64 at the 128x160 model size."""
MATCH_IOU = 0.5
GOALS = {"idf1_min": 0.90, "id_switches_per_crossing_max": 1.0, "matched_instance_dice_min": 0.85}


def write_clip(clip: InstanceClip, folder: Path) -> list[list[str]]:
    """Frames and class masks as PNGs (`frames/`, `masks/`), instance truth as uint16 PNGs (`truth/`); the tags."""
    tags = []
    for name in ("frames", "masks", "truth"):
        (folder / name).mkdir(parents=True, exist_ok=True)
    for t, item in enumerate(clip):
        Image.fromarray(item.frame).save(folder / "frames" / f"{t:06d}.png")
        Image.fromarray(item.mask).save(folder / "masks" / f"{t:06d}.png")
        Image.fromarray(item.ids).save(folder / "truth" / f"{t:06d}.png")
        tags.append(item.tags)
    return tags


def instance_graph(folder: Path, refiner: Path, model_size: tuple[int, int], instances: bool,
                   sam2_size: int) -> dict[str, Any]:
    """The replay graph from the clip's PNG folder, no seed, masks + instance IDs and a QA log written."""
    raw = read_yaml(graph_path("replay"))
    h, w = model_size
    out = folder / ("instances" if instances else "classes")
    raw["device"] = "cpu"
    raw["operators"]["source"] = {"type": "ImageFolderSource", "path": str(folder / "frames"),
                                  "masks": str(folder / "masks"), "num_classes": 2}
    raw["operators"]["preproc"]["size"] = [h, w]
    prior = raw["operators"]["prior"]
    prior["model"]["image_size"] = sam2_size
    prior["seed"] = {}
    prior["instances"] = {"enabled": instances}
    prior["runtime"]["threads"] = 1  # on a shared 2-core machine, 2 intra-op threads mostly measure the neighbours
    raw["operators"]["refiner"].update(artifact=str(refiner / "refiner.onnx"), size=[h, w])
    for name in ("overlay", "video", "latency"):
        raw["operators"].pop(name)
    raw["operators"]["metrics"]["path"] = str(out / "metrics.json")
    raw["operators"]["masks"] = {"type": "MaskSink", "folder": str(out / "masks"),
                                 "instances": str(out / "ids") if instances else None}
    raw["operators"]["qa"] = {"type": "QAMonitor", "path": str(out / "qa.jsonl")}
    raw["flows"] = [flow for flow in raw["flows"]
                    if not (isinstance(flow, list) and {"overlay", "video", "latency"} & set(flow))]
    raw["flows"] += [flow for flow in (["ema", "masks"], ["ema", "qa"]) if flow not in raw["flows"]]
    return raw


def mot_scores(truth: list[np.ndarray], tracks: list[np.ndarray]) -> dict[str, Any]:
    """IDF1, ID switches, MOTA (py-motmetrics) and matched-pair Dice of per-frame uint16 ID maps."""
    import motmetrics as mm

    accumulator = mm.MOTAccumulator(auto_id=True)
    dice = []
    for gt, hyp in zip(truth, tracks):
        gt_ids = [k for k, n in zip(*np.unique(gt[gt > 0], return_counts=True)) if n >= MIN_GT_AREA]
        hyp_ids = [int(k) for k in np.unique(hyp[hyp > 0])]
        distances = np.full((len(gt_ids), len(hyp_ids)), np.nan)
        for a, g in enumerate(gt_ids):
            for b, k in enumerate(hyp_ids):
                inter = np.count_nonzero((gt == g) & (hyp == k))
                iou = inter / np.count_nonzero((gt == g) | (hyp == k))
                if iou >= MATCH_IOU:
                    distances[a, b] = 1.0 - iou
        accumulator.update([int(g) for g in gt_ids], hyp_ids, distances)
        frame_events = accumulator.mot_events.loc[accumulator.mot_events.index.get_level_values(0).max()]
        for _, row in frame_events[frame_events.Type.isin(["MATCH", "SWITCH"])].iterrows():
            g, k = gt == row.OId, hyp == row.HId
            dice.append(2.0 * np.count_nonzero(g & k) / (np.count_nonzero(g) + np.count_nonzero(k)))
    summary = mm.metrics.create().compute(accumulator, metrics=["idf1", "num_switches", "mota", "num_matches",
                                                                "num_misses", "num_false_positives"], name="clip")
    row = summary.loc["clip"]
    return {"idf1": float(row.idf1), "id_switches": int(row.num_switches), "mota": float(row.mota),
            "matches": int(row.num_matches), "misses": int(row.num_misses),
            "false_positives": int(row.num_false_positives),
            "matched_instance_dice": float(np.mean(dice)) if dice else None}


def crossings(tags: list[list[str]]) -> int:
    """Runs of consecutive frames tagged `crossing`."""
    flags = [("crossing" in t) for t in tags]
    return sum(1 for t, on in enumerate(flags) if on and (t == 0 or not flags[t - 1]))


def prior_ms(qa: Path, tracked_only: bool = False) -> float | None:
    lines = [json.loads(line) for line in qa.read_text().splitlines()]
    values = [ln["timings_ms"]["prior"] for ln in lines if "prior" in ln.get("timings_ms", {})
              and (ln.get("tracked") or not tracked_only)]
    return float(np.median(values)) if values else None


def run_clip(config: InstanceClipConfig, refiner: Path, model_size: tuple[int, int], folder: Path,
             sam2_size: int, class_level: bool) -> tuple[dict[str, Any], list[np.ndarray], list[list[str]]]:
    """The clip through the graph with instances (and, when `class_level`, without): scores, pictures, tags."""
    clip = InstanceClip(config)
    tags = write_clip(clip, folder)
    result: dict[str, Any] = {"frames": config.frames, "size": list(config.size),
                              "instruments": len(config.instruments), "crossings": crossings(tags),
                              "tag_frames": {tag: sum(tag in t for t in tags) for tag in TAGS}}
    for instances in (True, False)[: 2 if class_level else 1]:
        run_graph(validate(instance_graph(folder, refiner, model_size, instances, sam2_size), graph_path("replay")))
    out = folder / "instances"
    truth = [np.asarray(Image.open(folder / "truth" / f"{t:06d}.png")) for t in range(config.frames)]
    ids = [np.asarray(Image.open(out / "ids" / f"{t:06d}.png")) for t in range(config.frames)]
    result.update(mot_scores(truth, ids))
    result["on_ground_truth_masks"] = truth_scores(config, model_size)
    result["id_switches_per_crossing"] = result["id_switches"] / max(result["crossings"], 1)
    result["class_dice"] = json.loads((out / "metrics.json").read_text()).get("mean_dice")
    events: dict[str, int] = {}
    for line in (out / "qa.jsonl").read_text().splitlines():
        for event in json.loads(line).get("instances", []):
            events[event["event"]] = events.get(event["event"], 0) + 1
    result["events"] = events
    result["prior_ms_p50"] = {"instances": prior_ms(out / "qa.jsonl"),
                              "instances_tracking_frames": prior_ms(out / "qa.jsonl", tracked_only=True)}
    if class_level:
        result["prior_ms_p50"].update(class_level=prior_ms(folder / "classes" / "qa.jsonl"),
                                      class_level_tracking_frames=prior_ms(folder / "classes" / "qa.jsonl", True))
    frames = [np.asarray(Image.open(folder / "frames" / f"{t:06d}.png")) for t in range(config.frames)]
    return result, [draw_instances(f, i) for f, i in zip(frames, ids)], tags


def truth_scores(config: InstanceClipConfig, model_size: tuple[int, int]) -> dict[str, Any]:
    """The instance tracker alone on the ground-truth class masks (a perfect refiner, no SAM 2): what the matching
    itself keeps, whatever the refiner's quality."""
    from surgseg.engines.letterbox import letterbox_geometry
    from surgseg.engines.preprocess import mask_to_model
    from surgseg.engines.sam2.config import InstancesConfig, SeedingConfig
    from surgseg.engines.sam2.instances import InstanceTracker, source_ids

    s = SeedingConfig()
    tracker = InstanceTracker(InstancesConfig(enabled=True), 2, model_size, s.min_area, s.frames, s.release_after)
    geometry = letterbox_geometry((config.size[1], config.size[0]), model_size)
    truth, tracks = [], []
    for item in InstanceClip(config):
        tracks.append(source_ids(item.mask, tracker.hint(), geometry))
        tracker.update(mask_to_model(item.mask, geometry))
        truth.append(item.ids)
    return mot_scores(truth, tracks)


def step_cost(config: InstanceClipConfig, model_size: tuple[int, int], sam2_size: int,
              frames: int = 32) -> dict[str, Any]:
    """SAM2Prior's tracker alone (one thread), class-level and instance-level alternating frame by frame on the same
    frames (the ground truth fed back), so a busy machine slows both alike: median ms per frame where both track,
    and the instance tracker's ms on an empty scene."""
    import time

    import torch

    from surgseg.engines.preprocess import mask_to_model, model_input
    from surgseg.engines.sam2.config import InstancesConfig, ModelConfig, SAM2Config
    from surgseg.engines.sam2.instance_prior import InstancePriorTracker
    from surgseg.engines.sam2.model import build_sam2_model
    from surgseg.engines.sam2.stream import StreamingSAM2
    from surgseg.engines.sam2.tracker import PriorTracker

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    base = SAM2Config(model=ModelConfig(image_size=sam2_size))
    model = build_sam2_model(base.model)
    trackers = {"class_level": PriorTracker(StreamingSAM2(base, model=model)),
                "instances": InstancePriorTracker(StreamingSAM2(
                    SAM2Config(model=base.model, instances=InstancesConfig(enabled=True)), model=model))}
    clip = InstanceClip(config)
    times: dict[str, list[float]] = {name: [] for name in trackers}
    feedback = None
    for t in range(min(frames, config.frames)):
        item = clip.render(t)
        image = torch.from_numpy(model_input(item.frame, model_size)[0])
        tracking = all(tracker.seeded for tracker in trackers.values())
        for name, tracker in trackers.items():
            start = time.perf_counter()
            tracker.frame(image, feedback)
            if tracking:
                times[name].append((time.perf_counter() - start) * 1e3)
        feedback = mask_to_model(item.mask, model_size)
    empty = InstancePriorTracker(StreamingSAM2(trackers["instances"].config, model=model))
    blank = np.zeros(model_size, np.uint8)
    empty_ms = []
    for _ in range(20):
        start = time.perf_counter()
        empty.frame(image, blank)
        empty_ms.append((time.perf_counter() - start) * 1e3)
    torch.set_num_threads(threads)
    cost = {f"{name}_ms_p50": float(np.median(values)) for name, values in times.items()}
    cost.update(frames=len(times["instances"]), instances_vs_class_level=cost["instances_ms_p50"]
                / cost["class_level_ms_p50"], instances_empty_scene_ms_p50=float(np.median(empty_ms)))
    return cost


def crossing_picture(pictures: list[np.ndarray], tags: list[list[str]], path: Path) -> None:
    """Before, during (start, middle, end) and after the first crossing, IDs drawn, in one row."""
    flags = [("crossing" in t) for t in tags]
    start = flags.index(True)
    end = start + flags[start:].index(False) if False in flags[start:] else len(flags) - 1
    picks = [max(start - 4, 0), start + 2, (start + end) // 2, end - 2, min(end + 4, len(flags) - 1)]
    row = []
    for t in picks:
        image = pictures[t].copy()
        cv2.putText(image, f"frame {t}", (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        row.append(image)
        row.append(np.full((image.shape[0], 4, 3), 255, np.uint8))
    with atomic_path(path) as tmp:
        Image.fromarray(np.concatenate(row[:-1], axis=1)).save(tmp, format="PNG")


def main() -> None:
    from benchmarks.common import write_result
    from surgseg.app.demo import DemoConfig, ensure_refiner

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("out"), help="where the demo refiner is cached")
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--sam2-size", type=int, default=256)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    demo = DemoConfig(out=args.out)
    refiner = args.out / "demo" / "refiner"
    if not (refiner / "refiner.json").is_file():
        refiner, _, _ = ensure_refiner(demo)
    results: dict[str, Any] = {}
    for name, config in instance_clips(frames=args.frames).items():
        with tempfile.TemporaryDirectory() as tmp:
            results[name], pictures, tags = run_clip(config, refiner, demo.model_size, Path(tmp), args.sam2_size,
                                                     class_level=name == "crossing")
            if name == "crossing":
                crossing_picture(pictures, tags, DOCS / "instances_crossing.png")
        log.info("%s: %s", name, {k: v for k, v in results[name].items() if k != "tag_frames"})
    cost = step_cost(instance_clips(frames=args.frames)["crossing"], demo.model_size, args.sam2_size)
    log.info("per-frame cost of the tracker alone (2 instruments): %s", cost)
    total_crossings = sum(r["crossings"] for r in results.values())
    overall = {"idf1_mean": float(np.mean([r["idf1"] for r in results.values()])),
               "id_switches": sum(r["id_switches"] for r in results.values()), "crossings": total_crossings,
               "id_switches_per_crossing": sum(r["id_switches"] for r in results.values()) / max(total_crossings, 1),
               "matched_instance_dice_mean": float(np.mean([r["matched_instance_dice"] for r in results.values()]))}
    overall["goals_met"] = {"idf1": overall["idf1_mean"] >= GOALS["idf1_min"],
                            "id_switches_per_crossing": overall["id_switches_per_crossing"]
                            <= GOALS["id_switches_per_crossing_max"],
                            "matched_instance_dice": overall["matched_instance_dice_mean"]
                            >= GOALS["matched_instance_dice_min"]}
    log.info("overall: %s", overall)
    validation = json.loads((refiner / "refiner.json").read_text()).get("val_metrics", {})
    truth_only = [r["on_ground_truth_masks"] for r in results.values()]
    overall["on_ground_truth_masks"] = {
        "idf1_mean": float(np.mean([r["idf1"] for r in truth_only])),
        "id_switches": sum(r["id_switches"] for r in truth_only),
        "matched_instance_dice_mean": float(np.mean([r["matched_instance_dice"] for r in truth_only]))}
    payload = {"refiner": str(refiner),
               "refiner_validation_dice": validation.get("refined", {}).get("mean_dice"), "sam2": {"weights": "random", "image_size": args.sam2_size},
               "min_gt_area_px": MIN_GT_AREA, "match_iou": MATCH_IOU, "goals": GOALS, "overall": overall,
               "tracker_cost": cost,
               "clips": results}
    log.info("wrote %s", write_result("instances", payload))


if __name__ == "__main__":
    main()
