"""The scope's field of view (FOV): the lit circle, rounded rectangle, octagon or clipped circle inside the dark
border, or the full frame.

`detect_fov` thresholds the dark border on a subsampled frame (max over RGB, so dark red tissue is not "border"; the
threshold sits just above the corners' level and noise), opens the bright region (detaches on-screen text,
timestamps and logos drawn in the border), keeps the largest region, fills it to its convex hull (dark tissue inside
or at the edge of the FOV leaves no hole or notch), then fits a circle (robust algebraic fit to the hull's boundary
away from the frame edges, so a circle cut by the frame is found whole), a rounded rectangle and an octagon
(bounding box, corner size from the area the median corner misses), and keeps the best-fitting shape whose outside
is really dark; otherwise the full frame. `FovTracker` runs it every N frames and on scene cuts and keeps the
estimate steady: jitter is smoothed, a big change (new scope, zoom) is adopted once a few detections agree on it.
Pure numpy + OpenCV; coordinates are frame pixel indices (pixel (x, y) has its centre at (x, y))."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import cv2
import numpy as np

from surgseg.engines.array_backend import to_numpy
from surgseg.engines.errors import InputError
from surgseg.engines.temporal import histogram_distance, scene_signature

KINDS = ("full", "circle", "clipped_circle", "rounded_rect", "octagon")
BOXED = ("rounded_rect", "octagon")
"""Kinds made of a bounding box and a corner size: a rounded corner's radius, an octagon's chamfer leg."""
DETECT_SIDE = 320
"""Detection runs on the frame subsampled by an integer stride to at most this many pixels on its longer side."""
MIN_FOV_FRACTION = 0.2
"""A bright region smaller than this share of the frame says nothing about the FOV (a dark or blank frame, one bright
object on a dark scene); a scope's circle inside a 16:9 frame covers about 0.3–0.45 of it."""
FULL_FRACTION = 0.985
"""A FOV covering at least this share of the frame is the full frame (cropping would gain nothing)."""
DARK_OUTSIDE = 0.8
"""Share of the pixels outside a fitted shape that must be dark border (the rest may be text or logos)."""
RANSAC_TRIES = 64
"""Candidate circles tried by the circle fit."""
MIN_CONTRAST = 2.2
"""Least `_edge_contrast` of a scope's border (measured: ≥ 2.8 on ClinicDB, ≤ 1.9 on a synthetic vignette)."""
MIN_PRECISION = 0.95
"""Share of a fitted shape that must lie in the filled bright region."""
MIN_RECALL = 0.7
"""Share of the filled bright region a fitted shape must cover (less: a menu or logo glued to the FOV's edge)."""


