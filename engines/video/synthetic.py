"""Synthetic endoscopy clips with exact ground truth: tissue, one instrument (shaft + tip), smoke, glare, occlusion.

Everything random is drawn once per clip from `seed` (trajectories, textures, event schedule), so `render(t)` is a
pure function of the config and `t`: frames can be rendered in any order and a clip is identical across runs.

With `domain=True` the clip's look is randomised too (issue 20), from a generator of its own so that the classic
clips stay as they were: the scope's field of view (circle, offset or clipped circle, rounded rectangle, octagon,
full frame) with a dark border, on-screen text, timestamps, logos and menus in and around the border (never
instrument in the ground truth), a tissue palette (liver, fat, bowel, gallbladder, blood, colonoscopy mucosa),
instrument finish (black, grey, bare metal), exposure, a dark lumen, an over-exposed wall near the edge, irrigation
fluid, defocus and barrel lens distortion.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from surgseg.engines.errors import InputError

Interval = tuple[int, int]
EVENT_TAGS = ("smoke", "occlusion", "glare", "fast_motion")
TAGS = (*EVENT_TAGS, "absent")
TISSUE_RGB = np.array([0.80, 0.38, 0.32], np.float32)
FAT_RGB = np.array([0.88, 0.70, 0.42], np.float32)
VESSEL_RGB = np.array([0.42, 0.05, 0.07], np.float32)
VEIN_RGB = np.array([0.36, 0.14, 0.26], np.float32)
SMOKE_RGB = np.array([0.86, 0.84, 0.82], np.float32)
MAX_PIVOT = 0.3  # rad; less on very wide frames, so the axis always crosses the middle of the frame
FOV_KINDS = ("full", "circle", "offset_circle", "rounded", "octagon")
FINISHES = {"black": (0.03, 0.10), "grey": (0.22, 0.40), "metal": (0.55, 0.78)}  # shaft grey level range
HUD_COLOURS = ((255, 255, 255), (90, 255, 90), (255, 230, 60), (80, 220, 255), (200, 200, 200))
FPS = 25


@dataclass(frozen=True)
class Palette:
    """Tissue colours (RGB in 0..1), how much fat shows (threshold on a noise map) and how wet it shines."""

    tissue: tuple[float, float, float]
    fat: tuple[float, float, float]
    vessel: tuple[float, float, float]
    vein: tuple[float, float, float]
    fat_level: float = 0.62
    wet: float = 1.0


PALETTES = {
    "classic": Palette(tuple(TISSUE_RGB), tuple(FAT_RGB), tuple(VESSEL_RGB), tuple(VEIN_RGB)),
    "liver": Palette((0.50, 0.17, 0.13), (0.70, 0.45, 0.25), (0.30, 0.04, 0.05), (0.28, 0.10, 0.16), 0.8, 1.3),
    "fat": Palette((0.90, 0.72, 0.42), (0.97, 0.86, 0.55), (0.55, 0.10, 0.08), (0.45, 0.18, 0.25), 0.4, 1.0),
    "bowel": Palette((0.86, 0.55, 0.50), (0.90, 0.74, 0.46), (0.55, 0.10, 0.12), (0.45, 0.20, 0.32), 0.62, 1.2),
    "gallbladder": Palette((0.52, 0.58, 0.40), (0.86, 0.76, 0.48), (0.45, 0.12, 0.12), (0.30, 0.30, 0.40), 0.7, 1.5),
    "blood": Palette((0.50, 0.05, 0.05), (0.70, 0.20, 0.12), (0.25, 0.02, 0.03), (0.30, 0.04, 0.06), 0.8, 1.3),
    "mucosa": Palette((0.92, 0.58, 0.45), (0.96, 0.80, 0.62), (0.65, 0.18, 0.15), (0.55, 0.25, 0.30), 0.75, 1.6),
}


@dataclass(frozen=True)
class SyntheticClipConfig:
    """A clip: `size` is (width, height); each event field is a tuple of [start, end) frame intervals, None = random."""

    size: tuple[int, int] = (320, 256)
    frames: int = 48
    num_classes: int = 3
    seed: int = 0
    presence: tuple[Interval, ...] | None = None
    smoke: tuple[Interval, ...] | None = None
    occlusion: tuple[Interval, ...] | None = None
    glare: tuple[Interval, ...] | None = None
    fast_motion: tuple[Interval, ...] | None = None
    camera_motion: float = 1.0
    domain: bool = False
    """Randomise the look (FOV, HUD, palette, instrument finish, exposure, lens, fluid) from the seed."""
    fov: str | None = None
    """Field-of-view shape, one of FOV_KINDS (None: drawn from the seed when `domain`, else the full frame)."""
    palette: str | None = None
    """Tissue palette, a key of PALETTES (None: drawn from the seed when `domain`, else "classic")."""

    def __post_init__(self) -> None:
        if self.fov is not None and self.fov not in FOV_KINDS:
            raise InputError(f"synthetic.fov: {self.fov!r} (use one of {', '.join(FOV_KINDS)})")
        if self.palette is not None and self.palette not in PALETTES:
            raise InputError(f"synthetic.palette: {self.palette!r} (use one of {', '.join(PALETTES)})")
        if self.num_classes not in (2, 3):
            raise InputError(f"synthetic.num_classes: {self.num_classes} (use 2 = instrument, 3 = shaft + tip)")
        if len(self.size) != 2 or min(self.size) < 32:
            raise InputError(f"synthetic.size: {self.size} (width, height of at least 32 px)")
        if self.frames < 1:
            raise InputError(f"synthetic.frames: {self.frames} (at least 1)")
        for name in ("presence", *EVENT_TAGS):
            for interval in getattr(self, name) or ():
                if len(interval) != 2 or not 0 <= interval[0] < interval[1]:
                    raise InputError(f"synthetic.{name}: bad interval {interval} (need 0 <= start < end)")

    @property
    def class_names(self) -> list[str]:
        return ["background", "instrument"] if self.num_classes == 2 else ["background", "shaft", "tip"]


def synthetic_clip(config: SyntheticClipConfig) -> Iterator[tuple[np.ndarray, np.ndarray, list[str]]]:
    """Yield (frame HxWx3 uint8 RGB, mask HxW uint8 class ids, tags) for every frame of the clip."""
    yield from SyntheticClip(config)


@dataclass
class _Instrument:
    """Per presence interval: where the instrument enters and how it looks."""

    start: int
    end: int
    entry_angle: float
    radius: float
    shaft_rgb: np.ndarray
    tip_rgb: np.ndarray
    work_depth: float
    phase: np.ndarray


@dataclass(frozen=True)
class Look:
    """A clip's appearance beyond the scene (all neutral for a classic clip)."""

    fov: str = "full"
    palette: str = "classic"
    exposure: float = 1.0
    border: tuple[float, float, float] = (0.0, 0.0, 0.0)
    distortion: float = 0.0
    defocus: float = 0.0
    hud: bool = False
    lumen: bool = False
    bloom: bool = False
    irrigation: tuple[Interval, ...] = ()
    finish: str | None = None

    @property
    def classic(self) -> bool:
        return self == Look()


