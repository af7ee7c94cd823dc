"""The base every surgseg operator shares: a dataclass config, named ports, `process()` and per-frame timing.

Messages between our operators are plain dicts passed by reference (zero-copy on CPU and GPU alike):
named arrays (`frame`, `image`, `prior`, `logits`, `mask`, `overlay`, ...) plus `meta`, a dict with
`frame_index`, `timestamp_ns` (capture time), optional `letterbox` geometry and `timings_ms` per operator.
Each operator receives its own shallow copy of the message and its `meta` (copy on receive), so an operator may
write `meta` in place without racing a sibling branch of a fan-out under the multi-thread schedulers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

from surgseg.engines.errors import InputError
from surgseg.operators import holoscan_loader  # noqa: F401  (preloads libcudart before holoscan)
from holoscan.core import ConditionType, IOSpec, Operator

Message = dict[str, Any]
PYTHON_OBJECT = "PyObject"
"""Holoscan's emitter for a Python object passed as is: skips the per-emit check whether a dict could become a
TensorMap (≈ 3 µs per hop measured with 16×16 frames)."""


@dataclass
class NoConfig:
    """For operators without parameters."""


class OperatorFailure(RuntimeError):
    """An exception raised inside an operator's compute, re-raised with the operator's name."""


class SurgsegOperator(Operator):
    """A Holoscan operator driven by `process(inputs) -> outputs` over dict messages.

    Subclasses declare `Config` (a dataclass: the YAML parameters), `inputs`/`outputs` (port names) and
    `feedback_inputs` (inputs that may close a loop: they carry no condition and receive None on frame 0).
    Inputs not connected in the graph are not waited for and arrive as None.
    """

    Config: ClassVar[type] = NoConfig
    inputs: ClassVar[tuple[str, ...]] = ()
    outputs: ClassVar[tuple[str, ...]] = ()
    feedback_inputs: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        fragment: Any,
        *args: Any,
        config: Any = None,
        name: str,
        connected_inputs: frozenset[str] | None = None,
        connected_outputs: frozenset[str] | None = None,
        device: str = "cpu",
        **kwargs: Any,
    ) -> None:
        self.config = config if config is not None else self.Config()
        self.device = device
        self.connected_inputs = frozenset(self.inputs) if connected_inputs is None else connected_inputs
        self.connected_outputs = frozenset(self.outputs) if connected_outputs is None else connected_outputs
        self.survived_errors: list[str] = []
        """Failures the operator lived through so the graph could go on (the run still exits 1)."""
        super().__init__(fragment, *args, name=name, **kwargs)

    def setup(self, spec: Any) -> None:
        for port in self.inputs:
            if port in self.feedback_inputs:
                spec.input(port, policy=IOSpec.QueuePolicy.POP).condition(ConditionType.NONE)
            elif port not in self.connected_inputs:
                spec.input(port).condition(ConditionType.NONE)
            else:
                spec.input(port)
        for port in self.outputs:
            output = spec.output(port)
            if port not in self.connected_outputs:  # nothing downstream: never wait for room there
                output.condition(ConditionType.NONE)

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        received = {port: own_copy(op_input.receive(port)) if port in self.connected_inputs else None
                    for port in self.inputs}
        started = time.perf_counter_ns()
        try:
            produced = self.process(received)
        except InputError as exc:  # bad input met mid-stream: still exit code 2, with the operator named
            raise InputError(f"operator '{self.name}': {exc}") from exc
        except Exception as exc:
            raise OperatorFailure(f"operator '{self.name}' ({type(self).__name__}): {type(exc).__name__}: {exc}") from exc
        elapsed_ms = (time.perf_counter_ns() - started) / 1e6
        for port, message in (produced or {}).items():
            if port not in self.connected_outputs:
                continue
            if isinstance(message, dict) and "meta" in message:  # ours: passed on as the Python object itself
                message["meta"].setdefault("timings_ms", {}).setdefault(self.name, elapsed_ms)
                op_output.emit(message, port, PYTHON_OBJECT)
            else:  # e.g. a tensor for a Holoscan built-in: Holoscan picks its type
                op_output.emit(message, port)

    def process(self, inputs: dict[str, Message | None]) -> dict[str, Message] | None:
        """Turn this frame's input messages into output messages keyed by port name."""
        raise NotImplementedError


def own_copy(message: Any) -> Any:
    """The message with its own `meta` (and `timings_ms`): writes into it never reach a sibling branch of a fan-out,
    whichever thread runs it. Shallow: the arrays stay shared (zero-copy)."""
    if not isinstance(message, dict) or not isinstance(message.get("meta"), dict):
        return message
    meta = dict(message["meta"])
    if isinstance(meta.get("timings_ms"), dict):
        meta["timings_ms"] = dict(meta["timings_ms"])
    return {**message, "meta": meta}


def first_present(message: Message, keys: list[str], operator: str) -> tuple[str, Any]:
    """The first of `keys` the message carries (not None) and its value; InputError naming the operator's key."""
    for key in keys:
        if message.get(key) is not None:
            return key, message[key]
    raise InputError(f"operators.{operator}.keys: none of {', '.join(keys)} in the message")