@dataclass(frozen=True)
class FieldOfView:
    """Where the scope's image lies in the frame.

    `bbox` = (x0, y0, x1, y1), x1/y1 exclusive, always inside the frame. Circles keep their `center` (x, y) and
    `radius` (they may reach past the frame: 'clipped_circle'); a rounded rectangle's `radius` is its corner radius,
    an octagon's the leg of its cut corners (ClinicDB's colonoscope shows an octagon).
    """

    kind: str
    bbox: tuple[int, int, int, int]
    center: tuple[float, float] = (0.0, 0.0)
    radius: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InputError(f"fov.kind: expected one of {', '.join(KINDS)}, got {self.kind!r}")
        x0, y0, x1, y1 = self.bbox
        if not (0 <= x0 < x1 and 0 <= y0 < y1):
            raise InputError(f"fov.bbox: expected 0 <= x0 < x1 and 0 <= y0 < y1, got {list(self.bbox)}")

    @classmethod
    def full(cls, height: int, width: int) -> FieldOfView:
        return cls("full", (0, 0, int(width), int(height)))

    @classmethod
    def circle(cls, cx: float, cy: float, radius: float, height: int, width: int) -> FieldOfView:
        """A circle in a height×width frame: 'clipped_circle' when it reaches past a frame edge."""
        x0, y0 = max(0, math.ceil(cx - radius)), max(0, math.ceil(cy - radius))
        x1, y1 = min(width, math.floor(cx + radius) + 1), min(height, math.floor(cy + radius) + 1)
        clipped = cx - radius < -0.5 or cy - radius < -0.5 or cx + radius > width - 0.5 or cy + radius > height - 0.5
        kind = "clipped_circle" if clipped else "circle"
        return cls(kind, (x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)), (float(cx), float(cy)), float(radius))

    @classmethod
    def rounded_rect(cls, bbox: tuple[int, int, int, int], corner_radius: float) -> FieldOfView:
        return cls.boxed("rounded_rect", bbox, corner_radius)

    @classmethod
    def octagon(cls, bbox: tuple[int, int, int, int], chamfer: float) -> FieldOfView:
        """A rectangle with its corners cut at 45° (`chamfer` = the cut's leg along each side)."""
        return cls.boxed("octagon", bbox, chamfer)

    @classmethod
    def boxed(cls, kind: str, bbox: tuple[int, int, int, int], corner: float) -> FieldOfView:
        x0, y0, x1, y1 = (int(v) for v in bbox)
        corner = min(max(float(corner), 0.0), (x1 - x0) / 2, (y1 - y0) / 2)
        return cls(kind, (x0, y0, x1, y1), ((x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2), corner)

    @property
    def is_full(self) -> bool:
        return self.kind == "full"

    def mask(self, height: int, width: int) -> np.ndarray:
        """H×W bool, True inside the FOV (a read-only array shared between calls with the same arguments)."""
        return _mask(self, int(height), int(width))

    def area_fraction(self, height: int, width: int) -> float:
        return float(self.mask(height, width).mean())

    def scaled(self, stride: int, height: int, width: int) -> FieldOfView:
        """This FOV, found on a frame subsampled by `stride` (frame[::s, ::s]), in the height×width frame."""
        if self.is_full:
            return FieldOfView.full(height, width)
        x0, y0, x1, y1 = self.bbox
        if self.kind in BOXED:
            box = (x0 * stride, y0 * stride, min(width, x1 * stride), min(height, y1 * stride))
            return FieldOfView.boxed(self.kind, box, self.radius * stride)
        cx, cy = self.center
        return FieldOfView.circle(cx * stride + (stride - 1) / 2, cy * stride + (stride - 1) / 2,
                                  self.radius * stride, height, width)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "bbox": list(self.bbox), "center": list(self.center), "radius": self.radius}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FieldOfView:
        try:
            return cls(str(data["kind"]), tuple(int(v) for v in data["bbox"]),
                       tuple(float(v) for v in data.get("center", (0.0, 0.0))), float(data.get("radius", 0.0)))
        except (KeyError, TypeError, ValueError) as error:
            raise InputError(f"fov: expected kind, bbox[, center, radius], got {data!r} ({error})") from None


@lru_cache(maxsize=8)
def _mask(fov: FieldOfView, height: int, width: int) -> np.ndarray:
    x0, y0, x1, y1 = fov.bbox
    out = np.zeros((height, width), bool)
    if fov.is_full:
        out[:] = True
    elif fov.kind in ("rounded_rect", "octagon"):
        r = fov.radius
        ys, xs = np.ogrid[y0:min(y1, height), x0:min(x1, width)]
        u = np.maximum(r - np.minimum(xs + 0.5 - x0, x1 - 0.5 - xs), 0)  # how far into a corner's square
        v = np.maximum(r - np.minimum(ys + 0.5 - y0, y1 - 0.5 - ys), 0)
        inside = u * u + v * v <= r * r if fov.kind == "rounded_rect" else u + v <= r
        out[y0:y1, x0:x1] = inside
    else:
        (cx, cy), r = fov.center, fov.radius
        ys, xs = np.ogrid[y0:min(y1, height), x0:min(x1, width)]
        out[y0:y1, x0:x1] = (xs - cx) ** 2 + (ys - cy) ** 2 <= r * r
    out.flags.writeable = False
    return out


def crop_to_fov(array: Any, fov: FieldOfView) -> Any:
    """array[y0:y1, x0:x1]: an H×W mask or H×W×C frame (numpy or torch) cut to the FOV's bounding box (a view)."""
    x0, y0, x1, y1 = fov.bbox
    if x1 > array.shape[1] or y1 > array.shape[0]:
        raise InputError(f"fov.bbox: {list(fov.bbox)} reaches past the frame {tuple(array.shape[:2])}")
    return array[y0:y1, x0:x1]


def outside_to_background(mask: np.ndarray, fov: FieldOfView | None) -> np.ndarray:
    """Class ids outside the FOV set to background (0), in place; the mask is returned."""
    if fov is not None and not fov.is_full:
        mask[~fov.mask(*mask.shape[:2])] = 0
    return mask


def detect_fov(frame: np.ndarray, detect_side: int = DETECT_SIDE) -> FieldOfView:
    """The FOV of one H×W×3 uint8 RGB frame; the full frame when there is no dark border (or nothing bright)."""
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise InputError(f"frame: expected H×W×3 RGB, got shape {tuple(frame.shape)}")
    height, width = frame.shape[:2]
    stride = detection_stride(height, width, detect_side)
    found = detect_small(frame[::stride, ::stride])
    return FieldOfView.full(height, width) if found is None else found.scaled(stride, height, width)


