"""The fuzzing campaign's input kinds: each turns (case number, its random generator) into one bad-or-good input
and feeds it to surgseg the way a user would.

In-process kinds call the reader of one input kind (graph YAML, `--set`, clicks CSV, prompts JSON, seed masks,
colour maps, mask pixels, index JSONL, pictures, videos) or the CLI's `main` (`data index`): they must return or
raise `InputError` with a one-line message. Subprocess kinds run `python -m surgseg.app.cli` on a damaged file (the
replay graph with a tiny refiner, `data index`, `graph check`) and are judged on exit code, stderr and the files
left behind (`benchmarks.fuzz.judge_process`).
"""

from __future__ import annotations

import copy
import io
import json
import logging
import random
import string
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from benchmarks.fuzz_media import BIG_SEEDS, EMPTY_VIDEO, FRAGMENTED_SEED, MUTATIONS, VIDEO_SEEDS, mutate

MODEL_SIZE = (32, 48)
VIDEO_NAMES = tuple(seed.name for seed in VIDEO_SEEDS) + (FRAGMENTED_SEED, EMPTY_VIDEO)
PICTURE_NAMES = ("rgb.png", "grey.png", "grey_alpha.png", "rgba.png", "palette.png", "sixteen.png", "one.png",
                 "odd.png", "photo.jpg", "bitmap.bmp", "sixteen.tif", "claims_30000.png", "claims_12000.png",
                 "big_4097.png")
MASK_NAMES = ("mask_binary.png", "mask_ids.png", "mask_palette.png", "mask_colour.png", "mask_sixteen.png",
              "mask_noisy.jpg")
ODD_VALUES: tuple[Any, ...] = (
    None, True, False, 0, -1, 1, 3, 2**31, 2**64, -(2**63), 1e308, -0.5, 0.5, float("inf"), float("nan"), "", "x",
    "../../..", "/nonexistent/file.mp4", "1x2", "é中\u202e", "\x00", [], {}, [0], [1, 2], [-5, 10], [0, 0, 0, 0],
    [100000, 100000], [1.5, 2.5], ["a", "b"], {"a": 1}, {"box": [1, 2, 3]}, [[1, 2, 1]], "greedy", "cpu", "cuda",
)
ODD_TEXTS = ("", "x", "-1", "0", "1e999", "nan", "inf", "[", "{a: [", "]", "!!python/object/apply:os.system [ls]",
             "&a [*a, *a]", "{}", "[]", "null", "~", "'", '"', "\t", "- - -", "1: 2: 3", "x" * 5000, "é中", "\x00",
             "[1, 2, 3, 4]", "{box: [1, 2, 30, 40]}", "{mask: /nonexistent.png}", "{clicks: nope.csv}", "true",
             "3.5", "[32, 48]", "[0, 0]", "greedy", "multithread", "event")


@dataclass(frozen=True)
class Context:
    """What every case may use: the seed media folder, a tiny refiner artefact, a scratch folder of its own."""

    seeds: Path
    artifact: Path
    work: Path


@dataclass
class Outcome:
    exit: int | None
    """0 accepted, 2 refused as bad input, 1 another failure; None for a hang or a crash."""
    clean: bool
    reason: str = ""


# ------------------------------------------------------------------------------------------------ shared bits
def odd_value(rng: random.Random) -> Any:
    """A fresh copy of an awkward value (copied: the tree edits must never reach the shared table)."""
    return copy.deepcopy(rng.choice(ODD_VALUES))


def mutate_text(text: str, rng: random.Random) -> str:
    """A few character-level edits: deletions, insertions of odd characters, swaps, a cut."""
    chars = list(text)
    for _ in range(rng.randint(1, 6)):
        if not chars:
            break
        at = rng.randrange(len(chars))
        action = rng.randrange(5)
        if action == 0:
            del chars[at]
        elif action == 1:
            chars.insert(at, rng.choice(":-[]{}#&*!|>'\"\t\n ,%@`\x00é" + string.ascii_letters + string.digits))
        elif action == 2 and at + 1 < len(chars):
            chars[at], chars[at + 1] = chars[at + 1], chars[at]
        elif action == 3:
            chars = chars[:at]
        else:
            chars[at:at] = list(rng.choice(ODD_TEXTS))
    return "".join(chars)


