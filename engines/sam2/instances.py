"""Instrument instances from the refined mask: every connected component of a class its own track with a
persistent ID. Pure numpy / OpenCV / scipy (components in, track IDs and events out); `instance_prior.py` glues
SAM 2 on.

Per frame (`InstanceTracker.update`, a class-id mask in model geometry):
- Components: per foreground class, 8-connected components of at least `min_area` pixels.
- Matching (`assign`): every track's expected mask (its last mask moved by its velocity, or SAM 2's mask of that
  object when given) against the components, same class only, by Hungarian assignment
  (`scipy.optimize.linear_sum_assignment`) on cost = (1 - IoU) + centroid distance / image diagonal. A track missing
  on the last frame may only take a component whose centroid lies within `refind_distance` (of the diagonal) of
  where it was last seen.
- Merge: a track left unmatched whose expected mask lies at least `MERGE_OVERLAP` inside a matched component shares
  it (instruments touching or crossing). Split: an unmatched component lying at least `SPLIT_OVERLAP` inside a
  matched track's expected mask joins that track (an instrument cut in two by another). A component shared by
  several tracks is divided pixel by pixel: each pixel goes to the nearest track (to an elongated track's axis
  line, else to its expected mask).
- Birth: a component no track takes, seen `frames` frames in a row (overlapping itself from frame to frame),
  becomes a track, unless `max_objects` tracks exist (logged once each time the cap is reached).
- Lost / re-found / released: a track unmatched `lost_after` frames in a row is reported lost; matched again before
  `release_after` frames it is re-found with its ID; unmatched `release_after` frames in a row it is released.

`InstanceHint` (the tracks' expected masks for the next frame) travels downstream in `meta['instances']`:
`hint.label(mask)` gives that frame's ID map with the assignment the tracker makes when the same mask comes back as
feedback. IDs are uint16, 0 = background or a component no track holds yet.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from surgseg.engines.array_backend import to_numpy
from surgseg.engines.errors import InputError
from surgseg.engines.letterbox import LetterboxGeometry, unletterbox
from surgseg.engines.preprocess import mask_to_model
from surgseg.engines.sam2.config import InstancesConfig

log = logging.getLogger(__name__)

MERGE_OVERLAP = 0.2
"""Share of an unmatched track's expected mask inside a matched component for the track to share it."""
SPLIT_OVERLAP = 0.5
"""Share of an unmatched component inside a matched track's expected mask for it to join that track."""
CANDIDATE_IOU = 0.1
"""IoU of a not-yet-born component with the last frame's for its run to go on."""
ELONGATED = 2.5
"""Length / width (square root of the covariance eigenvalues' ratio) above which a track is divided by its axis."""
INVALID = 1e6


@dataclass(frozen=True)
class Component:
    class_id: int
    mask: np.ndarray
    area: int
    centroid: tuple[float, float]
    """(x, y) pixels."""


@dataclass(frozen=True)
class Expected:
    """Where a track is expected on the next frame, and how long it has been missing."""

    track_id: int
    class_id: int
    mask: np.ndarray
    centroid: tuple[float, float]
    missing: int
    axis: tuple[float, float, float, float] | None = None
    """(x, y, dx, dy): the main axis of an elongated track (an instrument's shaft), None for a compact one."""


@dataclass(frozen=True)
class Assignment:
    """One frame's matching: the ID map, each component's tracks and the components no track took."""

    ids: np.ndarray
    components: list[Component]
    owners: dict[int, list[int]]
    """Component index -> track ids (several: merged)."""
    unmatched: list[int]


@dataclass(frozen=True)
class InstanceHint:
    """The tracks' expected masks for the next frame (model geometry) and the matching settings."""

    size: tuple[int, int]
    num_classes: int
    min_area: int
    refind_distance: float
    tracks: tuple[Expected, ...]
    classes: dict[int, int] = field(default_factory=dict)
    """Track id -> class id of every live track."""

    def label(self, mask: np.ndarray) -> np.ndarray:
        """The uint16 ID map of a model-geometry class-id mask."""
        return assign(mask, self).ids


@dataclass
class InstanceUpdate:
    """What one frame did: the ID map, each track's pixels, and the events."""

    ids: np.ndarray
    masks: dict[int, np.ndarray]
    born: list[int] = field(default_factory=list)
    refound: list[int] = field(default_factory=list)
    released: list[int] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)


