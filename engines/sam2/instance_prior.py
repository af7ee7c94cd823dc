"""`PriorTracker` with one SAM 2 object per instrument (`instances.enabled`): the same call per frame, the same
class-level prior out.

Each frame, the refined mask of the previous frame (model geometry) goes through `InstanceTracker`: its components
keep, gain or lose track IDs. A track born or re-found is conditioned on its mask (the previous frame, SAM 2's newest)
as its own SAM 2 object keyed by its ID; every `seeding.condition_every` frames every track seen is conditioned on
its pixels; a released track's object is forgotten. SAM 2 then steps every object onto the current frame; a class's
prior is the maximum of its objects' clipped logits (`ABSENT_PRIOR` for a class without any object). With no track
SAM 2 does not run at all (the empty scene costs the components of one mask).

SAM 2's per-object masks join the matching (as the tracks' expected masks) only with a checkpoint: random weights
carry no information. A seed mask gives every component of it a track at once; box and click prompts are not
instance seeds (logged once and ignored).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from surgseg.engines.sam2.config import SAM2Config
from surgseg.engines.sam2.instances import InstanceTracker, InstanceUpdate
from surgseg.engines.sam2.stream import StreamingSAM2
from surgseg.engines.sam2.tracker import ABSENT_PRIOR, PriorTracker, SeedRequest, TrackerEvents, like_image

log = logging.getLogger(__name__)


class InstancePriorTracker(PriorTracker):
    def __init__(self, engine: StreamingSAM2, config: SAM2Config | None = None) -> None:
        super().__init__(engine, config)
        self.instances: InstanceTracker | None = None
        self._previous_image: Any = None
        self._running = False
        self._warned_prompts = False

    @property
    def seeded(self) -> bool:
        return self.instances is not None and bool(self.instances.tracks)

    def frame(self, image: Any, feedback: np.ndarray | None = None,
              request: SeedRequest | None = None) -> tuple[Any, TrackerEvents]:
        """Prior logits (1, C−1, h, w) for `image`; `feedback` is the refined mask of the tracker's previous frame.
        The events carry the instance events and the hint that labels this frame's refined mask."""
        self.frame_index += 1
        events = TrackerEvents(self.frame_index)
        size = tuple(image.shape[-2:])
        tracker = self._tracker(size)
        seed_mask = self._seed_mask(request)
        update = tracker.update(feedback) if feedback is not None and seed_mask is None else None
        outputs: dict[int, tuple[torch.Tensor, float]] = {}
        if update is not None:
            self._forget(update.released)
            events.instance_events = update.events
        if tracker.tracks or seed_mask is not None:  # an empty scene never touches SAM 2 or the image
            square = self._square(torch.as_tensor(image))
            if update is not None:
                outputs = self._step(square, self._conditions(update))
            elif seed_mask is None and self._running:
                outputs = self.engine.step_objects(square)
            if seed_mask is not None:
                outputs = self._seed(square, tracker.update(seed_mask, seed=True), events)
        if not tracker.tracks:
            self._running = False
        self._previous_image = image
        predictions = self._predictions(outputs, size) if self.config.model.checkpoint is not None else None
        events.instance_hint = tracker.hint(predictions)
        events.object_scores = tuple(score for _, score in outputs.values())
        if not outputs:
            return self.empty_prior(size, image), events
        return self._class_prior(outputs, tracker, size, image), events

    # ------------------------------------------------------------------ policy
    def _tracker(self, size: tuple[int, int]) -> InstanceTracker:
        if self.instances is None:
            s = self.seeding
            self.instances = InstanceTracker(self.config.instances, self.num_classes, size, s.min_area, s.frames,
                                             s.release_after)
        return self.instances

    def _seed_mask(self, request: SeedRequest | None) -> np.ndarray | None:
        if request is None:
            return None
        if request.prompts is not None and request.prompts.classes and not self._warned_prompts:
            log.warning("instances: box and click prompts are not instance seeds; seeding from the refined mask")
            self._warned_prompts = True
        return request.mask

    def _conditions(self, update: InstanceUpdate) -> dict[int, np.ndarray]:
        """Masks (previous frame) to condition SAM 2 on: new and re-found tracks, every track seen when due."""
        every = self.seeding.condition_every
        due = every and self.frame_index % every == 0
        objects = self._objects() if self._running else set()
        return {t: m for t, m in update.masks.items() if due or t not in objects or t in update.refound}

    def _step(self, square: torch.Tensor, conditions: dict[int, np.ndarray]) -> dict[int, tuple[torch.Tensor, float]]:
        if not self._running:
            if self._previous_image is None or not conditions:
                return {}
            self.engine.start(self._square(torch.as_tensor(self._previous_image)), self.num_classes)
            self._running = True
        if conditions:
            self.engine.condition_on_objects({t: self._square_mask(m.astype(np.uint8)) for t, m in conditions.items()})
        return self.engine.step_objects(square)

    def _seed(self, square: torch.Tensor, update: InstanceUpdate,
              events: TrackerEvents) -> dict[int, tuple[torch.Tensor, float]]:
        """A seed mask of the current frame: every component a track now, SAM 2 conditioned on it here."""
        events.instance_events = update.events
        if not update.masks:
            return {}
        if not self._running:
            self.engine.start(square, self.num_classes)
            self._running = True
        else:
            self.engine.step_objects(square)
        self.engine.condition_on_objects({t: self._square_mask(m.astype(np.uint8)) for t, m in update.masks.items()})
        return self.engine.object_outputs()

    def _forget(self, released: list[int]) -> None:
        for track_id in released:
            self.engine.forget(track_id)

    def _objects(self) -> set[int]:
        return set(self.engine.memory_state())

    # ------------------------------------------------------------------ arrays
    def _predictions(self, outputs: dict[int, tuple[torch.Tensor, float]],
                     size: tuple[int, int]) -> dict[int, np.ndarray]:
        """Each object's mask at model size (empty when SAM 2 says the object is not there)."""
        return {t: (self._upsampled(logits, size) > 0).cpu().numpy() if score > 0 else np.zeros(size, bool)
                for t, (logits, score) in outputs.items()}

    def _class_prior(self, outputs: dict[int, tuple[torch.Tensor, float]], tracker: InstanceTracker,
                     size: tuple[int, int], like: Any) -> Any:
        clip = self.seeding.prior_clip
        prior = torch.full((1, self.num_classes - 1, *size), ABSENT_PRIOR, device=self.engine.device)
        classes = {t.track_id: t.class_id for t in tracker.tracks.values()}
        seen: set[int] = set()
        for track_id, (logits, _) in outputs.items():
            class_id = classes.get(track_id)
            if class_id is None:
                continue
            channel = self._upsampled(logits, size).clamp(-clip, clip)
            index = class_id - 1
            prior[0, index] = channel if index not in seen else torch.maximum(prior[0, index], channel)
            seen.add(index)
        return like_image(prior.float().contiguous(), like)

    @staticmethod
    def _upsampled(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return F.interpolate(logits[None, None].float(), size=size, mode="bilinear", align_corners=False)[0, 0]