def draw_look(config: SyntheticClipConfig, rng: np.random.Generator) -> Look:
    """The clip's look: drawn from `rng` (always the same draws, in the same order) when `config.domain`, else the
    classic one; `config.fov` and `config.palette` override the draw."""
    fov = FOV_KINDS[int(rng.choice(len(FOV_KINDS), p=[0.2, 0.3, 0.15, 0.15, 0.2]))]
    palette = str(rng.choice(list(PALETTES), p=[0.1, 0.12, 0.12, 0.16, 0.1, 0.1, 0.3]))  # mucosa: colonoscopy
    exposure = float(np.clip(np.exp(rng.normal(0.0, 0.3)), 0.55, 1.7))
    border = tuple(float(v) for v in rng.uniform(0.0, 0.1) + rng.uniform(0.0, 0.02, 3))
    distortion = float(rng.uniform(0.05, 0.3)) if rng.random() < 0.5 else 0.0
    defocus = float(rng.uniform(0.5, 1.5)) if rng.random() < 0.3 else 0.0
    hud = bool(rng.random() < 0.75)
    lumen = bool(rng.random() < (0.8 if palette == "mucosa" else 0.25))
    bloom = bool(rng.random() < 0.8)
    length = max(1, int(rng.uniform(0.2, 0.5) * config.frames))
    start = int(rng.integers(0, max(1, config.frames - length + 1)))
    irrigation = ((start, start + length),) if rng.random() < 0.3 else ()
    finish = str(rng.choice(list(FINISHES)))
    if not config.domain:
        return Look(fov=config.fov or "full", palette=config.palette or "classic")
    return Look(fov=config.fov or fov, palette=config.palette or palette, exposure=exposure, border=border,
                distortion=distortion, defocus=defocus, hud=hud, lumen=lumen, bloom=bloom,
                irrigation=_clip_intervals(irrigation, config.frames), finish=finish)