def damaged_copy(ctx: Context, name: str, rng: random.Random, target: Path | None = None,
                 damage: bool = True) -> tuple[Path, str]:
    """A copy of seed `name` with one random mutation (never the 4097² seeds damaged: they cost seconds each)."""
    how = "none" if name in BIG_SEEDS or not damage else rng.choice(MUTATIONS)
    target = target or ctx.work / f"damaged{Path(name).suffix}"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(mutate((ctx.seeds / name).read_bytes(), how, rng))
    return target, how


def pick_picture(rng: random.Random, ctx: Context) -> str:
    """A picture seed; the 4097² one rarely (when the seeds include it)."""
    big = rng.random() < 0.01 and (ctx.seeds / "big_4097.png").exists()
    return "big_4097.png" if big else rng.choice(PICTURE_NAMES[:-1])


def pick_video(rng: random.Random, ctx: Context) -> str:
    big = rng.random() < 0.01 and (ctx.seeds / "ffv1_4097.mkv").exists()
    return "ffv1_4097.mkv" if big else rng.choice([n for n in VIDEO_NAMES if n not in BIG_SEEDS])


# ------------------------------------------------------------------------------------------------ graphs
def base_graphs(ctx: Context) -> list[dict[str, Any]]:
    """Graphs whose every file exists: the smoke graph, a lite replay with the tiny refiner, the shipped replay_fast."""
    from surgseg.graphs import graph_path

    clip = str(ctx.seeds / "h264_faststart.mp4")
    smoke = yaml.safe_load(graph_path("smoke").read_text())
    smoke["operators"]["sink"]["path"] = str(ctx.work / "counts.json")
    fast = yaml.safe_load(graph_path("replay_fast").read_text())
    fast["operators"]["source"]["path"] = clip
    fast["operators"]["prior"]["seed"] = {"box": [10, 10, 40, 30]}
    for graph in (fast,):
        graph["operators"]["preproc"]["size"] = list(MODEL_SIZE)
        graph["operators"]["refiner"].update(artifact=str(ctx.artifact), size=list(MODEL_SIZE))
        graph["operators"]["metrics"]["path"] = str(ctx.work / "metrics.json")
        graph["operators"]["latency"]["path"] = str(ctx.work / "latency.json")
    return [smoke, replay_graph(ctx, clip, ctx.work / "out"), fast]


def replay_graph(ctx: Context, clip: str, out: Path, source: dict[str, Any] | None = None) -> dict[str, Any]:
    """Video file → preproc → tiny refiner (fed its own previous mask) → EMA → overlay → mp4 + latency JSON."""
    return {
        "name": "fuzz_replay", "device": "cpu", "scheduler": {"type": "greedy"},
        "operators": {
            "source": source or {"type": "VideoFileSource", "path": clip},
            "preproc": {"type": "Preproc", "size": list(MODEL_SIZE)},
            "refiner": {"type": "Refiner", "artifact": str(ctx.artifact), "num_classes": 2, "size": list(MODEL_SIZE),
                        "prior_source": "feedback"},
            "ema": {"type": "TemporalEMA", "alpha": 0.7},
            "overlay": {"type": "Overlay"},
            "video": {"type": "VideoFileSink", "path": str(out / "overlay.mp4")},
            "latency": {"type": "LatencyReport", "path": str(out / "latency.json")},
        },
        "flows": [["source", "preproc"], ["preproc", "refiner.image"], ["refiner", "ema"], ["ema", "overlay"],
                  ["overlay", "video"], ["overlay", "latency"],
                  {"from": "ema.mask", "to": "refiner.feedback", "feedback": True}],
    }


