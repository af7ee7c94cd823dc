"""`SAM2Prior`: streaming SAM 2 → `prior` logits (1×(C−1)×h×w at model size) for every frame.

Seeds (source-frame pixels): `seed: {box: [x0, y0, x1, y1], points: [[x, y, 1]], class_id: 1}`, `seed: {mask: gt.png}`,
`seed: {clicks: clicks.csv}` (frame,class,x,y,label; later frames re-prompt) or `seed: {from_gt: true}` (the first
message carrying a non-empty `gt_mask`). A display's clicks and drags arrive on the `clicks` input (feedback flow
`{from: display.clicks, to: prior.clicks, feedback: true}`, see operators/holoviz_sink.py) and seed or re-prompt
the frame they reach. Without a seed, `seeding.auto_seed` seeds a class from the refined mask fed back
once it is stable; the same rule re-seeds a class SAM 2 lost when it comes back (see engines/sam2/tracker.py).

`instances: {enabled: true}` makes every instrument its own SAM 2 object with a persistent ID
(engines/sam2/instance_prior.py): `meta['instances']` carries the `InstanceHint` that labels the frame's refined mask
with track IDs (`engines.sam2.instances.source_ids`; MaskSink and Overlay use it) and `meta['sam2']['instances']` the
frame's instance events (born, lost, refound, released, merged, split) for QA.

`runtime: {mode: async}` takes SAM 2 off the critical path (engines/sam2/async_prior.py); `worker: process` runs it
in a child process that builds its own tracker (engines/sam2/worker_process.py), so `self.tracker` is None here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from surgseg.engines.array_backend import to_numpy
from surgseg.engines.errors import InputError
from surgseg.engines.letterbox import LetterboxGeometry
from surgseg.engines.preprocess import mask_to_model
from surgseg.engines.sam2.config import SAM2Config
from surgseg.engines.sam2.async_prior import AsyncTracker, InThreadStep
from surgseg.engines.sam2.tracker import PriorTracker, SeedRequest, TrackerEvents
from surgseg.engines.sam2.seeding import box_prompts, click_prompts, pointer_prompts, read_clicks, read_mask
from surgseg.engines.sam2.worker_process import TrackerSpec, WorkerProcess
from surgseg.operators.base import Message, SurgsegOperator

log = logging.getLogger(__name__)

CHECKPOINT_HELP = ("for real priors run `surgseg weights download sam2.1_hiera_tiny` where a network exists (or copy "
                   "the official sam2.1_hiera_tiny.pt there) and pass --set operators.prior.model.checkpoint=PATH")


@dataclass(frozen=True)
class SeedConfig:
    """The person's prompt for the first frame (source-frame pixels); give one of box, mask, clicks, from_gt."""

    box: tuple[float, float, float, float] | None = None
    points: list[tuple[float, float, int]] = field(default_factory=list)
    class_id: int = 1
    mask: str | None = None
    clicks: str | None = None
    from_gt: bool = False


@dataclass(frozen=True)
class SAM2PriorConfig(SAM2Config):
    """The one SAM 2 configuration (engines/sam2/config.py) plus the first frame's prompt."""

    seed: SeedConfig = field(default_factory=SeedConfig)


