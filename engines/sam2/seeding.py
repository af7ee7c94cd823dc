"""Seeds for SAM 2 in the model's (letterboxed) geometry: a box + points, a class-id mask file, a clicks file, or
a display's clicks and drags (`pointer_prompts`).

User coordinates are source-frame pixels; `to_model` maps them through the letterbox. A clicks file is CSV with the
header `frame,class,x,y,label` (label 1 positive, 0 negative): the clicks of frame f seed (f = 0) or re-prompt
that frame. A click prompt's box is the positive clicks' bounding box grown by `CLICK_BOX_MARGIN` of the model side
(the engine's prompts always carry a box).
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from surgseg.engines.errors import InputError, one_line
from surgseg.engines.letterbox import LetterboxGeometry
from surgseg.engines.sam2.prompts import ClassPrompts, Prompt
from surgseg.engines.video.image_folder import load_picture

CLICK_COLUMNS = ("frame", "class", "x", "y", "label")
CLICK_BOX_MARGIN = 0.08


def to_model(x: float, y: float, geometry: LetterboxGeometry) -> tuple[int, int]:
    """A source pixel (x, y) in the letterboxed model image, clamped inside it."""
    mx = int(round((x - geometry.crop_x0 + 0.5) * geometry.scale - 0.5)) + geometry.left
    my = int(round((y - geometry.crop_y0 + 0.5) * geometry.scale - 0.5)) + geometry.top
    return min(max(mx, 0), geometry.target_w - 1), min(max(my, 0), geometry.target_h - 1)


def box_prompts(box: tuple[float, float, float, float], points: list[tuple[float, float, int]], class_id: int,
                num_classes: int, geometry: LetterboxGeometry) -> ClassPrompts:
    """One class's prompt from a source-pixel box (x0, y0, x1, y1) and points (x, y, label)."""
    if not 0 < class_id < num_classes:
        raise InputError(f"seed.class_id: {class_id} outside 1..{num_classes - 1}")
    if len(box) != 4 or not all(map(math.isfinite, box)) or box[2] < box[0] or box[3] < box[1]:
        raise InputError(f"seed.box: expected [x0, y0, x1, y1] with x0 <= x1 and y0 <= y1, got {list(box)}")
    for p in points:
        if len(p) != 3 or p[2] not in (0, 1) or not all(map(math.isfinite, p[:2])):
            raise InputError(f"seed.points: expected [x, y, label] with label 0 or 1, got {list(p)}")
    corners = to_model(box[0], box[1], geometry) + to_model(box[2], box[3], geometry)
    model_points = tuple(to_model(x, y, geometry) for x, y, _ in points)
    prompt = Prompt(box=corners, points=model_points, labels=tuple(int(p[2]) for p in points))
    return ClassPrompts(geometry.target_h, geometry.target_w, num_classes, {class_id: [prompt]})


def read_mask(path: str | Path, num_classes: int) -> np.ndarray:
    """A class-id PNG (H×W); for a binary task any non-zero value is the foreground (0/255 masks work)."""
    # Pillow, not cv2.imread: libpng prints its complaints about a damaged file on stderr
    mask = np.asarray(load_picture(path, "cannot read the seed mask (PNG of class ids expected)"))
    if mask.ndim != 2:
        raise InputError(f"{path}: seed mask must be single-channel class ids, got shape {mask.shape}")
    if num_classes == 2:
        return (mask > 0).astype(np.uint8)
    if int(mask.max()) >= num_classes:
        raise InputError(f"{path}: class id {int(mask.max())} >= num_classes {num_classes}")
    return mask.astype(np.uint8)


def read_clicks(path: str | Path, num_classes: int) -> dict[int, list[tuple[int, float, float, int]]]:
    """frame → [(class, x, y, label), ...] from a clicks CSV."""
    clicks: dict[int, list[tuple[int, float, float, int]]] = defaultdict(list)
    try:
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            if tuple(reader.fieldnames or ()) != CLICK_COLUMNS:
                raise InputError(f"{path}: header must be {','.join(CLICK_COLUMNS)}, got {reader.fieldnames}")
            for line, row in enumerate(reader, start=2):
                try:
                    frame, cls, label = int(row["frame"]), int(row["class"]), int(row["label"])
                    x, y = float(row["x"]), float(row["y"])
                except (TypeError, ValueError):
                    raise InputError(f"{path}:{line}: expected integers frame, class, label and numbers x, y") from None
                if not 0 < cls < num_classes or label not in (0, 1) or frame < 0 or not math.isfinite(x + y):
                    raise InputError(f"{path}:{line}: class must be 1..{num_classes - 1}, label 0 or 1, frame >= 0, "
                                     f"x and y finite")
                clicks[frame].append((cls, x, y, label))
    except FileNotFoundError:
        raise InputError(f"{path}: clicks file not found") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: not a readable clicks CSV ({one_line(exc)})") from None
    return dict(clicks)


def click_prompts(clicks: list[tuple[int, float, float, int]], num_classes: int,
                  geometry: LetterboxGeometry) -> ClassPrompts:
    """Prompts for one frame's clicks; a class needs at least one positive click."""
    margin = int(round(CLICK_BOX_MARGIN * max(geometry.target_h, geometry.target_w)))
    classes: dict[int, list[Prompt]] = {}
    for class_id in sorted({c for c, *_ in clicks}):
        own = [(to_model(x, y, geometry), label) for c, x, y, label in clicks if c == class_id]
        positives = [p for p, label in own if label == 1]
        if not positives:
            continue
        xs, ys = [p[0] for p in positives], [p[1] for p in positives]
        box = (max(min(xs) - margin, 0), max(min(ys) - margin, 0),
               min(max(xs) + margin, geometry.target_w - 1), min(max(ys) + margin, geometry.target_h - 1))
        classes[class_id] = [Prompt(box=box, points=tuple(p for p, _ in own), labels=tuple(lb for _, lb in own))]
    return ClassPrompts(geometry.target_h, geometry.target_w, num_classes, classes)


def pointer_prompts(clicks: list[tuple[int, float, float, int]], boxes: list[tuple[int, float, float, float, float]],
                    num_classes: int, geometry: LetterboxGeometry) -> ClassPrompts:
    """Prompts from a display's clicks (class, x, y, label) and dragged boxes (class, x0, y0, x1, y1) in source
    pixels: a class with a box gets the box with its clicks as points, any other class its clicks."""
    classes = dict(click_prompts(clicks, num_classes, geometry).classes)
    for class_id, *box in boxes:
        points = [(x, y, label) for c, x, y, label in clicks if c == class_id]
        classes.update(box_prompts(tuple(box), points, class_id, num_classes, geometry).classes)
    return ClassPrompts(geometry.target_h, geometry.target_w, num_classes, classes)
