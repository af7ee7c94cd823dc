"""The base every surgseg operator shares: a dataclass config, named ports, `process()` and per-frame timing.

Messages between our operators are plain dicts passed by reference (zero-copy on CPU and GPU alike):
named arrays (`frame`, `image`, `prior`, `logits`, `mask`, `overlay`, ...) plus `meta`, a dict with
`frame_index`, `timestamp_ns` (capture time), optional `letterbox` geometry and `timings_ms` per operator.
Each operator receives its own shallow copy of the message and its `meta` (copy on receive), so an operator may
write `meta` in place without racing a sibling branch of a fan-out under the multi-thread schedulers.
"""

from __future__ import annotations

from dataclasses import dataclass
from time import perf_counter_ns
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
        self._receiving = tuple(port for port in self.inputs if port in self.connected_inputs)
        self._not_received = dict.fromkeys(port for port in self.inputs if port not in self.connected_inputs)
        self._timing_key: str | None = None
        missing = self.missing_prerequisites(self.config, f"operators.{name}")
        if missing:
            raise InputError(missing[0])
        super().__init__(fragment, *args, name=name, **kwargs)

    @staticmethod
    def missing_prerequisites(config: Any, key: str) -> list[str]:
        """What this machine lacks to run the operator (one line each, naming what to install): an optional
        dependency or protocol. `graph check` lists them; building the operator refuses the first."""
        return []

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
        received = self._not_received.copy()
        for port in self._receiving:
            received[port] = own_copy(op_input.receive(port))
        started = perf_counter_ns()
        try:
            produced = self.process(received)
        except InputError as exc:  # bad input met mid-stream: still exit code 2, with the operator named
            raise InputError(f"operator '{self.name}': {exc}") from exc
        except Exception as exc:
            raise OperatorFailure(f"operator '{self.name}' ({type(self).__name__}): {type(exc).__name__}: {exc}") from exc
        if produced:
            self._emit(produced, (perf_counter_ns() - started) / 1e6, op_output)

    def _emit(self, produced: dict[str, Any], elapsed_ms: float, op_output: Any) -> None:
        """Emit each connected port's message; ours (a dict with `meta`) carry this operator's time in `timings_ms`."""
        key = self._timing_key
        if key is None:
            key = self._timing_key = self.name  # Holoscan's name (qualified inside a subgraph), read once
        for port, message in produced.items():
            if port not in self.connected_outputs:
                continue
            meta = message.get("meta") if isinstance(message, dict) else None
            if meta is None:  # e.g. a tensor for a Holoscan built-in: Holoscan picks its type
                op_output.emit(message, port)
                continue
            timings = meta.get("timings_ms")
            if timings is None:
                meta["timings_ms"] = {key: elapsed_ms}
            elif key not in timings:
                timings[key] = elapsed_ms
            op_output.emit(message, port, PYTHON_OBJECT)  # ours: passed on as the Python object itself

    def process(self, inputs: dict[str, Message | None]) -> dict[str, Message] | None:
        """Turn this frame's input messages into output messages keyed by port name."""
        raise NotImplementedError


def own_copy(message: Any) -> Any:
    """The message with its own `meta` (and `timings_ms`): writes into it never reach a sibling branch of a fan-out,
    whichever thread runs it. Shallow: the arrays stay shared (zero-copy)."""
    meta = message.get("meta") if isinstance(message, dict) else None
    if not isinstance(meta, dict):
        return message
    meta = meta.copy()
    timings = meta.get("timings_ms")
    if isinstance(timings, dict):
        meta["timings_ms"] = timings.copy()
    message = message.copy()
    message["meta"] = meta
    return message


def first_present(message: Message, keys: list[str], operator: str) -> tuple[str, Any]:
    """The first of `keys` the message carries (not None) and its value; InputError naming the operator's key."""
    for key in keys:
        if message.get(key) is not None:
            return key, message[key]
    raise InputError(f"operators.{operator}.keys: none of {', '.join(keys)} in the message")