def leaf_keys(node: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    if isinstance(node, dict):
        return [key for k, v in node.items() for key in leaf_keys(v, (*prefix, str(k)))] or [prefix]
    return [prefix]


def mutate_tree(node: Any, rng: random.Random) -> Any:
    """One structural edit somewhere in a YAML tree: drop, replace, rename, add or duplicate a key or item."""
    if isinstance(node, dict) and node and rng.random() < 0.7:
        key = rng.choice(list(node))
        action = rng.randrange(5)
        if action == 0:
            del node[key]
        elif action == 1:
            node[key] = odd_value(rng)
        elif action == 2:
            node[mutate_text(str(key), rng) or "_"] = node.pop(key)
        elif action == 3:
            node[rng.choice(("extra", "typo", "count", "type", "path", "size"))] = odd_value(rng)
        else:
            node[key] = mutate_tree(node[key], rng)
        return node
    if isinstance(node, list) and node and rng.random() < 0.7:
        at = rng.randrange(len(node))
        action = rng.randrange(4)
        if action == 0:
            del node[at]
        elif action == 1:
            node[at] = odd_value(rng)
        elif action == 2:
            node.append(node[at])
        else:
            node[at] = mutate_tree(node[at], rng)
        return node
    return odd_value(rng)


def mutated_text(payload: Any, dump: Callable[[Any], str], rng: random.Random, text_share: float) -> str:
    """A valid payload mutated 0–3 times as a tree, dumped, and (with `text_share`) mutated again as text."""
    for _ in range(rng.randint(0, 3)):
        payload = mutate_tree(payload, rng)
    text = dump(payload)
    return mutate_text(text, rng) if rng.random() < text_share else text


def case_graph_yaml(rng: random.Random, ctx: Context) -> None:
    from surgseg.app.graph_spec import load_graph

    text = mutated_text(rng.choice(base_graphs(ctx)),
                        lambda graph: yaml.safe_dump(graph, sort_keys=False, allow_unicode=True), rng, 0.4)
    path = ctx.work / "graph.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass") if rng.random() < 0.9 else text.encode()[:50] + b"\xff\xfe")
    load_graph(path)


def case_graph_set(rng: random.Random, ctx: Context) -> None:
    from surgseg.app.graph_spec import load_graph

    graph = rng.choice(base_graphs(ctx))
    path = ctx.work / "graph.yaml"
    path.write_text(yaml.safe_dump(graph, sort_keys=False))
    keys = leaf_keys(graph)
    overrides = []
    for _ in range(rng.randint(1, 3)):
        key = ".".join(rng.choice(keys))
        if rng.random() < 0.3:
            key = mutate_text(key, rng)
        value = rng.choice(ODD_TEXTS) if rng.random() < 0.7 else yaml.safe_dump(odd_value(rng)).strip()
        overrides.append(key if rng.random() < 0.05 else f"{key}={value}")
    load_graph(path, overrides)


# ------------------------------------------------------------------------------------------------ seeds, prompts
def case_clicks_csv(rng: random.Random, ctx: Context) -> None:
    from surgseg.engines.sam2.seeding import read_clicks

    header = "frame,class,x,y,label"
    if rng.random() < 0.3:
        header = mutate_text(header, rng)
    lines = [header]
    for _ in range(rng.randint(0, 6)):
        row = [str(rng.randint(0, 5)), str(rng.randint(0, 3)), str(rng.uniform(-10, 100)), str(rng.uniform(-10, 100)),
               str(rng.randint(0, 1))]
        if rng.random() < 0.5:
            row[rng.randrange(5)] = rng.choice(ODD_TEXTS)
        if rng.random() < 0.2:
            row = row[: rng.randrange(6)] + [rng.choice(ODD_TEXTS)] * rng.randrange(3)
        lines.append(",".join(row))
    text = "\n".join(lines)
    data = text.encode("utf-8", "surrogatepass")
    if rng.random() < 0.15:
        data = mutate(data, rng.choice(MUTATIONS), rng)
    path = ctx.work / "clicks.csv"
    path.write_bytes(data)
    read_clicks(path, rng.choice((2, 3, 4)))


