"""The seeding and feedback policy around `StreamingSAM2`: one call per frame gives that frame's prior logits.

- Seed: explicit prompts (and optionally a mask) for a frame start tracking; a later frame's prompts re-prompt it.
- Feedback: the previous frame's refined mask (model geometry) becomes SAM 2's output and conditioning input for
  that frame every `seeding.condition_every` frames (the engine's newest frame is still t−1 when frame t arrives).
- Hands-free seeding and re-seeding: a class that is not tracked (never seeded, released, or reported absent by the
  engine) whose refined mask holds at least `seeding.min_area` pixels for `seeding.frames` frames in a row is seeded
  from that mask (prompts from the mask on the previous frame's image, then the mask as conditioning).
- Release: a tracked class whose refined mask stays under `min_area` pixels for `seeding.release_after` frames in a row
  has left the view whatever SAM 2 says (its object score can stay positive on an empty scene): its memory is
  dropped and its prior becomes `ABSENT_PRIOR`, so the refiner looks for it from the image alone until it is
  re-seeded. With every class released SAM 2 stops running until the next seed.
- Output: per foreground class, SAM 2's low-res logits upsampled to the model size and clipped to
  ±`seeding.prior_clip`; a class that is not tracked gives `ABSENT_PRIOR` (0 = "no prior", what the refiner saw
  under prior dropout), so the refiner segments it from the image alone and the feedback can seed it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from surgseg.engines.errors import InputError
from surgseg.engines.preprocess import empty_prior
from surgseg.engines.sam2.prompts import ClassPrompts, prompts_from_mask
from surgseg.engines.sam2.config import SAM2Config
from surgseg.engines.sam2.stream import StreamingSAM2, StreamOutput

ABSENT_PRIOR = 0.0
"""The prior of a class SAM 2 does not track: "no opinion", what the refiner saw under prior dropout."""


@dataclass
class SeedRequest:
    """Prompts (model-geometry pixels) and optionally a class-id mask (model geometry) for the current frame."""

    prompts: ClassPrompts | None = None
    mask: np.ndarray | None = None
    initial: bool = False
    """The first frame's seed (not a correction): dropped by an asynchronous tracker that is already seeded."""


@dataclass
class TrackerEvents:
    """What happened on one frame (for logs, QA and tests)."""

    frame_index: int
    seeded: list[int] = field(default_factory=list)
    reseeded: list[int] = field(default_factory=list)
    released: list[int] = field(default_factory=list)
    conditioned: bool = False
    absent: tuple[bool, ...] = ()
    object_scores: tuple[float, ...] = ()
    instance_events: list[dict] = field(default_factory=list)
    """Instance tracking: born, lost, refound, released, merged, split (see engines/sam2/instances.py)."""
    instance_hint: Any = None
    """Instance tracking: the `InstanceHint` for this frame (labels its refined mask with track IDs)."""


