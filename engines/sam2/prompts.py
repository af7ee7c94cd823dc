"""SAM 2 prompts from a class-id mask (box, interior positive point, outside negatives) and their JSON file format.

Coordinates are pixels of the mask they came from: a point is `(x, y)` = (column, row) of a pixel, a box is
`(x0, y0, x1, y1)` with inclusive max column/row (the convention of SAM's examples). Labels: 1 positive, 0 negative.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from surgseg.engines.atomic import atomic_write_json
from surgseg.engines.errors import InputError
from surgseg.engines.json_file import read_json

SCHEMA_VERSION = 1
POSITIVE = 1
NEGATIVE = 0


@dataclass(frozen=True)
class Prompt:
    """One connected component's prompt: tight box, points and their labels."""

    box: tuple[int, int, int, int]
    points: tuple[tuple[int, int], ...]
    labels: tuple[int, ...]
    area: int = 0

    def scaled(self, sx: float, sy: float) -> "Prompt":
        """The same prompt in an image scaled by (sx, sy): boxes cover the scaled pixels, points keep their centres."""
        x0, y0, x1, y1 = self.box
        box = (math.floor(x0 * sx), math.floor(y0 * sy), math.ceil((x1 + 1) * sx) - 1, math.ceil((y1 + 1) * sy) - 1)
        box = (box[0], box[1], max(box[0], box[2]), max(box[1], box[3]))
        points = tuple((math.floor((x + 0.5) * sx), math.floor((y + 0.5) * sy)) for x, y in self.points)
        return Prompt(box=box, points=points, labels=self.labels, area=int(round(self.area * sx * sy)))

    def to_json(self) -> dict[str, Any]:
        return {"box": list(self.box), "points": [list(p) for p in self.points], "labels": list(self.labels),
                "area": self.area}

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str) -> "Prompt":
        try:
            box = tuple(int(v) for v in data["box"])
            points = tuple((int(p[0]), int(p[1])) for p in data["points"])
            labels = tuple(int(v) for v in data["labels"])
            area = int(data.get("area", 0))
        except (KeyError, TypeError, ValueError, IndexError, OverflowError) as exc:
            raise InputError(f"{where}: malformed prompt ({exc!r})") from None
        if len(box) != 4 or len(points) != len(labels) or any(v not in (POSITIVE, NEGATIVE) for v in labels):
            raise InputError(f"{where}: prompt needs a 4-value box and one 0/1 label per point")
        return cls(box=box, points=points, labels=labels, area=area)


@dataclass
class ClassPrompts:
    """Prompts of every foreground class of one mask: class id -> components, largest first."""

    height: int
    width: int
    num_classes: int
    classes: dict[int, list[Prompt]] = field(default_factory=dict)

    def merged(self, class_id: int) -> Prompt | None:
        """One SAM 2 object per class: the largest component's box, every component's points (None if absent)."""
        components = self.classes.get(class_id, [])
        if not components:
            return None
        points = tuple(p for c in components for p in c.points)
        labels = tuple(v for c in components for v in c.labels)
        return Prompt(box=components[0].box, points=points, labels=labels, area=sum(c.area for c in components))

    def resized(self, height: int, width: int) -> "ClassPrompts":
        """The same prompts for the mask resized to height x width."""
        sx, sy = width / self.width, height / self.height
        classes = {c: [p.scaled(sx, sy) for p in ps] for c, ps in self.classes.items()}
        return ClassPrompts(height=height, width=width, num_classes=self.num_classes, classes=classes)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "height": self.height,
            "width": self.width,
            "num_classes": self.num_classes,
            "classes": {str(c): [p.to_json() for p in ps] for c, ps in sorted(self.classes.items())},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str = "prompts") -> "ClassPrompts":
        if not isinstance(data, dict):
            raise InputError(f"{where}: expected a JSON object")
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise InputError(f"{where}: schema_version {version!r} is not supported (expected {SCHEMA_VERSION})")
        try:
            height, width, num_classes = int(data["height"]), int(data["width"]), int(data["num_classes"])
            raw = data["classes"]
            classes = {int(c): [Prompt.from_json(p, f"{where}: class {c}") for p in ps] for c, ps in raw.items()}
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise InputError(f"{where}: missing or bad field ({exc!r})") from None
        bad = [c for c in classes if not 0 < c < num_classes]
        if bad:
            raise InputError(f"{where}: class id {bad[0]} outside 1..{num_classes - 1}")
        return cls(height=height, width=width, num_classes=num_classes, classes=classes)