def valid_prompts() -> dict[str, Any]:
    return {"schema_version": 1, "height": 48, "width": 64, "num_classes": 3,
            "classes": {"1": [{"box": [1, 2, 30, 40], "points": [[5, 6], [7, 8]], "labels": [1, 0], "area": 99}],
                        "2": [{"box": [3, 3, 9, 9], "points": [[4, 4]], "labels": [1]}]}}


def case_prompts_json(rng: random.Random, ctx: Context) -> None:
    from surgseg.engines.sam2.prompts import load_prompts

    text = mutated_text(valid_prompts(), lambda payload: json.dumps(payload, allow_nan=True), rng, 0.3)
    path = ctx.work / "prompts.json"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    load_prompts(path)


def case_seed_mask(rng: random.Random, ctx: Context) -> None:
    from surgseg.engines.sam2.seeding import read_mask

    path, _ = damaged_copy(ctx, rng.choice(MASK_NAMES + PICTURE_NAMES[:-1]), rng)
    read_mask(path, rng.choice((2, 3)))


def case_colour_map(rng: random.Random, ctx: Context) -> None:
    from surgseg.training.masks import load_colour_map

    colours = {"classes": [{"id": 0, "name": "background", "colour": [0, 0, 0]},
                           {"id": 1, "name": "shaft", "colour": [255, 0, 0]},
                           {"id": 2, "name": "tip", "colour": [0, 255, 0]}]}
    text = mutated_text(colours, lambda payload: yaml.safe_dump(payload, allow_unicode=True), rng, 0.3)
    path = ctx.work / "colours.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    load_colour_map(path)


def case_mask_pixels(rng: random.Random, ctx: Context) -> None:
    """Pixel arrays of every kind a mask decoder returns (uint8/uint16/int32, grey or RGB, any size)."""
    import numpy as np

    from surgseg.training.masks import load_colour_map, standardise_mask

    generator = np.random.default_rng(rng.randrange(2**32))
    dtype = rng.choice((np.uint8, np.uint8, np.uint16, np.int32))
    shape = (rng.randint(1, 40), rng.randint(1, 40)) + ((3,) if rng.random() < 0.4 else ())
    top = rng.choice((2, 3, 4, 128, 256, 70000)) if dtype != np.uint8 else rng.choice((2, 3, 4, 128, 256))
    levels = generator.choice(np.array(rng.choice(([0, 1], [0, 255], [0, 1, 2], [0, 128, 255]))), shape)
    raw = np.where(generator.random(shape) < rng.choice((0.0, 0.01, 0.3)),
                   generator.integers(0, top, shape), levels).astype(dtype)
    colour_map = None
    if rng.random() < 0.3:
        colours = ctx.work / "colours.yaml"
        colours.write_text(yaml.safe_dump({"classes": [{"id": 0, "colour": [0, 0, 0]}, {"id": 1, "colour": [255, 0, 0]},
                                                       {"id": 2, "colour": [0, 255, 0]}]}))
        colour_map = load_colour_map(colours)
    standardise_mask(raw, "mask.png", rng.choice((2, 3, 4)), colour_map, palette=rng.random() < 0.2)


# ------------------------------------------------------------------------------------------------ index, pictures
def case_index_jsonl(rng: random.Random, ctx: Context) -> None:
    from surgseg.training.dataset_index import read_index

    rows = []
    for i in range(rng.randint(0, 4)):
        row: Any = {"image_path": f"images/{i}.png", "mask_path": f"class_masks/{i}.png", "video_id": "v",
                    "frame_id": i, "classes_present": [1], "width": 64, "height": 48}
        for _ in range(rng.randint(0, 2)):
            row = mutate_tree(row, rng)
        rows.append(json.dumps(row, allow_nan=True))
    text = "\n".join(rows)
    if rng.random() < 0.3:
        text = mutate_text(text, rng)
    data = text.encode("utf-8", "surrogatepass")
    if rng.random() < 0.1:
        data = mutate(data, rng.choice(MUTATIONS), rng)
    path = ctx.work / "dataset.jsonl"
    path.write_bytes(data)
    read_index(path)