class PriorTracker:
    def __init__(self, engine: StreamingSAM2, config: SAM2Config | None = None) -> None:
        self.engine = engine
        self.config = config if config is not None else engine.config
        self.seeding = self.config.seeding
        self.num_classes = self.config.num_classes
        self.frame_index = -1
        self.seed_frame: int | None = None
        self._previous_input: torch.Tensor | None = None
        self._last: StreamOutput | None = None
        self._present_run = np.zeros(self.num_classes, np.int64)
        self._missing_run = np.zeros(self.num_classes, np.int64)

    @property
    def seeded(self) -> bool:
        return self.seed_frame is not None

    def tracked(self, class_id: int) -> bool:
        """Seeded and not reported absent by the engine on the last frame."""
        return self._last is not None and not self._last.absent[class_id - 1] and class_id in self._seeded_classes()

    def frame(self, image: Any, feedback: np.ndarray | None = None,
              request: SeedRequest | None = None) -> tuple[Any, TrackerEvents]:
        """Prior logits (1, C−1, h, w) for `image` (1, 3, h, w normalised); `feedback` is the refined mask of the
        tracker's previous frame."""
        self.frame_index += 1
        events = TrackerEvents(self.frame_index)
        size = tuple(image.shape[-2:])
        square = self._square(torch.as_tensor(image))
        self._count_present(feedback)
        if self.seeded:
            self._release_missing(events)
        if not self.seeded:
            self._start(square, feedback, request, events)
        else:
            self._continue(square, feedback, request, events)
        self._previous_input = square
        if self._last is None:
            return self.empty_prior(size, image), events
        events.absent = self._last.absent
        events.object_scores = tuple(float(s) for s in self._last.object_scores.tolist())
        return self._prior(self._last, size, image), events

    # ------------------------------------------------------------------ policy
    def _start(self, square: torch.Tensor, feedback: np.ndarray | None, request: SeedRequest | None,
               events: TrackerEvents) -> None:
        if request is not None and (request.mask is not None or (request.prompts and request.prompts.classes)):
            self._last = self._seed(square, request)
            events.seeded = sorted(self._seeded_classes())
            return
        ready = self._ready(feedback)
        if ready and self._previous_input is not None:
            mask = _only(feedback, ready)
            self._seed(self._previous_input, SeedRequest(mask=mask))
            self.seed_frame = self.frame_index - 1
            events.seeded = ready
            self._last = self.engine.step(square)

    def _continue(self, square: torch.Tensor, feedback: np.ndarray | None, request: SeedRequest | None,
                  events: TrackerEvents) -> None:
        if feedback is not None:
            lost = [c for c in self._ready(feedback) if not self.tracked(c)]
            since_seed = self.frame_index - 1 - self.seed_frame
            due = self.seeding.condition_every and since_seed > 0 and since_seed % self.seeding.condition_every == 0
            if due and feedback.any():
                self.engine.condition_on_mask(self._square_mask(feedback))
                events.conditioned = True
            elif lost:
                self.engine.condition_on_mask(self._square_mask(_only(feedback, lost)))
            if lost:
                events.reseeded = lost
                self._present_run[lost] = 0
        self._last = self.engine.step(square)
        if request is not None and request.prompts is not None and request.prompts.classes:
            self._last = self.engine.reprompt(self._square_prompts(request.prompts))
            self._missing_run[list(request.prompts.classes)] = 0
            events.reseeded = sorted(set(events.reseeded) | set(request.prompts.classes))

    def _seed(self, square: torch.Tensor, request: SeedRequest) -> StreamOutput:
        prompts = request.prompts
        if prompts is None or not prompts.classes:
            prompts = prompts_from_mask(request.mask, self.num_classes)
        if not prompts.classes:
            raise InputError("seed: the seed mask has no foreground pixels")
        output = self.engine.seed(square, self._square_prompts(prompts))
        if request.mask is not None:
            output = self.engine.condition_on_mask(self._square_mask(request.mask))
        self.seed_frame = self.frame_index
        self._present_run[:] = 0
        self._missing_run[:] = 0
        return output

    def _release_missing(self, events: TrackerEvents) -> None:
        missing = self._missing_run >= self.seeding.release_after
        if not self.seeding.release_after or not missing[1:].any():
            return
        events.released = [c for c in sorted(self._seeded_classes()) if missing[c]]
        for class_id in events.released:
            self.engine.forget(class_id)
        if events.released and not self._seeded_classes():
            self.seed_frame = None
            self._last = None

    def _count_present(self, feedback: np.ndarray | None) -> None:
        if feedback is None:
            self._present_run[:] = 0
            self._missing_run[:] = 0
            return
        areas = np.bincount(feedback.ravel(), minlength=self.num_classes)[: self.num_classes]
        present = areas >= self.seeding.min_area
        self._present_run = np.where(present, self._present_run + 1, 0)
        self._missing_run = np.where(present, 0, self._missing_run + 1)

    def _ready(self, feedback: np.ndarray | None) -> list[int]:
        if not self.seeding.auto_seed or feedback is None:
            return []
        runs = self._present_run[1:]
        return [c + 1 for c in np.flatnonzero(runs >= self.seeding.frames).tolist()]

    def _seeded_classes(self) -> set[int]:
        return set(self.engine.memory_state())

    # ------------------------------------------------------------------ arrays
    def _square_mask(self, mask: np.ndarray) -> np.ndarray:
        """A model-geometry class-id mask stretched to S×S like the image (nearest, so ids stay ids)."""
        s = self.engine.image_size
        return mask if mask.shape == (s, s) else cv2.resize(mask, (s, s), interpolation=cv2.INTER_NEAREST_EXACT)

    def _square_prompts(self, prompts: ClassPrompts) -> ClassPrompts:
        """Model-geometry prompts moved onto the stretched S×S image."""
        s = self.engine.image_size
        return prompts if (prompts.height, prompts.width) == (s, s) else prompts.resized(s, s)

    def _square(self, image: torch.Tensor) -> torch.Tensor:
        """The model-size image as SAM 2's S×S input (stretched when the model size is not square S)."""
        s = self.engine.image_size
        image = image.to(self.engine.device, torch.float32)
        if tuple(image.shape[-2:]) == (s, s):
            return image
        return F.interpolate(image, size=(s, s), mode="bilinear", align_corners=False)

    def _prior(self, output: StreamOutput, size: tuple[int, int], like: Any) -> Any:
        logits = output.logits.clamp(-self.seeding.prior_clip, self.seeding.prior_clip)
        absent = torch.tensor(output.absent, device=logits.device)
        logits = torch.where(absent.view(-1, 1, 1), torch.full_like(logits, ABSENT_PRIOR), logits)
        prior = F.interpolate(logits[None], size=size, mode="bilinear", align_corners=False)
        return like_image(prior.float().contiguous(), like)

    def empty_prior(self, size: tuple[int, int], like: Any) -> Any:
        """The prior of a frame with nothing tracked: "no prior" (ABSENT_PRIOR) everywhere, numpy or torch like
        `like`."""
        return empty_prior(self.num_classes, size, like)


def _only(mask: np.ndarray, classes: list[int]) -> np.ndarray:
    """The mask with every class outside `classes` set to background."""
    return np.where(np.isin(mask, classes), mask, 0).astype(np.uint8)


def like_image(prior: torch.Tensor, like: Any) -> Any:
    """numpy when the image came as numpy (CPU graph), else a torch tensor on the image's device."""
    if isinstance(like, np.ndarray):
        return prior.cpu().numpy()
    return prior.to(like.device)