class SyntheticClip:
    """Precomputes textures and trajectories once; `render(t)` draws frame t."""

    def __init__(self, config: SyntheticClipConfig) -> None:
        self.config = config
        self.width, self.height = int(config.size[0]), int(config.size[1])
        self.scale = float(min(self.width, self.height))
        rng = np.random.default_rng(config.seed)
        look_rng = np.random.default_rng([config.seed, 20])  # the look's own draws: classic clips stay unchanged
        self.look = draw_look(config, look_rng)
        self.schedule = _resolve_schedule(config, rng)
        self.margin = int(0.3 * max(self.width, self.height))
        self.tissue = _tissue_texture(self.height + 2 * self.margin, self.width + 2 * self.margin, rng,
                                      PALETTES[self.look.palette])
        self.smoke_field = _noise(self.height // 6 + 24, self.width // 6 + 24, rng, octaves=(3, 6, 12))
        # Frame-space layers stored with 3 equal channels so OpenCV applies them in one (threaded) pass each; the
        # noise lacks the +0.5 that truncation needed because the final add rounds (saturate_cast) instead.
        self.vignette = np.repeat(_vignette(self.height, self.width, rng), 3, axis=2)
        self.noise_bank = [
            np.repeat((rng.standard_normal((self.height, self.width, 1)) * 3.0).astype(np.float32), 3, axis=2)
            for _ in range(3)
        ]
        self.camera = _camera_path(config, self.schedule["fast_motion"], self.scale, rng)
        self.instruments = [_random_instrument(s, e, self.scale, rng) for s, e in self.schedule["presence"]]
        self.occluder_shape = _blob_profile(rng)
        self.glare_offset = rng.uniform(-0.2, 0.2, 2)
        self.fov_mask = np.ones((self.height, self.width), bool)
        """Pixels inside the scope's field of view (ground truth is 0 outside)."""
        self.lens_maps: tuple[np.ndarray, np.ndarray] | None = None
        self.hud: _Hud | None = None
        if not self.look.classic:
            self._apply_look(look_rng)

    def _apply_look(self, rng: np.random.Generator) -> None:
        """Fold the look into the per-clip layers (gain, additive light, border) and draw its extras."""
        look, h, w = self.look, self.height, self.width
        fov = _fov_alpha(look.fov, h, w, rng)
        self.fov_mask = fov >= 0.5
        gain = self.vignette[..., 0] * np.float32(look.exposure) * fov
        if look.lumen:
            gain *= _lumen(h, w, rng)
        self.vignette = np.repeat(gain[..., None], 3, axis=2)
        border = np.float32(255.0) * np.array(look.border, np.float32) * (1.0 - fov)[..., None]
        light = _bloom(h, w, fov, rng) if look.bloom else np.zeros((h, w, 3), np.float32)
        self.noise_bank = [noise + border + light for noise in self.noise_bank]
        if look.distortion > 0:
            self.lens_maps = _barrel_maps(h, w, look.distortion)
        if look.hud:
            self.hud = _Hud(h, w, rng)
        if look.finish is not None:
            low, high = FINISHES[look.finish]
            for inst in self.instruments:
                inst.shaft_rgb = (np.full(3, rng.uniform(low, high)) + rng.uniform(-0.02, 0.03, 3)).astype(np.float32)
                inst.radius *= float(rng.uniform(0.75, 1.3))

    def __len__(self) -> int:
        return self.config.frames

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray, list[str]]]:
        for t in range(self.config.frames):
            yield self.render(t)

    def active(self, name: str, t: int) -> bool:
        return any(s <= t < e for s, e in self.schedule[name])

    def render(self, t: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Frame t: (RGB uint8 image, uint8 class-id mask, tags)."""
        if not 0 <= t < self.config.frames:
            raise IndexError(f"frame {t} outside the clip's {self.config.frames} frames")
        fast = self.active("fast_motion", t)
        image = self._tissue_view(t, fast)
        mask = np.zeros((self.height, self.width), np.uint8)
        tip_xy = None
        instrument = self._instrument_at(t)
        if instrument is not None:
            tip_xy = self._draw_instrument(image, mask, instrument, t, fast)
        occluded = self._draw_occluder(image, mask, t) if self.active("occlusion", t) else 0.0
        if self.active("smoke", t):
            self._draw_smoke(image, t)
        if self.active("glare", t):
            self._draw_glare(image, tip_xy)
        if self.look.irrigation and any(s <= t < e for s, e in self.look.irrigation):
            self._draw_irrigation(image, t)
        if self.lens_maps is not None:
            image = cv2.remap(image, *self.lens_maps, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            mask = cv2.remap(mask, *self.lens_maps, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT)
        if self.look.defocus > 0:
            image = cv2.GaussianBlur(image, (0, 0), self.look.defocus)
        cv2.multiply(image, self.vignette, dst=image)
        frame = cv2.add(image, self.noise_bank[t % len(self.noise_bank)], dtype=cv2.CV_8U)
        if not self.look.classic:
            mask[~self.fov_mask] = 0
        if self.hud is not None:
            self.hud.draw(frame, mask, t)
        return frame, mask, self._tags(t, mask, occluded)

    def _tags(self, t: int, mask: np.ndarray, occluded: float) -> list[str]:
        tags = [name for name in ("smoke", "glare", "fast_motion") if self.active(name, t)]
        if occluded >= 0.05:
            tags.append("occlusion")
        if not mask.any():
            tags.append("absent")
        return sorted(tags)

    def _tissue_view(self, t: int, fast: bool) -> np.ndarray:
        cx, cy, angle, zoom = self.camera[t]
        centre = (self.width / 2 + self.margin + cx, self.height / 2 + self.margin + cy)
        matrix = cv2.getRotationMatrix2D(centre, math.degrees(angle), zoom)
        matrix[:, 2] -= np.array(centre) - (self.width / 2, self.height / 2)
        view = cv2.warpAffine(
            self.tissue, matrix, (self.width, self.height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
        )
        if fast and t > 0:
            velocity = self.camera[t, :2] - self.camera[t - 1, :2]
            view = _motion_blur(view, velocity)
        return view

    def _instrument_at(self, t: int) -> _Instrument | None:
        for instrument in self.instruments:
            if instrument.start <= t < instrument.end:
                return instrument
        return None

    def _pose(self, inst: _Instrument, t: int) -> _Pose:
        centre = np.array([self.width / 2, self.height / 2])
        reach = 0.5 * math.hypot(self.width, self.height) * 1.15
        entry = centre + reach * np.array([math.cos(inst.entry_angle), math.sin(inst.entry_angle)])
        local = t - inst.start
        p = inst.phase
        pivot = 0.16 * math.sin(0.09 * local + p[0]) + 0.06 * math.sin(0.23 * local + p[1])
        if self.active("fast_motion", t):
            pivot += 0.12 * math.sin(1.9 * local + p[2])
        limit = min(MAX_PIVOT, math.asin(0.35 * self.scale / reach))
        pivot = float(np.clip(pivot, -limit, limit))
        heading = math.atan2(centre[1] - entry[1], centre[0] - entry[0]) + pivot
        axis = np.array([math.cos(heading), math.sin(heading)])
        s_in, s_out = _ray_box(entry, axis, self.width, self.height)
        chord = max(s_out - s_in, 1.0)
        work = inst.work_depth * chord * (1.0 + 0.12 * math.sin(0.15 * local + p[3]))
        shortest = min(4.5 * inst.radius, 0.5 * chord)
        ramp = 7.0
        travel = min(1.0, (local + 1) / ramp, (inst.end - t) / ramp)
        visible = shortest + (max(work, shortest) - shortest) * _smooth(travel)
        opening = 0.25 + 0.25 * math.sin(0.2 * local + p[1])
        roll = 0.45 * math.sin(0.07 * local + p[2])
        return _Pose(entry, axis, s_in + visible, opening, roll)

    def _draw_instrument(
        self, image: np.ndarray, mask: np.ndarray, inst: _Instrument, t: int, fast: bool
    ) -> np.ndarray:
        pose = self._pose(inst, t)
        s_in, _ = _ray_box(pose.entry, pose.axis, self.width, self.height)
        widest = inst.radius * (1.0 + 0.5 * (pose.depth - s_in) / self.scale)
        corners = [pose.entry + s_in * pose.axis, pose.tip + 3.2 * inst.radius * pose.axis]
        box = _bbox(corners, widest + 0.1 * self.scale, self.width, self.height)
        rgb, shaft_a, tip_a = _instrument_layer(box, pose, inst, self.scale)
        if fast and t > inst.start:
            velocity = pose.tip - self._pose(inst, t - 1).tip
            velocity *= min(1.0, 1.5 * inst.radius / max(float(np.hypot(*velocity)), 1e-6))  # keep the core opaque
            rgb, shaft_a, tip_a = (_motion_blur(layer, velocity) for layer in (rgb, shaft_a, tip_a))
        alpha = np.clip(shaft_a + tip_a, 0.0, 1.0)
        x0, y0, x1, y1 = box
        keep = _shadow(alpha, 0.03 * self.scale)  # becomes (1 - shadow / 2) * (1 - alpha), in place
        keep *= -0.5
        keep += 1.0
        keep *= 1.0 - alpha
        region = image[y0:y1, x0:x1]
        _scale_rgb(region, keep)
        cv2.add(region, rgb, dst=region)
        tip_class = np.uint8(2 if self.config.num_classes == 3 else 1)
        classes = np.where(tip_a >= shaft_a, tip_class, np.uint8(1))
        classes *= alpha >= 0.5
        mask[y0:y1, x0:x1] = classes
        return pose.tip

    def _draw_occluder(self, image: np.ndarray, mask: np.ndarray, t: int) -> float:
        """A tissue fold sliding across the shaft; returns the fraction of instrument pixels it hides."""
        start, end = next((s, e) for s, e in self.schedule["occlusion"] if s <= t < e)
        progress = (t - start + 0.5) / (end - start)
        inst = self._instrument_at(t)
        if inst is not None:
            pose = self._pose(inst, t)
            s_in, _ = _ray_box(pose.entry, pose.axis, self.width, self.height)
            anchor = pose.entry + (s_in + 0.45 * (pose.depth - s_in)) * pose.axis
            across = np.array([-pose.axis[1], pose.axis[0]])
        else:
            anchor = np.array([self.width * 0.5, self.height * 0.55])
            across = np.array([1.0, 0.0])
        size = 0.22 * self.scale * (0.55 + 0.45 * _smooth(min(1.0, 3 * min(progress, 1 - progress) + 0.2)))
        centre = anchor + across * (progress - 0.5) * 2.4 * size
        angles = np.linspace(0, 2 * np.pi, len(self.occluder_shape), endpoint=False)
        outline = centre + size * self.occluder_shape[:, None] * np.stack([1.3 * np.cos(angles), np.sin(angles)], 1)
        box = _bbox(list(outline), 0.1 * self.scale, self.width, self.height)
        x0, y0, x1, y1 = box
        if x1 <= x0 or y1 <= y0:
            return 0.0
        cover = np.zeros((y1 - y0, x1 - x0), np.float32)
        cv2.fillPoly(cover, [np.round(outline - (x0, y0)).astype(np.int32)], 1.0, cv2.LINE_AA)
        cover = cv2.GaussianBlur(cover, (0, 0), 1.2)
        height = cv2.GaussianBlur(cover, (0, 0), max(1.0, size / 3))
        shift = (2 * self.margin, self.margin // 3)
        texture = self.tissue[shift[1] + y0 : shift[1] + y1, shift[0] + x0 : shift[0] + x1]
        rim = np.clip(height * 1.6, 0.0, 1.0)
        fold = _scale_rgb(texture.copy(), 0.28 + 1.1 * rim)
        region = image[y0:y1, x0:x1]
        _scale_rgb(region, 1.0 - 0.6 * _shadow(cover, 0.05 * self.scale))
        _scale_rgb(region, 1.0 - cover)
        cv2.add(region, _scale_rgb(fold, cover), dst=region)
        hidden = (cover >= 0.5) & (mask[y0:y1, x0:x1] > 0)
        visible_before = int(np.count_nonzero(mask))
        mask[y0:y1, x0:x1][hidden] = 0
        return float(np.count_nonzero(hidden)) / visible_before if visible_before else 0.0

    def _draw_smoke(self, image: np.ndarray, t: int) -> None:
        start, end = next((s, e) for s, e in self.schedule["smoke"] if s <= t < e)
        density = 0.55 + 0.35 * math.sin(math.pi * (t - start + 0.5) / (end - start))
        h, w = self.height // 6 + 1, self.width // 6 + 1
        oy, ox = round(5.5 + 5.5 * math.sin(0.12 * t)), round(5.5 + 5.5 * math.cos(0.09 * t))
        a = self.smoke_field[oy : oy + h, ox : ox + w]
        b = self.smoke_field[23 - oy : 23 - oy + h, 12 - ox // 2 : 12 - ox // 2 + w]
        low = np.clip(0.75 * (a + b) - 0.15, 0.0, 1.0) * density
        cover = cv2.resize(low, (self.width, self.height), interpolation=cv2.INTER_CUBIC)
        cover = np.clip(cover, 0.0, 0.92)
        _scale_rgb(image, 1.0 - cover)
        cv2.add(image, cv2.merge([cover * channel for channel in SMOKE_RGB]), dst=image)

    def _draw_irrigation(self, image: np.ndarray, t: int) -> None:
        """Irrigation fluid running down the view: a thin translucent sheet with bright ripples."""
        h, w = self.height // 6 + 1, self.width // 6 + 1
        oy = (2 * t) % 12
        field = self.smoke_field[oy : oy + h, 6 : 6 + w]
        cover = cv2.resize(np.clip((field - 0.35) * 1.5, 0.0, 0.3), (self.width, self.height),
                           interpolation=cv2.INTER_CUBIC)
        ripple = np.clip(1.0 - np.abs(cv2.resize(field, (self.width, self.height)) - 0.55) * 60.0, 0.0, 1.0)
        shine = ripple * ripple * 0.45
        _scale_rgb(image, 1.0 - cover)
        water = cv2.merge([cover * c + shine for c in (0.78, 0.84, 0.9)])
        cv2.add(image, water.astype(np.float32), dst=image)

    def _draw_glare(self, image: np.ndarray, tip_xy: np.ndarray | None) -> None:
        """A saturated specular bloom on the instrument tip (or on the tissue when no instrument is in view)."""
        centre = tip_xy if tip_xy is not None else np.array([self.width, self.height]) * (0.5 + self.glare_offset)
        sigma = 0.05 * self.scale
        x0, y0, x1, y1 = _bbox([centre], 7.0 * sigma, self.width, self.height)
        if x1 <= x0 or y1 <= y0:
            return
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        d2 = ((xs - centre[0]) ** 2 + 2.0 * (ys - centre[1]) ** 2) / (2 * sigma**2)
        bloom = 1.8 * np.exp(-d2) + 0.35 * np.exp(-d2 / 5.0)
        bloom = bloom.astype(np.float32)
        region = image[y0:y1, x0:x1]
        cv2.add(region, cv2.merge((bloom, bloom, bloom)), dst=region)


def _resolve_schedule(config: SyntheticClipConfig, rng: np.random.Generator) -> dict[str, tuple[Interval, ...]]:
    """Given intervals clipped to the clip; random ones (drawn in a fixed order) where the config says None."""
    frames = config.frames
    presence = config.presence if config.presence is not None else _random_presence(frames, rng)
    schedule = {"presence": _clip_intervals(presence, frames)}
    for name in EVENT_TAGS:
        given = getattr(config, name)
        spans = given if given is not None else _random_event(frames, schedule["presence"], name, rng)
        schedule[name] = _clip_intervals(spans, frames)
    return schedule


def _random_presence(frames: int, rng: np.random.Generator) -> tuple[Interval, ...]:
    first = int(rng.uniform(0.03, 0.12) * frames)
    leave = first + max(1, int(rng.uniform(0.35, 0.5) * frames))
    back = leave + max(1, int(rng.uniform(0.08, 0.15) * frames))
    return ((first, leave), (back, frames)) if back < frames else ((first, frames),)


def _random_event(
    frames: int, presence: tuple[Interval, ...], name: str, rng: np.random.Generator
) -> tuple[Interval, ...]:
    length = max(1, int(rng.uniform(0.1, 0.2) * frames))
    if name in ("occlusion", "fast_motion") and presence:
        s, e = presence[int(rng.integers(len(presence)))]
        start = int(rng.integers(s, max(s + 1, e - length + 1)))
    else:
        start = int(rng.integers(0, max(1, frames - length + 1)))
    return ((start, start + length),)


def _clip_intervals(intervals: tuple[Interval, ...], frames: int) -> tuple[Interval, ...]:
    clipped = ((int(s), min(int(e), frames)) for s, e in intervals)
    return tuple((s, e) for s, e in clipped if s < e)


def _noise(h: int, w: int, rng: np.random.Generator, octaves: tuple[int, ...]) -> np.ndarray:
    """Smooth value noise in [0, 1]: random grids of `octaves` cells per side, upsampled and summed."""
    total = np.zeros((h, w), np.float32)
    weight = 0.0
    for i, cells in enumerate(octaves):
        grid = rng.random((max(2, cells * h // max(h, w)) + 1, cells + 1)).astype(np.float32)
        amplitude = 0.5**i
        total += amplitude * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
        weight += amplitude
    total /= weight
    lo, hi = float(total.min()), float(total.max())
    return (total - lo) / max(hi - lo, 1e-6)


def _tissue_texture(h: int, w: int, rng: np.random.Generator, palette: Palette = PALETTES["classic"]) -> np.ndarray:
    """HxWx3 float32 RGB tissue: bump-shaded, vessels, fat, wet specular spots."""
    scale = max(h, w)
    colour = {name: np.array(getattr(palette, name), np.float32) for name in ("tissue", "fat", "vessel", "vein")}
    bumps = _noise(h, w, rng, octaves=(4, 9, 20, 45))
    fine = _noise(h, w, rng, octaves=(60, 120))
    fat = np.clip((_noise(h, w, rng, octaves=(3, 7)) - palette.fat_level) * 4.0, 0.0, 1.0)[..., None]
    gy, gx = np.gradient(cv2.GaussianBlur(bumps, (0, 0), scale / 300 + 0.5) * scale / 40)
    shade = np.clip(0.85 + 0.9 * (0.6 * gx - 0.8 * gy), 0.45, 1.3)[..., None]
    hue = rng.uniform(-0.05, 0.05, 3).astype(np.float32)
    base = (colour["tissue"] + hue) * (0.8 + 0.3 * bumps[..., None]) * (0.94 + 0.12 * fine[..., None])
    rgb = base * (1 - 0.7 * fat) + colour["fat"] * 0.7 * fat
    arteries, veins = _vessels(h, w, rng)
    rgb = rgb * (1 - arteries[..., None]) + colour["vessel"] * arteries[..., None]
    rgb = rgb * (1 - veins[..., None]) + colour["vein"] * veins[..., None]
    rgb *= shade
    wet = np.clip((bumps - cv2.GaussianBlur(bumps, (0, 0), scale / 120 + 1)) * 16.0 - 0.4, 0.0, 1.0)
    specular = cv2.GaussianBlur(wet * wet, (0, 0), 0.8) * (1.6 * palette.wet)
    return (rgb + specular[..., None]).astype(np.float32)


def _vessels(h: int, w: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two soft vessel maps in [0, 1] (arteries, veins): branching random walks drawn as tapering polylines."""
    scale = max(h, w)
    maps = []
    for count, darkness in ((int(rng.integers(5, 9)), 0.75), (int(rng.integers(3, 6)), 0.55)):
        canvas = np.zeros((h, w), np.float32)
        stack = [
            (rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0, 2 * np.pi), rng.uniform(0.006, 0.013) * scale)
            for _ in range(count)
        ]
        while stack:
            x, y, heading, width = stack.pop()
            for _ in range(int(rng.integers(20, 60))):
                heading += rng.normal(0, 0.25)
                step = 0.012 * scale
                nx, ny = x + step * math.cos(heading), y + step * math.sin(heading)
                thickness = max(1, int(round(width)))
                cv2.line(canvas, (int(x), int(y)), (int(nx), int(ny)), darkness, thickness, cv2.LINE_AA)
                x, y, width = nx, ny, width * 0.985
                if rng.random() < 0.05 and width > 1.2 and len(stack) < 40:
                    stack.append((x, y, heading + rng.choice([-1, 1]) * rng.uniform(0.5, 1.1), width * 0.7))
        maps.append(cv2.GaussianBlur(canvas, (0, 0), 0.6 + scale / 900))
    return maps[0], maps[1]