def case_picture(rng: random.Random, ctx: Context) -> None:
    from surgseg.engines.video.image_folder import read_image, read_mask
    from surgseg.training.dataset_index import read_image_rgb
    from surgseg.training.masks import read_mask as read_raw_mask
    from surgseg.training.masks import standardise_mask

    name = pick_picture(rng, ctx) if rng.random() < 0.6 else rng.choice(MASK_NAMES)
    path, _ = damaged_copy(ctx, name, rng)
    reader = rng.randrange(4)
    if reader == 0:
        read_image(path)
    elif reader == 1:
        read_mask(path, rng.choice((2, 3)))
    elif reader == 2:
        read_image_rgb(path)
    else:
        raw, palette = read_raw_mask(path)
        standardise_mask(raw, str(path), rng.choice((2, 3)), None, palette)


def case_video_decode(rng: random.Random, ctx: Context) -> None:
    from surgseg.engines.video.io import VideoReader, probe

    path, _ = damaged_copy(ctx, pick_video(rng, ctx), rng)
    probe(path)
    with VideoReader(path) as reader:
        for _ in reader:
            pass


# ------------------------------------------------------------------------------------------------ data index
def dataset_folder(rng: random.Random, ctx: Context, root: Path) -> list[str]:
    """images/ and masks/ with 1-3 pairs (a damaged file now and then); returns the CLI options."""
    images, masks = root / "images", root / "masks"
    pairs = rng.randint(1, 3)
    for i in range(pairs):
        image_name = pick_picture(rng, ctx) if rng.random() < 0.2 else "rgb.png"
        damaged_copy(ctx, image_name, rng, images / f"f{i}{Path(image_name).suffix}", damage=rng.random() < 0.2)
        mask_name = rng.choice(MASK_NAMES[:3] * 3 + MASK_NAMES[3:])
        damaged_copy(ctx, mask_name, rng, masks / f"f{i}{Path(mask_name).suffix}", damage=rng.random() < 0.2)
    options = ["--images", str(images), "--masks", str(masks), "--out", str(root / "out" / "dataset.jsonl"),
               "--num-classes", rng.choice(("2", "2", "2", "3", "3", "1", "0", "-3", "x", "300"))]
    if rng.random() < 0.3:
        colours = root / "colours.yaml"
        colours.write_text(yaml.safe_dump({"classes": [{"id": 0, "colour": [0, 0, 0]}, {"id": 1, "colour": [255, 0, 0]}]}))
        options += ["--colour-map", str(colours)]
    if rng.random() < 0.1:
        options += ["--id-regex", rng.choice(("(?P<video>f)(?P<frame>\\d+)", "(", "f\\d", "(?P<video>x)"))]
    return options


def case_data_index(rng: random.Random, ctx: Context) -> Outcome:
    """`surgseg data index` through the CLI's main in this process; its log is the 'stderr' judged."""
    from surgseg.app.cli import main

    root = ctx.work / "dataset"
    options = dataset_folder(rng, ctx, root)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    saved = logging.root.handlers
    logging.root.handlers = [handler]
    try:
        code = main(["data", "index", *options])
    except SystemExit as exc:  # argparse refusing an option
        code = exc.code if isinstance(exc.code, int) else 2
    finally:
        logging.root.handlers = saved
    from benchmarks.fuzz import judge_output

    index = root / "out" / "dataset.jsonl"
    return judge_output(code, stream.getvalue(), root / "out", index if index.exists() else None)


