"""`Refiner`: the exported refiner (TensorRT / torch / ONNX Runtime) turns image ⊕ prior into class `logits`.

The artefact is checked against the graph (class count, input size) when the operator is created, so a mismatch
stops the graph before it starts. With `prior_source: feedback` (the lite graph, no SAM 2) the prior is the previous
refined mask as logits (`mask_logit` inside, `outside_logit` elsewhere), and all-zero ("no prior") on frame 0.
With SAM 2's prior, the prior gate (`prior_gate`, engines/prior_gate.py) drops or down-weights a prior the image
contradicts; its decision goes into `meta['prior_gate']` ({weight, support}).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from surgseg.engines.config import ExistingPath
from surgseg.engines.errors import InputError
from surgseg.engines.letterbox import LetterboxGeometry
from surgseg.engines.preprocess import empty_prior, mask_prior, mask_to_model
from surgseg.engines.prior_gate import GateDecision, PriorGateConfig, refine_decided, refine_gated
from surgseg.engines.refiner.artifact import RefinerArtifact, check_compatible
from surgseg.engines.refiner.runtime import RefinerRuntime, RuntimeConfig
from surgseg.operators.base import Message, SurgsegOperator

PRIOR_SOURCES = ("sam2", "feedback")


@dataclass
class RefinerOpConfig:
    artifact: Annotated[str, ExistingPath]
    """refiner.onnx (or its folder / refiner.json) written by `surgseg export`."""
    num_classes: int = 2
    """Classes the graph expects, background included."""
    size: tuple[int, int] = (256, 256)
    """Model input (height, width): must equal Preproc's size and the artefact's input size."""
    backend: str = "auto"
    """auto | tensorrt | torch | onnxruntime"""
    threads: int = 2
    prior_source: str = "sam2"
    """sam2: the message's `prior`; feedback: the previous refined mask (lite graph)."""
    mask_logit: float = 8.0
    """Lite prior inside the previous mask's classes."""
    outside_logit: float = 0.0
    """Lite prior elsewhere: 0 ("no opinion") lets an instrument the previous mask missed appear; −mask_logit
    would lock the mask onto what it already found."""
    prior_gate: PriorGateConfig = field(default_factory=PriorGateConfig)
    """With prior_source sam2: drop or down-weight a prior the refiner's image-only reading contradicts."""

    def __post_init__(self) -> None:
        if self.prior_source not in PRIOR_SOURCES:
            raise InputError(f"prior_source: {self.prior_source!r} is not one of {', '.join(PRIOR_SOURCES)}")


class Refiner(SurgsegOperator):
    Config = RefinerOpConfig
    inputs = ("image", "feedback")
    outputs = ("logits",)
    feedback_inputs = ("feedback",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        c = self.config
        if c.prior_source == "feedback" and "feedback" not in self.connected_inputs:
            raise InputError(f"operators.{self.name}.prior_source: 'feedback' needs a feedback flow into "
                             f"{self.name}.feedback (e.g. {{from: ema.mask, to: {self.name}.feedback, feedback: true}})")
        artifact = RefinerArtifact.load(c.artifact)
        check_compatible(artifact, c.num_classes, tuple(c.size))
        self.runtime = RefinerRuntime(artifact, RuntimeConfig(backend=c.backend, device=self.device, threads=c.threads))
        self._judged: tuple[int, GateDecision] | None = None
        """(frame the prior was made on, the gate's decision) of the last asynchronous SAM 2 result judged."""

    def process(self, inputs: dict[str, Message | None]) -> dict[str, Message]:
        message = inputs["image"]
        image = message["image"]
        if self.config.prior_source == "feedback":
            prior = self._feedback_prior(inputs, image, message["meta"])
            return {"logits": {**message, "logits": self.runtime.run(image, prior)}}
        prior = message.get("prior")
        if prior is None:
            raise InputError(f"operators.{self.name}: the incoming message has no 'prior' (is SAM2Prior upstream? "
                             f"for the lite graph set prior_source: feedback)")
        if not self.config.prior_gate.enabled:
            return {"logits": {**message, "logits": self.runtime.run(image, prior)}}
        return {"logits": {**message, "logits": self._gated(image, prior, message.get("meta"))}}

    def _gated(self, image: Any, prior: Any, meta: dict[str, Any] | None) -> Any:
        """The refined logits with the prior kept, blended or dropped by the gate; the decision goes into `meta`.
        An asynchronous SAM 2 hands over one result for many frames (warped to each): it is judged on the first of
        them and the decision kept while the result is the same, so most frames cost one refiner pass."""
        c = self.config
        empty = empty_prior(c.num_classes, tuple(c.size), image)
        made_on = prior_frame(meta)
        if made_on is not None and self._judged is not None and self._judged[0] == made_on:
            decision = self._judged[1]
            logits = refine_decided(self.runtime.run, image, prior, empty, decision)
        else:
            logits, decision = refine_gated(self.runtime.run, image, prior, empty, c.prior_gate)
            self._judged = None if made_on is None else (made_on, decision)
        if isinstance(meta, dict):  # this operator's own copy (operators/base.py)
            meta["prior_gate"] = {"weight": decision.weight, "support": decision.support}
        return logits

    def _feedback_prior(self, inputs: dict[str, Message | None], image: Any, meta: dict[str, Any]) -> Any:
        """The previous refined mask, in this frame's model geometry (letterbox and field-of-view crop)."""
        c = self.config
        feedback = inputs.get("feedback")
        if feedback is None:
            return empty_prior(c.num_classes, tuple(c.size), image)
        target = LetterboxGeometry(**meta["letterbox"]) if "letterbox" in meta else tuple(c.size)
        small = mask_to_model(feedback["mask"], target)
        return mask_prior(small, c.num_classes, c.mask_logit, c.outside_logit)


def prior_frame(meta: dict[str, Any] | None) -> int | None:
    """The frame an asynchronous SAM 2 made this frame's prior on; None for a synchronous prior (made on this one)."""
    age = meta.get("prior_age") if isinstance(meta, dict) else None
    if not age or age.get("frames") is None or meta.get("frame_index") is None:
        return None  # synchronous, or no asynchronous result yet
    return int(meta["frame_index"]) - int(age["frames"])
