"""Synthetic clips with several instruments (instance ground truth): they enter, cross, occlude one another, leave
and come back.

The tissue, camera drift, vignette and noise are `SyntheticClip`'s (its instrument and events switched off); the
instruments are drawn over it here, each a shaded shaft from an entry point outside the frame to a moving tip with two
jaws, in list order (a later instrument hides an earlier one). Each frame gives the RGB frame, the class mask
(1 = instrument), the instance-ID map (uint16, instrument k has ID k+1, the same ID whenever it is in view) and tags:
`crossing` (two instruments' full outlines overlap), `occlusion` (an instrument loses at least `OCCLUDED` of its
outline to another), `re-entry` (an instrument is back after frames out of view), `absent` (none in view).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from surgseg.engines.errors import InputError
from surgseg.engines.video.synthetic import SyntheticClip, SyntheticClipConfig

TAGS = ("crossing", "occlusion", "re-entry", "absent")
OCCLUDED = 0.1
TIP_RGB = np.array([0.74, 0.74, 0.77], np.float32)
SHAFT_RGB = {True: np.array([0.16, 0.16, 0.17], np.float32), False: np.array([0.55, 0.56, 0.58], np.float32)}

Key = tuple[int, float, float]


@dataclass(frozen=True)
class InstrumentPath:
    """One instrument: its shaft comes from `entry` (fractions of width, height; outside the frame) to a tip moving
    through `keys` (frame, x, y fractions; linear between keys, held before the first and after the last). A tip
    outside the frame hides the instrument."""

    entry: tuple[float, float]
    keys: tuple[Key, ...]
    radius: float = 0.05
    """Shaft radius as a share of the frame's shorter side."""
    dark: bool = True
    """Dark insulated shaft (else bare metal)."""

    def tip(self, t: int) -> tuple[float, float]:
        frames = [k[0] for k in self.keys]
        x = float(np.interp(t, frames, [k[1] for k in self.keys]))
        y = float(np.interp(t, frames, [k[2] for k in self.keys]))
        return x, y


@dataclass(frozen=True)
class InstanceClipConfig:
    """A multi-instrument clip: `size` is (width, height)."""

    instruments: tuple[InstrumentPath, ...]
    size: tuple[int, int] = (320, 256)
    frames: int = 64
    seed: int = 0
    camera_motion: float = 0.3
    name: str = "clip"

    def __post_init__(self) -> None:
        if not self.instruments or self.frames < 1:
            raise InputError(f"synthetic_instances.{self.name}: needs instruments and at least one frame")
        for path in self.instruments:
            if not path.keys or any(b[0] < a[0] for a, b in zip(path.keys, path.keys[1:])):
                raise InputError(f"synthetic_instances.{self.name}: keys must be given in frame order")


@dataclass
class InstanceFrame:
    frame: np.ndarray
    mask: np.ndarray
    ids: np.ndarray
    tags: list[str] = field(default_factory=list)