# ------------------------------------------------------------------------------------------------ subprocess kinds
def surgseg_process(args: list[str], timeout: float) -> tuple[int | None, str]:
    """Run the CLI as a user would (no HOLOSCAN_LOG_LEVEL set); (exit code or None on a time-out, stderr)."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("HOLOSCAN_")}
    env["OMP_NUM_THREADS"] = "1"
    try:
        done = subprocess.run([sys.executable, "-m", "surgseg.app.cli", *args], capture_output=True, text=True,
                              env=env, timeout=timeout, errors="replace")
    except subprocess.TimeoutExpired as exc:
        stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        return None, stderr
    return done.returncode, done.stderr


def case_graph_video(rng: random.Random, ctx: Context) -> Outcome:
    """The replay graph (tiny refiner, mp4 + latency sinks) on a damaged video, through `surgseg run`."""
    from benchmarks.fuzz import judge_output

    clip, _ = damaged_copy(ctx, pick_video(rng, ctx), rng)
    out = ctx.work / "out"
    graph = ctx.work / "graph.yaml"
    graph.write_text(yaml.safe_dump(replay_graph(ctx, str(clip), out), sort_keys=False))
    code, stderr = surgseg_process(["run", str(graph), "--frames", "12"], timeout=120)
    return judge_output(code, stderr, out, None, video=out / "overlay.mp4")


def case_graph_images(rng: random.Random, ctx: Context) -> Outcome:
    """The replay graph on a folder of pictures (one damaged now and then, masks as ground truth sometimes)."""
    from benchmarks.fuzz import judge_output

    folder = ctx.work / "frames"
    name = pick_picture(rng, ctx)
    for i in range(rng.randint(1, 3)):
        damaged_copy(ctx, name if i == 0 else "rgb.png", rng, folder / f"{i}{Path(name).suffix if i == 0 else '.png'}")
    source: dict[str, Any] = {"type": "ImageFolderSource", "path": str(folder)}
    out = ctx.work / "out"
    graph = ctx.work / "graph.yaml"
    graph.write_text(yaml.safe_dump(replay_graph(ctx, "", out, source), sort_keys=False))
    code, stderr = surgseg_process(["run", str(graph)], timeout=120)
    return judge_output(code, stderr, out, None, video=out / "overlay.mp4")


def case_cli_data_index(rng: random.Random, ctx: Context) -> Outcome:
    """`surgseg data index` as a separate process: native libraries' output counts too."""
    from benchmarks.fuzz import judge_output

    root = ctx.work / "dataset"
    options = dataset_folder(rng, ctx, root)
    code, stderr = surgseg_process(["data", "index", *options], timeout=60)
    index = root / "out" / "dataset.jsonl"
    return judge_output(code, stderr, root / "out", index if index.exists() else None)


def case_cli_graph_check(rng: random.Random, ctx: Context) -> Outcome:
    """`surgseg graph check` on a damaged graph YAML as a separate process."""
    from benchmarks.fuzz import judge_output

    graph = mutate_tree(rng.choice(base_graphs(ctx)), rng)
    path = ctx.work / "graph.yaml"
    path.write_text(mutate_text(yaml.safe_dump(graph, sort_keys=False), rng) if rng.random() < 0.5
                    else yaml.safe_dump(graph, sort_keys=False))
    code, stderr = surgseg_process(["graph", "check", str(path)], timeout=60)
    return judge_output(code, stderr, ctx.work / "none", None)


KINDS: dict[str, Callable[[random.Random, Context], Outcome | None]] = {
    "graph_yaml": case_graph_yaml,
    "graph_set": case_graph_set,
    "clicks_csv": case_clicks_csv,
    "prompts_json": case_prompts_json,
    "seed_mask": case_seed_mask,
    "colour_map": case_colour_map,
    "mask_pixels": case_mask_pixels,
    "index_jsonl": case_index_jsonl,
    "picture": case_picture,
    "video_decode": case_video_decode,
    "data_index": case_data_index,
    "graph_video": case_graph_video,
    "graph_images": case_graph_images,
    "cli_data_index": case_cli_data_index,
    "cli_graph_check": case_cli_graph_check,
}
PROCESS_KINDS = ("graph_video", "graph_images", "cli_data_index", "cli_graph_check")