def _vignette(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Endoscope light falloff (bright off-centre spot, dark corners) times 255: HxWx1 float32."""
    cy, cx = h * (0.5 + rng.uniform(-0.05, 0.05)), w * (0.5 + rng.uniform(-0.05, 0.05))
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.hypot(xs - cx, ys - cy) / (math.hypot(w, h) / math.sqrt(8))
    light = 1.15 - 0.55 * r**2
    edge = np.clip((1.32 - r) / 0.25, 0.0, 1.0)
    return (255.0 * np.clip(light, 0.08, 1.2) * edge**1.5)[..., None].astype(np.float32)


def _camera_path(
    config: SyntheticClipConfig, fast: tuple[Interval, ...], scale: float, rng: np.random.Generator
) -> np.ndarray:
    """(frames, 4): texture offset x, y (px), roll (rad), zoom: slow drift plus jolts during fast motion."""
    t = np.arange(config.frames, dtype=np.float64)
    amp = 0.1 * scale * config.camera_motion
    phases = rng.uniform(0, 2 * np.pi, 6)
    x = amp * (np.sin(0.05 * t + phases[0]) + 0.4 * np.sin(0.13 * t + phases[1]))
    y = amp * (np.sin(0.04 * t + phases[2]) + 0.4 * np.sin(0.11 * t + phases[3]))
    roll = 0.05 * config.camera_motion * np.sin(0.03 * t + phases[4])
    zoom = 1.0 + 0.05 * config.camera_motion * np.sin(0.06 * t + phases[5])
    jolts = rng.normal(0, 0.05 * scale, (config.frames, 2))
    for s, e in fast:
        x[s:e] += np.cumsum(jolts[s:e, 0])
        y[s:e] += np.cumsum(jolts[s:e, 1])
        x[e:] += np.sum(jolts[s:e, 0])
        y[e:] += np.sum(jolts[s:e, 1])
    return np.stack([x, y, roll, zoom], axis=1)


def _random_instrument(start: int, end: int, scale: float, rng: np.random.Generator) -> _Instrument:
    """Instrument look and entry side for one presence interval: dark insulated or bare metal shaft."""
    side = rng.choice([0.0, 0.5, 1.0, 1.5]) * np.pi + rng.uniform(-0.6, 0.6)
    dark = rng.random() < 0.6
    shaft = np.array([0.16, 0.16, 0.17]) if dark else np.array([0.55, 0.56, 0.58])
    return _Instrument(
        start=start,
        end=end,
        entry_angle=float(side),
        radius=float(rng.uniform(0.045, 0.065) * scale),
        shaft_rgb=(shaft * rng.uniform(0.9, 1.1)).astype(np.float32),
        tip_rgb=np.array([0.74, 0.74, 0.77], np.float32) * np.float32(rng.uniform(0.9, 1.05)),
        work_depth=float(rng.uniform(0.4, 0.65)),
        phase=rng.uniform(0, 2 * np.pi, 4),
    )


def _blob_profile(rng: np.random.Generator) -> np.ndarray:
    angles = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    profile = np.ones_like(angles)
    for k in (2, 3, 5):
        profile += rng.uniform(0.03, 0.1) * np.cos(k * angles + rng.uniform(0, 2 * np.pi))
    return profile


@dataclass(frozen=True)
class _Pose:
    """Instrument pose in frame pixels: entry point, unit axis, tip depth along it, jaw opening, roll."""

    entry: np.ndarray
    axis: np.ndarray
    depth: float
    opening: float
    roll: float

    @property
    def tip(self) -> np.ndarray:
        return self.entry + self.depth * self.axis


def _instrument_layer(
    box: tuple[int, int, int, int], pose: _Pose, inst: _Instrument, scale: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Premultiplied RGB and coverage of shaft and tip (joint + two jaws) over the box, shaded only on the band
    of pixels near the instrument axis (see `_band_quads`)."""
    x0, y0, x1, y1 = box
    axis, r, depth = pose.axis, inst.radius, pose.depth
    band = np.zeros((y1 - y0, x1 - x0), np.uint8)
    for corners in _band_quads(pose, r, scale):
        cv2.fillConvexPoly(band, np.round(corners - (x0, y0)).astype(np.int32), 1)
    iy, ix = np.nonzero(band)
    dx = ix.astype(np.float32) + np.float32(x0 + 0.5 - pose.entry[0])
    dy = iy.astype(np.float32) + np.float32(y0 + 0.5 - pose.entry[1])
    a = dx * np.float32(axis[0]) + dy * np.float32(axis[1])
    c = dy * np.float32(axis[0]) - dx * np.float32(axis[1])
    radius = r * (1.0 + 0.5 * np.clip(depth - a, 0, None) / scale)
    body = np.clip(radius - np.abs(c) + 0.5, 0.0, 1.0) * np.clip(depth - a + 0.5, 0.0, 1.0)
    is_joint = np.clip(a - (depth - 0.9 * r) + 0.5, 0.0, 1.0)
    diffuse, specular = _metal_shade(c / radius, pose.roll)
    shaft_rgb = inst.shaft_rgb * diffuse[:, None] + specular[:, None] * 0.55
    joint_rgb = inst.tip_rgb * 0.8 * diffuse[:, None] + specular[:, None]
    jaw_a = np.zeros_like(a)
    jaw_rgb = np.zeros((len(a), 3), np.float32)
    near = np.nonzero(a >= depth - 1.0)[0]
    along_tip = a[near] - depth
    for side in (1.0, -1.0):
        cover, rgb = _jaw(along_tip, c[near] - side * 0.3 * r, side * pose.opening / 2, r, pose.roll, inst.tip_rgb)
        better = cover > jaw_a[near]
        jaw_rgb[near[better]] = rgb[better]
        jaw_a[near] = np.maximum(jaw_a[near], cover)
    joint_a = body * is_joint
    tip_a = np.maximum(joint_a, jaw_a)
    tip_rgb = np.where((jaw_a >= joint_a)[:, None], jaw_rgb, joint_rgb)
    shaft_a = body * (1.0 - is_joint) * (1.0 - jaw_a)
    h, w = y1 - y0, x1 - x0
    out_rgb = np.zeros((h, w, 3), np.float32)
    out_shaft = np.zeros((h, w), np.float32)
    out_tip = np.zeros((h, w), np.float32)
    out_rgb[iy, ix] = shaft_rgb * shaft_a[:, None] + tip_rgb * tip_a[:, None]
    out_shaft[iy, ix] = shaft_a
    out_tip[iy, ix] = tip_a
    return out_rgb, out_shaft, out_tip


def _scale_rgb(image: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """`image *= factor[..., None]` in place for an HxWx3 float32 image (or view) and an HxW float32 factor, through
    OpenCV: numpy's broadcast over a 3-wide last axis is ~50x slower at 720p."""
    factor = factor.astype(np.float32, copy=False)
    return cv2.multiply(image, cv2.merge((factor, factor, factor)), dst=image)


def _band_quads(pose: _Pose, r: float, scale: float) -> list[np.ndarray]:
    """Two quadrilaterals covering every pixel the instrument can touch (2 px margin): the shaft, tapering like its
    radius from the entry to the tip, and the wider tip region where the jaws open."""
    axis, depth = pose.axis, pose.depth
    normal = np.array([-axis[1], axis[0]])
    wide, narrow = r * (1.0 + 0.5 * depth / scale) + 2.0, r + 2.0
    reach = max(wide - 2.0, 2.0 * r) + 3.0
    shaft_end, tip_start, tip_end = (pose.entry + d * axis for d in (depth + 1.0, depth - 2.0, depth + 3.2 * r + 2.0))
    shaft = [pose.entry + wide * normal, shaft_end + narrow * normal, shaft_end - narrow * normal,
             pose.entry - wide * normal]
    tip = [tip_start + reach * normal, tip_end + reach * normal, tip_end - reach * normal, tip_start - reach * normal]
    return [np.array(shaft), np.array(tip)]


def _metal_shade(u: np.ndarray, roll: float) -> tuple[np.ndarray, np.ndarray]:
    """Diffuse and specular terms across a cylinder (u = -1..1 across), the highlight moving with roll."""
    cosine = np.sqrt(np.clip(1.0 - u * u, 0.0, 1.0))
    diffuse = 0.35 + 0.75 * cosine
    specular = np.exp(-(((u - roll) / 0.16) ** 2)) * 0.9 + np.exp(-(((u + 0.55 - roll) / 0.08) ** 2)) * 0.25
    return diffuse.astype(np.float32), specular.astype(np.float32)


def _jaw(
    along: np.ndarray, across: np.ndarray, turn: float, r: float, roll: float, colour: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One tapered, serrated jaw turned by `turn` (rad) at the origin of the given instrument coordinates:
    coverage and (unpremultiplied) RGB."""
    cos, sin = math.cos(turn), math.sin(turn)
    a = along * cos + across * sin
    c = across * cos - along * sin
    length = 2.8 * r
    t = np.clip(a / length, 0.0, 1.0)
    half = 0.62 * r * np.sqrt(np.clip(1.0 - t**2.2, 0.0, 1.0)) + 0.05
    cover = np.clip(half - np.abs(c) + 0.5, 0.0, 1.0) * np.clip(a + 0.5, 0.0, 1.0) * np.clip(length - a + 0.5, 0, 1)
    diffuse, specular = _metal_shade(c / np.maximum(half, 0.5), roll * 0.8)
    teeth = 0.8 + 0.2 * np.sin(a * (2 * np.pi / max(0.35 * r, 2.0)))
    shading = diffuse * np.where(np.sign(c) == -np.sign(turn or 1.0), teeth, 1.0)
    rgb = colour * shading[:, None] + specular[:, None]
    return cover.astype(np.float32), rgb.astype(np.float32)


def _motion_blur(image: np.ndarray, velocity: np.ndarray) -> np.ndarray:
    """Linear blur along `velocity` (px per frame, capped at 31 px); long ones are done at half resolution."""
    speed = float(np.hypot(*velocity))
    length = min(31.0, speed)
    if length < 2:
        return image
    direction = np.asarray(velocity, np.float64) / speed
    if length < 8:
        return _line_blur(image, direction, int(round(length)))
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
    return cv2.resize(_line_blur(small, direction, int(round(length / 2))), (w, h), interpolation=cv2.INTER_LINEAR)


def _line_blur(image: np.ndarray, direction: np.ndarray, length: int) -> np.ndarray:
    kernel = np.zeros((length, length), np.float32)
    centre = (length - 1) / 2
    p0 = np.round(centre - direction * centre).astype(int)
    p1 = np.round(centre + direction * centre).astype(int)
    cv2.line(kernel, (int(p0[0]), int(p0[1])), (int(p1[0]), int(p1[1])), 1.0, 1)
    kernel /= kernel.sum()
    return cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REFLECT)


def _shadow(alpha: np.ndarray, offset: float) -> np.ndarray:
    """Soft shadow of a coverage map cast down-right by `offset` px, blurred at quarter resolution."""
    h, w = alpha.shape
    small = cv2.resize(alpha, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)
    shift = int(round(offset / 4))
    moved = np.zeros_like(small)
    moved[shift:, shift:] = small[: small.shape[0] - shift, : small.shape[1] - shift]
    blurred = cv2.GaussianBlur(moved, (0, 0), max(0.5, offset / 4))
    return cv2.resize(blurred, (w, h), interpolation=cv2.INTER_LINEAR)


def _ray_box(origin: np.ndarray, direction: np.ndarray, width: int, height: int) -> tuple[float, float]:
    """Distances along the ray where it enters and leaves the frame rectangle (slab method)."""
    near, far = -math.inf, math.inf
    for o, d, hi in ((origin[0], direction[0], width), (origin[1], direction[1], height)):
        if abs(d) < 1e-9:
            continue
        a, b = (0 - o) / d, (hi - o) / d
        near, far = max(near, min(a, b)), min(far, max(a, b))
    if far < near:
        middle = float(np.hypot(origin[0] - width / 2, origin[1] - height / 2))
        return middle, middle
    return max(near, 0.0), far


def _bbox(points: list[np.ndarray], pad: float, width: int, height: int) -> tuple[int, int, int, int]:
    pts = np.asarray(points, np.float64)
    x0 = int(np.clip(np.floor(pts[:, 0].min() - pad), 0, width))
    x1 = int(np.clip(np.ceil(pts[:, 0].max() + pad), 0, width))
    y0 = int(np.clip(np.floor(pts[:, 1].min() - pad), 0, height))
    y1 = int(np.clip(np.ceil(pts[:, 1].max() + pad), 0, height))
    return x0, y0, x1, y1


def _smooth(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3 - 2 * x)


def _fov_alpha(kind: str, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """HxW float32 coverage of the scope's field of view (1 inside, antialiased edge, 0 on the border)."""
    if kind == "full":
        return np.ones((h, w), np.float32)
    short = min(h, w)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    jitter = rng.uniform(-0.02, 0.02, 2) * (w, h)
    if kind == "offset_circle":
        jitter = rng.uniform(-0.15, 0.15) * w, rng.uniform(-0.1, 0.1) * h
    x, y = xs + 0.5 - (w / 2 + jitter[0]), ys + 0.5 - (h / 2 + jitter[1])
    if kind in ("circle", "offset_circle"):
        radius = rng.uniform(0.42, 0.62) * short
        distance = np.hypot(x, y) - radius
    elif kind == "rounded":
        half = np.array([w * (0.5 - rng.uniform(0.0, 0.15)), h * (0.5 - rng.uniform(0.0, 0.08))], np.float32)
        corner = rng.uniform(0.08, 0.3) * short
        qx, qy = np.abs(x) - (half[0] - corner), np.abs(y) - (half[1] - corner)
        outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0))
        distance = outside + np.minimum(np.maximum(qx, qy), 0) - corner
    else:  # octagon: a rectangle with its corners cut, as colonoscopes show it
        a, b = w * (0.5 - rng.uniform(0.05, 0.15)), h * (0.5 - rng.uniform(0.02, 0.06))
        cut = a + b - rng.uniform(0.1, 0.2) * short
        distance = np.maximum(np.maximum(np.abs(x) - a, np.abs(y) - b), (np.abs(x) + np.abs(y) - cut) / math.sqrt(2))
    return np.clip(0.5 - distance, 0.0, 1.0).astype(np.float32)


def _lumen(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """HxW float32 gain: a dark, soft-edged hole (the lumen of a bowel, or a deep cavity)."""
    short = min(h, w)
    cx, cy = rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h
    sx, sy = rng.uniform(0.08, 0.2, 2) * short
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    d2 = ((xs - cx) / sx) ** 2 + ((ys - cy) / sy) ** 2
    return (1.0 - rng.uniform(0.75, 0.95) * np.exp(-0.5 * d2)).astype(np.float32)


def _bloom(h: int, w: int, fov: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """HxWx3 float32 light (0..255 units) of an over-exposed wall close to the lens, near the FOV's edge."""
    short = min(h, w)
    inside = cv2.distanceTransform((fov >= 0.5).astype(np.uint8), cv2.DIST_L2, 3)
    ys, xs = np.nonzero((inside >= 2) & (inside <= 0.15 * short))
    if len(xs) == 0:
        return np.zeros((h, w, 3), np.float32)
    pick = int(rng.integers(len(xs)))
    sigma = rng.uniform(0.1, 0.25) * short
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    blob = np.exp(-0.5 * ((gx - xs[pick]) ** 2 + (gy - ys[pick]) ** 2) / sigma**2) * fov * rng.uniform(120, 255)
    return (blob[..., None] * np.array([1.0, 0.93, 0.88], np.float32)).astype(np.float32)


def _barrel_maps(h: int, w: int, strength: float) -> tuple[np.ndarray, np.ndarray]:
    """cv2.remap maps of a barrel lens distortion: centre magnified, corners fixed."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = (w - 1) / 2, (h - 1) / 2
    r2 = ((xs - cx) ** 2 + (ys - cy) ** 2) / (cx * cx + cy * cy)
    factor = (1.0 + strength * r2) / (1.0 + strength)
    return (cx + (xs - cx) * factor).astype(np.float32), (cy + (ys - cy) * factor).astype(np.float32)


def _word(rng: np.random.Generator, letters: int, digits: int = 0) -> str:
    alphabet, numbers = "ABCDEFGHIJKLMNOPRSTUVWXYZ", "0123456789"
    return "".join(rng.choice(list(alphabet), letters)) + "".join(rng.choice(list(numbers), digits))


class _Hud:
    """On-screen display of an OR video system: text block, logo, menu panel, icons (drawn once per clip) and a
    running clock (drawn per frame), mostly on the dark border; its pixels are never instrument."""

    def __init__(self, h: int, w: int, rng: np.random.Generator) -> None:
        self.h, self.w = h, w
        self.unit = min(h, w) / 256.0
        self.rgb = np.zeros((h, w, 3), np.uint8)
        self.alpha = np.zeros((h, w), np.uint8)
        corners = [int(i) for i in rng.permutation(4)]
        self.font = int(rng.choice([cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_DUPLEX]))
        self.colour = HUD_COLOURS[int(rng.integers(len(HUD_COLOURS)))]
        self.scale = float(rng.uniform(0.3, 0.45)) * self.unit * (1.6 if self.font == cv2.FONT_HERSHEY_PLAIN else 1)
        lines = [f"ID {_word(rng, 0, 6)}", _word(rng, int(rng.integers(3, 8))), f"x{rng.uniform(1, 3):.1f}",
                 f"20{rng.integers(20, 30)}-{rng.integers(1, 13):02d}-{rng.integers(1, 29):02d}"]
        self._text_block(lines[: int(rng.integers(2, 5))], corners[0])
        if rng.random() < 0.6:
            self._logo(corners[1], rng)
        if rng.random() < 0.4:
            self._menu(rng)
        if rng.random() < 0.5:
            self._rec(corners[2])
        self.clock_corner = corners[3]
        self.start_s = int(rng.integers(0, 86400))
        self.blend = np.repeat((self.alpha.astype(np.float32) / 255.0)[..., None], 3, axis=2)
        self.ink = self.rgb.astype(np.float32) * self.blend
        self.keep = 1.0 - self.blend
        self.opaque = self.alpha >= 128

    def _anchor(self, corner: int, size: tuple[int, int]) -> tuple[int, int]:
        """Top-left of a `size` = (width, height) box tucked into a corner (0 TL, 1 TR, 2 BR, 3 BL)."""
        pad = max(2, int(4 * self.unit))
        x = pad if corner in (0, 3) else self.w - pad - size[0]
        y = pad if corner in (0, 1) else self.h - pad - size[1]
        return max(0, x), max(0, y)

    def _put(self, text: str, org: tuple[int, int], colour: tuple[int, int, int], scale: float | None = None) -> None:
        scale = scale or self.scale
        cv2.putText(self.rgb, text, org, self.font, scale, colour, 1, cv2.LINE_AA)
        cv2.putText(self.alpha, text, org, self.font, scale, 255, 1, cv2.LINE_AA)

    def _text_size(self, text: str, scale: float | None = None) -> tuple[int, int]:
        (tw, th), base = cv2.getTextSize(text, self.font, scale or self.scale, 1)
        return tw, th + base

    def _text_block(self, lines: list[str], corner: int) -> None:
        sizes = [self._text_size(line) for line in lines]
        step = max(s[1] for s in sizes) + 2
        x, y = self._anchor(corner, (max(s[0] for s in sizes), step * len(lines)))
        for i, line in enumerate(lines):
            self._put(line, (x, y + step * (i + 1) - 3), self.colour)

    def _logo(self, corner: int, rng: np.random.Generator) -> None:
        name = _word(rng, int(rng.integers(4, 8)))
        radius = max(4, int(7 * self.unit))
        tw, th = self._text_size(name)
        x, y = self._anchor(corner, (2 * radius + 3 + tw, max(2 * radius, th)))
        colour = HUD_COLOURS[int(rng.integers(len(HUD_COLOURS)))]
        centre = (x + radius, y + radius)
        if rng.random() < 0.5:
            cv2.circle(self.rgb, centre, radius, colour, -1, cv2.LINE_AA)
            cv2.circle(self.alpha, centre, radius, 255, -1, cv2.LINE_AA)
        else:
            cv2.rectangle(self.rgb, (x, y), (x + 2 * radius, y + 2 * radius), colour, -1)
            cv2.rectangle(self.alpha, (x, y), (x + 2 * radius, y + 2 * radius), 255, -1)
        self._put(name, (x + 2 * radius + 3, y + radius + th // 2 - 1), colour)

    def _menu(self, rng: np.random.Generator) -> None:
        """A translucent settings panel with a highlighted row; it may cover part of the view."""
        rows = [_word(rng, int(rng.integers(3, 8))) for _ in range(int(rng.integers(3, 6)))]
        step = self._text_size("A")[1] + 4
        width = max(self._text_size(r)[0] for r in rows) + 12
        height = step * len(rows) + 6
        x = int(rng.uniform(0, max(1, self.w - width)))
        y = int(rng.uniform(0, max(1, self.h - height)))
        panel = int(rng.uniform(140, 220))
        cv2.rectangle(self.rgb, (x, y), (x + width, y + height), (20, 24, 30), -1)
        cv2.rectangle(self.alpha, (x, y), (x + width, y + height), panel, -1)
        chosen = int(rng.integers(len(rows)))
        top = y + 3 + chosen * step
        cv2.rectangle(self.rgb, (x + 2, top), (x + width - 2, top + step - 1), (40, 90, 160), -1)
        cv2.rectangle(self.alpha, (x + 2, top), (x + width - 2, top + step - 1), 230, -1)
        for i, row in enumerate(rows):
            self._put(row, (x + 6, y + 3 + (i + 1) * step - 4), (235, 235, 235))

    def _rec(self, corner: int) -> None:
        radius = max(3, int(4 * self.unit))
        tw, th = self._text_size("REC")
        x, y = self._anchor(corner, (2 * radius + 3 + tw, max(2 * radius, th)))
        cv2.circle(self.rgb, (x + radius, y + radius), radius, (230, 30, 30), -1, cv2.LINE_AA)
        cv2.circle(self.alpha, (x + radius, y + radius), radius, 255, -1, cv2.LINE_AA)
        self._put("REC", (x + 2 * radius + 3, y + radius + th // 2 - 1), (230, 230, 230))

    def draw(self, frame: np.ndarray, mask: np.ndarray, t: int) -> None:
        """Composite the display over frame t (in place) and clear the ground truth under it."""
        seconds = self.start_s + t // FPS
        clock = f"{seconds // 3600 % 24:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        tw, th = self._text_size(clock)
        x, y = self._anchor(self.clock_corner, (tw + 2, th + 2))
        patch = np.zeros((th + 2, tw + 2), np.uint8)
        cv2.putText(patch, clock, (1, th - 1), self.font, self.scale, 255, 1, cv2.LINE_AA)
        blended = frame.astype(np.float32)
        cv2.multiply(blended, self.keep, dst=blended)
        cv2.add(blended, self.ink, dst=blended)
        frame[:] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
        mask[self.opaque] = 0
        region = frame[y : y + patch.shape[0], x : x + patch.shape[1]]
        a = (patch[: region.shape[0], : region.shape[1]].astype(np.float32) / 255.0)[..., None]
        region[:] = (region * (1 - a) + np.array(self.colour, np.float32) * a + 0.5).astype(np.uint8)
        mask[y : y + region.shape[0], x : x + region.shape[1]][a[..., 0] >= 0.5] = 0