def save_prompts(path: str | os.PathLike, prompts: ClassPrompts) -> None:
    """Write prompts as JSON (atomic)."""
    atomic_write_json(path, prompts.to_json())


def load_prompts(path: str | os.PathLike) -> ClassPrompts:
    """Read prompts JSON written by `save_prompts`; InputError naming the file when missing or malformed."""
    return ClassPrompts.from_json(read_json(path, missing="prompts file not found"), where=str(path))


def prompts_from_mask(
    mask: np.ndarray,
    num_classes: int,
    min_area: int = 16,
    max_components: int = 4,
    num_negative: int = 2,
    negative_margin: int | None = None,
) -> ClassPrompts:
    """Per foreground class and connected component (8-connected, largest first, at most `max_components`, each
    at least `min_area` pixels): tight box, positive point farthest from the boundary, negatives just outside."""
    if mask.ndim != 2:
        raise InputError(f"mask: expected HxW class ids, got shape {mask.shape}")
    if not 0 <= num_negative <= 2:
        raise InputError(f"num_negative: must be 0, 1 or 2, got {num_negative}")
    labels = np.asarray(mask)
    if labels.size and int(labels.max()) >= num_classes:
        raise InputError(f"mask: class id {int(labels.max())} >= num_classes {num_classes}")
    height, width = labels.shape
    classes: dict[int, list[Prompt]] = {}
    for class_id in range(1, num_classes):
        class_mask = (labels == class_id).astype(np.uint8)
        if not class_mask.any():
            continue
        components = _components(class_mask, min_area, max_components)
        prompts = [_component_prompt(c, class_mask, num_negative, negative_margin) for c in components]
        if prompts:
            classes[class_id] = prompts
    return ClassPrompts(height=height, width=width, num_classes=num_classes, classes=classes)


def _components(class_mask: np.ndarray, min_area: int, max_components: int) -> list[np.ndarray]:
    """Binary masks of the connected components, largest first (ties: first in raster order)."""
    count, label_img, stats, _ = cv2.connectedComponentsWithStats(class_mask, connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    order = sorted(range(1, count), key=lambda i: (-int(areas[i - 1]), i))
    keep = [i for i in order if areas[i - 1] >= min_area][:max_components]
    return [(label_img == i).astype(np.uint8) for i in keep]


def _component_prompt(component: np.ndarray, class_mask: np.ndarray, num_negative: int,
                      negative_margin: int | None) -> Prompt:
    ys, xs = np.nonzero(component)
    box = (int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max()))
    positive = _deepest_point(component)
    margin = negative_margin if negative_margin is not None else _default_margin(box)
    negatives = _outside_points(component, class_mask, positive, margin, num_negative)
    points = (positive, *negatives)
    labels = (POSITIVE,) + (NEGATIVE,) * len(negatives)
    return Prompt(box=box, points=points, labels=labels, area=int(len(xs)))


def _deepest_point(component: np.ndarray) -> tuple[int, int]:
    """The pixel farthest from the boundary (image border counts as boundary); first in raster order on ties."""
    padded = np.pad(component, 1)
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return int(x), int(y)


def _default_margin(box: tuple[int, int, int, int]) -> int:
    """A few pixels, growing with the object (5 % of the box's larger side)."""
    side = max(box[2] - box[0], box[3] - box[1]) + 1
    return max(3, int(round(0.05 * side)))


def _outside_points(component: np.ndarray, class_mask: np.ndarray, positive: tuple[int, int], margin: int,
                    count: int) -> list[tuple[int, int]]:
    """Up to `count` pixels `margin` px outside the component and off the class: the first farthest from the
    positive point, the second farthest from the first (opposite sides of the object)."""
    if count == 0:
        return []
    outside = (1 - component).astype(np.uint8)
    dist = cv2.distanceTransform(outside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    ring = (np.abs(dist - margin) <= 0.5) & (class_mask == 0)
    if not ring.any():
        ring = (dist > 0) & (dist <= margin + 0.5) & (class_mask == 0)
    ys, xs = np.nonzero(ring)
    if len(xs) == 0:
        return []
    chosen: list[tuple[int, int]] = []
    anchor = positive
    for _ in range(count):
        d2 = (xs - anchor[0]) ** 2 + (ys - anchor[1]) ** 2
        i = int(np.argmax(d2))
        point = (int(xs[i]), int(ys[i]))
        if point in chosen:
            break
        chosen.append(point)
        anchor = point
    return chosen
