"""`FakeStreamingSAM2`: the one SAM 2 test double, with exactly the public interface PriorTracker, AsyncTracker and
SAM2Prior use (tests/sam2/test_stream_branches.py checks it against `StreamingSAM2`, so it cannot drift).

It runs no model: every tracked class is present with logits `logit` (score +1) unless its id is in `absent`
(logits NO_OBJ_SCORE, score −1), like the real engine after `absent_after` non-positive scores. It records the
methods called (`calls`), the prompts of seed/reprompt (`prompts`) and the masks of condition_on_mask (`masks`).

`RecordingModules` is the other way round: a real engine whose backend calls are recorded (a spy, not a double).
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import torch

from surgseg.engines.errors import InputError
from surgseg.engines.sam2.backends import SAM2Modules
from surgseg.engines.sam2.config import SAM2Config
from surgseg.engines.sam2.prompts import ClassPrompts
from surgseg.engines.sam2.stream import NO_OBJ_SCORE, StreamOutput

CONTROLS = ("absent", "logit", "calls", "prompts", "masks")
"""FakeStreamingSAM2's own knobs and records; everything else public in it is StreamingSAM2's interface."""


class FakeStreamingSAM2:
    """Records calls and reports every tracked class present (logits `logit`) unless its id is in `absent`."""

    def __init__(self, config: SAM2Config | None = None, image_size: int = 32, logit: float = 50.0) -> None:
        self.config = config if config is not None else SAM2Config()
        self.image_size = image_size
        self.device = torch.device("cpu")
        self.logit = logit
        self.absent: set[int] = set()
        self.calls: list[str] = []
        self.prompts: list[ClassPrompts] = []
        self.masks: list[np.ndarray] = []
        self._num_classes = 0
        self._cond_frames: dict[int, list[int]] = {}
        self._frame = -1

    def seed(self, frame: np.ndarray | torch.Tensor, prompts: ClassPrompts) -> StreamOutput:
        self.calls.append("seed")
        self.prompts.append(prompts)
        if not prompts.classes:
            raise InputError("prompts: no class has a prompt to seed from")
        self._num_classes, self._frame = prompts.num_classes, 0
        self._cond_frames = {c: [0] for c in sorted(prompts.classes)}
        self.absent -= set(prompts.classes)
        return self._output()

    def step(self, frame: np.ndarray | torch.Tensor) -> StreamOutput:
        self.calls.append("step")
        self._require_seed()
        self._frame += 1
        return self._output()

    def reprompt(self, prompts: ClassPrompts) -> StreamOutput:
        self.calls.append("reprompt")
        self.prompts.append(prompts)
        self._require_seed()
        for class_id in prompts.classes:
            self._cond_frames.setdefault(class_id, []).append(self._frame)
        self.absent -= set(prompts.classes)
        return self._output()

    def condition_on_mask(self, mask: np.ndarray, include_empty: bool = False) -> StreamOutput:
        self.calls.append("condition_on_mask")
        self.masks.append(mask)
        self._require_seed()
        if mask.ndim != 2:
            raise InputError(f"mask: expected HxW class ids, got shape {mask.shape}")
        if mask.size and int(mask.max()) >= self._num_classes:
            raise InputError(f"mask: class id {int(mask.max())} >= num_classes {self._num_classes}")
        shown = range(1, self._num_classes) if include_empty else [int(c) for c in np.unique(mask) if c]
        for class_id in shown:
            self._cond_frames.setdefault(class_id, []).append(self._frame)
        self.absent -= set(shown)
        return self._output()

    def forget(self, class_id: int) -> None:
        self.calls.append("forget")
        self._cond_frames.pop(class_id, None)

    @property
    def frame_index(self) -> int:
        return self._frame

    def memory_state(self) -> dict[int, dict[str, list]]:
        """The real engine's keys; only the conditioning frames are kept (no memory is written)."""
        return {c: {"cond_frames": list(frames), "memory_frames": [], "memory_scores": [], "cond_scores": [],
                    "pointer_frames": [], "pending_frame": self._frame}
                for c, frames in sorted(self._cond_frames.items())}

    def _require_seed(self) -> None:
        if self._frame < 0:
            raise RuntimeError("FakeStreamingSAM2: call seed(frame, prompts) first")

    def _output(self) -> StreamOutput:
        count, s4 = self._num_classes - 1, self.image_size // 4
        absent = tuple(c not in self._cond_frames or c in self.absent for c in range(1, self._num_classes))
        logits = torch.full((count, s4, s4), self.logit)
        logits[torch.tensor(absent, dtype=torch.bool)] = NO_OBJ_SCORE
        scores = torch.tensor([-1.0 if gone else 1.0 for gone in absent])
        return StreamOutput(self._frame, logits, scores, absent)


class RecordingModules:
    """Wraps a real SAM 2 backend (`SAM2Modules`): every call passes through and is recorded as (method, {argument
    name: value}), e.g. the point coordinates `heads` gets or the memory tokens `memory_attention` gets."""

    def __init__(self, inner: SAM2Modules) -> None:
        self.inner = inner
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr
        signature = inspect.signature(getattr(SAM2Modules, name))

        def record(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, dict(signature.bind(None, *args, **kwargs).arguments)))
            return attr(*args, **kwargs)

        return record

    def arguments(self, method: str) -> list[dict[str, Any]]:
        """The arguments of every call of `method`, in order."""
        return [args for name, args in self.calls if name == method]