def detection_stride(height: int, width: int, detect_side: int = DETECT_SIDE) -> int:
    return max(1, math.ceil(max(height, width) / detect_side))


def detect_small(frame: np.ndarray) -> FieldOfView | None:
    """The FOV of an already subsampled RGB frame, or None when the frame is too dark to tell."""
    rgb = np.ascontiguousarray(frame)
    value = np.maximum(np.maximum(rgb[..., 0], rgb[..., 1]), rgb[..., 2])
    height, width = value.shape
    levels = _border_levels(value)
    if levels is None:
        return FieldOfView.full(height, width)
    level, threshold = levels
    filled = _filled_bright_region(value, threshold)
    if filled is None:
        return None
    area = int(np.count_nonzero(filled))
    if area >= FULL_FRACTION * height * width:
        return FieldOfView.full(height, width)
    dark = value <= threshold
    candidates = [c for c in (_fit_circle(filled), *_fit_boxes(filled)) if c is not None]
    for fov in sorted(candidates, key=lambda c: -_fit_score(c.mask(height, width), filled, area, dark)):
        inside = fov.mask(height, width)
        if _plausible(inside, filled, area, dark) and _edge_contrast(value, inside, level, threshold) >= MIN_CONTRAST:
            return fov
    return FieldOfView.full(height, width)


def _plausible(inside: np.ndarray, filled: np.ndarray, area: int, dark: np.ndarray) -> bool:
    """The shape lies in the bright region and explains most of it, leaves more than a sliver outside, and what it
    leaves outside is mostly dark."""
    common = np.count_nonzero(inside & (filled > 0))
    outside = inside.size - np.count_nonzero(inside)
    return (common >= MIN_PRECISION * (inside.size - outside) and common >= MIN_RECALL * area
            and outside >= (1 - FULL_FRACTION) * inside.size
            and np.count_nonzero(dark & ~inside) >= DARK_OUTSIDE * outside)