@dataclass
class _Track:
    track_id: int
    class_id: int
    mask: np.ndarray
    centroid: np.ndarray
    velocity: np.ndarray
    missing: int = 0
    partners: frozenset[int] = frozenset()


@dataclass
class _Candidate:
    class_id: int
    mask: np.ndarray
    run: int


def components(mask: np.ndarray, num_classes: int, min_area: int) -> list[Component]:
    """Per foreground class, its 8-connected components of at least `min_area` pixels."""
    found = []
    for class_id in range(1, num_classes):
        binary = (mask == class_id).astype(np.uint8)
        if not binary.any():
            continue
        count, labels, stats, centroids = cv2.connectedComponentsWithStats(binary, connectivity=8)
        for k in range(1, count):
            area = int(stats[k, cv2.CC_STAT_AREA])
            if area >= min_area:
                found.append(Component(class_id, labels == k, area, (float(centroids[k, 0]), float(centroids[k, 1]))))
    return found


def assign(mask: np.ndarray, hint: InstanceHint) -> Assignment:
    """Match the mask's components to the hint's tracks (see the module docstring) and build the ID map."""
    if mask.shape != hint.size:
        raise InputError(f"instances: mask {mask.shape} is not the model size {hint.size}")
    comps = components(mask, hint.num_classes, hint.min_area)
    tracks = hint.tracks
    owners: dict[int, list[int]] = {}
    if tracks and comps:
        cost = _cost(tracks, comps, hint)
        rows, cols = linear_sum_assignment(cost)
        for i, j in zip(rows, cols):
            if cost[i, j] < INVALID:
                owners[int(j)] = [tracks[i].track_id]
        _merge(tracks, comps, owners)
        _split(tracks, comps, owners)
    ids = np.zeros(hint.size, np.uint16)
    by_id = {t.track_id: t for t in tracks}
    for j, track_ids in owners.items():
        if len(track_ids) == 1:
            ids[comps[j].mask] = track_ids[0]
        else:
            ids[comps[j].mask] = _divide(comps[j].mask, [by_id[t] for t in track_ids])
    return Assignment(ids, comps, owners, [j for j in range(len(comps)) if j not in owners])


def _cost(tracks: tuple[Expected, ...], comps: list[Component], hint: InstanceHint) -> np.ndarray:
    diagonal = float(np.hypot(*hint.size))
    cost = np.full((len(tracks), len(comps)), INVALID)
    for i, track in enumerate(tracks):
        area = int(track.mask.sum())
        for j, comp in enumerate(comps):
            if comp.class_id != track.class_id:
                continue
            inter = int(np.count_nonzero(track.mask & comp.mask))
            iou = inter / max(area + comp.area - inter, 1)
            distance = float(np.hypot(track.centroid[0] - comp.centroid[0], track.centroid[1] - comp.centroid[1]))
            near = distance <= hint.refind_distance * diagonal
            if near or (track.missing == 0 and inter > 0):
                cost[i, j] = (1.0 - iou) + distance / diagonal
    return cost


def _merge(tracks: tuple[Expected, ...], comps: list[Component], owners: dict[int, list[int]]) -> None:
    """Unmatched tracks seen last frame share the matched component holding most of their expected mask."""
    taken = {t for ids in owners.values() for t in ids}
    for track in tracks:
        if track.track_id in taken or track.missing > 0:
            continue
        area = max(int(track.mask.sum()), 1)
        share = {j: np.count_nonzero(track.mask & comps[j].mask) / area for j in owners
                 if comps[j].class_id == track.class_id}
        best = max(share, key=share.get, default=None)
        if best is not None and share[best] >= MERGE_OVERLAP:
            owners[best].append(track.track_id)


def _split(tracks: tuple[Expected, ...], comps: list[Component], owners: dict[int, list[int]]) -> None:
    """Unmatched components lying mostly inside one matched track's expected mask join that track."""
    matched = {t for ids in owners.values() for t in ids}
    for j, comp in enumerate(comps):
        if j in owners:
            continue
        share = {t.track_id: np.count_nonzero(t.mask & comp.mask) / comp.area for t in tracks
                 if t.track_id in matched and t.class_id == comp.class_id}
        best = max(share, key=share.get, default=None)
        if best is not None and share[best] >= SPLIT_OVERLAP:
            owners[j] = [best]