class SAM2Prior(SurgsegOperator):
    Config = SAM2PriorConfig
    inputs = ("image", "feedback", "clicks")
    outputs = ("prior",)
    feedback_inputs = ("feedback", "clicks")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        c = self.config
        self._check_seed(c.seed)
        if c.model.checkpoint is None:
            log.warning("%s: SAM 2 runs with RANDOM weights (no checkpoint): its priors carry no information; %s",
                        self.name, CHECKPOINT_HELP)
        self.clicks = read_clicks(c.seed.clicks, c.num_classes) if c.seed.clicks else {}
        self.seed_mask = read_mask(c.seed.mask, c.num_classes) if c.seed.mask else None
        self.instance_hint = None
        self._frames_seen = 0
        sam2 = SAM2Config(**{f.name: getattr(c, f.name) for f in fields(SAM2Config)})  # picklable without Holoscan
        spec = TrackerSpec(sam2, self.device)
        in_process = c.runtime.mode == "sync" or c.runtime.worker == "thread"
        self.tracker: PriorTracker | None = spec() if in_process else None  # None: SAM 2 is in a worker process
        self.async_tracker = self._async_tracker(spec) if c.runtime.mode == "async" else None

    def _async_tracker(self, spec: TrackerSpec) -> AsyncTracker:
        warper = None
        if self.config.runtime.warp == "flow":
            from surgseg.engines.motion import PriorWarper

            warper = PriorWarper()
        nice = self.config.runtime.nice
        step = InThreadStep(self.tracker) if self.tracker is not None else WorkerProcess(spec, self.name, nice)
        return AsyncTracker(step, warper, name=self.name, nice=nice if self.tracker is not None else 0)

    def stop(self) -> None:
        if self.async_tracker is not None:
            self.async_tracker.close()
            log.info("%s: SAM 2 processed %d frames, skipped %d (asynchronous)", self.name,
                     self.async_tracker.processed, self.async_tracker.skipped)
            if self.async_tracker.error:
                self.survived_errors.append(self.async_tracker.error)

    def _check_seed(self, seed: SeedConfig) -> None:
        given = [name for name, on in (("box", seed.box is not None), ("mask", seed.mask), ("clicks", seed.clicks),
                                       ("from_gt", seed.from_gt)) if on]
        if len(given) > 1:
            raise InputError(f"operators.{self.name}.seed: give one of box, mask, clicks, from_gt (got {', '.join(given)})")
        if seed.points and seed.box is None:
            raise InputError(f"operators.{self.name}.seed.points: points need a box beside them")
        for key in ("mask", "clicks"):
            path = getattr(seed, key)
            if path and not Path(path).exists():
                raise InputError(f"operators.{self.name}.seed.{key}: no such file: {path}")

    def process(self, inputs: dict[str, Message | None]) -> dict[str, Message]:
        message = inputs["image"]
        meta = message["meta"]
        geometry = LetterboxGeometry(**meta["letterbox"])
        feedback = inputs.get("feedback")
        feedback_mask = None if feedback is None else to_numpy(mask_to_model(feedback["mask"], geometry))
        index = meta.get("frame_index", self._frames_seen)
        self._frames_seen += 1
        request = self._seed_request(message, index, geometry, inputs.get("clicks"))
        if self.async_tracker is None:
            prior, events = self.tracker.frame(message["image"], feedback_mask, request)
            self._report(meta, events, self.tracker.engine.memory_state())
            return {"prior": {**message, "prior": prior}}
        fed = None if feedback_mask is None else (feedback["meta"].get("frame_index", index - 1), feedback_mask)
        prior, age, published = self.async_tracker.frame(index, meta.get("captured_ns"), message["image"], fed, request)
        meta["prior_age"] = {"frames": age.frames, "ms": age.ms}
        if published is not None:
            self._report(meta, published.events, published.memory)
        elif self.instance_hint is not None:
            meta["instances"] = self.instance_hint
        return {"prior": {**message, "prior": prior}}

    def _report(self, meta: dict[str, Any], events: TrackerEvents, memory: dict[int, dict[str, list]]) -> None:
        """Log seeding events and put SAM 2's state for this frame in `meta['sam2']` (QA reads it)."""
        if events.seeded or events.reseeded or events.released:
            log.info("%s: frame %d: seeded %s, re-seeded %s, released %s", self.name, meta.get("frame_index", -1),
                     events.seeded, events.reseeded, events.released)
        meta["sam2"] = {"absent": list(events.absent), "object_scores": list(events.object_scores),
                        "seeded": events.seeded, "reseeded": events.reseeded, "released": events.released,
                        "memory": memory}
        if events.instance_hint is not None:
            self.instance_hint = meta["instances"] = events.instance_hint
            meta["sam2"]["instances"] = events.instance_events
            for event in events.instance_events:
                log.info("%s: frame %d: instance %s", self.name, meta.get("frame_index", -1), event)

    def _seed_request(self, message: Message, t: int, geometry: LetterboxGeometry,
                      pointer: Message | None) -> SeedRequest | None:
        c = self.config
        if t in self.clicks:
            return SeedRequest(prompts=click_prompts(self.clicks[t], c.num_classes, geometry))
        if pointer is not None and (pointer["clicks"] or pointer["boxes"]):
            log.info("%s: frame %d: display prompts %s", self.name, t, pointer["clicks"] + pointer["boxes"])
            return SeedRequest(prompts=pointer_prompts(pointer["clicks"], pointer["boxes"], c.num_classes, geometry))
        if (self.tracker if self.async_tracker is None else self.async_tracker).seeded:
            return None
        if c.seed.box is not None:
            prompts = box_prompts(c.seed.box, c.seed.points, c.seed.class_id, c.num_classes, geometry)
            return SeedRequest(prompts=prompts, initial=True)
        if self.seed_mask is not None:
            return SeedRequest(mask=self._model_mask(self.seed_mask, geometry, f"seed.mask {c.seed.mask}"), initial=True)
        gt = message.get("gt_mask") if c.seed.from_gt else None
        if gt is not None and np.any(to_numpy(gt)):
            return SeedRequest(mask=self._model_mask(to_numpy(gt), geometry, "gt_mask"), initial=True)
        return None

    def _model_mask(self, mask: np.ndarray, geometry: LetterboxGeometry, what: str) -> np.ndarray:
        if mask.shape != (geometry.source_h, geometry.source_w):
            raise InputError(f"operators.{self.name}.{what}: mask {mask.shape} does not match the frame "
                             f"{(geometry.source_h, geometry.source_w)}")
        return mask_to_model(mask, geometry)