def _border_levels(value: np.ndarray) -> tuple[float, int] | None:
    """The border's grey level (the darkest corner's) and the threshold separating border from image, a little above
    it and its noise (an offset FOV may light up to two corners; the noise is the median absolute deviation, which
    text in the corner barely moves); None when every corner is lit."""
    height, width = value.shape
    k = max(2, min(height, width) // 25)
    darkest = min((value[:k, :k], value[:k, -k:], value[-k:, :k], value[-k:, -k:]), key=np.median)
    level = float(np.median(darkest))
    if level > 60:
        return None
    sigma = 1.4826 * float(np.median(np.abs(darkest.astype(np.float32) - level)))
    return level, int(min(level + max(6.0, 4 * sigma), 80))


def _edge_contrast(value: np.ndarray, inside: np.ndarray, level: float, threshold: int) -> float:
    """How far above the border the image is just inside a shape's outline, in units of (threshold − level): a
    scope's border is a hard edge, a vignette a slow slope that only just crosses the threshold."""
    ring = inside & (cv2.erode(inside.view(np.uint8), np.ones((7, 7), np.uint8), borderValue=1) == 0)
    return (float(np.median(value[ring])) - level) / max(threshold - level, 1.0) if ring.any() else 0.0


def _filled_bright_region(value: np.ndarray, threshold: int) -> np.ndarray | None:
    """The largest bright region after an opening (text strokes gone), filled to its convex hull; None if small."""
    height, width = value.shape
    side = max(3, (min(height, width) // 40) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side))
    bright = cv2.morphologyEx((value > threshold).view(np.uint8), cv2.MORPH_OPEN, kernel)
    contours, _ = cv2.findContours(bright, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    hull = cv2.convexHull(max(contours, key=cv2.contourArea))
    if cv2.contourArea(hull) < MIN_FOV_FRACTION * height * width:
        return None
    filled = np.zeros_like(bright)
    cv2.fillConvexPoly(filled, hull, 1)
    return filled


def _fit_circle(filled: np.ndarray) -> FieldOfView | None:
    """Circle through most of the region's boundary (away from the frame edges): the best of RANSAC_TRIES circles
    through three boundary points (the one most points lie on), refined by least squares on its inliers."""
    height, width = filled.shape
    contours, _ = cv2.findContours(filled, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    points = np.concatenate(contours).reshape(-1, 2).astype(np.float64)
    x, y = points[:, 0], points[:, 1]
    points = points[(x > 0) & (y > 0) & (x < width - 1) & (y < height - 1)]
    if len(points) < 12:
        return None
    tolerance = max(1.5, 0.01 * min(height, width))
    triples = points[np.random.default_rng(0).integers(0, len(points), (RANSAC_TRIES, 3))]
    centres, radii = _circles_through(triples)
    sample = points[:: max(1, len(points) // 200)]
    off = np.abs(np.hypot(sample[:, 0] - centres[:, :1], sample[:, 1] - centres[:, 1:]) - radii[:, None])
    best = int(np.argmax((off < tolerance).sum(axis=1)))
    (bx, by), br = centres[best], radii[best]
    inliers = points[np.abs(np.hypot(points[:, 0] - bx, points[:, 1] - by) - br) < tolerance]
    if len(inliers) < 12:
        return None
    px, py = inliers[:, 0], inliers[:, 1]
    (d, e, f), *_ = np.linalg.lstsq(np.stack([px, py, np.ones_like(px)], axis=1), px * px + py * py, rcond=None)
    cx, cy = d / 2, e / 2
    r2 = f + cx * cx + cy * cy
    if r2 <= 0 or r2 > (2 * max(height, width)) ** 2:
        return None
    return FieldOfView.circle(cx, cy, math.sqrt(r2) + 0.5, height, width)  # + 0.5: boundary pixel centres


def _circles_through(triples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres (N, 2) and radii (N,) of the circles through N point triples (N, 3, 2); collinear triples get a
    centre at the origin and a negative radius that no point fits."""
    a, b, c = triples[:, 0], triples[:, 1], triples[:, 2]
    ab, ac = b - a, c - a
    det = 2 * (ab[:, 0] * ac[:, 1] - ab[:, 1] * ac[:, 0])
    sb, sc = (ab ** 2).sum(axis=1), (ac ** 2).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ux = (ac[:, 1] * sb - ab[:, 1] * sc) / det
        uy = (ab[:, 0] * sc - ac[:, 0] * sb) / det
    radii = np.hypot(ux, uy)
    ok = np.isfinite(radii)
    centres = np.where(ok[:, None], a + np.stack([np.where(ok, ux, 0), np.where(ok, uy, 0)], axis=1), 0.0)
    return centres, np.where(ok, radii, -1e9)


def _fit_boxes(filled: np.ndarray) -> tuple[FieldOfView, FieldOfView]:
    """Rounded rectangle and octagon on the region's bounding box, corners sized by the area a corner misses (the
    median corner: dark tissue in one corner leaves the others to decide)."""
    x, y, w, h = cv2.boundingRect(filled)
    box, hw, hh = (x, y, x + w, y + h), w // 2, h // 2
    quadrants = [filled[y:y + hh, x:x + hw], filled[y:y + hh, x + w - hw:x + w],
                 filled[y + h - hh:y + h, x:x + hw], filled[y + h - hh:y + h, x + w - hw:x + w]]
    missing = float(np.median([q.size - np.count_nonzero(q) for q in quadrants]))
    return (FieldOfView.rounded_rect(box, math.sqrt(missing / (1 - math.pi / 4))),
            FieldOfView.octagon(box, math.sqrt(2 * missing)))


def _fit_score(shape: np.ndarray, filled: np.ndarray, area: int, dark: np.ndarray) -> float:
    """IoU with the filled bright region plus edge support (a glued-on menu raises the first for a box around it,
    the second keeps the shape on the border's real edge)."""
    common = np.count_nonzero(shape & (filled > 0))
    return common / max(np.count_nonzero(shape) + area - common, 1) + _edge_support(shape, dark)


def _edge_support(shape: np.ndarray, dark: np.ndarray) -> float:
    """How well a shape's outline follows the border's edge: the share of a thin ring just inside it that is not
    dark plus the share of a ring just outside it (within the frame) that is dark, over 2."""
    ring = np.ones((5, 5), np.uint8)
    inside = shape.view(np.uint8)
    inner = shape & (cv2.erode(inside, ring, borderValue=1) == 0)
    outer = (cv2.dilate(inside, ring) > 0) & ~shape
    lit = 1 - np.count_nonzero(dark & inner) / max(np.count_nonzero(inner), 1)
    return (lit + np.count_nonzero(dark & outer) / max(np.count_nonzero(outer), 1)) / 2


@dataclass(frozen=True)
class FovTrackerConfig:
    every: int = 15
    """Detect every this many frames (1 = every frame)."""
    detect_side: int = DETECT_SIDE
    hold: int = 3
    """A changed FOV is taken once this many consecutive detections agree on it (checked on every frame)."""
    change: float = 0.1
    """1 − bounding-box IoU above which a detection is a change (scene cut, zoom), not jitter."""
    smoothing: float = 0.5
    """Share of a small change (jitter) taken per detection."""
    scene_cut: float = 0.5
    """Grey-histogram distance (0..1) between consecutive frames that triggers a detection now (>= 1: never)."""

    def __post_init__(self) -> None:
        if self.every < 1:
            raise InputError(f"every: must be >= 1, got {self.every}")
        if self.detect_side < 32:
            raise InputError(f"detect_side: must be >= 32, got {self.detect_side}")
        if self.hold < 1:
            raise InputError(f"hold: must be >= 1, got {self.hold}")
        if not 0.0 < self.change < 1.0:
            raise InputError(f"change: must be in (0, 1), got {self.change}")
        if not 0.0 < self.smoothing <= 1.0:
            raise InputError(f"smoothing: must be in (0, 1], got {self.smoothing}")
        if self.scene_cut <= 0:
            raise InputError(f"scene_cut: must be > 0, got {self.scene_cut}")


class FovTracker:
    """A steady FOV for a stream: `update(frame)` once per frame (numpy, or a device array: only a histogram and, on
    frames that detect, a subsampled copy come to the host). A scene cut asks for a detection at once."""

    def __init__(self, config: FovTrackerConfig | None = None) -> None:
        self.config = config or FovTrackerConfig()
        self.detections = 0
        self._small: FieldOfView | None = None
        self._fov: FieldOfView | None = None
        self._size: tuple[int, int, int] | None = None
        self._pending: list[FieldOfView] = []
        self._since = 0
        self._signature: np.ndarray | None = None

    def update(self, frame: Any) -> FieldOfView:
        height, width = int(frame.shape[0]), int(frame.shape[1])
        stride = detection_stride(height, width, self.config.detect_side)
        if self._size != (height, width, stride):
            self._size, self._small, self._pending = (height, width, stride), None, []
        due = self._small is None or bool(self._pending) or self._since + 1 >= self.config.every
        due = self._scene_cut(frame) or due
        self._since += 1
        if due:
            self._since = 0
            self.detections += 1
            found = detect_small(to_numpy(frame[::stride, ::stride]))
            if found is not None:
                self._take(found)
        if self._small is None:
            self._small = FieldOfView.full(-(-height // stride), -(-width // stride))
        if self._fov is None or due:
            self._fov = self._small.scaled(stride, height, width)
        return self._fov

    def _scene_cut(self, frame: Any) -> bool:
        if self.config.scene_cut >= 1.0:
            return False
        signature = scene_signature(frame)
        previous, self._signature = self._signature, signature
        return previous is not None and histogram_distance(previous, signature) > self.config.scene_cut

    def _take(self, found: FieldOfView) -> None:
        current = self._small
        if current is None:
            self._small = found
            return
        if self._same(current, found):
            self._pending = []
            height, width, stride = self._size
            small_size = (-(-height // stride), -(-width // stride))
            self._small = _blend(current, found, self.config.smoothing, small_size)
            return
        self._pending = [p for p in self._pending if self._same(p, found)] + [found]
        if len(self._pending) >= self.config.hold:
            self._small, self._pending = found, []

    def _same(self, a: FieldOfView, b: FieldOfView) -> bool:
        """Same shape family (circles; boxes) and about the same bounding box."""
        return _family(a) == _family(b) and _box_iou(a.bbox, b.bbox) >= 1.0 - self.config.change


def _family(fov: FieldOfView) -> str:
    return "box" if fov.kind in BOXED else "circle" if fov.kind in ("circle", "clipped_circle") else fov.kind


def _box_iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    w = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def _blend(current: FieldOfView, found: FieldOfView, weight: float, size: tuple[int, int]) -> FieldOfView:
    """Move `current` a share `weight` towards `found` (same shape family, `current`'s kind); a one-pixel wobble is
    ignored."""
    if current.kind == "full" or max(abs(p - q) for p, q in zip(current.bbox, found.bbox)) <= 1:
        return current

    def mix(p: float, q: float) -> float:
        return p + weight * (q - p)

    if current.kind in BOXED:
        box = tuple(round(mix(p, q)) for p, q in zip(current.bbox, found.bbox))
        return FieldOfView.boxed(current.kind, box, mix(current.radius, found.radius))
    height, width = size
    cx, cy = mix(current.center[0], found.center[0]), mix(current.center[1], found.center[1])
    return FieldOfView.circle(cx, cy, mix(current.radius, found.radius), height, width)