class InstanceClip:
    """`render(t)` draws frame t; iterating yields every frame."""

    def __init__(self, config: InstanceClipConfig) -> None:
        self.config = config
        self.width, self.height = config.size
        self.scale = float(min(config.size))
        none = ()
        self.background = SyntheticClip(SyntheticClipConfig(
            size=config.size, frames=config.frames, num_classes=2, seed=config.seed, presence=none, smoke=none,
            occlusion=none, glare=none, fast_motion=none, camera_motion=config.camera_motion))
        ys, xs = np.mgrid[0:self.height, 0:self.width].astype(np.float32)
        self._grid = (xs + 0.5, ys + 0.5)
        self.in_view = np.array([[(self._cover(path, t)[0] >= 0.5).any() for t in range(config.frames)]
                                 for path in config.instruments])
        """(instruments, frames): the instrument has pixels in the frame (hidden or not)."""

    def __len__(self) -> int:
        return self.config.frames

    def __iter__(self) -> Iterator[InstanceFrame]:
        for t in range(self.config.frames):
            yield self.render(t)

    def render(self, t: int) -> InstanceFrame:
        frame, _, _ = self.background.render(t)
        image = frame.astype(np.float32) / 255.0
        ids = np.zeros((self.height, self.width), np.uint16)
        outlines = []
        for k, path in enumerate(self.config.instruments):
            cover, rgb = self._cover(path, t)
            outlines.append(cover >= 0.5)
            image = image * (1.0 - cover[..., None]) + rgb * cover[..., None]
            ids[cover >= 0.5] = k + 1
        frame = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return InstanceFrame(frame, (ids > 0).astype(np.uint8), ids, self._tags(t, ids, outlines))

    def _tags(self, t: int, ids: np.ndarray, outlines: list[np.ndarray]) -> list[str]:
        tags = set()
        for a in range(len(outlines)):
            full = int(outlines[a].sum())
            if full and np.count_nonzero(ids == a + 1) < (1.0 - OCCLUDED) * full:
                tags.add("occlusion")
            if any((outlines[a] & outlines[b]).any() for b in range(a + 1, len(outlines))):
                tags.add("crossing")
            if full and t > 1 and not self.in_view[a, t - 1] and self.in_view[a, : t - 1].any():
                tags.add("re-entry")
        if not ids.any():
            tags.add("absent")
        return sorted(tags)

    def _cover(self, path: InstrumentPath, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Coverage (HxW in [0, 1]) and RGB (HxWx3) of one instrument at frame t."""
        w, h = self.width, self.height
        entry = np.array([path.entry[0] * w, path.entry[1] * h])
        tip = np.array(path.tip(t)) * (w, h)
        axis = tip - entry
        depth = float(np.hypot(*axis))
        axis = axis / max(depth, 1e-6)
        xs, ys = self._grid
        a = (xs - entry[0]) * axis[0] + (ys - entry[1]) * axis[1]
        c = (ys - entry[1]) * axis[0] - (xs - entry[0]) * axis[1]
        r = path.radius * self.scale
        jaw = 2.4 * r
        beyond = np.clip((a - depth) / jaw, 0.0, 1.0)
        half = np.where(a <= depth, r * (1.0 + 0.3 * np.clip(depth - a, 0, None) / self.scale),
                        0.62 * r * np.sqrt(np.clip(1.0 - beyond**2.2, 0.0, 1.0)) + 0.3)
        cover = np.clip(half - np.abs(c) + 0.5, 0.0, 1.0) * np.clip(depth + jaw - a + 0.5, 0.0, 1.0)
        cover *= np.clip(a + 0.5, 0.0, 1.0)
        u = np.clip(c / np.maximum(half, 0.5), -1.0, 1.0)
        diffuse = 0.35 + 0.75 * np.sqrt(1.0 - u * u)
        specular = np.exp(-((u / 0.16) ** 2)) * 0.6
        is_tip = np.clip(a - (depth - 0.9 * r) + 0.5, 0.0, 1.0)[..., None]
        base = SHAFT_RGB[path.dark] * (1.0 - is_tip) + TIP_RGB * is_tip
        rgb = base * diffuse[..., None] + specular[..., None] * 0.55
        return cover.astype(np.float32), np.clip(rgb, 0.0, 1.0).astype(np.float32)


def instance_clips(frames: int = 64, size: tuple[int, int] = (320, 256)) -> dict[str, InstanceClipConfig]:
    """Three clips: `crossing` (one tip sweeps across the other's shaft and back), `occlusion_reentry` (one instrument
    passes over another, cutting it in two, leaves and comes back where it left), `three_tools` (a third instrument
    enters late, crosses another and leaves). Key frames scale with `frames`."""
    def keys(*points: tuple[float, float, float]) -> tuple[Key, ...]:
        return tuple((round(f * (frames - 1)), x, y) for f, x, y in points)

    crossing = (
        InstrumentPath((0.45, -0.3), keys((0.03, 0.45, -0.02), (0.16, 0.45, 0.25), (0.4, 0.5, 0.8), (0.6, 0.5, 0.8),
                                          (0.82, 0.45, 0.2), (1.0, 0.45, 0.25))),
        InstrumentPath((-0.3, 0.55), keys((0.0, -0.02, 0.55), (0.13, 0.65, 0.55), (1.0, 0.7, 0.5)), dark=False),
    )
    occlusion = (
        InstrumentPath((1.3, 0.4), keys((0.0, 0.35, 0.42), (0.78, 0.3, 0.45), (0.95, 1.25, 0.4), (1.0, 1.25, 0.4)),
                       dark=False),
        InstrumentPath((0.55, 1.3), keys((0.0, 0.55, 1.05), (0.13, 0.55, 0.6), (0.25, 0.6, 0.2), (0.38, 0.6, 0.6),
                                         (0.47, 0.6, 1.25), (0.6, 0.6, 1.25), (0.72, 0.6, 0.6), (1.0, 0.55, 0.55))),
    )
    three = (
        InstrumentPath((-0.3, 0.3), keys((0.0, -0.02, 0.3), (0.13, 0.4, 0.35), (1.0, 0.45, 0.4))),
        InstrumentPath((1.3, 0.75), keys((0.06, 1.02, 0.75), (0.19, 0.6, 0.7), (1.0, 0.55, 0.65)), dark=False),
        InstrumentPath((0.8, -0.3), keys((0.3, 0.8, -0.2), (0.47, 0.75, 0.5), (0.63, 0.7, 0.88), (0.82, 0.75, 0.3),
                                         (0.95, 0.8, -0.2)), radius=0.045),
    )
    return {name: InstanceClipConfig(paths, size=size, frames=frames, seed=seed, name=name)
            for seed, (name, paths) in enumerate((("crossing", crossing), ("occlusion_reentry", occlusion),
                                                  ("three_tools", three)), start=3)}


def random_instance_clip(seed: int, frames: int = 64, size: tuple[int, int] = (320, 256),
                         name: str = "random") -> InstanceClipConfig:
    """A multi-instrument clip drawn from `seed` (for training; `instance_clips` are the fixed benchmark clips): 2 or
    3 instruments, each entering from its own side at a random time, its tip wandering through random points (so
    shafts cross and hide one another), some leaving early and some coming back."""
    rng = np.random.default_rng(seed)
    sides = rng.permutation(4)[: int(rng.integers(2, 4))]
    last = frames - 1
    paths = []
    for side in sides:
        across = float(rng.uniform(0.2, 0.8))
        entry, edge = _side_points(int(side), across)
        start = int(rng.integers(0, max(1, last // 4) + 1))
        times = np.linspace(start, last, int(rng.integers(3, 6))).round().astype(int)
        keys: list[Key] = [(start, *edge)]
        keys += [(int(t), float(rng.uniform(0.15, 0.85)), float(rng.uniform(0.15, 0.85))) for t in times[1:]]
        if rng.random() < 0.3:  # leaves through its own side and comes back
            out_at = int(keys[-2][0])
            keys[-2] = (out_at, *_side_points(int(side), across)[1])
        paths.append(InstrumentPath(entry, tuple(keys), radius=float(rng.uniform(0.035, 0.06)),
                                    dark=bool(rng.random() < 0.6)))
    return InstanceClipConfig(tuple(paths), size=size, frames=frames, seed=seed, name=name,
                              camera_motion=float(rng.uniform(0.1, 0.6)))


def _side_points(side: int, across: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """For a frame side (0 left, 1 right, 2 top, 3 bottom) at `across` along it: the shaft's entry point outside the
    frame and a tip position just outside the edge (the instrument hidden)."""
    out, edge = ((-0.3, -0.02), (1.3, 1.02), (-0.3, -0.02), (1.3, 1.02))[side]
    if side < 2:
        return (out, across), (edge, across)
    return (across, out), (across, edge)