def _divide(region: np.ndarray, tracks: list[Expected]) -> np.ndarray:
    """IDs of a shared component's pixels: the track nearest to each (ties: the first). Nearest is measured to an
    elongated track's axis line (crossing shafts stay straight while tips move in and out), else to its expected
    mask."""
    ys, xs = np.nonzero(region)
    distances = []
    for track in tracks:
        if track.axis is not None:
            x0, y0, dx, dy = track.axis
            distances.append(np.abs((xs - x0) * dy - (ys - y0) * dx))
        else:
            distances.append(cv2.distanceTransform((~track.mask).astype(np.uint8), cv2.DIST_L2, 3)[ys, xs])
    nearest = np.argmin(np.stack(distances), axis=0)
    return np.array([t.track_id for t in tracks], np.uint16)[nearest]


class InstanceTracker:
    """Tracks with persistent IDs over a stream of refined masks (model geometry)."""

    def __init__(self, config: InstancesConfig, num_classes: int, size: tuple[int, int], min_area: int,
                 frames: int, release_after: int) -> None:
        self.config = config
        self.num_classes = num_classes
        self.size = tuple(size)
        self.min_area = min_area
        self.frames = frames
        self.release_after = max(release_after, config.lost_after + 1)
        self.tracks: dict[int, _Track] = {}
        self._candidates: list[_Candidate] = []
        self._next_id = 1
        self._capped = False
        self._hint: InstanceHint | None = None

    def hint(self, predictions: dict[int, np.ndarray] | None = None) -> InstanceHint:
        """The expected masks for the next frame: SAM 2's object masks where given and non-empty, else the last
        masks moved by the tracks' velocities (missing tracks stay where they were last seen)."""
        expected = []
        for track in self.tracks.values():
            predicted = None if predictions is None else predictions.get(track.track_id)
            if track.missing == 0 and predicted is not None and predicted.any():
                centroid = _centroid(predicted)
                expected.append(Expected(track.track_id, track.class_id, predicted, centroid, 0, _axis(predicted)))
                continue
            shift = track.velocity if track.missing == 0 else np.zeros(2)
            mask = _shifted(track.mask, shift) if shift.any() else track.mask
            centroid = tuple(float(v) for v in track.centroid + shift)
            axis = _axis(track.mask, shift)
            expected.append(Expected(track.track_id, track.class_id, mask, centroid, track.missing, axis))
        self._hint = InstanceHint(self.size, self.num_classes, self.min_area, self.config.refind_distance,
                                  tuple(expected), {t.track_id: t.class_id for t in self.tracks.values()})
        return self._hint

    def update(self, mask: np.ndarray, seed: bool = False) -> InstanceUpdate:
        """Match a refined mask to the tracks; `seed` gives every unclaimed component a track at once."""
        hint = self._hint if self._hint is not None else self.hint()
        result = assign(mask, hint)
        self._hint = None
        update = InstanceUpdate(result.ids, {})
        groups = {t: ids for ids in result.owners.values() for t in ids}
        for track in list(self.tracks.values()):
            pixels = result.ids == track.track_id
            if track.track_id in groups and pixels.any():
                self._seen(track, pixels, frozenset(groups[track.track_id]) - {track.track_id}, update)
            else:
                self._missed(track, update)
        self._births([result.components[j] for j in result.unmatched], seed, update)
        update.masks = {t.track_id: t.mask for t in self.tracks.values() if t.missing == 0}
        return update

    def _seen(self, track: _Track, pixels: np.ndarray, partners: frozenset[int], update: InstanceUpdate) -> None:
        centroid = np.array(_centroid(pixels))
        if track.missing >= self.config.lost_after:
            update.refound.append(track.track_id)
            update.events.append(self._event("refound", track, missing=track.missing))
            track.velocity = np.zeros(2)
        elif track.missing == 0:
            track.velocity = 0.5 * track.velocity + 0.5 * (centroid - track.centroid)
        if partners and not track.partners:
            update.events.append(self._event("merged", track, with_ids=sorted(partners)))
        elif track.partners and not partners:
            update.events.append(self._event("split", track, from_ids=sorted(track.partners)))
        track.mask, track.centroid, track.missing, track.partners = pixels, centroid, 0, partners

    def _missed(self, track: _Track, update: InstanceUpdate) -> None:
        track.missing += 1
        track.partners = frozenset()
        if track.missing == self.config.lost_after:
            update.events.append(self._event("lost", track))
        if track.missing >= self.release_after:
            update.released.append(track.track_id)
            update.events.append(self._event("released", track))
            del self.tracks[track.track_id]

    def _births(self, unclaimed: list[Component], seed: bool, update: InstanceUpdate) -> None:
        candidates = []
        for comp in unclaimed:
            previous = [c for c in self._candidates if c.class_id == comp.class_id and _iou(c.mask, comp.mask)
                        >= CANDIDATE_IOU]
            run = 1 + max((c.run for c in previous), default=0)
            if run < self.frames and not seed:
                candidates.append(_Candidate(comp.class_id, comp.mask, run))
            elif len(self.tracks) >= self.config.max_objects:
                if not self._capped:
                    log.info("instances: %d tracks (max_objects): further instruments wait for a free slot",
                             self.config.max_objects)
                self._capped = True
                candidates.append(_Candidate(comp.class_id, comp.mask, run))
            else:
                track = _Track(self._next_id, comp.class_id, comp.mask, np.array(comp.centroid), np.zeros(2))
                self._next_id += 1
                self.tracks[track.track_id] = track
                update.ids[comp.mask] = track.track_id
                update.born.append(track.track_id)
                update.events.append(self._event("born", track, area=comp.area))
        if len(self.tracks) < self.config.max_objects:
            self._capped = False
        self._candidates = candidates

    @staticmethod
    def _event(kind: str, track: _Track, **extra: object) -> dict:
        return {"event": kind, "id": track.track_id, "class_id": track.class_id, **extra}


def source_ids(mask: np.ndarray, hint: InstanceHint, geometry: LetterboxGeometry) -> np.ndarray:
    """The uint16 ID map of a source-resolution class-id mask: labelled in model geometry (mapped through the frame's
    letterbox and field-of-view crop, as SAM2Prior maps the mask fed back), brought back through the same geometry,
    kept only on foreground pixels."""
    model = np.asarray(mask_to_model(mask, geometry))
    ids = unletterbox(hint.label(model), geometry, interpolation=cv2.INTER_NEAREST_EXACT)
    ids[mask == 0] = 0
    return ids


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = np.count_nonzero(a & b)
    return inter / max(np.count_nonzero(a | b), 1)


def _centroid(mask: np.ndarray) -> tuple[float, float]:
    ys, xs = np.nonzero(mask)
    return (float(xs.mean()), float(ys.mean())) if len(xs) else (0.0, 0.0)


def _axis(mask: np.ndarray, shift: np.ndarray | None = None) -> tuple[float, float, float, float] | None:
    """The main axis (x, y, dx, dy) of a mask at least `ELONGATED` times longer than wide, moved by `shift`."""
    ys, xs = np.nonzero(mask)
    if len(xs) < 3:
        return None
    points = np.stack([xs, ys]).astype(np.float64)
    centre = points.mean(axis=1)
    values, vectors = np.linalg.eigh(np.cov(points))
    if values[1] < ELONGATED**2 * max(values[0], 1e-6):
        return None
    x, y = centre + (0 if shift is None else shift)
    return float(x), float(y), float(vectors[0, 1]), float(vectors[1, 1])


def _shifted(mask: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """A boolean mask moved by (dx, dy) pixels (rounded), zero-filled."""
    matrix = np.float32([[1, 0, round(float(shift[0]))], [0, 1, round(float(shift[1]))]])
    moved = cv2.warpAffine(mask.astype(np.uint8), matrix, (mask.shape[1], mask.shape[0]), flags=cv2.INTER_NEAREST)
    return moved.astype(bool)


def message_instance_ids(message: dict, key: str = "mask") -> np.ndarray | None:
    """The uint16 ID map of a graph message's mask from the `InstanceHint` SAM2Prior put in its meta (None when
    there is none); computed once per frame and kept in `meta['instance_ids']` for the other sinks."""
    meta = message["meta"]
    hint = meta.get("instances")
    if hint is None or message.get(key) is None:
        return None
    cached = meta.get("instance_ids")
    if cached is not None and cached[0] == key:
        return cached[1]
    ids = source_ids(to_numpy(message[key]), hint, LetterboxGeometry(**meta["letterbox"]))
    meta["instance_ids"] = (key, ids)
    return ids
